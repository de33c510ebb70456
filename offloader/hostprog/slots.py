"""Which variable fills which dispatch slot of a region (the order abi.py documents)."""

from __future__ import annotations

from pycparser import c_ast

from ..analysis.ctypes_model import Variable
from ..codegen.regions import Region, element_text
from .abi import Slot

_UNSIGNED_NAMES = {"size_t", "uintptr_t", "uintmax_t", "uint8_t", "uint16_t", "uint32_t", "uint64_t", "_Bool"}


class SlotError(Exception):
    """A variable of the region cannot be passed by address; the message says why."""


def region_slots(region: Region) -> tuple[Slot, ...]:
    variables = region.function.variables
    slots: list[Slot] = []
    for param in region.params:
        slots.append(_slot(len(slots), variables[param.name], "param"))
    for param, op in region.reductions:
        slots.append(_slot(len(slots), variables[param.name], "reduction", op=op))
    for level, verdict in enumerate(region.mapped):
        if not verdict.header.declares_var:
            slots.append(_slot(len(slots), variables[verdict.header.var], "loopvar", level=level))
    for name in region.places:
        slots.append(Slot(len(slots), name, "place", "place", element_text(variables[name])))
    return tuple(slots)


def _slot(index: int, variable: Variable, role: str, op: str = "", level: int = -1) -> Slot:
    decl = variable.decl
    if isinstance(decl, c_ast.Decl) and "register" in (decl.storage or []):
        raise SlotError(f"`{variable.name}` is a register variable, whose address C does not give")
    element = element_text(variable)
    kind = variable.ctype.kind
    depth = _depth(decl.type) if isinstance(decl, c_ast.Decl) else 0
    if kind == "pointer" or (kind == "array" and variable.storage == "param"):
        return Slot(index, variable.name, role, "pointer", element, sized=False, op=op, level=level, depth=depth)
    if kind == "array":
        complete = isinstance(decl.type, c_ast.ArrayDecl) and decl.type.dim is not None
        return Slot(index, variable.name, role, "array", element, sized=complete, op=op, level=level, depth=depth)
    if kind == "float":
        value = "float"
    elif "unsigned" in element.split() or element in _UNSIGNED_NAMES:
        value = "uint"
    else:
        value = "int"
    return Slot(index, variable.name, role, "scalar", element, value=value, op=op, level=level)


def _depth(node: c_ast.Node) -> int:
    """Subscripts from a declared variable to one element: 2 for `double a[N][M]` or `(*a)[M]`."""
    depth = 0
    while isinstance(node, (c_ast.ArrayDecl, c_ast.PtrDecl)):
        depth += 1
        node = node.type
    return depth

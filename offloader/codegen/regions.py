"""Offload regions: each outermost parallel loop nest chosen for offloading, with the loops
mapped to the grid and every variable the kernel needs, classified.

A region maps up to three perfectly nested parallel loops to the grid; loops below them run
inside each thread. A region the generator cannot express is rejected with the reason.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pycparser import c_ast, c_generator

from ..frontend.walk import walk
from ..analysis import AnalysisResult
from ..analysis.ctypes_model import TypeTable, Variable
from ..analysis.header import Header, parse_header
from ..analysis.loads import substitute
from ..analysis.model import FunctionModel
from ..analysis.poly import to_poly
from ..analysis.verdicts import LoopVerdict
from .cxx import safe_name

MAX_MAPPED = 3
PRIVATE_ARRAY_BYTES = 16 << 10          # a per-thread copy larger than this would spill badly
_SCALAR_BYTES = {"char": 1, "short": 2, "int": 4, "float": 4, "long": 8, "double": 8}


@dataclass(frozen=True)
class Param:
    """One kernel argument. kind: array (a pointer), scalar (by value), reduction, local.
    `name` is what the analysis and the runtime call it (`p->x` for a loaded field), `ident`
    the C identifier the kernel and the twin use."""

    name: str
    kind: str
    decl: c_ast.Decl          # the variable's declaration, as a parameter of this name and type
    element: str              # C type of one element (arrays) or of the value (scalars)
    ident: str = ""

    def __post_init__(self):
        if not self.ident:
            object.__setattr__(self, "ident", safe_name(self.name))


@dataclass(frozen=True)
class Region:
    id: int                               # index of the region in program order
    loop_index: int                       # index of its top loop in the analysis JSON
    function: FunctionModel
    mapped: tuple[LoopVerdict, ...]       # outermost first
    params: tuple[Param, ...]
    private: tuple[Param, ...]            # declared inside each iteration (decl as a local)
    loop_vars: tuple[Param, ...]          # mapped loops' variables declared before the loop
    reductions: tuple[tuple[Param, str], ...]
    helpers: tuple[c_ast.FuncDef, ...]    # pure user functions the region calls
    nest: tuple[c_ast.For, ...] = ()      # the mapped loops as the kernel runs them: loaded
                                          # fields replaced by their parameters' identifiers
    headers: tuple[Header, ...] = ()      # ... and their headers
    places: tuple[str, ...] = ()          # loaded fields the kernel does not use (`m->g` of
                                          # `m->g->u`): the runtime only checks their bytes

    @property
    def top(self) -> LoopVerdict:
        return self.mapped[0]

    @property
    def name(self) -> str:
        return f"offload_region_{self.id}"


@dataclass(frozen=True)
class Rejection:
    loop_index: int
    location: str
    reason: str


class RegionError(Exception):
    """The generator cannot express this region; the message says why."""


def find_regions(result: AnalysisResult) -> tuple[list[Region], list[Rejection]]:
    """The regions of an analysed program, and the region tops the generator rejects."""
    by_loop_id = {v.loop.id: v for v in result.verdicts}
    selected = {k for k, v in enumerate(result.verdicts)
                if result.selection.get(k, (v.verdict == "parallel", ""))[0]}
    regions, rejections, covered = [], [], set()
    for k, verdict in enumerate(result.verdicts):
        if k not in selected or any(a in covered for a in verdict.loop.chain[:-1]):
            continue
        covered.add(verdict.loop.id)
        try:
            regions.append(_build(len(regions), k, verdict, by_loop_id, result))
        except RegionError as exc:
            rejections.append(Rejection(k, str(verdict.loop.location), str(exc)))
    return regions, rejections


def _only_statement(loop: c_ast.For) -> c_ast.Node:
    """The body of a loop, or its one statement when the body is a block of one."""
    body = loop.stmt
    if isinstance(body, c_ast.Compound) and body.block_items and len(body.block_items) == 1:
        return body.block_items[0]
    return body


def _mapped_nest(top: LoopVerdict, by_loop_id: dict[int, LoopVerdict]) -> tuple[LoopVerdict, ...]:
    nest = [top]
    while len(nest) < MAX_MAPPED:
        body = _only_statement(nest[-1].loop.node)
        inner = next((by_loop_id[c] for c in nest[-1].loop.children
                      if by_loop_id[c].loop.node is body), None)
        if inner is None or inner.verdict != "parallel" or inner.header is None:
            break
        nest.append(inner)
    return tuple(nest)


def _build(region_id: int, loop_index: int, top: LoopVerdict, by_loop_id, result: AnalysisResult) -> Region:
    program = result.program
    model = program.models[top.loop.function]
    mapped = _mapped_nest(top, by_loop_id)
    inside_vars = {by_loop_id[i].header.var for i in by_loop_id
                   if top.loop.id in by_loop_id[i].loop.chain and by_loop_id[i].header}
    special = set(top.reductions) | top.private | top.lastprivate
    if top.lastprivate:
        raise RegionError("variables read after the loop (" + ", ".join(sorted(top.lastprivate))
                          + ") need last-iteration values, which the generator does not produce yet")
    typedefs = _typedefs(program, model)
    params, helpers = [], _helpers(top, model, program)
    loop = substitute(top.loop.node, {name: value.ident for name, value in top.loaded.items()})
    nest = _nest_of(loop, len(mapped))
    names = _free_names(loop, model) - inside_vars - top.loop.declared_inside - special
    for name in sorted(names):
        params.append(_param(model.variables[name], name, typedefs, model.types))
    used = {n.name for n in walk(loop) if isinstance(n, c_ast.ID)}
    for name, value in sorted(top.loaded.items()):
        if value.ident in used:
            params.append(_param(model.variables[name], name, typedefs, model.types, value.ident))
    places = tuple(sorted(name for name, value in top.loaded.items() if value.ident not in used))
    mapped_vars = {v.header.var for v in mapped}
    private = [_local(model.variables[n], n, typedefs) for n in sorted(top.private - mapped_vars)]
    loop_vars = [_local(model.variables[v.header.var], v.header.var, typedefs) for v in mapped
                 if not v.header.declares_var]
    reductions = [(_local(model.variables[n], n, typedefs), op) for n, op in sorted(top.reductions.items())]
    for param in params + private + [p for p, _ in reductions]:
        if param.kind in ("scalar", "reduction") and param.element in ("long double",):
            raise RegionError(f"`{param.name}` is a long double, which GPUs do not have")
    return Region(region_id, loop_index, model, mapped, tuple(params), tuple(private),
                  tuple(loop_vars), tuple(reductions), tuple(helpers), nest,
                  tuple(parse_header(node)[0] for node in nest), places)


def _nest_of(loop: c_ast.For, depth: int) -> tuple[c_ast.For, ...]:
    """The first `depth` loops of a perfect nest (as _mapped_nest found them)."""
    nest = [loop]
    while len(nest) < depth:
        nest.append(_only_statement(nest[-1]))
    return tuple(nest)


def _free_names(node: c_ast.Node, model: FunctionModel) -> set[str]:
    """Variables the loop refers to that are declared outside it."""
    found = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, c_ast.FuncCall) and isinstance(current.name, c_ast.ID):
            stack.extend(child for name, child in current.children() if name != "name")
            continue
        if isinstance(current, c_ast.ID):
            if current.name in model.variables:
                found.add(current.name)
        stack.extend(child for _, child in current.children())
    return found


def _typedefs(program, model: FunctionModel) -> dict[str, c_ast.Node]:
    """Typedefs visible in the function's file (system headers included)."""
    file = model.node.coord.file if model.node.coord else None
    return {node.name: node.type for unit in program.units if unit.source.path == file
            for node in unit.ast.ext if isinstance(node, c_ast.Typedef)}


def _plain_scalars(node: c_ast.Node, typedefs: dict[str, c_ast.Node]) -> None:
    """Spell typedef'd scalar types with C's own names (`real` -> `double`), in place: kernel
    signatures name only C's types. Typedefs of structs are left as they are."""
    for child in walk(node):
        if not isinstance(child, c_ast.TypeDecl) or not isinstance(child.type, c_ast.IdentifierType):
            continue
        for _ in range(16):
            names = child.type.names
            target = typedefs.get(names[0]) if len(names) == 1 else None
            if not (isinstance(target, c_ast.TypeDecl) and isinstance(target.type, c_ast.IdentifierType)):
                break
            child.type = copy.deepcopy(target.type)
            child.quals = list(dict.fromkeys(child.quals + target.quals))


def _param(variable: Variable, name: str, typedefs: dict[str, c_ast.Node], types: TypeTable,
           ident: str = "") -> Param:
    kind = variable.ctype.kind
    inner = variable.ctype.inner
    ident = ident or safe_name(name)
    if kind in ("array", "pointer") and inner is not None and inner.kind == "pointer":
        raise RegionError(f"`{name}` holds pointers (rows of an array); the device cannot follow host pointers")
    if kind in ("array", "pointer") and _holds_pointers(inner, types):
        raise RegionError(f"`{name}` points to structs that hold pointers; the device cannot follow host "
                          "pointers (the loop reaches them in a way that cannot be loaded once at its entry)")
    decl = _as_declaration(variable, name, typedefs, ident)
    if kind == "array":
        _check_constant_dims(variable, name)
        decl.type = c_ast.PtrDecl([], decl.type.type)          # A[N][M] -> (*A)[M]
        return Param(name, "array", decl, _element_of(decl), ident)
    if kind == "pointer":
        return Param(name, "array", decl, _element_of(decl), ident)
    if kind in ("scalar", "float"):
        return Param(name, "scalar", decl, _element_of(decl), ident)
    raise RegionError(f"`{name}` is a {kind} value used as a whole; the generator passes only arrays, pointers, "
                      "plain scalars and the fields the loop reads to kernels")


def _holds_pointers(ctype, types: TypeTable, depth: int = 0) -> bool:
    """Whether values of this type contain pointers (struct members, nested structs, arrays)."""
    if ctype is None or depth > 8:
        return False
    if ctype.kind == "pointer":
        return True
    if ctype.kind == "array":
        return _holds_pointers(ctype.inner, types, depth + 1)
    if ctype.kind in ("struct", "union"):
        members = types.structs.get(ctype.struct or "", {})
        return any(_holds_pointers(types.resolve(node), types, depth + 1) for node in members.values())
    return False


def _local(variable: Variable, name: str, typedefs: dict[str, c_ast.Node]) -> Param:
    """A variable each thread gets its own copy of: a plain scalar, or a small array of them
    of constant size (registers or local memory)."""
    kind = variable.ctype.kind
    if kind == "array":
        decl = _as_declaration(variable, name, typedefs)
        _check_private_array(decl, name)
        return Param(name, "local", decl, _element_of(decl))
    if kind not in ("scalar", "float"):
        raise RegionError(f"private `{name}` is a {kind}; only plain scalars and arrays of them can be private")
    decl = _as_declaration(variable, name, typedefs)
    return Param(name, "local", decl, _element_of(decl))


def _check_private_array(decl: c_ast.Decl, name: str) -> None:
    count, node = 1, decl.type
    while isinstance(node, c_ast.ArrayDecl):
        value = to_poly(node.dim, lambda n: None) if node.dim is not None else None
        if value is None or value.constant_value() is None:
            raise RegionError(f"private array `{name}` has no constant size; per-thread copies need one")
        count *= value.constant_value()
        node = node.type
    element = _element_of(decl)
    words = element.replace("unsigned", "").replace("signed", "").split()
    size = _SCALAR_BYTES.get(words[-1] if words else "int")
    if size is None or "*" in element:
        raise RegionError(f"private array `{name}` holds `{element}`; per-thread copies are made of plain scalars only")
    if count * size > PRIVATE_ARRAY_BYTES:
        raise RegionError(f"private array `{name}` takes {count * size} bytes; per-thread copies larger than "
                          f"{PRIVATE_ARRAY_BYTES} bytes are not generated")


def _as_declaration(variable: Variable, name: str, typedefs: dict[str, c_ast.Node], ident: str = "") -> c_ast.Decl:
    decl = variable.decl
    if not isinstance(decl, c_ast.Decl):
        raise RegionError(f"the generator cannot see how `{name}` is declared")
    decl = copy.deepcopy(decl)
    decl.init, decl.storage, decl.funcspec, decl.bitsize = None, [], [], None
    for child in walk(decl.type):
        if isinstance(child, (c_ast.Struct, c_ast.Union)) and child.decls is not None:
            child.decls = None                                 # name the type, don't redefine it
    decl.name = ident or safe_name(name)
    _innermost(decl.type).declname = decl.name
    _plain_scalars(decl.type, typedefs)
    return decl


def _element_of(decl: c_ast.Decl) -> str:
    base = copy.deepcopy(_innermost(decl.type))
    base.declname, base.quals = None, []
    return c_generator.CGenerator().visit(base).strip()


def _innermost(node: c_ast.Node) -> c_ast.TypeDecl:
    while not isinstance(node, c_ast.TypeDecl):
        node = node.type
    return node


def element_text(variable: Variable) -> str:
    """The C type of a variable's elements (of its value, for a scalar), e.g. `double`."""
    base = _innermost(copy.deepcopy(variable.decl.type))
    base.declname = None
    base.quals = []
    for child in walk(base):
        if isinstance(child, (c_ast.Struct, c_ast.Union)):
            child.decls = None
    return c_generator.CGenerator().visit(base).strip()


def _check_constant_dims(variable: Variable, name: str) -> None:
    node = variable.decl.type
    while isinstance(node, c_ast.ArrayDecl):
        inner_dims = node.type
        if isinstance(inner_dims, c_ast.ArrayDecl) and inner_dims.dim is not None:
            value = to_poly(inner_dims.dim, lambda n: None)
            if value is None or value.constant_value() is None:
                raise RegionError(f"`{name}` is a variable-length array; CUDA C++ has none")
        node = inner_dims


def _helpers(top: LoopVerdict, model: FunctionModel, program) -> list[c_ast.FuncDef]:
    """Pure user functions called in the region, callees included, each once."""
    order, seen = [], set()

    def visit(names):
        for name in names:
            if name in seen or name not in program.models:
                continue
            seen.add(name)
            callee = program.models[name]
            visit(_called(callee.node.body))
            order.append(callee.node)
    visit(_called(top.loop.node))
    return order


def _called(node: c_ast.Node) -> list[str]:
    return [n.name.name for n in walk(node) if isinstance(n, c_ast.FuncCall) and isinstance(n.name, c_ast.ID)]



def top_level_types(result: AnalysisResult) -> list[c_ast.Node]:
    """Typedefs, struct/union/enum definitions of the user's own files, for kernel preambles."""
    found, seen = [], set()
    for unit in result.program.units:
        for node in unit.ast.ext:
            if node.coord is None or node.coord.file != unit.source.path:
                continue
            # Files of one program share their types (a header, or copies): one definition each.
            key = node.name if isinstance(node, c_ast.Typedef) else c_generator.CGenerator().visit(node)
            if key in seen:
                continue
            if isinstance(node, c_ast.Typedef) or (isinstance(node, c_ast.Decl) and node.name is None):
                seen.add(key)
                found.append(node)                             # typedefs; struct s {...};
    return found

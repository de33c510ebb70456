"""Struct fields a loop reads but does not change, loaded once at the loop's entry.

Scientific code keeps its arrays in structs: `p->x[i]`, `A->val[k]`, `s.v[i]` with `s` passed
by value, bounds such as `i < p->n`. Read in every iteration, such a field is a pointer (or a
scalar) loaded from memory, which a store of the loop could change. When no store of the
loop can reach the field's bytes, its value is the same in every iteration: the loop is
analysed as if the field were a pointer parameter (or a scalar one) named by its expression,
`p->x`, and the region loads it once at entry and passes it to the kernel.

"Can reach" is decided statically where it can be: stores to the same object through the
same path reach it unless they name another member; nothing reaches a local struct whose
address is never taken. Otherwise the value is `checked`: the run-time check (the
`not-written` condition) must find its bytes outside every range the loop writes.

Only what is reached through a member is loaded this way, and up to MAX_LEVELS pointers deep:
`m->grid->u[i]` loads `m->grid` (whose bytes are then only checked, a `place`), then
`m->grid->u`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from typing import Optional

from pycparser import c_ast, c_generator

from ..frontend.walk import walk
from .ctypes_model import CType, Variable
from .model import Component, FunctionModel, Loop, MemoryAccess
from .poly import to_poly

_GEN = c_generator.CGenerator()
LOADED = "loaded"                  # Variable.storage of a loaded field
MAX_LEVELS = 3                     # pointers followed from a variable (`a->b->c->d[i]`)


@dataclass(frozen=True)
class LoadedValue:
    name: str            # the C expression (`p->x`): names the value in verdicts, plans and slots
    ident: str           # a C identifier for it in kernels and twins
    kind: str            # "pointer" or "scalar"
    checked: bool        # the run-time check must find its bytes outside what the loop writes
    base: str            # the variable it is loaded from


@dataclass(frozen=True)
class Unloadable:
    """A field the loop reads through that cannot be loaded once, with the accesses it blocks."""

    name: str
    why: str                                   # what changes it, for the reason
    accesses: tuple[MemoryAccess, ...]
    writer: Optional[MemoryAccess] = None      # the store that may change it, when one is known


@dataclass
class Hoisting:
    values: dict[str, LoadedValue] = field(default_factory=dict)
    accesses: list[MemoryAccess] = field(default_factory=list)
    unloadable: list[Unloadable] = field(default_factory=list)

    @property
    def names(self) -> dict[str, str]:
        """Expression text -> the name it is analysed under (the same text)."""
        return {name: name for name in self.values}


def expression_text(node: c_ast.Node) -> str:
    return _GEN.visit(node)


def substitute(node: Optional[c_ast.Node], names: dict[str, str]) -> Optional[c_ast.Node]:
    """`node` with every loaded expression (by its text) replaced by an identifier; the
    original is left alone (a copy is made where something is replaced)."""
    if node is None or not names:
        return node
    if isinstance(node, (c_ast.StructRef, c_ast.ArrayRef, c_ast.UnaryOp)):
        replacement = names.get(expression_text(node))
        if replacement is not None:
            return c_ast.ID(replacement, coord=node.coord)
    changed = {}
    for child_name, child in node.children():
        new = substitute(child, names)
        if new is not child:
            changed[child_name] = new
    if not changed:
        return node
    out = copy.copy(node)
    for child_name, new in changed.items():
        match = re.fullmatch(r"(\w+)\[(\d+)\]", child_name)
        if match:
            items = list(getattr(out, match.group(1)))
            items[int(match.group(2))] = new
            setattr(out, match.group(1), items)
        else:
            setattr(out, child_name, new)
    return out


class Loads:
    """The loaded fields of one function's loops."""

    def __init__(self, model: FunctionModel, points, address_taken: set[str]):
        self.model = model
        self.types = model.types
        self.points = points
        self.address_taken = address_taken
        self._idents: dict[str, str] = {}

    # ---- one loop ----------------------------------------------------------------------
    def hoist(self, loop: Loop, accesses: list[MemoryAccess], written: set[str], inner_vars: set[str]) -> Hoisting:
        """Rewrite `accesses` (raw, of `loop`) through the fields that can be loaded once, a
        level of pointers at a time."""
        out = Hoisting()
        for _ in range(MAX_LEVELS):
            before = len(out.values)
            accesses = self._level(loop, accesses, written, inner_vars, out)
            if len(out.values) == before:
                break
        checked = self._needs_check(accesses, out.values)
        out.values = {n: replace(v, checked=n in checked) for n, v in out.values.items()}
        out.accesses = accesses
        return out

    def _level(self, loop: Loop, accesses: list[MemoryAccess], written: set[str], inner_vars: set[str],
               out: Hoisting) -> list[MemoryAccess]:
        candidates: dict[str, tuple[str, tuple[Component, ...], CType, c_ast.Node]] = {}
        uses: dict[str, list[MemoryAccess]] = {}
        for access in accesses:
            found = self._candidate(access)
            if found is not None:
                text, path, ctype, node = found
                candidates.setdefault(text, (access.base, path, ctype, node))
                uses.setdefault(text, []).append(access)
        blocked: dict[str, tuple[str, Optional[MemoryAccess]]] = {}
        for text, (base, path, ctype, node) in candidates.items():
            if text in out.values or any(f.name == text for f in out.unloadable):
                continue
            why = self._varies(loop, base, path, written, inner_vars, out.values)
            if not why and any(c.index is not None and _constant(c.index) is None for c in path) \
                    and not any(_always_read(loop, a) for a in uses[text]):
                # Loaded at entry, `a[k].f` must be valid even where the loop would not read it.
                why = "its subscript may not be valid where the loop does not read it"
            writer = None if why else self._store_reaching(accesses, base, path)
            if why or writer is not None:
                blocked[text] = (why or f"`{text}` is stored to at {writer.location}", writer)
                continue
            out.values[text] = LoadedValue(text, self._ident(text), "pointer" if ctype.kind == "pointer" else "scalar",
                                           False, base)
            self._declare(text, ctype, node)
        names = out.names
        rewritten, rewritten_of = [], {}
        for access in accesses:
            text = self._candidate_text(access)
            if text in out.values and access.load is None:
                continue                      # reads the field itself: now a value the region passes
            rewritten_of[id(access)] = self._rebase(access, out.values.get(text), names)
            rewritten.append(rewritten_of[id(access)])
        out.unloadable = [replace(f, accesses=tuple(rewritten_of.get(id(a), a) for a in f.accesses))
                          for f in out.unloadable]
        for text, (why, writer) in blocked.items():
            through = tuple(rewritten_of[id(a)] for a in uses[text] if a.load is not None)
            if through:
                out.unloadable.append(Unloadable(text, why, through, writer))
        return rewritten

    def _candidate(self, access: MemoryAccess):
        """(text, path, type, node) of the field `access` loads, if it loads one."""
        if access.base is None:
            return None
        if access.load is not None:
            node, path = access.load, access.components[:access.load_at]
        elif access.read and not access.write and access.components and not access.through_loaded_pointer:
            node, path = access.node, access.components
        else:
            return None
        if node is None or not any(c.field is not None for c in path):
            return None                   # only what is reached through a struct member
        ctype = self._type_at(access.base, path)
        if ctype is None or ctype.kind not in ("pointer", "scalar", "float"):
            return None
        return expression_text(node), path, ctype, node

    def _candidate_text(self, access: MemoryAccess) -> Optional[str]:
        found = self._candidate(access)
        return found[0] if found else None

    def _varies(self, loop: Loop, base: str, path, written: set[str], inner_vars: set[str],
                loaded: dict[str, LoadedValue]) -> str:
        """Why the path to the field may lead elsewhere in another iteration ('' if it cannot)."""
        variable = self.model.variables.get(base)
        if variable is None or (variable.storage == LOADED and base not in loaded):
            return f"`{base}` is not a variable the analysis follows"
        if isinstance(variable.decl, c_ast.Decl) and "register" in (variable.decl.storage or []):
            return f"`{base}` is a register variable"
        if base in written or base in loop.declared_inside:
            return f"`{base}` changes inside the loop"
        for component in path:
            if component.index is None:
                continue
            for node in walk(component.index):
                if isinstance(node, (c_ast.FuncCall, c_ast.Assignment, c_ast.StructRef, c_ast.ArrayRef)) or (
                        isinstance(node, c_ast.UnaryOp) and node.op in ("++", "--", "p++", "p--", "*", "&")):
                    return "its subscript is not a plain expression"
                if isinstance(node, c_ast.ID) and (node.name in written or node.name in inner_vars
                                                   or node.name in loop.declared_inside):
                    return f"its subscript uses `{node.name}`, which changes inside the loop"
        return ""

    def _store_reaching(self, accesses: list[MemoryAccess], base: str, path) -> Optional[MemoryAccess]:
        """A store of the loop to the object of `base` (not through a loaded pointer) that
        may overlap the field at `path`."""
        for access in accesses:
            if access.write and access.base == base and access.load is None \
                    and _may_overlap(access.components, path):
                return access
        return None

    def _needs_check(self, accesses: list[MemoryAccess], values: dict[str, LoadedValue]) -> set[str]:
        """The loaded values whose bytes a store of the loop may reach (statically unknown)."""
        writes = [a for a in accesses if a.write]
        checked = set()
        for name, value in values.items():
            if self._private_object(value.base):
                continue
            # Stores to the field's own object were compared member by member already.
            if any(w.base is None or w.base in values
                   or (w.base != value.base and self.points.may_alias(value.base, w.base)) for w in writes):
                checked.add(name)
        return checked

    def _private_object(self, base: str) -> bool:
        """A local struct (or array of them) whose address is never taken: no pointer reaches
        it. A struct parameter is a local copy; an array parameter is a pointer, so it is not."""
        variable = self.model.variables.get(base)
        kinds = ("struct", "union", "array") if variable is not None and variable.storage == "local" else ("struct", "union")
        return (variable is not None and variable.ctype.kind in kinds and variable.storage in ("local", "param")
                and base not in self.model.escaped and base not in self.address_taken)

    # ---- rewriting ---------------------------------------------------------------------
    def _rebase(self, access: MemoryAccess, value: Optional[LoadedValue], names: dict[str, str]) -> MemoryAccess:
        components = tuple(replace(c, index=substitute(c.index, names)) if c.index is not None else c
                           for c in access.components)
        if value is None or value.kind != "pointer":
            return replace(access, components=components)
        rest = components[access.load_at:]
        again = self._next_load(self.model.variables[value.name].ctype, rest)
        if again is None:
            return replace(access, base=value.name, components=rest, through_loaded_pointer=False,
                           load=None, load_at=0)
        spine = dict(_spine(access.node)) if access.node is not None and again else {}
        return replace(access, base=value.name, components=rest, through_loaded_pointer=True,
                       load=spine.get(access.load_at + again), load_at=again)

    def _next_load(self, pointer: CType, rest) -> Optional[int]:
        """Where the rest of a path, from a loaded pointer, loads another one: how many of its
        components lead to that pointer (0 when the path cannot be followed)."""
        ctype = pointer
        for position, component in enumerate(rest):
            if ctype is None or ctype.kind == "unknown":
                return 0
            if component.index is not None:
                if ctype.kind == "pointer" and position > 0:
                    return position
                ctype = ctype.inner
            elif component.field == "*":
                return 0
            else:
                ctype = self.types.field_type(ctype.struct, component.field)
        return None

    # ---- types -------------------------------------------------------------------------
    def _type_at(self, base: str, path) -> Optional[CType]:
        """The type of the field `path` reaches from `base` (None: unknown or a bit-field)."""
        variable = self.model.variables.get(base)
        if variable is None:
            return None
        ctype: Optional[CType] = variable.ctype
        owner = None
        for component in path:
            if ctype is None or ctype.kind == "unknown":
                return None
            if component.index is not None:
                ctype = ctype.inner
            else:
                owner = ctype.struct
                ctype = self.types.field_type(owner, component.field)
        if owner is None or (path[-1].field is not None and (owner, path[-1].field) in self.types.bitfields):
            return None
        return ctype

    def _declare(self, text: str, ctype: CType, node: c_ast.Node) -> None:
        """Enter the loaded value in the function's variables, with a declaration the kernel
        generator can copy (the member's declared type, typedefs of pointers resolved)."""
        if text in self.model.variables:
            return
        decl = c_ast.Decl(self._ident(text), [], [], [], [], self._type_node(node), None, None)
        _innermost(decl.type).declname = decl.name
        self.model.variables[text] = Variable(text, ctype, LOADED, None, decl)

    def _type_node(self, expr: c_ast.Node) -> c_ast.Node:
        """The declarator type of a path expression: a member's declared type, one level of
        array or pointer off for a subscript."""
        if isinstance(expr, c_ast.StructRef):
            owner = self._type_of(expr.name)
            if expr.type == "->" and owner is not None:
                owner = owner.inner
            return self._resolved(copy.deepcopy(self.types.structs[owner.struct][expr.field.name]))
        if isinstance(expr, c_ast.ArrayRef):
            outer = self._type_node(expr.name)
            if not isinstance(outer, (c_ast.ArrayDecl, c_ast.PtrDecl)):
                raise TypeError(f"`{expression_text(expr)}` subscripts a value that is not an array")
            return self._resolved(outer.type)
        return self._resolved(copy.deepcopy(self.model.variables[expr.name].decl.type))

    def _type_of(self, expr: c_ast.Node) -> Optional[CType]:
        """The type of a path expression (a variable, subscripts, members)."""
        if isinstance(expr, c_ast.ID):
            return self.model.variables[expr.name].ctype
        if isinstance(expr, c_ast.ArrayRef) or (isinstance(expr, c_ast.UnaryOp) and expr.op == "*"):
            inner = self._type_of(expr.name if isinstance(expr, c_ast.ArrayRef) else expr.expr)
            return inner.inner if inner is not None else None
        if isinstance(expr, c_ast.StructRef):
            inner = self._type_of(expr.name)
            if inner is not None and expr.type == "->":
                inner = inner.inner
            return self.types.field_type(inner.struct, expr.field.name) if inner is not None else None
        return None

    def _resolved(self, node: c_ast.Node) -> c_ast.Node:
        """A member declared with a typedef of a pointer (`vec x;`, typedef double *vec) as
        the pointer it stands for: kernel signatures name only C's own types."""
        for _ in range(16):
            names = node.type.names if isinstance(node, c_ast.TypeDecl) and \
                isinstance(node.type, c_ast.IdentifierType) else None
            target = self.types.typedefs.get(names[0]) if names and len(names) == 1 else None
            if not isinstance(target, (c_ast.PtrDecl, c_ast.TypeDecl)) or (
                    isinstance(target, c_ast.TypeDecl) and isinstance(target.type, c_ast.IdentifierType)):
                return node                    # not a typedef, or one of a scalar (spelled later)
            node = copy.deepcopy(target)
        return node

    def _ident(self, text: str) -> str:
        if text not in self._idents:
            stem = "__ld_" + re.sub(r"\W+", "_", text).strip("_")
            ident, k = stem, 1
            while ident in self._idents.values():
                k += 1
                ident = f"{stem}_{k}"
            self._idents[text] = ident
        return self._idents[text]


def _spine(node: c_ast.Node) -> list[tuple[int, c_ast.Node]]:
    """(how many path components lead to it, node) for every expression on an access's path,
    from its variable out (the model's components: `->` is an index 0 and a member)."""
    chain = []
    while True:
        chain.append(node)
        if isinstance(node, (c_ast.ArrayRef, c_ast.StructRef)):
            node = node.name
        elif isinstance(node, c_ast.UnaryOp) and node.op == "*":
            node = node.expr.left if isinstance(node.expr, c_ast.BinaryOp) and node.expr.op in ("+", "-") else node.expr
        else:
            break
    out, count = [], 0
    for node in reversed(chain):
        if isinstance(node, c_ast.StructRef):
            count += 2 if node.type == "->" else 1
        elif isinstance(node, (c_ast.ArrayRef, c_ast.UnaryOp)):
            count += 1
        out.append((count, node))
    return out


def _always_read(loop: Loop, access: MemoryAccess) -> bool:
    """Whether the access runs whenever the loop statement does: in its condition, or in the
    first iteration's body outside any `if`."""
    if not access.unconditional:
        return False
    if access.path == loop.path and access.chain[-1] == loop.id:
        return True
    return len(access.path) == len(loop.path) + 1 and access.path[-1][0] == loop.body_block


def _may_overlap(store, path) -> bool:
    """Whether a store at `store` may reach the field at `path` of the same object."""
    for one, two in zip(store, path):
        if one.field is not None and two.field is not None:
            if one.field != two.field and "*" not in (one.field, two.field):
                return False
            continue
        if one.index is not None and two.index is not None:
            a, b = _constant(one.index), _constant(two.index)
            if a is not None and b is not None and a != b:
                return False
            continue
        return True                       # an index against a member: another shape
    return True


def _constant(node: c_ast.Node) -> Optional[int]:
    poly = to_poly(node, lambda name: None)
    return poly.constant_value() if poly is not None else None


def _innermost(node: c_ast.Node) -> c_ast.TypeDecl:
    while not isinstance(node, c_ast.TypeDecl):
        node = node.type
    return node

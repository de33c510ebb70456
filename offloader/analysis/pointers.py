"""Where pointers can point: a flow-insensitive points-to analysis per function, and the
may-alias question between two names accessed in one loop."""

from __future__ import annotations

from pycparser import c_ast

from .loads import LOADED
from .model import FunctionModel, ScalarAccess

ALLOCATORS = {"malloc", "calloc", "realloc", "aligned_alloc", "valloc", "memalign", "_mm_malloc"}
UNKNOWN = "unknown"


class PointsTo:
    """origins(name): where a pointer may point. Origins are `obj:X` (a declared array or
    struct X), `heap:X@line` (one allocation site), `param:P`, `global:G`, `loaded:E` (a
    pointer field E loaded once at the loop's entry, see loads.py) and `unknown`."""

    def __init__(self, model: FunctionModel):
        self.model = model
        self.defs: dict[str, list[c_ast.Node | None]] = {}
        for event in model.events:
            if isinstance(event, ScalarAccess) and event.write:
                if event.definition is not None:
                    self.defs.setdefault(event.name, []).append(event.definition)
                elif not event.read:
                    self.defs.setdefault(event.name, []).append(None)
        self._cache: dict[str, frozenset[str]] = {}

    def origins(self, name: str, _active: frozenset[str] = frozenset()) -> frozenset[str]:
        if name in self._cache:
            return self._cache[name]
        var = self.model.variables.get(name)
        if var is None:
            return frozenset({UNKNOWN})
        if var.storage == LOADED:
            return frozenset({f"loaded:{name}"})
        if var.storage == "param" and var.ctype.kind in ("array", "pointer"):
            result = frozenset({f"param:{name}"}) | self._defined_origins(name, _active)
        elif var.ctype.kind in ("array", "struct"):
            result = frozenset({f"obj:{name}"})
        elif name in _active:
            result = frozenset()
        else:
            found: set[str] = {f"global:{name}"} if var.storage in ("global", "static") else set()
            if var.storage == "param":
                found.add(f"param:{name}")
            result = frozenset(found) | self._defined_origins(name, _active)
        if not _active:
            self._cache[name] = result
        return result

    def _defined_origins(self, name: str, active: frozenset[str]) -> frozenset[str]:
        found: set[str] = set()
        for definition in self.defs.get(name, []):
            found |= self._expr(definition, active | {name}) if definition is not None else {UNKNOWN}
        return frozenset(found)

    def _expr(self, node: c_ast.Node, active: frozenset[str]) -> set[str]:
        if isinstance(node, c_ast.Cast):
            return self._expr(node.expr, active)
        if isinstance(node, c_ast.FuncCall) and isinstance(node.name, c_ast.ID) \
                and node.name.name in ALLOCATORS:
            return {f"heap:{node.coord.line if node.coord else 0}:{node.coord.column if node.coord else 0}"}
        if isinstance(node, c_ast.ID):
            var = self.model.variables.get(node.name)
            if var is None:
                return {UNKNOWN}
            if var.ctype.kind in ("pointer", "array", "struct"):
                return set(self.origins(node.name, active))
            return {UNKNOWN}
        if isinstance(node, c_ast.Constant):
            return set()          # NULL
        if isinstance(node, c_ast.UnaryOp) and node.op == "&":
            return self._expr(_root(node.expr), active)
        if isinstance(node, c_ast.BinaryOp) and node.op in ("+", "-"):
            return self._expr(node.left, active) | (self._expr(node.right, active) if node.op == "+" else set())
        if isinstance(node, c_ast.TernaryOp):
            return self._expr(node.iftrue, active) | self._expr(node.iffalse, active)
        return {UNKNOWN}

    def is_restrict_param(self, origin: str) -> bool:
        if not origin.startswith("param:"):
            return False
        var = self.model.variables.get(origin[6:])
        return bool(var and var.ctype.restrict)

    def unknown(self, name: str) -> bool:
        """Whether the pointer may point anywhere (as far as this function can tell)."""
        return any(o == UNKNOWN or o.startswith("loaded:") for o in self.origins(name))

    def declared_restrict(self, name: str) -> bool:
        var = self.model.variables.get(name)
        return bool(var and var.storage in ("param", "local") and var.ctype.kind == "pointer"
                    and var.ctype.restrict)

    def may_alias(self, a: str, b: str) -> bool:
        """Whether two different names can reach overlapping memory. A `restrict` parameter
        never does (C's promise: what it points to is reached through it alone), nor do two
        pointers both declared `restrict`."""
        if self.declared_restrict(a) and self.declared_restrict(b):
            return False
        if any(self.declared_restrict(n) and self.model.variables[n].storage == "param" for n in (a, b)):
            return False
        oa, ob = self.origins(a), self.origins(b)
        if oa & ob:
            return True
        if self.unknown(a) or self.unknown(b):
            return True
        return any(self._external_pair(x, y) for x in oa for y in ob)

    def _external_pair(self, x: str, y: str) -> bool:
        """Two origins that the caller could make overlap."""
        if self.is_restrict_param(x) or self.is_restrict_param(y):
            return False
        if x.startswith("obj:") and y.startswith("obj:"):
            return False          # two declared arrays are two objects
        return self._external(x) and self._external(y)

    def _external(self, origin: str) -> bool:
        if origin.startswith(("param:", "global:")):
            return True
        if origin.startswith("obj:"):
            var = self.model.variables.get(origin[4:])
            return bool(var and var.storage in ("global", "static"))
        return False


def _root(node: c_ast.Node) -> c_ast.Node:
    """The variable at the root of `a[i].f[j]` (for `&a[i]`)."""
    while isinstance(node, (c_ast.ArrayRef, c_ast.StructRef)):
        node = node.name
    return node

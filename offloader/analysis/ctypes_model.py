"""A small model of C declarations: what each name is (scalar, array, pointer, struct) and where it lives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from pycparser import c_ast

from ..frontend.walk import walk

@dataclass(frozen=True)
class CType:
    """kind is one of: scalar, float, pointer, array, struct, union, function, unknown."""

    kind: str
    inner: Optional["CType"] = None
    restrict: bool = False
    struct: Optional[str] = None
    const: bool = False
    unsigned: bool = False          # scalars: arithmetic wraps (not the integers guards reason in)

    @property
    def is_memory(self) -> bool:
        """Values of this type are reached through subscripts or fields."""
        return self.kind in ("pointer", "array", "struct", "union")


INT = CType("scalar")
FLOAT = CType("float")
UNKNOWN = CType("unknown")
_FLOAT_NAMES = {"float", "double"}


@dataclass
class TypeTable:
    """Typedefs and struct definitions of one translation unit."""

    typedefs: dict[str, c_ast.Node] = field(default_factory=dict)
    structs: dict[str, dict[str, c_ast.Node]] = field(default_factory=dict)
    enumerators: set[str] = field(default_factory=set)
    bitfields: set[tuple[str, str]] = field(default_factory=set)    # (struct, member): no address

    def _define(self, name: str, decls) -> None:
        self.structs.setdefault(name, {d.name: d.type for d in decls if d.name})
        self.bitfields.update((name, d.name) for d in decls if d.name and d.bitsize is not None)

    def collect(self, ast: c_ast.FileAST) -> "TypeTable":
        for node in ast.ext:
            if isinstance(node, c_ast.Typedef):
                self.typedefs[node.name] = node.type
            for struct in _structs_in(node):
                if struct.decls is not None and struct.name:
                    self.structs.pop(struct.name, None)
                    self._define(struct.name, struct.decls)
            for enum in _enums_in(node):
                if enum.values is not None:
                    self.enumerators.update(e.name for e in enum.values.enumerators)
        return self

    def resolve(self, node: c_ast.Node, depth: int = 0) -> CType:
        """CType of a declarator type node (TypeDecl, PtrDecl, ArrayDecl, ...)."""
        if depth > 40:
            return UNKNOWN
        if isinstance(node, c_ast.PtrDecl):
            return CType("pointer", self.resolve(node.type, depth + 1), restrict="restrict" in node.quals)
        if isinstance(node, c_ast.ArrayDecl):
            return CType("array", self.resolve(node.type, depth + 1),
                         restrict="restrict" in (node.dim_quals or []))
        if isinstance(node, c_ast.FuncDecl):
            return CType("function")
        if isinstance(node, c_ast.TypeDecl):
            const = "const" in node.quals
            inner = node.type
            if isinstance(inner, c_ast.IdentifierType):
                names = inner.names
                if len(names) == 1 and names[0] in self.typedefs:
                    return self.resolve(self.typedefs[names[0]], depth + 1)
                if set(names) & _FLOAT_NAMES:
                    return CType("float", const=const)
                return CType("scalar", const=const, unsigned=bool({"unsigned", "_Bool"} & set(names)))
            if isinstance(inner, (c_ast.Struct, c_ast.Union)):
                name = inner.name
                if inner.decls is not None and name:
                    self._define(name, inner.decls)
                if name is None and inner.decls is not None:
                    name = f"<anon@{id(inner)}>"
                    self._define(name, inner.decls)
                return CType("union" if isinstance(inner, c_ast.Union) else "struct",
                             struct=name, const=const)
            if isinstance(inner, c_ast.Enum):
                return CType("scalar", const=const)
        if isinstance(node, c_ast.Typename):
            return self.resolve(node.type, depth + 1)
        return UNKNOWN

    def field_type(self, struct: Optional[str], name: str) -> CType:
        fields = self.structs.get(struct or "", {})
        return self.resolve(fields[name]) if name in fields else UNKNOWN


def _structs_in(node: c_ast.Node):
    for child in walk(node):
        if isinstance(child, (c_ast.Struct, c_ast.Union)):
            yield child


def _enums_in(node: c_ast.Node):
    for child in walk(node):
        if isinstance(child, c_ast.Enum):
            yield child



@dataclass(frozen=True)
class Variable:
    """A declared name. storage: global, param, local or static."""

    name: str
    ctype: CType
    storage: str
    param_index: Optional[int] = None
    decl: Optional[c_ast.Node] = None

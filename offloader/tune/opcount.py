"""Floating-point operations of an offload region, counted from its C source, for the GPU model.

A GPU has separate FP32 and FP64 peaks (64:1 apart on some boards), so each operation is
classified by the C type it is computed in: `float` or `double` after C's usual arithmetic
conversions (`1.0` is a double, `1.0f` a float, so `0.5 * x` with a float `x` is an FP64
multiply). Math functions follow the argument's type, as CUDA C++'s overloads do (`sqrt` of a
float is an FP32 `sqrt`). Counts are per execution of a statement group: the statements with
the same loops (`L<id>`, the plan's loop symbols) around them; the model multiplies them by
the loops' trip counts for a call's values.

Weights are FP32/FP64 instruction equivalents, so that time = count / peak: + - * and
comparisons 1 (a fused a*b+c counts 2, as the peaks do), division and sqrt 4 (a reciprocal
or rsqrt and Newton steps), exp/log/trigonometric 8, pow/atan2 16, other calls 8. Integer
arithmetic (subscripts, loop control) is not counted. Both sides of a branch are counted:
divergent warps run both, so this is an upper bound for uniform branches. Loops the region
calls through helper functions, and while/do loops, count once per enclosing iteration.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Optional

from pycparser import c_ast

from ..analysis.header import bound_polys, parse_header
from ..analysis.poly import Poly
from ..codegen.regions import Region

ARITHMETIC = {"+": 1, "-": 1, "*": 1, "/": 4}
COMPARISON = {"<", ">", "<=", ">=", "==", "!="}
MATH = {**dict.fromkeys(("fabs", "fmin", "fmax", "floor", "ceil", "trunc", "round", "rint",
                         "copysign", "fdim"), 1),
        "fma": 2, "sqrt": 4, "rsqrt": 4, "cbrt": 8, "hypot": 8, "fmod": 8,
        **dict.fromkeys(("exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos",
                         "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "erf", "erfc"), 8),
        "pow": 16, "atan2": 16}
UNKNOWN_CALL = 8
FLOATS = ("float", "double")


@dataclass(frozen=True)
class OpGroup:
    """Statements with the same loops around them: FP32 and FP64 operations per execution."""

    loops: tuple[str, ...]        # loop symbols inside the region, outermost first
    fp32: int
    fp64: int
    lines: tuple[int, ...]        # source lines the operations are on, for checking by hand


@dataclass(frozen=True)
class RegionOps:
    """`mapped`: the loops on the grid, outermost first (the plan's `axes` say which is on x).
    `ranges`: every loop inside the region from its header ({var, lowers, uppers, step}, as
    the plan's LoopRange), for loops the plan's footprints do not cover."""

    region: int
    mapped: tuple[str, ...]
    groups: tuple[OpGroup, ...]
    ranges: tuple[dict, ...]
    notes: tuple[str, ...]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "RegionOps":
        groups = tuple(OpGroup(tuple(g["loops"]), g["fp32"], g["fp64"], tuple(g["lines"])) for g in data["groups"])
        return cls(data["region"], tuple(data["mapped"]), groups, tuple(data["ranges"]),
                   tuple(data["notes"]))


def region_ops(region: Region, types: Iterable[c_ast.Node] = ()) -> RegionOps:
    """The region's operation counts. `types`: the program's typedefs and struct definitions
    (codegen.regions.top_level_types), so typedef'd values and struct fields are classified."""
    loop_ids = {id(loop.node): loop.id for loop in region.function.loops if region.top.loop.id in loop.chain}
    counter = _Counter(region, _Types(types), loop_ids)
    counter.statement(region.top.loop.node, ())
    groups = tuple(OpGroup(chain, ops[0], ops[1], tuple(sorted(lines)))
                   for chain, (ops, lines) in counter.groups.items())
    mapped = tuple(f"L{v.loop.id}" for v in region.mapped)
    return RegionOps(region.id, mapped, groups, _ranges(region), tuple(sorted(set(counter.notes))))


def _ranges(region: Region) -> tuple[dict, ...]:
    """Each loop inside the region as the plan's LoopRange spells it: symbols `L<id>` for loop
    variables of the loops around it, other names as themselves (the call's scalars)."""
    inside = [loop for loop in region.function.loops if region.top.loop.id in loop.chain]
    by_id = {loop.id: loop for loop in inside}
    out = []
    for loop in inside:
        header, _ = parse_header(loop.node)
        if header is None:
            continue
        outer = {}
        for loop_id in loop.chain[:-1]:
            found, _ = parse_header(by_id[loop_id].node) if loop_id in by_id else (None, None)
            if found is not None:
                outer[found.var] = f"L{loop_id}"
        lowers, uppers = bound_polys(header, lambda name: Poly.symbol(outer.get(name, name)))
        out.append({"var": f"L{loop.id}", "lowers": [_terms(p) for p in lowers],
                    "uppers": [_terms(p) for p in uppers], "step": header.step})
    return tuple(out)


def _terms(poly: Poly) -> list:
    return [[list(m), c] for m, c in poly.terms]


class _Types:
    """C types by name: typedefs and struct fields of the program; 'float', 'double', 'int',
    'struct:<name>' or None (unknown)."""

    def __init__(self, types: Iterable[c_ast.Node]):
        self.typedefs: dict[str, c_ast.Node] = {}
        self.structs: dict[str, dict[str, c_ast.Node]] = {}
        for node in types:
            if isinstance(node, c_ast.Typedef):
                self.typedefs[node.name] = node.type
                self._struct(node.type, node.name)
            elif isinstance(node, c_ast.Decl):
                self._struct(node.type, None)

    def _struct(self, node: c_ast.Node, alias: Optional[str]) -> None:
        inner = node.type if isinstance(node, c_ast.TypeDecl) else node
        if isinstance(inner, (c_ast.Struct, c_ast.Union)) and inner.decls:
            fields = {d.name: d.type for d in inner.decls if d.name}
            for name in (inner.name, alias):
                if name:
                    self.structs[name] = fields

    def of(self, node: Optional[c_ast.Node], depth: int = 0) -> Optional[str]:
        """The scalar type of a declarator's elements (of its value for a scalar)."""
        while isinstance(node, (c_ast.PtrDecl, c_ast.ArrayDecl, c_ast.Typename)):
            node = node.type
        if not isinstance(node, c_ast.TypeDecl) or depth > 16:
            return None
        inner = node.type
        if isinstance(inner, (c_ast.Struct, c_ast.Union)):
            return f"struct:{inner.name}" if inner.name else None
        if not isinstance(inner, c_ast.IdentifierType):
            return "int" if isinstance(inner, c_ast.Enum) else None
        names = inner.names
        if len(names) == 1 and names[0] in self.typedefs:
            target = self.typedefs[names[0]]
            found = self.of(target, depth + 1)
            if found is None and isinstance(getattr(target, "type", None), (c_ast.Struct, c_ast.Union)):
                return f"struct:{names[0]}"
            return found
        if "double" in names:
            return "double"
        if "float" in names:
            return "float"
        if set(names) & {"int", "char", "short", "long", "unsigned", "signed", "_Bool"}:
            return "int"
        return None

    def field(self, struct: Optional[str], name: str) -> Optional[str]:
        if not struct or not struct.startswith("struct:"):
            return None
        node = self.structs.get(struct[len("struct:"):], {}).get(name)
        return self.of(node) if node is not None else None


def _promote(a: Optional[str], b: Optional[str]) -> Optional[str]:
    for kind in ("double", "float"):
        if kind in (a, b):
            return kind
    return "int" if a == b == "int" else None


class _Counter:
    """Walks the region's statements once, adding each operation to its statement group."""

    def __init__(self, region: Region, types: _Types, loop_ids: dict[int, int]):
        self.types = types
        self.loop_ids = loop_ids
        self.helpers = {f.decl.name: f for f in region.helpers}
        self.variables = region.function.variables
        self.scopes: list[dict[str, Optional[str]]] = []
        self.groups: dict[tuple[str, ...], tuple[list[int], set[int]]] = {}
        self.notes: list[str] = []
        self.chain: tuple[str, ...] = ()
        self.calling: list[str] = []
        self.call_line: Optional[int] = None      # where the outermost helper call is

    def add(self, kind: Optional[str], weight: int, node: c_ast.Node) -> None:
        if kind not in FLOATS or weight == 0:
            return
        ops, lines = self.groups.setdefault(self.chain, ([0, 0], set()))
        ops[FLOATS.index(kind)] += weight
        line = self.call_line if self.calling else (node.coord.line if node.coord else None)
        if line is not None:
            lines.add(line)

    # ---- statements ------------------------------------------------------------------------
    def statement(self, node: Optional[c_ast.Node], chain: tuple[str, ...]) -> None:
        if node is None:
            return
        if isinstance(node, c_ast.For) and id(node) in self.loop_ids:
            self.statement(node.stmt, chain + (f"L{self.loop_ids[id(node)]}",))
            return
        if isinstance(node, (c_ast.For, c_ast.While, c_ast.DoWhile)):
            self.notes.append(f"line {node.coord.line}: a loop without a known trip count counts once")
        if isinstance(node, c_ast.Decl):
            self.chain = chain
            self.expression(node.init)
            found = self.types.of(node.type)
            if self.scopes and node.name and found is not None:
                self.scopes[-1][node.name] = found
            return
        if isinstance(node, c_ast.Compound):          # a block: its declarations shadow outer ones
            self.scopes.append({})
            for item in node.block_items or ():
                self.statement(item, chain)
            self.scopes.pop()
            return
        if isinstance(node, (c_ast.If, c_ast.While, c_ast.DoWhile, c_ast.For, c_ast.Switch,
                             c_ast.Case, c_ast.Default, c_ast.Label, c_ast.DeclList)):
            for _, child in node.children():
                self.statement(child, chain)
            return
        self.chain = chain
        self.expression(node)

    # ---- expressions: each returns its type and counts its operations ----------------------------
    def expression(self, node: Optional[c_ast.Node]) -> Optional[str]:
        if node is None:
            return None
        method = getattr(self, "_" + type(node).__name__, None)
        if method is not None:
            return method(node)
        for _, child in node.children():
            self.expression(child)
        return None

    def _Constant(self, node: c_ast.Constant) -> Optional[str]:
        if node.type in ("float", "double", "long double"):
            return "float" if node.type == "float" else "double"
        return "int" if node.type != "string" else None

    def _ID(self, node: c_ast.ID) -> Optional[str]:
        for scope in reversed(self.scopes):
            if node.name in scope:
                return scope[node.name]
        variable = self.variables.get(node.name)
        if variable is None:
            return None
        found = self.types.of(getattr(variable.decl, "type", None))
        if found is None and variable.ctype.kind == "float":
            self.notes.append(f"`{node.name}` has a floating typedef'd type not given; counted as double")
            return "double"
        return found

    def _ArrayRef(self, node: c_ast.ArrayRef) -> Optional[str]:
        self.expression(node.subscript)
        return self.expression(node.name)

    def _StructRef(self, node: c_ast.StructRef) -> Optional[str]:
        return self.types.field(self.expression(node.name), node.field.name)

    def _Cast(self, node: c_ast.Cast) -> Optional[str]:
        self.expression(node.expr)
        return self.types.of(node.to_type)

    def _UnaryOp(self, node: c_ast.UnaryOp) -> Optional[str]:
        if node.op in ("sizeof", "_Alignof"):
            return "int"
        kind = self.expression(node.expr)
        if node.op in ("++", "--", "p++", "p--"):
            self.add(kind, 1, node)
        return "int" if node.op in ("!", "&") else kind

    def _BinaryOp(self, node: c_ast.BinaryOp) -> Optional[str]:
        kind = _promote(self.expression(node.left), self.expression(node.right))
        if node.op in ARITHMETIC:
            self.add(kind, ARITHMETIC[node.op], node)
            return kind
        if node.op in COMPARISON:
            self.add(kind, 1, node)
        return "int"

    def _Assignment(self, node: c_ast.Assignment) -> Optional[str]:
        target = self.expression(node.lvalue)
        value = self.expression(node.rvalue)
        op = node.op[:-1]
        if op in ARITHMETIC:
            self.add(_promote(target, value), ARITHMETIC[op], node)
        return target

    def _TernaryOp(self, node: c_ast.TernaryOp) -> Optional[str]:
        self.expression(node.cond)
        return _promote(self.expression(node.iftrue), self.expression(node.iffalse))

    def _FuncCall(self, node: c_ast.FuncCall) -> Optional[str]:
        args = [self.expression(a) for a in (node.args.exprs if node.args else [])]
        name = node.name.name if isinstance(node.name, c_ast.ID) else ""
        if name in self.helpers:
            if not self.calling:
                self.call_line = node.coord.line if node.coord else None
            return self._helper(self.helpers[name])
        base = name[:-1] if name not in MATH and name[-1:] in ("f", "l") and name[:-1] in MATH else name
        kind = None
        for arg in args:
            kind = _promote(kind, arg) if arg in FLOATS else kind
        if base != name:
            kind = "float" if name.endswith("f") else "double"
        elif base in MATH:
            kind = kind or "double"              # C's math functions take doubles
        elif kind is not None:
            self.notes.append(f"line {node.coord.line}: `{name}` counts {UNKNOWN_CALL} operations per call")
        self.add(kind, MATH.get(base, UNKNOWN_CALL), node)
        return kind

    def _helper(self, func: c_ast.FuncDef) -> Optional[str]:
        """A user function's body, counted at the call (recursion counts once)."""
        if func.decl.name in self.calling:
            return self.types.of(func.decl.type.type)
        params = func.decl.type.args.params if func.decl.type.args else []
        local = {p.name: self.types.of(p.type) for p in params if isinstance(p, c_ast.Decl) and p.name}
        scopes, self.scopes = self.scopes, [local]
        self.calling.append(func.decl.name)
        chain = self.chain
        self.statement(func.body, chain)
        self.chain = chain
        self.calling.pop()
        self.scopes = scopes
        return self.types.of(func.decl.type.type)

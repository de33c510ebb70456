"""What the child needs to run each region's kernels: names, argument roles, launch shape,
what the loop writes and must not overlap, the loop bounds for the loop variables' final
values, and each access's footprint for moving only what the region touches. Plain JSON, so
the child never loads the C front end."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

from pycparser import c_ast

from ..analysis.header import parse_header
from ..analysis.poly import Poly, to_poly
from ..codegen.kernel import DEFAULT_WAVES, KernelSource
from ..codegen.regions import Region

@dataclass(frozen=True)
class LoopBounds:
    """One mapped loop: its variable runs from `start` by `step` while before `end`."""

    var: str
    start: Optional[list]           # Poly terms over variable names, or None
    end: Optional[list]
    step: int
    inclusive: bool


@dataclass(frozen=True)
class LoopRange:
    """A loop inside the region, for footprints: `var` (a symbol `L<id>`) runs over
    max(lowers)..min(uppers) inclusive by `step`; `every`: the loop statement runs in every
    iteration of the loop around it."""

    var: str
    lowers: list
    uppers: list
    step: int
    every: bool


@dataclass(frozen=True)
class Footprint:
    """The elements one access of array `array` touches: `offset` (an element index over loop
    symbols and the region's scalars; None: anywhere in the allocation) and the `span`
    elements from there, for every iteration of `loops` (symbols, outermost first). `exact`:
    a write that runs in every iteration and covers whole elements, so it overwrites all of
    them; any other write may leave some unchanged."""

    array: str
    read: bool
    write: bool
    exact: bool
    offset: Optional[list]
    span: int
    loops: tuple[str, ...]


@dataclass(frozen=True)
class KernelPlan:
    region: int
    kernel: str
    final: Optional[str]
    arguments: tuple[str, ...]
    waves: int                      # grid: blocks that fill the device this many times (launch.py)
    block: tuple[int, int, int]
    writes: tuple[str, ...]
    no_alias: tuple[str, ...]
    loops: tuple[LoopBounds, ...]
    footprints: tuple[Footprint, ...] = ()
    ranges: tuple[LoopRange, ...] = ()
    axes: tuple[int, ...] = ()          # grid axis of each mapped loop (0 = x); () = the default
    not_written: tuple[str, ...] = ()   # loaded fields whose bytes no written array may overlap

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "KernelPlan":
        """Plans written before grids were sized from the device (a fixed `grid`) read with
        the default waves."""
        data = dict(data)
        if "waves" not in data:
            data.pop("grid", None)
            data["waves"] = DEFAULT_WAVES
        data["loops"] = tuple(LoopBounds(**loop) for loop in data["loops"])
        data["footprints"] = tuple(Footprint(**{**f, "loops": tuple(f["loops"])}) for f in data.get("footprints", ()))
        data["ranges"] = tuple(LoopRange(**r) for r in data.get("ranges", ()))
        for key in ("arguments", "block", "writes", "no_alias", "axes", "not_written"):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)


def plan_for(kernel: KernelSource) -> KernelPlan:
    region = kernel.region
    depth = len(region.mapped)
    loops = []
    # Every name stands for its value; a loaded field's identifier for the slot it is read from.
    named = {p.ident: p.name for p in region.params if p.ident != p.name}
    symbols = lambda name: Poly.symbol(named.get(name, name))  # noqa: E731
    for header in region.headers:
        start, end = to_poly(header.start, symbols), to_poly(header.end, symbols)
        loops.append(LoopBounds(header.var, _terms(start), _terms(end), header.step, header.inclusive))
    footprints, ranges = region_footprints(region)
    return KernelPlan(region.id, kernel.name, kernel.final_name, kernel.arguments, kernel.variant.waves,
                      tuple(kernel.variant.block_for(depth)), tuple(sorted(region.top.writes)),
                      tuple(sorted(region.top.no_alias)),
                      tuple(loops), footprints, ranges, tuple(kernel.variant.axes_for(depth)),
                      tuple(sorted(region.top.not_written)))


def region_footprints(region: Region) -> tuple[tuple[Footprint, ...], tuple[LoopRange, ...]]:
    """The footprints of the region's accesses to its array parameters, with every symbol
    renamed for the child: loops inside the region keep `L<id>`, a loop around the region
    becomes its variable's name and `P_<name>` becomes `name` (both are region scalars)."""
    top = region.top
    outer = {}
    for loop in region.function.loops:
        if loop.id in top.loop.chain[:-1]:
            header, _ = parse_header(loop.node)
            if header is not None:
                outer[f"L{loop.id}"] = header.var

    def rename(poly: Poly) -> Poly:
        return poly.rename({s: outer.get(s) or (s[2:] if s.startswith("P_") else s) for s in poly.symbols()})
    strides = {p.name: _strides(p.decl) for p in region.params if p.kind == "array"}
    ranges = tuple(LoopRange(f"L{d.loop_id}", [_terms(rename(p)) for p in d.lowers],
                             [_terms(rename(p)) for p in d.uppers], d.step, d.every_iteration)
                   for d in top.domains.values())
    inside = {r.var for r in ranges}
    out = []
    for access in top.footprint:
        if access.base not in strides:
            continue
        loops = tuple(f"L{i}" for i in access.chain if f"L{i}" in inside)
        offset, span = _linear(access.indices, strides[access.base])
        whole_loops = all(r.every for r in ranges if r.var in loops) and len(loops) == len(
            [i for i in access.chain if i not in top.loop.chain[:-1]])
        exact = access.write and access.every_iteration and access.whole_elements and offset is not None \
            and whole_loops
        out.append(Footprint(access.base, access.read, access.write, exact,
                             None if offset is None else _terms(rename(offset)), span, loops))
    return tuple(out), ranges


def _strides(decl: c_ast.Decl) -> Optional[tuple[int, ...]]:
    """Elements per step of each subscript of an array parameter (`T (*a)[M][K]`: M*K, K, 1),
    or None when a dimension is not a constant."""
    node = decl.type.type if isinstance(decl.type, c_ast.PtrDecl) else decl.type
    dims = []
    while isinstance(node, c_ast.ArrayDecl):
        value = to_poly(node.dim, lambda name: None) if node.dim is not None else None
        if value is None or value.constant_value() is None:
            return None
        dims.append(value.constant_value())
        node = node.type
    strides = [1]
    for dim in reversed(dims):
        strides.insert(0, strides[0] * dim)
    return tuple(strides)


def _linear(indices, strides) -> tuple[Optional[Poly], int]:
    """The element index of an access and how many elements it covers from there."""
    if indices is None or strides is None or not indices or len(indices) > len(strides):
        return None, 1
    offset = Poly.const(0)
    for index, stride in zip(indices, strides):
        offset = offset + index.scale(stride)
    return offset, strides[len(indices) - 1]


def _terms(poly: Optional[Poly]) -> Optional[list]:
    return None if poly is None else [[list(m), c] for m, c in poly.terms]


def evaluate(terms: Optional[list], values: dict[str, int]) -> Optional[int]:
    """The value of a serialised polynomial, or None if a name has no known value."""
    if terms is None:
        return None
    total = 0
    for monomial, coeff in terms:
        term = coeff
        for name in monomial:
            if name not in values:
                return None
            term *= int(values[name])
        total += term
    return total

"""What the child needs to run each region's kernels: names, argument roles, launch shape,
what the loop writes and must not overlap, and the loop bounds for the loop variables' final
values. Plain JSON, so the child never loads the C front end."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

from ..analysis.poly import Poly, to_poly
from ..codegen.kernel import KernelSource

DEFAULT_GRID = {1: (128, 1, 1), 2: (16, 16, 1), 3: (8, 8, 4)}     # the kernels stride over any grid


@dataclass(frozen=True)
class LoopBounds:
    """One mapped loop: its variable runs from `start` by `step` while before `end`."""

    var: str
    start: Optional[list]           # Poly terms over variable names, or None
    end: Optional[list]
    step: int
    inclusive: bool


@dataclass(frozen=True)
class KernelPlan:
    region: int
    kernel: str
    final: Optional[str]
    arguments: tuple[str, ...]
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    writes: tuple[str, ...]
    no_alias: tuple[str, ...]
    loops: tuple[LoopBounds, ...]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "KernelPlan":
        data = dict(data)
        data["loops"] = tuple(LoopBounds(**loop) for loop in data["loops"])
        for key in ("arguments", "grid", "block", "writes", "no_alias"):
            data[key] = tuple(data[key])
        return cls(**data)


def plan_for(kernel: KernelSource) -> KernelPlan:
    region = kernel.region
    depth = len(region.mapped)
    loops = []
    for verdict in region.mapped:
        header = verdict.header
        symbols = lambda name: Poly.symbol(name)  # noqa: E731 - every name stands for its value
        start, end = to_poly(header.start, symbols), to_poly(header.end, symbols)
        loops.append(LoopBounds(header.var, _terms(start), _terms(end), header.step, header.inclusive))
    return KernelPlan(region.id, kernel.name, kernel.final_name, kernel.arguments, DEFAULT_GRID[depth],
                      tuple(kernel.variant.block_for(depth)), tuple(sorted(region.top.writes)),
                      tuple(sorted(region.top.no_alias)),
                      tuple(loops))


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

"""The property tests' oracle for offloader/runtime/footprints.py: the element enumerator the
runtime used before footprints were evaluated in closed form. Slow (it lists every element)
and simple, so it is easy to trust.

The result is what the residency needs per array, as sorted unique element indices:
  need    elements the device copy must hold before the launch: everything read, and every
          element a write might leave unchanged (copying it back later returns it);
  writes  elements the device may change (copied back when the host touches them).
None stands for the whole allocation: an access whose subscripts are not known polynomials
(indirect subscripts, pointer arithmetic the analyzer does not follow), bounds that cannot
be evaluated, or more iterations than are worth enumerating.

Loops an access's subscript does not use are not enumerated, so `C[i][j]` inside a `k` loop
costs i*j, not i*j*k. A write is only treated as overwriting what it covers when every loop
around it runs at least once and its statement runs in every iteration (`exact`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from offloader.runtime.plan import Footprint, KernelPlan, LoopRange

MAX_POINTS = 1 << 24            # iterations enumerated per access before settling for "whole"


@dataclass(frozen=True)
class ArrayAccess:
    need: Optional[np.ndarray]      # element indices (int64, sorted, unique); None: all
    writes: Optional[np.ndarray]


def region_accesses(plan: KernelPlan, scalars: dict, elements: dict[str, int]) -> dict[str, ArrayAccess]:
    """Per array of the plan: what this call needs on the device and may write. `elements`
    gives each array's element count from its pointer to the end of its allocation."""
    ranges = {r.var: r for r in plan.ranges}
    values = {name: int(value) for name, value in scalars.items() if np.issubdtype(type(value), np.integer)}
    reads: dict[str, list] = {}
    writes: dict[str, list] = {}
    for footprint in plan.footprints:
        count = elements.get(footprint.array)
        if count is None:
            continue
        points, exact = _elements(footprint, ranges, values, count)
        if footprint.read or (footprint.write and not exact):
            reads.setdefault(footprint.array, []).append(points)
        if footprint.write:
            writes.setdefault(footprint.array, []).append(points)
    out = {}
    for name in sorted(set(reads) | set(writes)):
        out[name] = ArrayAccess(_union(reads.get(name, [])), _union(writes.get(name, [])))
    return out


def _union(parts: list) -> Optional[np.ndarray]:
    if any(part is None for part in parts):
        return None
    if not parts:
        return np.zeros(0, dtype=np.int64)
    merged = np.sort(np.concatenate(parts))          # np.unique is several times slower here
    return merged[np.concatenate(([True], merged[1:] != merged[:-1]))] if merged.size else merged


def _elements(footprint: Footprint, ranges: dict[str, LoopRange], values: dict[str, int],
              count: int) -> tuple[Optional[np.ndarray], bool]:
    """The element indices the access touches (None: unknown) and whether, as a write, it
    certainly overwrites all of them."""
    if footprint.offset is None:
        return None, False
    needed = _needed_loops(footprint, ranges)
    if needed is None:
        return None, False
    exact = footprint.exact and _others_run(footprint, ranges, needed, values)
    bindings: dict[str, np.ndarray] = {}
    size = 1
    for var in footprint.loops:
        if var not in needed:
            continue
        loop = ranges[var]
        lower = bound_values(loop.lowers, values, bindings, size, np.maximum)
        upper = bound_values(loop.uppers, values, bindings, size, np.minimum)
        if lower is None or upper is None:
            return None, False
        step = abs(loop.step)
        first = lower if loop.step > 0 else upper
        trips = np.maximum((upper - lower) // step + 1, 0)     # 0 for some outer values: no points there
        total = int(trips.sum())
        if total > MAX_POINTS:
            return None, False
        for name in bindings:
            bindings[name] = np.repeat(bindings[name], trips)
        starts = np.repeat(first, trips)
        within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(trips) - trips, trips)
        bindings[var] = starts + (step if loop.step > 0 else -step) * within
        size = total
    offset = _evaluate(footprint.offset, values, bindings, size)
    if offset is None:
        return None, False
    if footprint.span > 1:
        offset = (offset[:, None] + np.arange(footprint.span, dtype=np.int64)).ravel()
    inside = (offset >= 0) & (offset < count)
    if not inside.all():                  # a guarded access, or one the program gets wrong
        offset, exact = offset[inside], False
    return offset, exact


def _needed_loops(footprint: Footprint, ranges: dict[str, LoopRange]) -> Optional[set[str]]:
    """The loops the subscript depends on, with the loops their bounds depend on."""
    needed = {s for monomial, _ in footprint.offset for s in monomial if s in ranges}
    grew = True
    while grew:
        grew = False
        for var in list(needed):
            for terms in ranges[var].lowers + ranges[var].uppers:
                for monomial, _ in terms:
                    for symbol in monomial:
                        if symbol in ranges and symbol not in needed:
                            needed.add(symbol)
                            grew = True
    if any(var not in ranges for var in footprint.loops):
        return None
    return needed


def _others_run(footprint: Footprint, ranges, needed: set[str], values: dict[str, int]) -> bool:
    """Whether every loop around the access that is not enumerated runs at least once."""
    for var in footprint.loops:
        if var in needed:
            continue
        loop = ranges[var]
        lower = bound_values(loop.lowers, values, {}, 1, np.maximum)
        upper = bound_values(loop.uppers, values, {}, 1, np.minimum)
        if lower is None or upper is None or int(upper[0]) < int(lower[0]):
            return False
    return True


def bound_values(polys: list, values, bindings, size: int, pick) -> Optional[np.ndarray]:
    """max (pick=np.maximum) or min of the bounds `polys`, per binding; None if one cannot be evaluated."""
    if not polys:
        return None
    result = None
    for terms in polys:
        value = _evaluate(terms, values, bindings, size)
        if value is None:
            return None
        result = value if result is None else pick(result, value)
    return result


def _evaluate(terms: list, values: dict[str, int], bindings: dict[str, np.ndarray], size: int) -> Optional[np.ndarray]:
    total = np.zeros(size, dtype=np.int64)
    for monomial, coeff in terms:
        term = np.full(size, coeff, dtype=np.int64)
        for symbol in monomial:
            if symbol in bindings:
                term = term * bindings[symbol]
            elif symbol in values:
                term = term * values[symbol]
            else:
                return None
        total += term
    return total

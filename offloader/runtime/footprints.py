"""Which elements of each array one region call reads and writes, in closed form from the
plan's footprints and the call's scalar values.

The result is what the residency needs per array, as element runs: an int64 array of shape
(k, 2) holding [start, end) pairs, sorted, disjoint and not touching:
  need    elements the device copy must hold before the launch: everything read, and every
          element a write might leave unchanged (copying it back later returns it);
  writes  elements the device may change (copied back when the host touches them).
None stands for the whole allocation: an access whose subscripts are not affine in the
loop variables once the call's scalars are known (indirect subscripts, pointer arithmetic
the analyzer does not follow, `a[i*j]`), or bounds that cannot be evaluated.

The work is proportional to the runs, not to the elements. Per access, one loop becomes the
run dimension (a loop no other loop's bounds depend on, with the smallest stride): for every
value of the other loops it gives one run, or, when its stride exceeds the access's span,
one run per element. Rectangular loops whose rows touch or overlap fold into the run first,
so a sweep over a whole array is one run whatever its size. Triangular and min/max bounds
are evaluated per value of the outer loops, so they stay exact. Beyond MAX_RUNS runs an
access settles for its hull, which as a write is then no longer exact (the device must hold
the gaps before the launch).

A write is only treated as overwriting what it covers when every loop around it runs at
least once and its statement runs in every iteration (`exact`), and no part of it falls
outside the allocation (a guarded access, or one the program gets wrong, is clipped).

The enumerator this replaced (tests/footprint_oracle.py) is the property tests' oracle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .plan import Footprint, KernelPlan, LoopRange

MAX_RUNS = 1 << 20             # runs (or values of the enumerated loops) per access before the hull
NO_RUNS = np.zeros((0, 2), dtype=np.int64)


@dataclass(frozen=True)
class ArrayAccess:
    need: Optional[np.ndarray]      # element runs, shape (k, 2); None: all
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
        runs, exact = access_runs(footprint, ranges, values, count)
        if footprint.read or (footprint.write and not exact):
            reads.setdefault(footprint.array, []).append(runs)
        if footprint.write:
            writes.setdefault(footprint.array, []).append(runs)
    return {name: ArrayAccess(union(reads.get(name, [])), union(writes.get(name, [])))
            for name in sorted(set(reads) | set(writes))}


def union(parts: list) -> Optional[np.ndarray]:
    """The runs covering every part (None if a part is the whole allocation)."""
    if any(part is None for part in parts):
        return None
    if not parts:
        return NO_RUNS
    return merged(np.concatenate(parts)) if len(parts) > 1 else parts[0]


def merged(runs: np.ndarray) -> np.ndarray:
    """Sorted, disjoint, non-touching runs covering `runs` (any order, overlaps allowed)."""
    runs = runs[runs[:, 1] > runs[:, 0]]
    if len(runs) <= 1:
        return runs
    runs = runs[np.argsort(runs[:, 0], kind="stable")]
    reach = np.maximum.accumulate(runs[:, 1])
    starts = np.flatnonzero(np.concatenate(([True], runs[1:, 0] > reach[:-1])))
    ends = np.concatenate((starts[1:], [len(runs)])) - 1
    return np.stack((runs[starts, 0], reach[ends]), axis=1)


def element_count(runs: Optional[np.ndarray], whole: int) -> int:
    return whole if runs is None else int((runs[:, 1] - runs[:, 0]).sum())


# ---- one access ----------------------------------------------------------------------------
Affine = tuple[int, dict[str, int]]          # constant, coefficient per loop variable


def access_runs(footprint: Footprint, ranges: dict[str, LoopRange], values: dict[str, int],
                count: int) -> tuple[Optional[np.ndarray], bool]:
    """The runs one access touches (None: unknown) and whether, as a write, it certainly
    overwrites all of them."""
    if footprint.offset is None:
        return None, False
    needed = _needed_loops(footprint, ranges)
    if needed is None:
        return None, False
    offset = _affine(footprint.offset, needed, values)
    order = [var for var in footprint.loops if var in needed]
    if offset is None or len(order) != len(needed):
        return None, False
    bounds = {}
    for var in order:
        loop = ranges[var]
        lowers = [_affine(terms, needed, values) for terms in loop.lowers]
        uppers = [_affine(terms, needed, values) for terms in loop.uppers]
        if not lowers or not uppers or None in lowers or None in uppers:
            return None, False
        bounds[var] = (lowers, uppers, loop.step)
    exact = footprint.exact and _others_run(footprint, ranges, needed, values)
    runs = _runs(offset, order, bounds, footprint.span)
    if runs is None:
        runs, exact = _hull(offset, order, bounds, footprint.span), False
    inside = np.clip(runs, 0, count)
    if not np.array_equal(inside, runs):          # a guarded access, or one the program gets wrong
        runs, exact = inside, False
    return merged(runs), exact


def _runs(offset: Affine, order: list[str], bounds: dict, span: int) -> Optional[np.ndarray]:
    """The runs, or None when there would be more than MAX_RUNS."""
    const, coeffs = offset
    depends = {var: {v for part in bounds[var][:2] for _, c in part for v in c} for var in order}
    free = [v for v in order if coeffs.get(v) and not any(v in depends[w] for w in order)]
    pitch = {v: coeffs[v] * bounds[v][2] for v in free}        # signed: step may be negative
    run_var = min(free, key=lambda v: abs(pitch[v]), default=None)
    shift, length, folded = 0, span, set()
    for var in sorted((v for v in free if not depends[v]), key=lambda v: (abs(pitch[v]), v != run_var)):
        if abs(pitch[var]) > length or (var != run_var and run_var not in folded):
            break
        first, trips = (int(x[0]) for x in _range(bounds[var], {}, 1)[:2])
        if trips == 0:
            return NO_RUNS
        shift += coeffs[var] * first + min(0, pitch[var] * (trips - 1))
        length += abs(pitch[var]) * (trips - 1)
        folded.add(var)
    bindings: dict[str, np.ndarray] = {}
    size = 1
    for var in order:
        if var in folded or (var == run_var and not folded):
            continue
        first, trips, step = _range(bounds[var], bindings, size)
        total = int(trips.sum())
        if total > MAX_RUNS:
            return None
        for name in bindings:
            bindings[name] = np.repeat(bindings[name], trips)
        within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(trips) - trips, trips)
        bindings[var] = np.repeat(first, trips) + step * within
        size = total
    base = np.full(size, const + shift, dtype=np.int64)
    for var, taken in bindings.items():
        base += coeffs.get(var, 0) * taken
    if folded or run_var is None:
        return np.stack((base, base + length), axis=1)
    first, trips, _ = _range(bounds[run_var], bindings, size)
    keep = trips > 0
    trips = trips[keep]
    start = base[keep] + coeffs[run_var] * first[keep] + np.minimum(0, pitch[run_var] * (trips - 1))
    step = abs(pitch[run_var])
    if step <= span:                                # each value of the other loops: one run
        return np.stack((start, start + step * (trips - 1) + span), axis=1)
    total = int(trips.sum())
    if total > MAX_RUNS:
        return None
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(trips) - trips, trips)
    starts = np.repeat(start, trips) + step * within
    return np.stack((starts, starts + span), axis=1)


def _range(bound, bindings: dict[str, np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """A loop's first value and trip count per binding of the loops outside it, and its step:
    its values are first + step * k for k < trips (from the upper bound down when step < 0)."""
    lowers, uppers, step = bound
    lower = np.max([_value(b, bindings, size) for b in lowers], axis=0)
    upper = np.min([_value(b, bindings, size) for b in uppers], axis=0)
    trips = np.maximum((upper - lower) // abs(step) + 1, 0)
    return (lower if step > 0 else upper), trips, step


def _value(affine: Affine, bindings: dict[str, np.ndarray], size: int) -> np.ndarray:
    const, coeffs = affine
    total = np.full(size, const, dtype=np.int64)
    for var, coeff in coeffs.items():
        total += coeff * bindings[var]
    return total


def _hull(offset: Affine, order: list[str], bounds: dict, span: int) -> np.ndarray:
    """One run holding every element the access may touch, by interval arithmetic over the
    loops' ranges (a superset where bounds are triangular)."""
    low: dict[str, int] = {}
    high: dict[str, int] = {}
    for var in order:
        lowers, uppers, _ = bounds[var]
        lo = max(_interval(b, low, high)[0] for b in lowers)
        hi = min(_interval(b, low, high)[1] for b in uppers)
        if hi < lo:
            return NO_RUNS
        low[var], high[var] = lo, hi
    first, last = _interval(offset, low, high)
    return np.array([[first, last + span]], dtype=np.int64)


def _interval(affine: Affine, low: dict[str, int], high: dict[str, int]) -> tuple[int, int]:
    const, coeffs = affine
    lo = hi = const
    for var, coeff in coeffs.items():
        a, b = coeff * low[var], coeff * high[var]
        lo, hi = lo + min(a, b), hi + max(a, b)
    return lo, hi


def _affine(terms: list, loops: set[str], values: dict[str, int]) -> Optional[Affine]:
    """A polynomial as constant + sum of coefficient * loop variable, once the scalars are
    known; None if it is not affine in the loop variables or a scalar is unknown."""
    const, coeffs = 0, {}
    for monomial, coeff in terms:
        value, var = int(coeff), None
        for symbol in monomial:
            if symbol in loops:
                if var is not None:
                    return None
                var = symbol
            elif symbol in values:
                value *= values[symbol]
            else:
                return None
        if var is None:
            const += value
        elif value:
            coeffs[var] = coeffs.get(var, 0) + value
    return const, {v: c for v, c in coeffs.items() if c}


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


# ---- loop bounds, per binding of the loops outside (shared with the GPU model) --------------
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

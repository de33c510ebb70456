"""A region's launch shape per call, from its plan, the call's scalars and the device.

The kernels stride over any grid, so the grid is a performance choice: enough blocks to keep
every multiprocessor busy `waves` times over (what the device keeps resident per
multiprocessor, for the plan's block), never more than the loops' trip counts need, within
CUDA's grid limits. `waves` 0 asks for one thread per iteration, up to those limits. Slower
axes give way first when the grid must shrink, so x (the coalesced axis) keeps its threads.
"""

from __future__ import annotations

import math

from ..device.base import Capacity
from .plan import KernelPlan, evaluate

GRID_LIMITS = (2**31 - 1, 65535, 65535)


def most_blocks(plan: KernelPlan, capacity: Capacity) -> int:
    """The blocks that fill the device `plan.waves` times (0: no limit)."""
    if not plan.waves:
        return math.prod(GRID_LIMITS)
    threads = math.prod(plan.block)
    resident = max(1, min(capacity.threads_per_multiprocessor // threads, capacity.blocks_per_multiprocessor))
    return plan.waves * capacity.multiprocessors * resident


def launch_grid(plan: KernelPlan, scalars: dict, capacity: Capacity) -> tuple[int, int, int]:
    """The call's grid (see the module docstring). A loop whose bounds depend on an outer loop
    is sized at the outer loop's first and last values; one whose bounds cannot be evaluated
    gets what the device can hold."""
    depth = len(plan.loops)
    limit = most_blocks(plan, capacity)
    grid = [1, 1, 1]
    values = dict(scalars)
    for k, loop in enumerate(plan.loops):
        axis = plan.axes[k] if plan.axes else depth - 1 - k      # kernel.Variant's default map
        trips = []
        for outer in _outer_extremes(plan.loops[:k], values):
            start, end = evaluate(loop.start, outer), evaluate(loop.end, outer)
            if start is None or end is None:
                trips = []
                break
            trips.append(trip_count(start, end, loop))
        needed = -(-max(trips) // plan.block[axis]) if trips else limit
        grid[axis] = max(1, min(needed, GRID_LIMITS[axis]))
    for axis in (2, 1, 0):
        total = math.prod(grid)
        if total > limit:
            grid[axis] = max(1, grid[axis] * limit // total)
    return tuple(grid)


def _outer_extremes(outer_loops, values: dict) -> list[dict]:
    """Variable bindings at the first and at the last iteration of the outer loops."""
    choices = [dict(values)]
    for loop in outer_loops:
        extended = []
        for binding in choices:
            start, end = evaluate(loop.start, binding), evaluate(loop.end, binding)
            if start is None or end is None:
                return [values]
            trips = trip_count(start, end, loop)
            last = start + max(trips - 1, 0) * loop.step
            extended += [{**binding, loop.var: start}, {**binding, loop.var: last}]
        choices = extended
    return choices


def trip_count(start: int, end: int, loop) -> int:
    if loop.inclusive:
        end += 1 if loop.step > 0 else -1
    span = (end - start) if loop.step > 0 else (start - end)
    return max(0, -(-span // abs(loop.step)))


def final_loop_values(plan: KernelPlan, scalars: dict) -> dict[str, int] | None:
    """The values C leaves in the mapped loops' variables: each runs past its last iteration;
    an inner loop's value is the one from the outer loop's last iteration. None if a bound
    cannot be evaluated."""
    values, finals = dict(scalars), {}
    for loop in plan.loops:
        start, end = evaluate(loop.start, values), evaluate(loop.end, values)
        if start is None or end is None:
            return None
        trips = trip_count(start, end, loop)
        finals[loop.var] = start + trips * loop.step
        if trips == 0:
            break
        values[loop.var] = start + (trips - 1) * loop.step
    return finals

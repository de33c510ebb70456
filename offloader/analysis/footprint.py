"""What memory each access of a loop touches, as polynomials the runtime can evaluate.

The runtime moves only the parts of arrays a region reads and writes. For that it needs, per
access, its subscripts and the bounds of the loops around it, with every name resolved the
way the dependence test resolves it: `L<id>` for a loop variable, `P_<name>` for a value
fixed during the loop. A subscript that does not resolve leaves the access `whole`: it may
touch any element of its object.

A write is `every_iteration` when it runs in every iteration of the loops around it (no `if`,
`while`, `switch` or `continue` can skip it). Only such writes are known to overwrite what
they cover; the runtime must make every other write's target current on the device first,
or copying it back would return elements the device never held. A read of the element such a
write has just written in the same iteration (`a[i] = f(i); b[i] = a[i];`) is left out: the
device never needs the host's value of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from .header import Header, bound_polys
from .model import Event, FunctionModel, Loop, MemoryAccess, Transfer
from .poly import Poly, to_poly
from .scalars import dominates


@dataclass(frozen=True)
class LoopDomain:
    """The values of one loop's variable: from max(lowers) to min(uppers), inclusive, by step."""

    loop_id: int
    var: str
    lowers: tuple[Poly, ...]
    uppers: tuple[Poly, ...]
    step: int
    every_iteration: bool       # the loop statement runs in every iteration of its parent loop


@dataclass(frozen=True)
class AccessFootprint:
    base: str
    read: bool
    write: bool
    every_iteration: bool
    indices: Optional[tuple[Poly, ...]]     # one per subscript; None: the whole object
    whole_elements: bool                    # False for a struct member: part of an element
    chain: tuple[int, ...]                  # loop ids around the access, outermost first


Resolve = Callable[[str, tuple[int, ...], Optional[MemoryAccess]], Optional[Poly]]


def runs_every_iteration(event_path, unconditional: bool, loop: Loop) -> bool:
    """Whether a statement directly in `loop`'s body block (not under an if or inner block)."""
    return (unconditional and len(event_path) == len(loop.path) + 1
            and event_path[-1][0] == loop.body_block)


def footprints(model: FunctionModel, loop: Loop, events: list[Event], accesses: list[MemoryAccess],
               headers: dict[int, Header], resolve: Resolve) -> tuple[tuple[AccessFootprint, ...], dict[int, LoopDomain]]:
    """The footprints of `accesses` (events of `loop`), and the domains of the loops inside it."""
    loops = {lp.id: lp for lp in model.loops}
    skips = any(isinstance(e, Transfer) and e.kind in ("continue", "break") for e in events)
    inner = loop.chain
    domains: dict[int, LoopDomain] = {}
    out = []
    for access in accesses:
        if access.base is None or _written_first(access, accesses, resolve, skips, loops):
            continue
        chain = access.chain
        for position, loop_id in enumerate(chain[len(inner) - 1:], start=len(inner) - 1):
            if loop_id not in domains:
                domain = _domain(loops[loop_id], loops, headers, chain[:position], resolve, inner)
                if domain is None:
                    break
                domains[loop_id] = domain
        indices = _indices(access, resolve)
        every = (not skips and access.write and runs_every_iteration(access.path, access.unconditional,
                                                                      loops[chain[-1]]))
        out.append(AccessFootprint(access.base, access.read, access.write, every, indices,
                                   all(c.field is None for c in access.components), chain))
    return tuple(out), domains


def _written_first(read: MemoryAccess, accesses: list[MemoryAccess], resolve: Resolve, skips: bool,
                   loops: dict[int, Loop]) -> bool:
    """Whether a plain read is of the element an exact write of the same iteration wrote before it."""
    if read.write or skips or not read.components:
        return False
    mine = _indices(read, resolve)
    if mine is None or any(c.field is not None for c in read.components):
        return False
    for write in accesses:
        if (write is not read and write.write and write.base == read.base and write.chain == read.chain
                and runs_every_iteration(write.path, write.unconditional, loops[write.chain[-1]])
                and dominates(write, read) and len(write.components) == len(read.components)
                and _indices(write, resolve) == mine):
            return True
    return False


def _domain(lp: Loop, loops: dict[int, Loop], headers, outer: tuple[int, ...], resolve: Resolve,
            region_chain: tuple[int, ...]) -> Optional[LoopDomain]:
    header = headers.get(lp.id)
    if header is None:
        return None
    lowers, uppers = bound_polys(header, lambda n: resolve(n, outer, None))
    parent = loops.get(lp.parent) if lp.parent is not None else None
    every = lp.id == region_chain[-1] or (parent is not None and runs_every_iteration(lp.path, True, parent))
    return LoopDomain(lp.id, header.var, tuple(lowers), tuple(uppers), header.step, every)


def _indices(access: MemoryAccess, resolve: Resolve) -> Optional[tuple[Poly, ...]]:
    """The leading subscripts, up to the first struct member; None if one does not resolve."""
    polys = []
    for component in access.components:
        if component.field is not None:
            break
        poly = to_poly(component.index, lambda n: resolve(n, access.chain, access))
        if poly is None:
            return None
        polys.append(poly)
    if not access.components:
        return None
    return tuple(polys)

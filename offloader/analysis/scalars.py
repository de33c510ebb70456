"""Classify the scalars a loop writes: private (written before read in every iteration),
reduction, or carried from one iteration to the next."""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import Event, FunctionModel, Loop, ScalarAccess, Transfer


def dominates(write: Event, use: Event) -> bool:
    """Whether `write` runs before `use` whenever `use` runs, in the same iteration of
    every loop around the write (same block, earlier statement, or earlier in one statement)."""
    if not write.unconditional or write.seq >= use.seq:
        return False
    n = len(write.path)
    if len(use.path) < n or use.path[: n - 1] != write.path[: n - 1]:
        return False
    (w_block, w_index), (u_block, u_index) = write.path[n - 1], use.path[n - 1]
    return w_block == u_block and u_index >= w_index and use.chain[: len(write.chain)] == write.chain


@dataclass(frozen=True)
class CarriedScalar:
    """A scalar one iteration leaves for another: `written` by the earlier, `read` by the later."""

    name: str
    noun: str                 # scalar or pointer
    why: str                  # address, exposed or conditional
    written: Event
    read: Event


@dataclass
class ScalarVerdict:
    private: set[str] = field(default_factory=set)
    lastprivate: set[str] = field(default_factory=set)
    reductions: dict[str, str] = field(default_factory=dict)
    carried: list[CarriedScalar] = field(default_factory=list)


def classify_scalars(model: FunctionModel, loop: Loop, var: str, events: list[Event]) -> ScalarVerdict:
    verdict = ScalarVerdict()
    in_loop = [e for e in events if isinstance(e, ScalarAccess) and e.name != var
               and e.name not in loop.declared_inside]
    by_name: dict[str, list[ScalarAccess]] = {}
    for event in in_loop:
        by_name.setdefault(event.name, []).append(event)
    continues = any(isinstance(e, Transfer) and e.kind == "continue" and e.target == loop.id for e in events)
    for name, accesses in sorted(by_name.items()):
        writes = [a for a in accesses if a.write]
        if not writes:
            continue
        variable = model.variables.get(name)
        noun = "pointer" if variable is not None and variable.ctype.kind == "pointer" else "scalar"
        if any(e.address_taken for e in model.events if isinstance(e, ScalarAccess) and e.name == name):
            verdict.carried.append(CarriedScalar(name, noun, "address", writes[0], writes[0]))
            continue
        ops = {a.reduction for a in accesses}
        if None not in ops and len(ops) == 1 and variable is not None and variable.ctype.kind in ("scalar", "float"):
            verdict.reductions[name] = ops.pop()
            continue
        exposed = [a for a in accesses if a.read and not any(dominates(w, a) for w in writes)]
        if exposed:
            verdict.carried.append(CarriedScalar(name, noun, "exposed", max(writes, key=lambda w: w.seq), exposed[0]))
            continue
        verdict.private.add(name)
        if _live_after(model, loop, name):
            top = len(loop.path) + 1
            always = any(w.unconditional and len(w.path) == top and w.path[-1][0] == loop.body_block
                         for w in writes)
            if always and not continues:
                verdict.lastprivate.add(name)
            else:
                verdict.carried.append(CarriedScalar(name, noun, "conditional", writes[0], writes[0]))
    return verdict


def _live_after(model: FunctionModel, loop: Loop, name: str) -> bool:
    """Whether the value `name` has after the loop may be read (conservative).

    A read after the loop is dead only if a write after the loop dominates it; a read
    before the loop matters only inside a loop around both, unless a write dominates it.
    """
    variable = model.variables.get(name)
    if variable is None or variable.storage in ("global", "static"):
        return True
    seqs = [e.seq for e in model.events if loop.id in e.chain]
    start, end = min(seqs), max(seqs)
    outside = [e for e in model.events if isinstance(e, ScalarAccess) and e.name == name
               and loop.id not in e.chain]
    writes = [e for e in outside if e.write]
    for read in (e for e in outside if e.read):
        if read.seq > end:
            if not any(w.seq > end and dominates(w, read) for w in writes):
                return True
        elif read.seq < start and set(read.chain) & set(loop.chain):
            if not any(dominates(w, read) for w in writes):
                return True
    return False

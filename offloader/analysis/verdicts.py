"""Decide one loop's verdict from the model: not-offloadable, sequential or parallel."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Optional

import islpy as isl
from pycparser import c_ast

from ..frontend.walk import walk
from .blockers import Blocker, first_two, iterations_text
from .dependence import Conflict, DependenceTester, loop_symbol
from .effects import Summaries
from .footprint import AccessFootprint, LoopDomain, footprints
from .header import Header, parse_header
from .loads import Hoisting, LoadedValue, Loads, expression_text, substitute
from .model import Call, Component, FunctionModel, Guard, Loop, MemoryAccess, ScalarAccess, Transfer
from .pointers import PointsTo
from .poly import Poly, to_poly
from .privatize import private_arrays
from .scalars import CarriedScalar, classify_scalars, dominates


@dataclass
class LoopVerdict:
    loop: Loop
    header: Optional[Header]
    verdict: str
    reasons: list[str] = field(default_factory=list)
    reductions: dict[str, str] = field(default_factory=dict)
    private: set[str] = field(default_factory=set)
    lastprivate: set[str] = field(default_factory=set)
    no_alias: set[str] = field(default_factory=set)
    distinct_rows: set[str] = field(default_factory=set)   # row-pointer arrays whose rows must not overlap
    dependences: list[dict] = field(default_factory=list)
    reads: set[str] = field(default_factory=set)      # arrays and pointers read in the loop
    writes: set[str] = field(default_factory=set)     # ... and written (for transfer planning)
    hints: list[str] = field(default_factory=list)
    footprint: tuple[AccessFootprint, ...] = ()     # what each access touches (footprint.py)
    domains: dict[int, LoopDomain] = field(default_factory=dict)   # loops at and inside this one
    loaded: dict[str, LoadedValue] = field(default_factory=dict)   # fields loaded once at entry (loads.py)
    not_written: set[str] = field(default_factory=set)  # loaded fields whose bytes the run-time check
                                                        # must find outside everything the loop writes


class FunctionAnalysis:
    """Verdicts for every loop of one function."""

    def __init__(self, model: FunctionModel, summaries: Summaries, enumerators: set[str]):
        self.model = model
        self.summaries = summaries
        self.enumerators = enumerators
        self.headers: dict[int, Header] = {}
        self.header_problems: dict[int, str] = {}
        for loop in model.loops:
            header, problem = parse_header(loop.node)
            if header is not None:
                self.headers[loop.id] = header
            else:
                self.header_problems[loop.id] = problem
        self.points = PointsTo(model)
        self.address_taken = {e.name for e in model.events if isinstance(e, ScalarAccess) and e.address_taken}
        self.loads = Loads(model, self.points, self.address_taken)
        self.guards = {loop.id: tuple(g for g in loop.guards if self._guard_holds(g)) for loop in model.loops}

    def run(self) -> list[LoopVerdict]:
        return [self._decide_safely(loop) for loop in self.model.loops]

    def _decide_safely(self, loop: Loop) -> LoopVerdict:
        """A construct the analyzer does not handle must cost a verdict, never the run."""
        try:
            return self.decide(loop)
        except (RecursionError, ValueError, KeyError, TypeError, AttributeError, IndexError,
                isl.Error) as exc:
            return LoopVerdict(loop, self.headers.get(loop.id), "not-offloadable",
                               [f"the analyzer cannot follow this loop ({type(exc).__name__}: {exc})"])

    # ---- one loop ----------------------------------------------------------------------
    def decide(self, loop: Loop) -> LoopVerdict:
        events = self.model.events_in(loop)
        header = self.headers.get(loop.id)
        result = LoopVerdict(loop, header, "not-offloadable")
        result.reasons = self._unoffloadable(loop, header, events)
        if result.reasons:
            return result
        scalars = classify_scalars(self.model, loop, header.var, events)
        result.private, result.lastprivate = set(scalars.private), scalars.lastprivate
        result.reductions = scalars.reductions
        blockers = [self._carried_scalar(loop, carried) for carried in scalars.carried]
        written = {e.name for e in events if isinstance(e, ScalarAccess) and e.write}
        blockers += self._calls_reading_written_scalars(loop, events, written)
        blockers += self._scalars_written_through_pointers(loop, events)
        carried = {c.name for c in scalars.carried}
        blockers += self._memory(loop, events, written, result, carried)
        if blockers:
            result.verdict = "sequential"
            result.reasons = [b.text for b in blockers]
            result.dependences = [b.to_json() for b in blockers]
            result.hints = list(dict.fromkeys(b.hint for b in blockers if b.hint))
            result.reductions = {}
            result.no_alias, result.distinct_rows, result.not_written = set(), set(), set()
            result.loaded, result.footprint = {}, ()
            return result
        result.verdict = "parallel"
        self._parallel_hints(result)
        return result

    def _parallel_hints(self, result: LoopVerdict) -> None:
        for name in sorted(result.lastprivate):
            result.hints.append(f"`{name}` is read after the loop: the value of the last iteration is kept")
        arrays = sorted(n for n in result.private - result.lastprivate if self.model.variables[n].ctype.kind == "array")
        if arrays:
            result.hints.append(f"{', '.join(f'`{n}`' for n in arrays)}: written before read in every "
                                "iteration and not read after the loop, so each iteration gets its own copy")
        for name in sorted(result.distinct_rows):
            result.hints.append(f"`{name}` is an array of row pointers: the run-time check also "
                                "makes sure no two rows overlap")
        if result.loaded:
            result.hints.append(f"{', '.join(f'`{n}`' for n in sorted(result.loaded))} "
                                f"{'is' if len(result.loaded) == 1 else 'are'} loaded once, when the loop starts")
        if result.not_written:
            result.hints.append("the run-time check makes sure nothing the loop writes overlaps the memory of "
                                + ", ".join(f"`{n}`" for n in sorted(result.not_written)))
        if result.no_alias:
            params = sorted(n for n in result.no_alias
                            if (v := self.model.variables.get(n)) and v.storage == "param")
            fields = sorted(n for n in result.no_alias if n in result.loaded)
            if params and len(params) == len(result.no_alias):
                result.hints.append(f"add `restrict` to {' and '.join(params)} to drop the run-time check")
            elif fields and len(fields) + len(params) == len(result.no_alias):
                result.hints.append("copy " + ", ".join(f"`{n}`" for n in fields) + " into local `restrict` "
                                    "pointers" + (f" and add `restrict` to {' and '.join(params)}" if params else "")
                                    + " to drop the run-time check")
            else:
                result.hints.append("the run-time check compares the address ranges of "
                                    + ", ".join(sorted(result.no_alias)))

    def _guard_holds(self, guard: Guard) -> bool:
        """Whether a guard's condition still holds wherever it is known: its variables are
        signed integers whose address is never taken and that nothing writes in the code it
        guards; a global one also needs that code to call nothing impure and to store only
        into declared arrays."""
        guarded = [e for e in self.model.events if guard.first <= e.seq <= guard.last]
        for name in _names_in(guard.cond):
            if name in self.enumerators and name not in self.model.variables:
                continue
            variable = self.model.variables.get(name)
            if variable is None or variable.storage not in ("local", "param", "global", "static") \
                    or variable.ctype.kind != "scalar" or variable.ctype.unsigned or name in self.address_taken:
                return False
            if any(isinstance(e, ScalarAccess) and e.write and e.name == name for e in guarded):
                return False
            if variable.storage in ("global", "static") and any(
                    (isinstance(e, Call) and not self.summaries.of(e.name).pure)
                    or (isinstance(e, MemoryAccess) and e.write and (e.base is None or e.load is not None or not all(
                        o.startswith("obj:") for o in self.points.origins(e.base)))) for e in guarded):
                return False
        return True

    def _unoffloadable(self, loop: Loop, header: Optional[Header], events) -> list[str]:
        """Reasons the loop cannot be offloaded at all (empty when it can be analysed)."""
        if header is None:
            return [self.header_problems[loop.id]]
        reasons = []
        variable = self.model.variables.get(header.var)
        if variable is not None and variable.ctype.kind != "scalar":
            reasons.append(f"the loop variable `{header.var}` is not an integer")
        if header.var in self.address_taken:
            reasons.append(f"the address of the loop variable `{header.var}` is taken, so it may change "
                           "through a pointer")
        exposed_bounds = sorted(n for n in (_names_in(header.end) | _names_in(header.start)) & self.address_taken
                                if self.model.variables[n].ctype.kind in ("scalar", "float"))
        if exposed_bounds and any(isinstance(e, MemoryAccess) and e.write and self._blind(e) for e in events):
            reasons.append(f"the loop bound uses `{exposed_bounds[0]}`, whose address is taken, and the loop "
                           "writes through a pointer that may point to it")
        bound_names = _names_in(header.end) | _names_in(header.start)
        for event in events:
            if isinstance(event, ScalarAccess) and event.write:
                if event.name == header.var and len(event.path) > len(loop.path):
                    reasons.append(f"the loop variable `{header.var}` is changed inside the loop at {event.location}")
                elif event.name in bound_names - {header.var} and event.name not in loop.declared_inside:
                    reasons.append(f"`{event.name}`, used in the loop bound, is changed inside the loop at {event.location}")
            elif isinstance(event, Transfer):
                if event.kind == "break" and event.target == loop.id:
                    reasons.append(f"`break` at {event.location} leaves this loop early")
                elif event.kind == "return":
                    reasons.append(f"`return` at {event.location} leaves the function from inside the loop")
                elif event.kind == "goto":
                    reasons.append(f"`goto` at {event.location} jumps inside or out of the loop")
                elif event.kind == "label":
                    reasons.append(f"the label at {event.location} lets a `goto` jump into the loop")
            elif isinstance(event, Call) and event.name in self.model.variables:
                reasons.append(f"calls through the function pointer `{event.name}` at {event.location}")
            elif isinstance(event, Call):
                summary = self.summaries.of(event.name)
                if not summary.pure:
                    reasons.append(f"{summary.impure} at {event.location}")
        return list(dict.fromkeys(reasons))

    # ---- memory ------------------------------------------------------------------------
    def _memory(self, loop: Loop, events, written_scalars: set[str], result: LoopVerdict,
                carried: set[str]) -> list[Blocker]:
        raw = [e for e in events if isinstance(e, MemoryAccess) and not self._iteration_local(loop, e)]
        inside = [lp for lp in self.model.loops if loop.id in lp.chain]
        inner_vars = {self.headers[lp.id].var for lp in inside if lp.id in self.headers}
        hoisting = self.loads.hoist(loop, raw, written_scalars, inner_vars)
        names = hoisting.names
        # Accesses through a pointer carried from one iteration to the next are that scalar's reason.
        accesses = [self._rebase(loop, a, written_scalars, names) if a.base in written_scalars else a
                    for a in hoisting.accesses if a.base not in carried]
        accesses += self._call_reads(events, names)
        headers = dict(self.headers)
        for lp in inside:
            if lp.id in headers:
                headers[lp.id] = replace(headers[lp.id], start=substitute(headers[lp.id].start, names),
                                         end=substitute(headers[lp.id].end, names))
        tester = DependenceTester(loop, headers, lambda n, c, a: self._resolve(loop, written_scalars, n, c, a),
                                  self.guards)
        blockers = self._unfollowed(loop, accesses, hoisting, written_scalars)
        if blockers:
            return blockers
        private, lastprivate = private_arrays(self.model, loop, events, accesses, tester, self.address_taken)
        accesses = [a for a in accesses if a.base not in private]
        result.lastprivate |= lastprivate
        by_base: dict[Optional[str], list[MemoryAccess]] = {}
        for access in accesses:
            by_base.setdefault(access.base, []).append(access)
        result.private |= private
        result.reads = {a.base for a in accesses if a.read and a.base is not None}
        result.writes = {a.base for a in accesses if a.write and a.base is not None}
        for base, group in sorted(by_base.items(), key=lambda item: str(item[0])):
            if not any(a.write for a in group):
                continue
            subs = tester.subscripts(_dedupe(group))
            for one, two in itertools.combinations_with_replacement(subs, 2):
                if not (one.access.write or two.access.write):
                    continue
                conflict = tester.conflict(one, two)
                if conflict is not None:
                    blockers.append(self._conflict(loop, base, conflict))
                    break
        if blockers:
            return blockers
        written_bases = {a.base for a in accesses if a.write}
        result.distinct_rows = {a.base for a in accesses if a.through_rows and a.write}
        for x, y in itertools.combinations(sorted(by_base), 2):
            if (x in written_bases or y in written_bases) and self.points.may_alias(x, y):
                result.no_alias.update((x, y))
        result.no_alias |= self._scalars_under_pointer_writes(events, written_bases)
        result.loaded = hoisting.values
        result.not_written = {n for n, v in hoisting.values.items() if v.checked}
        result.footprint, result.domains = footprints(self.model, loop, events, accesses, headers, tester.resolve)
        return []

    def _unfollowed(self, loop: Loop, accesses: list[MemoryAccess], hoisting: Hoisting,
                    written: set[str]) -> list[Blocker]:
        """Accesses whose target the dependence test cannot name, once per cause: memory
        reached through a computed address, through a pointer loaded from memory that may
        change, or through a pointer the loop changes."""
        if not any(a.write for a in accesses):
            return []
        out = []
        unnamed = [a for a in accesses if a.base is None]
        if unnamed:
            out.append(self._may(loop, None, unnamed, "reaches memory the analysis cannot name"))
        for field in hoisting.unloadable:
            out.append(self._unloadable(loop, field))
        listed = {id(a) for f in hoisting.unloadable for a in f.accesses}
        deeper: dict[str, list[MemoryAccess]] = {}
        for access in accesses:
            if access.base is not None and access.through_loaded_pointer and id(access) not in listed:
                deeper.setdefault(access.base, []).append(access)
        for base, group in deeper.items():
            node = group[0].node
            pointer = expression_text(node.name) if isinstance(node, c_ast.ArrayRef) else None
            hint = f"copy `{pointer}` into a local `restrict` pointer before the loop" if pointer else ""
            out.append(self._may(loop, base, group, "goes through a pointer loaded from memory, which may point "
                                 "anywhere another iteration writes", hint))
        moving: dict[str, list[MemoryAccess]] = {}
        for access in accesses:
            if access.base in written and not access.through_loaded_pointer:
                moving.setdefault(access.base, []).append(access)
        for base, group in moving.items():
            setter = next(e for e in self.model.events_in(loop)
                          if isinstance(e, ScalarAccess) and e.write and e.name == base)
            first = group[0]
            i1, i2 = iterations_text(self.headers[loop.id].var, first_two(self.headers[loop.id]))
            out.append(Blocker(
                f"`{first.text}` at {first.location}{_more(group)} {_go(group)} through pointer `{base}`, which "
                "changes inside "
                f"the loop: iteration {i1} sets `{base}` at {setter.location} and iteration {i2} may reach what "
                "iteration " + i1 + " wrote through it", base, "assumed", setter.location, first.location,
                first_two(self.headers[loop.id]), f"`{base}` changes inside the loop"))
        return out

    def _unloadable(self, loop: Loop, field) -> Blocker:
        header = self.headers[loop.id]
        i1, i2 = iterations_text(header.var, first_two(header))
        first = field.accesses[0]
        writer = field.writer
        if writer is not None:
            return Blocker(f"`{first.text}` at {first.location}{_more(field.accesses)} {_go(field.accesses)} "
                           f"through `{field.name}`, which the loop changes: iteration {i1} writes "
                           f"`{writer.text}` ({writer.location}) and iteration {i2} loads `{field.name}` again",
                           field.name, "flow", writer.location, first.location, first_two(header))
        return Blocker(f"`{first.text}` at {first.location}{_more(field.accesses)} {_go(field.accesses)} "
                       f"through `{field.name}`, a "
                       f"pointer loaded from memory in every iteration ({field.why}): iterations {i1} and {i2} "
                       "may reach the same element through it", field.name, "assumed", first.location,
                       (field.accesses[-1] if len(field.accesses) > 1 else first).location, first_two(header),
                       field.why)

    def _may(self, loop: Loop, base: Optional[str], group: list[MemoryAccess], what: str, hint: str = "") -> Blocker:
        """An assumed dependence: the loop's first two iterations may meet through `group`."""
        header = self.headers[loop.id]
        i1, i2 = iterations_text(header.var, first_two(header))
        first, last = group[0], group[-1]
        if len(group) > 1:
            verb, rest = what.split(" ", 1)
            what = f"{verb[:-2] if verb.endswith('es') else verb[:-1]} {rest}"
        return Blocker(f"`{first.text}` at {first.location}{_more(group)} {what}: iterations {i1} and {i2} may "
                       "touch the same memory through it", base, "assumed", first.location, last.location,
                       first_two(header), what, hint)

    def _conflict(self, loop: Loop, base: Optional[str], conflict: Conflict) -> Blocker:
        header = self.headers[loop.id]
        var = header.var
        one, two = conflict.first, conflict.second
        if conflict.witness is None:
            i1, i2 = iterations_text(var, first_two(header))
            return Blocker(f"`{base}` may be carried across iterations: {conflict.why}; iterations {i1} and {i2} "
                           f"may reach one element through `{one.text}` ({one.location}) and `{two.text}` "
                           f"({two.location})", base, "assumed", one.location, two.location, first_two(header),
                           conflict.why)
        i1, i2 = conflict.witness
        kind = _kind(one, two)
        article = "an" if kind[0] in "ao" else "a"
        what = "writes" if one.write else "reads"
        then = "reads" if kind == "flow" else "writes"
        return Blocker(f"`{base}` carries {article} {kind} dependence: iteration {var}={i1} {what} `{one.text}` "
                       f"({one.location}) and iteration {var}={i2} {then} the same element through "
                       f"`{two.text}` ({two.location})", base, kind, one.location, two.location, (i1, i2))

    def _carried_scalar(self, loop: Loop, carried: CarriedScalar) -> Blocker:
        header = self.headers[loop.id]
        pair = first_two(header)
        i1, i2 = iterations_text(header.var, pair)
        name, noun, written, read = carried.name, carried.noun, carried.written, carried.read
        if carried.why == "address":
            return Blocker(f"{noun} `{name}` is written at {written.location} and its address is taken, so other "
                           f"accesses cannot be followed: iteration {i1} writes it and iteration {i2} may read it "
                           "through a pointer", name, "assumed", written.location, written.location, pair,
                           "its address is taken")
        if carried.why == "conditional":
            return Blocker(f"{noun} `{name}` is written in only some iterations ({written.location}) and read after "
                           f"the loop, so its final value depends on iteration order: iterations {i1} and {i2} may "
                           "both write it", name, "output", written.location, written.location, pair)
        return Blocker(f"{noun} `{name}` is read at {read.location} before it is written in the same iteration, "
                       f"so iteration {i2} reads the value iteration {i1} wrote at {written.location}",
                       name, "flow", written.location, read.location, pair)

    def _scalars_under_pointer_writes(self, events, written_bases) -> set[str]:
        """A global scalar the loop reads could be what a written pointer points to (a caller
        may pass its address), and so could a local one whose address is taken if the pointer
        was loaded from memory: both join the no-alias condition, which the runtime checks."""
        external = {b for b in written_bases if b is not None and not self.points.declared_restrict(b) and (
            self.points.unknown(b) or any(o.startswith(("param:", "global:")) for o in self.points.origins(b)))}
        loaded = {b for b in external if self.points.unknown(b)}
        scalars = {e.name for e in events if isinstance(e, ScalarAccess) and e.read
                   and (v := self.model.variables.get(e.name)) is not None and not v.ctype.is_memory
                   and (v.storage in ("global", "static") or (loaded and e.name in self.address_taken))}
        return scalars | external if scalars and external else set()

    def _blind(self, access: MemoryAccess) -> bool:
        """A store that may land anywhere: through an unnamed address or a pointer of unknown
        origin. (One through a pointer loaded from memory is either loaded once, and then checked
        at run time like a pointer of unknown origin, or leaves the loop sequential.)"""
        return access.base is None or self.points.unknown(access.base)

    def _iteration_local(self, loop: Loop, access: MemoryAccess) -> bool:
        """Arrays and structs declared inside the loop body are fresh in every iteration."""
        variable = self.model.variables.get(access.base or "")
        return (access.base in loop.declared_inside and not access.through_loaded_pointer
                and variable is not None and variable.ctype.kind in ("array", "struct"))

    def _rebase(self, loop: Loop, access: MemoryAccess, written: set[str], names: dict[str, str]) -> MemoryAccess:
        """Rewrite an access through a pointer set inside the loop (`row = &a[i*m]; row[j]`)
        as an access to what it points into (`a[i*m + j]`), when one definition dominates it."""
        defs = [e for e in self.model.events_in(loop)
                if isinstance(e, ScalarAccess) and e.name == access.base and e.write]
        if len(defs) != 1 or defs[0].definition is None or not dominates(defs[0], access) \
                or not access.components or access.components[0].index is None:
            return access
        target = _pointer_target(substitute(defs[0].definition, names))
        if target is None or target[0] in written or target[0] == access.base:
            return access
        base, prefix = target
        first = access.components[0].index
        merged = prefix[-1].index if prefix else None
        index = first if merged is None else c_ast.BinaryOp("+", merged, first)
        components = tuple(prefix[:-1]) + (Component(index=index),) + access.components[1:]
        return replace(access, base=base, components=components)

    def _scalars_written_through_pointers(self, loop: Loop, events) -> list[Blocker]:
        """A scalar whose address is taken may be written through a pointer the analysis
        cannot follow; if the loop writes through such a pointer, reads of it are not safe."""
        blind = [e for e in events if isinstance(e, MemoryAccess) and e.write and self._blind(e)]
        if not blind:
            return []
        header = self.headers[loop.id]
        i1, i2 = iterations_text(header.var, first_two(header))
        out, seen = [], set()
        for event in events:
            if isinstance(event, ScalarAccess) and event.read and event.name in self.address_taken \
                    and event.name not in seen:
                seen.add(event.name)
                out.append(Blocker(f"scalar `{event.name}` has its address taken and the loop writes through "
                                   f"`{blind[0].text}` ({blind[0].location}), which may point to it: iteration {i1} "
                                   f"may write it there and iteration {i2} reads it at {event.location}",
                                   event.name, "assumed", blind[0].location, event.location, first_two(header),
                                   f"`{blind[0].text}` may point to `{event.name}`"))
        return out

    def _calls_reading_written_scalars(self, loop: Loop, events, written: set[str]) -> list[Blocker]:
        """A helper that reads a global scalar the loop writes sees other iterations' values."""
        header = self.headers[loop.id]
        i1, i2 = iterations_text(header.var, first_two(header))
        out = []
        for event in events:
            if isinstance(event, Call):
                for name in sorted(self.summaries.of(event.name).reads_globals & written):
                    store = next(e for e in events if isinstance(e, ScalarAccess) and e.write and e.name == name)
                    out.append(Blocker(f"`{event.name}` (called at {event.location}) reads global `{name}`, which "
                                       f"the loop writes: iteration {i1} writes it at {store.location} and "
                                       f"iteration {i2} calls `{event.name}`", name, "flow", store.location,
                                       event.location, first_two(header)))
        return out

    def _call_reads(self, events, names: dict[str, str]) -> list[MemoryAccess]:
        """Pure user functions read memory through their pointer arguments: model each such
        argument as a read of the whole object (no subscripts, so it conflicts with any write)."""
        reads = []
        for event in events:
            if not isinstance(event, Call):
                continue
            summary = self.summaries.of(event.name)
            for index in sorted(summary.reads_params):
                if index < len(event.args):
                    root = _root_name(substitute(event.args[index], names))
                    reads.append(MemoryAccess(event.seq, event.chain, event.path, event.location, False,
                                              root, (), False, True, f"{event.name}(...) reading its argument {index + 1}",
                                              root is None))
            for name in sorted(summary.reads_globals):
                variable = self.model.variables.get(name)
                if variable is not None and not variable.ctype.is_memory:
                    continue     # scalars: see _calls_reading_written_scalars
                reads.append(MemoryAccess(event.seq, event.chain, event.path, event.location, False,
                                          name, (), False, True, f"{event.name}(...) reading `{name}`"))
        return reads

    # ---- symbols -----------------------------------------------------------------------
    def _resolve(self, loop: Loop, written: set[str], name: str, chain: tuple[int, ...],
                 at: Optional[MemoryAccess], depth: int = 0) -> Optional[Poly]:
        """Polynomial meaning of `name` inside loop `loop` at an access (see dependence.py)."""
        for loop_id in reversed(chain):
            header = self.headers.get(loop_id)
            if header is not None and header.var == name:
                return Poly.symbol(loop_symbol(loop_id))
        if name in self.enumerators and name not in self.model.variables:
            return Poly.symbol("P_" + name)
        variable = self.model.variables.get(name)
        if variable is None or variable.ctype.kind != "scalar" or name in self.address_taken:
            return None
        if name not in written and name not in loop.declared_inside:
            return Poly.symbol("P_" + name)
        if at is None or depth > 8:
            return None
        defs = [e for e in self.model.events_in(loop) if isinstance(e, ScalarAccess) and e.name == name and e.write]
        if len(defs) != 1 or defs[0].definition is None or not dominates(defs[0], at):
            return None
        definition = defs[0]
        return to_poly(definition.definition,
                       lambda n: self._resolve(loop, written, n, definition.chain, definition, depth + 1))


def _dedupe(accesses: list[MemoryAccess]) -> list[MemoryAccess]:
    seen, out = set(), []
    for access in accesses:
        key = (access.text, access.chain, access.write, access.read)
        if key not in seen:
            seen.add(key)
            out.append(access)
    return out


def _names_in(node: c_ast.Node) -> set[str]:
    return {n.name for n in walk(node) if isinstance(n, c_ast.ID)}


def _root_name(node: c_ast.Node) -> Optional[str]:
    while True:
        if isinstance(node, c_ast.ID):
            return node.name
        if isinstance(node, (c_ast.ArrayRef, c_ast.StructRef)):
            node = node.name
        elif isinstance(node, c_ast.UnaryOp) and node.op in ("&", "*"):
            node = node.expr
        elif isinstance(node, c_ast.BinaryOp) and node.op in ("+", "-"):
            node = node.left
        elif isinstance(node, c_ast.Cast):
            node = node.expr
        else:
            return None


def _pointer_target(node: Optional[c_ast.Node]) -> Optional[tuple[str, list[Component]]]:
    """(array, components) for `&a[e]...`, `a + e` or `a`; the last component is an index."""
    while isinstance(node, c_ast.Cast):
        node = node.expr
    if isinstance(node, c_ast.ID):
        return node.name, [Component(index=c_ast.Constant("int", "0"))]
    if isinstance(node, c_ast.BinaryOp) and node.op == "+" and isinstance(node.left, c_ast.ID):
        return node.left.name, [Component(index=node.right)]
    if isinstance(node, c_ast.UnaryOp) and node.op == "&":
        comps: list[Component] = []
        inner = node.expr
        while isinstance(inner, c_ast.ArrayRef):
            comps.insert(0, Component(index=inner.subscript))
            inner = inner.name
        if isinstance(inner, c_ast.ID) and comps:
            return inner.name, comps
    return None


def _kind(first: MemoryAccess, second: MemoryAccess) -> str:
    if first.write and second.read:
        return "flow"
    if first.read and second.write:
        return "anti"
    return "output"


def _more(group) -> str:
    return f" and {len(group) - 1} more" if len(group) > 1 else ""


def _go(group) -> str:
    return "go" if len(group) > 1 else "goes"

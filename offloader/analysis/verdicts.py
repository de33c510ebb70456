"""Decide one loop's verdict from the model: not-offloadable, sequential or parallel."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Optional

import islpy as isl
from pycparser import c_ast

from ..frontend.walk import walk
from .dependence import Conflict, DependenceTester, loop_symbol
from .effects import Summaries
from .footprint import AccessFootprint, LoopDomain, footprints
from .header import Header, parse_header
from .model import Call, Component, FunctionModel, Loop, MemoryAccess, ScalarAccess, Transfer
from .pointers import PointsTo
from .poly import Poly, to_poly
from .scalars import classify_scalars, dominates


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
        result.reasons = self._blockers(loop, header, events)
        if result.reasons:
            return result
        scalars = classify_scalars(self.model, loop, header.var, events)
        result.private, result.lastprivate = scalars.private, scalars.lastprivate
        result.reductions = scalars.reductions
        reasons = list(scalars.carried)
        written = {e.name for e in events if isinstance(e, ScalarAccess) and e.write}
        reasons += self._calls_reading_written_scalars(events, written)
        reasons += self._scalars_written_through_pointers(events)
        reasons += self._memory(loop, events, written, result)
        if reasons:
            result.verdict, result.reasons = "sequential", reasons
            result.reductions = {}
            result.no_alias, result.distinct_rows = set(), set()
            return result
        result.verdict = "parallel"
        for name in sorted(result.lastprivate):
            result.hints.append(f"`{name}` is read after the loop: the value of the last iteration is kept")
        for name in sorted(result.distinct_rows):
            result.hints.append(f"`{name}` is an array of row pointers: the run-time check also "
                                "makes sure no two rows overlap")
        if result.no_alias:
            params = sorted(n for n in result.no_alias
                            if (v := self.model.variables.get(n)) and v.storage == "param")
            if params and len(params) == len(result.no_alias):
                result.hints.append(f"add `restrict` to {' and '.join(params)} to drop the run-time check")
            else:
                result.hints.append("the run-time check compares the address ranges of "
                                    + ", ".join(sorted(result.no_alias)))
        return result

    def _blockers(self, loop: Loop, header: Optional[Header], events) -> list[str]:
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
        exposed_bounds = sorted((_names_in(header.end) | _names_in(header.start)) & self.address_taken)
        if exposed_bounds and any(isinstance(e, MemoryAccess) and e.write and
                                  (e.base is None or "unknown" in self.points.origins(e.base)) for e in events):
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
    def _memory(self, loop: Loop, events, written_scalars: set[str], result: LoopVerdict) -> list[str]:
        accesses = [self._rebase(loop, e, written_scalars) if e.base in written_scalars else e
                    for e in events if isinstance(e, MemoryAccess) and not self._iteration_local(loop, e)]
        accesses += self._call_reads(events)
        by_base: dict[Optional[str], list[MemoryAccess]] = {}
        for access in accesses:
            by_base.setdefault(access.base, []).append(access)
        result.reads = {a.base for a in accesses if a.read and a.base is not None}
        result.writes = {a.base for a in accesses if a.write and a.base is not None}
        any_write = any(a.write for a in accesses)
        reasons: list[str] = []
        moving: dict[str, list[MemoryAccess]] = {}
        for access in accesses:
            if access.base is None and (access.write or any_write):
                reasons.append(f"`{access.text}` at {access.location} reaches memory the analysis cannot name")
            elif access.through_loaded_pointer and any_write:
                reasons.append(f"`{access.text}` at {access.location} goes through a pointer loaded from "
                               "memory, which may point anywhere another iteration writes")
            elif access.base in written_scalars and any_write:
                moving.setdefault(access.base, []).append(access)
        for base, group in moving.items():
            first = group[0]
            more = f" and {len(group) - 1} more" if len(group) > 1 else ""
            verb = "go" if more else "goes"
            reasons.append(f"`{first.text}` at {first.location}{more} {verb} through pointer `{base}`, "
                           "which changes inside the loop")
        if reasons:
            return list(dict.fromkeys(reasons))
        tester = DependenceTester(loop, self.headers,
                                  lambda n, c, a: self._resolve(loop, written_scalars, n, c, a))
        for base, group in sorted(by_base.items(), key=lambda item: str(item[0])):
            if not any(a.write for a in group):
                continue
            subs = tester.subscripts(_dedupe(group))
            for one, two in itertools.combinations_with_replacement(subs, 2):
                if not (one.access.write or two.access.write):
                    continue
                conflict = tester.conflict(one, two)
                if conflict is not None:
                    reasons.append(_describe(base, conflict, self.headers[loop.id].var))
                    result.dependences.append(_dependence_json(base, conflict))
                    break
        written_bases = {a.base for a in accesses if a.write}
        result.distinct_rows = {a.base for a in accesses if a.through_rows and a.write}
        for x, y in itertools.combinations(sorted(by_base), 2):
            if (x in written_bases or y in written_bases) and self.points.may_alias(x, y):
                result.no_alias.update((x, y))
        result.no_alias |= self._global_scalars_under_pointer_writes(events, written_bases)
        if not reasons:
            result.footprint, result.domains = footprints(self.model, loop, events, accesses, self.headers,
                                                          tester.resolve)
        return reasons

    def _global_scalars_under_pointer_writes(self, events, written_bases) -> set[str]:
        """A global scalar the loop reads could be what a written pointer points to (a caller
        may pass its address): both join the no-alias condition, which the runtime checks."""
        external = {b for b in written_bases if b is not None and any(
            o.startswith(("param:", "global:")) for o in self.points.origins(b))}
        if not external:
            return set()
        scalars = {e.name for e in events if isinstance(e, ScalarAccess) and e.read
                   and (v := self.model.variables.get(e.name)) is not None
                   and v.storage in ("global", "static") and not v.ctype.is_memory}
        return scalars | external if scalars else set()

    def _iteration_local(self, loop: Loop, access: MemoryAccess) -> bool:
        """Arrays and structs declared inside the loop body are fresh in every iteration."""
        variable = self.model.variables.get(access.base or "")
        return (access.base in loop.declared_inside and not access.through_loaded_pointer
                and variable is not None and variable.ctype.kind in ("array", "struct"))

    def _rebase(self, loop: Loop, access: MemoryAccess, written: set[str]) -> MemoryAccess:
        """Rewrite an access through a pointer set inside the loop (`row = &a[i*m]; row[j]`)
        as an access to what it points into (`a[i*m + j]`), when one definition dominates it."""
        defs = [e for e in self.model.events_in(loop)
                if isinstance(e, ScalarAccess) and e.name == access.base and e.write]
        if len(defs) != 1 or defs[0].definition is None or not dominates(defs[0], access) \
                or not access.components or access.components[0].index is None:
            return access
        target = _pointer_target(defs[0].definition)
        if target is None or target[0] in written or target[0] == access.base:
            return access
        base, prefix = target
        first = access.components[0].index
        merged = prefix[-1].index if prefix else None
        index = first if merged is None else c_ast.BinaryOp("+", merged, first)
        components = tuple(prefix[:-1]) + (Component(index=index),) + access.components[1:]
        return replace(access, base=base, components=components)

    def _scalars_written_through_pointers(self, events) -> list[str]:
        """A scalar whose address is taken may be written through a pointer the analysis
        cannot follow; if the loop writes through such a pointer, reads of it are not safe."""
        blind = [e for e in events if isinstance(e, MemoryAccess) and e.write
                 and (e.base is None or "unknown" in self.points.origins(e.base))]
        if not blind:
            return []
        read = sorted({e.name for e in events if isinstance(e, ScalarAccess) and e.read
                       and e.name in self.address_taken})
        return [f"scalar `{name}` has its address taken and the loop writes through `{blind[0].text}` "
                f"({blind[0].location}), which may point to it" for name in read]

    def _calls_reading_written_scalars(self, events, written: set[str]) -> list[str]:
        """A helper that reads a global scalar the loop writes sees other iterations' values."""
        reasons = []
        for event in events:
            if isinstance(event, Call):
                for name in sorted(self.summaries.of(event.name).reads_globals & written):
                    reasons.append(f"`{event.name}` (called at {event.location}) reads global `{name}`, "
                                   "which the loop writes")
        return reasons

    def _call_reads(self, events) -> list[MemoryAccess]:
        """Pure user functions read memory through their pointer arguments: model each such
        argument as a read of the whole object (no subscripts, so it conflicts with any write)."""
        reads = []
        for event in events:
            if not isinstance(event, Call):
                continue
            summary = self.summaries.of(event.name)
            for index in sorted(summary.reads_params):
                if index < len(event.args):
                    root = _root_name(event.args[index])
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


def _pointer_target(node: c_ast.Node) -> Optional[tuple[str, list[Component]]]:
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


def _describe(base: Optional[str], conflict: Conflict, var: str) -> str:
    one, two = conflict.first, conflict.second
    if conflict.witness is None:
        return f"`{base}` may be carried across iterations: {conflict.why}"
    i1, i2 = conflict.witness
    kind = _kind(one, two)
    article = "an" if kind[0] in "ao" else "a"
    what = "writes" if one.write else "reads"
    then = "reads" if kind == "flow" else "writes"
    return (f"`{base}` carries {article} {kind} dependence: iteration {var}={i1} {what} `{one.text}` "
            f"({one.location}) and iteration {var}={i2} {then} the same element through "
            f"`{two.text}` ({two.location})")


def _dependence_json(base: Optional[str], conflict: Conflict) -> dict:
    one, two = conflict.first, conflict.second
    entry = {"var": base, "kind": _kind(one, two) if conflict.witness else "assumed",
             "source": str(one.location), "sink": str(two.location)}
    if conflict.witness:
        entry["distance"] = conflict.witness[1] - conflict.witness[0]
    else:
        entry["why"] = conflict.why
    return entry

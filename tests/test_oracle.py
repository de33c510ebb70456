"""Exact brute-force oracle for the dependence analysis, on generated affine loop nests.

Hypothesis generates small C programs: one `void kernel(void)` with a nest of depth 1-3 of
canonical `for` loops with small constant (sometimes triangular, sometimes down-counting)
bounds, and a few array statements whose subscripts are affine in the enclosing loop
variables, plus, now and then, a scalar pattern (a private temporary, a `+=` reduction, or
a deliberately unsafe variant of either).  One program in four also reads a global `int n`
whose value the analyzer cannot know, in loop bounds (`i < n + c`) and subscripts.

The oracle runs the nest in Python with the concrete bounds, records every access
(array + index tuple, read or write) and decides exactly, loop by loop, whether the loop
carries a dependence: two instances with the same values of the enclosing loops, different
values of this loop, touching the same location, at least one of them a write.  Scalars
that are a pure `+=` accumulation are reductions, scalars written before they are read in
every iteration are private; neither counts as a carried dependence.  With a parameter
`n`, the nest is run for every n in -6..6 (arrays are sized so that all of these stay in
bounds), and a loop carries a dependence if it does for any of them.

The safety property checked on every example: whenever the analyzer says `parallel`, the
oracle finds no carried dependence, every scalar the loop needs privatised or reduced is
listed as such, and the loop's `trip` describes the iterations the loop really runs.
Recall (how many truly dependence-free loops the analyzer finds) is collected over the
examples with constant bounds, printed, written to results/oracle_recall.json and must be
>= 0.9 (with `n`, "free for n in -6..6" is only an upper bound on "free for every int n", so
those are reported apart).
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "oracle_recall.json"
RECALL_THRESHOLD = 0.9
LOOP_VARS = ("i", "j", "k")
ARRAYS_1D = ("A", "B", "C")
ARRAYS_2D = ("P", "Q")


# --------------------------------------------------------------------------------------
# Program model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Affine:
    """const + sum(coef * var)."""

    const: int
    coefs: tuple[tuple[str, int], ...] = ()

    def value(self, env: dict[str, int]) -> int:
        return self.const + sum(c * env[v] for v, c in self.coefs)

    def interval(self, ranges: dict[str, tuple[int, int]]) -> tuple[int, int]:
        lo = hi = self.const
        for v, c in self.coefs:
            a, b = ranges[v]
            lo += min(c * a, c * b)
            hi += max(c * a, c * b)
        return lo, hi

    def shifted(self, k: int) -> "Affine":
        return Affine(self.const + k, self.coefs)

    def render(self) -> str:
        parts: list[str] = []
        for v, c in self.coefs:
            if c == 0:
                continue
            mag = abs(c)
            term = v if mag == 1 else f"{mag}*{v}"
            if not parts:
                parts.append(term if c > 0 else f"-{term}")
            else:
                parts.append(f"+ {term}" if c > 0 else f"- {term}")
        if not parts:
            return str(self.const)
        if self.const > 0:
            parts.append(f"+ {self.const}")
        elif self.const < 0:
            parts.append(f"- {-self.const}")
        return " ".join(parts)


@dataclass(frozen=True)
class ArrayRef:
    name: str
    subs: tuple[Affine, ...]

    def render(self) -> str:
        return self.name + "".join(f"[{s.render()}]" for s in self.subs)


@dataclass(frozen=True)
class ScalarRef:
    name: str

    def render(self) -> str:
        return self.name


@dataclass
class Stmt:
    target: ArrayRef | ScalarRef
    op: str                                   # "=" or "+="
    reads: tuple[ArrayRef | ScalarRef, ...]
    const: str | None = None                  # an extra literal term on the right
    line: int = 0

    def render(self) -> str:
        terms = [r.render() for r in self.reads]
        if self.const is not None:
            terms.append(self.const)
        rhs = " + ".join(terms) if terms else "1.0"
        return f"{self.target.render()} {self.op} {rhs};"


@dataclass
class Loop:
    id: int
    var: str
    start: Affine
    end: Affine
    cond: str                                 # "<", "<=", ">", ">="
    step: int
    declared: bool                            # `for (int i = ...` rather than `for (i = ...`
    depth: int
    parent: int | None
    body: list = field(default_factory=list)  # of Stmt | Loop
    line: int = 0

    def values(self, env: dict[str, int]) -> list[int]:
        s, e = self.start.value(env), self.end.value(env)
        test = {"<": lambda v: v < e, "<=": lambda v: v <= e,
                ">": lambda v: v > e, ">=": lambda v: v >= e}[self.cond]
        out, v = [], s
        while test(v):
            out.append(v)
            v += self.step
        return out

    def render_header(self) -> str:
        decl = "int " if self.declared else ""
        v = self.var
        if self.step == 1:
            inc = f"{v}++"
        elif self.step == -1:
            inc = f"{v}--"
        elif self.step > 0:
            inc = f"{v} += {self.step}"
        else:
            inc = f"{v} -= {-self.step}"
        return (f"for ({decl}{v} = {self.start.render()}; {v} {self.cond} {self.end.render()}; "
                f"{inc}) {{")


@dataclass
class Program:
    roots: list[Loop]
    loops: list[Loop]
    stmts: list[Stmt]
    arrays: dict[str, tuple[int, ...]]        # name -> declared dims
    scalars: dict[str, str]                   # name -> "global" | "local"
    top_vars: tuple[str, ...]                 # loop variables declared at function top
    source: str = ""
    # Global ints the kernel reads but never writes (values unknown to the analyzer): the
    # oracle runs the nest once for every combination of the values listed here.
    params: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def param_envs(self) -> list[dict[str, int]]:
        names = sorted(self.params)
        return [dict(zip(names, vals))
                for vals in itertools.product(*(self.params[n] for n in names))]


def walk(items):
    for it in items:
        yield it
        if isinstance(it, Loop):
            yield from walk(it.body)


def refs_of(stmt: Stmt):
    yield stmt.target
    yield from stmt.reads


# --------------------------------------------------------------------------------------
# Rendering and sizing
# --------------------------------------------------------------------------------------


def var_ranges(prog: Program) -> dict[int, dict[str, tuple[int, int]]]:
    """A sound interval for every loop variable in scope at each loop's body."""
    out: dict[int, dict[str, tuple[int, int]]] = {}

    def visit(loop: Loop, outer: dict[str, tuple[int, int]]):
        s_lo, s_hi = loop.start.interval(outer)
        e_lo, e_hi = loop.end.interval(outer)
        rng = (min(s_lo, e_lo), max(s_hi, e_hi))
        env = dict(outer)
        env[loop.var] = rng
        out[loop.id] = env
        for it in loop.body:
            if isinstance(it, Loop):
                visit(it, env)

    for r in prog.roots:
        visit(r, {p: (min(vs), max(vs)) for p, vs in prog.params.items()})
    return out


def finalize(prog: Program) -> Program:
    """Shift subscripts so every index any instance could touch is in bounds; render C."""
    ranges = var_ranges(prog)
    # The interval of every subscript, per (array, dim), over the loop bodies it occurs in.
    bounds: dict[tuple[str, int], tuple[int, int]] = {}
    owner: dict[int, int] = {}
    for loop in prog.loops:
        for it in loop.body:
            if isinstance(it, Stmt):
                owner[id(it)] = loop.id
    for stmt in prog.stmts:
        env = ranges[owner[id(stmt)]]
        for ref in refs_of(stmt):
            if isinstance(ref, ArrayRef):
                for d, sub in enumerate(ref.subs):
                    lo, hi = sub.interval(env)
                    if (ref.name, d) in bounds:
                        a, b = bounds[(ref.name, d)]
                        lo, hi = min(lo, a), max(hi, b)
                    bounds[(ref.name, d)] = (lo, hi)
    shift = {key: -lo for key, (lo, hi) in bounds.items()}

    def fix(ref):
        if isinstance(ref, ArrayRef):
            return ArrayRef(ref.name, tuple(s.shifted(shift[(ref.name, d)])
                                            for d, s in enumerate(ref.subs)))
        return ref

    for stmt in prog.stmts:
        stmt.target = fix(stmt.target)
        stmt.reads = tuple(fix(r) for r in stmt.reads)
    arrays: dict[str, tuple[int, ...]] = {}
    for (name, d), (lo, hi) in sorted(bounds.items()):
        dims = list(arrays.get(name, ()))
        dims.append(hi - lo + 1)
        arrays[name] = tuple(dims)
    prog.arrays = arrays

    lines: list[str] = []
    for name, dims in sorted(arrays.items()):
        lines.append(f"double {name}" + "".join(f"[{n}]" for n in dims) + ";")
    for name, where in sorted(prog.scalars.items()):
        if where == "global":
            lines.append(f"double {name};")
    for name in sorted(prog.params):
        lines.append(f"int {name};")
    lines.append("")
    lines.append("void kernel(void)")
    lines.append("{")
    for name, where in sorted(prog.scalars.items()):
        if where == "local":
            lines.append(f"    double {name} = 0.0;")
    if prog.top_vars:
        lines.append("    int " + ", ".join(prog.top_vars) + ";")

    def emit(items, indent):
        for it in items:
            pad = "    " * indent
            if isinstance(it, Loop):
                lines.append(pad + it.render_header())
                it.line = len(lines)
                emit(it.body, indent + 1)
                lines.append(pad + "}")
            else:
                lines.append(pad + it.render())
                it.line = len(lines)

    emit(prog.roots, 1)
    lines.append("}")
    lines.append("")
    prog.source = "\n".join(lines)
    return prog


# --------------------------------------------------------------------------------------
# The brute-force oracle
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    stmt: int                       # index into prog.stmts
    path: tuple[tuple[int, int], ...]   # ((loop id, value), ...) outermost first
    loc: tuple                      # ("A", 3) / ("P", 1, 2) / ("t",)
    write: bool
    kind: str                       # "read" | "write" | "red" (scalar +=) | "acc" (array +=)


def execute(prog: Program, penv: dict[str, int] | None = None) -> list[Access]:
    """Every access of every statement instance, in execution order (parameters `penv`)."""
    index = {id(s): n for n, s in enumerate(prog.stmts)}
    out: list[Access] = []

    def loc(ref, env):
        if isinstance(ref, ArrayRef):
            return (ref.name,) + tuple(s.value(env) for s in ref.subs)
        return (ref.name,)

    def run(items, env, path):
        for it in items:
            if isinstance(it, Loop):
                for v in it.values(env):
                    env2 = dict(env)
                    env2[it.var] = v
                    run(it.body, env2, path + ((it.id, v),))
            else:
                n = index[id(it)]
                tgt = loc(it.target, env)
                scalar = isinstance(it.target, ScalarRef)
                if it.op == "+=":
                    kind = "red" if scalar else "acc"
                else:
                    kind = "write"
                reads = [Access(n, path, loc(r, env), False, "read") for r in it.reads]
                if kind == "write":
                    out.extend(reads)
                    out.append(Access(n, path, tgt, True, "write"))
                else:
                    # x += e: x is read first (as part of the same update), then e, then x written.
                    out.append(Access(n, path, tgt, False, kind))
                    out.extend(reads)
                    out.append(Access(n, path, tgt, True, kind))

    run(prog.roots, dict(penv or {}), ())
    return out


@dataclass
class LoopTruth:
    # "parallel" | "array-reduction" | "carried" | "degenerate" (dynamically free of carried
    # dependences only because the loop, or the statements touching a scalar it cannot
    # privatise or reduce, run at most once: safe either way, not counted for recall)
    verdict: str
    reductions: set[str] = field(default_factory=set)
    private: set[str] = field(default_factory=set)
    red_arrays: set[str] = field(default_factory=set)
    witness: tuple | None = None        # (loc, value 1, value 2) of one carried dependence
    # ((name, value) of the parameters and enclosing loop variables) -> [this loop's values]
    contexts: dict = field(default_factory=dict)


def static_scalar_carried(loop: Loop, scalars: set[str]) -> set[str]:
    """Scalars written in `loop` that are, from the text alone, neither a reduction (only ever
    the target of `x += ...`) nor private (first referenced by a plain write, with every
    reference in that same loop body)."""
    refs: dict[str, list[tuple[Stmt, str, int]]] = {}    # x -> [(stmt, role, body id)]

    def visit(items, body_id):
        for it in items:
            if isinstance(it, Loop):
                visit(it.body, it.id)
                continue
            for r in it.reads:
                if isinstance(r, ScalarRef):
                    refs.setdefault(r.name, []).append((it, "read", body_id))
            if isinstance(it.target, ScalarRef):
                role = "red" if it.op == "+=" else "write"
                refs.setdefault(it.target.name, []).append((it, role, body_id))

    visit(loop.body, loop.id)
    out = set()
    for x, rs in refs.items():
        if x not in scalars or not any(role != "read" for _, role, _ in rs):
            continue
        if all(role == "red" for _, role, _ in rs):
            continue
        if rs[0][1] == "write" and len({b for _, _, b in rs}) == 1:
            continue
        out.add(x)
    return out


RANK = {"parallel": 0, "degenerate": 1, "array-reduction": 2, "carried": 3}


def oracle(prog: Program) -> dict[int, LoopTruth]:
    """The truth about every loop, for every combination of parameter values: a loop is only
    as parallel as it is for its worst parameter values."""
    merged: dict[int, LoopTruth] = {}
    for penv in prog.param_envs():
        for lid, t in oracle_for(prog, penv).items():
            m = merged.get(lid)
            if m is None:
                merged[lid] = t
                continue
            if RANK[t.verdict] > RANK[m.verdict]:
                m.verdict, m.witness = t.verdict, t.witness
            m.reductions |= t.reductions
            m.private |= t.private
            m.red_arrays |= t.red_arrays
            m.contexts.update(t.contexts)
    return merged


def oracle_for(prog: Program, penv: dict[str, int]) -> dict[int, LoopTruth]:
    accesses = execute(prog, penv)
    scalars = set(prog.scalars)
    truths: dict[int, LoopTruth] = {}
    for loop in prog.loops:
        d = loop.depth
        inside = [a for a in accesses if len(a.path) > d and a.path[d][0] == loop.id]
        truth = LoopTruth("parallel")
        # Scalars: reduction, private, or an ordinary location.
        plain_scalars: set[str] = set()
        for x in scalars:
            xs = [a for a in inside if a.loc == (x,)]
            if not xs:
                continue
            if all(a.kind == "red" for a in xs):
                truth.reductions.add(x)
                continue
            first: dict[tuple, str] = {}
            for a in xs:
                key = tuple(v for _, v in a.path[: d + 1])
                first.setdefault(key, a.kind)
            if all(k == "write" for k in first.values()):
                truth.private.add(x)
                continue
            plain_scalars.add(x)
        # Conflicts: same ancestor values, same location, different values of this loop.
        groups: dict[tuple, dict] = {}
        for a in inside:
            if a.loc[0] in scalars and a.loc[0] not in plain_scalars:
                continue
            key = (tuple(v for _, v in a.path[:d]), a.loc)
            g = groups.setdefault(key, {"w": set(), "all": set(), "kinds": set()})
            g["all"].add(a.path[d][1])
            g["kinds"].add(a.kind)
            if a.write:
                g["w"].add(a.path[d][1])
        # Scalars the loop cannot privatise or reduce, judged statically (from the program
        # text): their dependence may vanish dynamically only because the loop runs at most
        # once, or the statements never run; such a loop is not required for recall.
        static_carried = static_scalar_carried(loop, scalars)
        carried_plain = None
        carried_acc: set[str] = set()
        for (ctx, loc_), g in groups.items():
            if g["w"] and len(g["all"]) >= 2:
                if g["kinds"] == {"acc"}:
                    carried_acc.add(loc_[0])
                elif carried_plain is None:
                    vals = sorted(g["all"])
                    carried_plain = (loc_, ctx, vals[0], vals[1])
        if carried_plain is not None:
            truth.verdict = "carried"
            truth.witness = carried_plain + (penv,)
        elif carried_acc:
            truth.verdict = "array-reduction"
            truth.red_arrays = carried_acc
        elif static_carried:
            truth.verdict = "degenerate"
            truth.witness = (static_carried,)
        # The values this loop runs through, per context of the enclosing loops.
        truths[loop.id] = truth
    # Iteration spaces, for the trip check.
    ctx_vals: dict[int, dict[tuple, list[int]]] = {l.id: {} for l in prog.loops}

    def run(items, env, vals):
        for it in items:
            if isinstance(it, Loop):
                vs = it.values(env)
                ctx_vals[it.id][vals] = vs
                for v in vs:
                    env2 = dict(env)
                    env2[it.var] = v
                    run(it.body, env2, vals + ((it.var, v),))

    run(prog.roots, dict(penv), tuple(sorted(penv.items())))
    for lid, t in truths.items():
        t.contexts = ctx_vals[lid]
    return truths


# --------------------------------------------------------------------------------------
# Hypothesis strategy
# --------------------------------------------------------------------------------------

COEF = st.sampled_from([1, 0, 2, -1, -2, 1, 0])
OFFS = st.integers(-3, 3)
# Trip counts 0-5, weighted away from the degenerate 0 and 1 (Hypothesis favours small values).
TRIPS = st.sampled_from([3, 4, 2, 5, 3, 4, 1, 0])


PARAM = "n"                     # the one parameter a program may have
PARAM_VALUES = tuple(range(-6, 7))
PCOEF = st.sampled_from([0, 0, 0, 1, -1])


def affine(draw, vars_: list[str]) -> Affine:
    """An affine subscript in the loop variables (and the parameter, if in `vars_`)."""
    return Affine(draw(OFFS), tuple((v, draw(PCOEF if v == PARAM else COEF)) for v in vars_))


def loop_bounds(draw, outer: list[str], params: tuple[str, ...] = ()):
    """(start, end, cond, step) for a canonical loop."""
    kinds = ["const"] * 6 + ["down"]
    if outer:
        kinds += ["tri_hi", "tri_hi", "tri_lo"]
    if params:
        kinds += ["param"] * 3
    kind = draw(st.sampled_from(kinds))
    if kind == "param":                        # i = s; i < n + c
        s = draw(st.integers(0, 2))
        step = draw(st.sampled_from([1, 1, 2]))
        cond = draw(st.sampled_from(["<", "<="]))
        c = draw(st.sampled_from([0, -1, 1]))
        return Affine(s), Affine(c, ((params[0], 1),)), cond, step
    if kind == "const":
        s = draw(st.integers(0, 2))
        t = draw(TRIPS)
        step = draw(st.sampled_from([1, 2]))
        cond = draw(st.sampled_from(["<", "<="]))
        r = draw(st.integers(0, step - 1))
        if cond == "<":
            e = s + t * step - r if t > 0 else s - r
        else:
            e = s + (t - 1) * step + r if t > 0 else s - 1 - r
        return Affine(s), Affine(e), cond, step
    if kind == "down":
        e = draw(st.integers(0, 2))
        t = draw(TRIPS)
        step = draw(st.sampled_from([-1, -1, -2]))
        cond = draw(st.sampled_from([">=", ">"]))
        a = -step
        if cond == ">=":
            s = e + (t - 1) * a if t > 0 else e - 1
        else:
            s = e + t * a if t > 0 else e
        return Affine(s), Affine(e), cond, step
    o = draw(st.sampled_from(outer))
    step = draw(st.sampled_from([1, 1, 2]))
    if kind == "tri_hi":                       # j = c; j < i + c'
        s = draw(st.integers(0, 1))
        cond = draw(st.sampled_from(["<", "<="]))
        c = draw(st.sampled_from([1, 0, 2, -1]))
        return Affine(s), Affine(c, ((o, 1),)), cond, step
    # tri_lo: j = i + c; j < e
    c = draw(st.integers(0, 1))
    e = draw(st.integers(2, 7))
    cond = draw(st.sampled_from(["<", "<="]))
    return Affine(c, ((o, 1),)), Affine(e), cond, step


def array_ref(draw, vars_: list[str], name: str | None = None) -> ArrayRef:
    if name is None:
        name = draw(st.sampled_from(ARRAYS_1D + ARRAYS_2D))
    nd = 2 if name in ARRAYS_2D else 1
    return ArrayRef(name, tuple(affine(draw, vars_) for _ in range(nd)))


def array_stmt(draw, vars_: list[str]) -> Stmt:
    tgt = array_ref(draw, vars_)
    op = draw(st.sampled_from(["=", "=", "+="]))
    reads = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 9)) < 4:
            reads.append(array_ref(draw, vars_, tgt.name))   # same array: dependences
        else:
            reads.append(array_ref(draw, vars_))
    const = draw(st.sampled_from([None, None, "1.0", "0.5"]))
    return Stmt(tgt, op, tuple(reads), const)


def scalar_group(draw, vars_: list[str], kind: str) -> list[Stmt]:
    if kind == "priv":        # t = A[..]; B[..] = t + ...;    t private
        a = Stmt(ScalarRef("t"), "=", (array_ref(draw, vars_),))
        b = Stmt(array_ref(draw, vars_), "=", (ScalarRef("t"), array_ref(draw, vars_)))
        return [a, b]
    if kind == "red":         # s += A[..];                    s a reduction
        return [Stmt(ScalarRef("s"), "+=", (array_ref(draw, vars_),))]
    if kind == "bad_priv":    # B[..] = t; t = A[..];          t carries a value across
        a = Stmt(array_ref(draw, vars_), "=", (ScalarRef("t"),))
        b = Stmt(ScalarRef("t"), "=", (array_ref(draw, vars_),))
        return [a, b]
    assert kind == "bad_red"  # s += A[..]; B[..] = s;         a scan, not a reduction
    a = Stmt(ScalarRef("s"), "+=", (array_ref(draw, vars_),))
    b = Stmt(array_ref(draw, vars_), "=", (ScalarRef("s"),))
    return [a, b]


@st.composite
def programs(draw) -> Program:
    depth = draw(st.integers(1, 3))
    declared = draw(st.sampled_from([True, True, False]))
    params = (PARAM,) if draw(st.integers(0, 3)) == 0 else ()
    loops: list[Loop] = []

    def new_loop(d: int, parent: Loop | None) -> Loop:
        outer = [LOOP_VARS[k] for k in range(d)]
        start, end, cond, step = loop_bounds(draw, outer, params)
        lp = Loop(len(loops), LOOP_VARS[d], start, end, cond, step, declared, d,
                  parent.id if parent else None)
        loops.append(lp)
        if parent is not None:
            parent.body.append(lp)
        return lp

    chain = [new_loop(0, None)]
    for d in range(1, depth):
        chain.append(new_loop(d, chain[-1]))
    if depth >= 2 and draw(st.integers(0, 4)) == 0:          # a sibling inner loop
        d = draw(st.integers(1, depth - 1))
        new_loop(d, chain[d - 1])
        if draw(st.booleans()):                              # put it before its sibling
            body = chain[d - 1].body
            body.insert(0, body.pop())
    stmts: list[Stmt] = []

    def scope(lp: Loop) -> list[str]:
        return [LOOP_VARS[k] for k in range(lp.depth + 1)] + list(params)

    def place(group: list[Stmt], lp: Loop):
        pos = draw(st.integers(0, len(lp.body)))
        lp.body[pos:pos] = group
        stmts.extend(group)

    for lp in loops:                                         # every leaf gets a statement
        if not any(isinstance(it, Loop) for it in lp.body):
            place([array_stmt(draw, scope(lp))], lp)
    for _ in range(draw(st.integers(0, 2))):
        lp = draw(st.sampled_from(loops))
        place([array_stmt(draw, scope(lp))], lp)
    scalars: dict[str, str] = {}
    kind = draw(st.sampled_from([None, None, None, "priv", "red", "priv", "red",
                                 "bad_priv", "bad_red"]))
    if kind is not None:
        lp = draw(st.sampled_from(loops))
        place(scalar_group(draw, scope(lp), kind), lp)
        name = "t" if kind in ("priv", "bad_priv") else "s"
        scalars[name] = "local" if name == "t" else "global"
    top_vars = () if declared else tuple(LOOP_VARS[:depth])
    prog = Program(chain[:1], loops, stmts, {}, scalars, top_vars,
                   params={p: PARAM_VALUES for p in params})
    return finalize(prog)


# --------------------------------------------------------------------------------------
# Oracle self-tests on hand-written models (no analyzer needed)
# --------------------------------------------------------------------------------------


def _single(stmts_of, start=0, end=8, cond="<", step=1) -> Program:
    lp = Loop(0, "i", Affine(start), Affine(end), cond, step, True, 0, None)
    stmts = stmts_of("i")
    lp.body = list(stmts)
    scal = {}
    for s in stmts:
        for r in refs_of(s):
            if isinstance(r, ScalarRef):
                scal[r.name] = "local"
    return finalize(Program([lp], [lp], list(stmts), {}, scal, ()))


def _aff(const, **coefs) -> Affine:
    return Affine(const, tuple(coefs.items()))


def test_oracle_selfcheck_single_loops():
    # A[i+1] = A[i]: flow dependence carried.
    p = _single(lambda v: [Stmt(ArrayRef("A", (_aff(1, i=1),)), "=",
                                (ArrayRef("A", (_aff(0, i=1),)),))])
    assert oracle(p)[0].verdict == "carried"
    # A[i] = A[i] + 1: nothing carried.
    p = _single(lambda v: [Stmt(ArrayRef("A", (_aff(0, i=1),)), "=",
                                (ArrayRef("A", (_aff(0, i=1),)),), "1.0")])
    assert oracle(p)[0].verdict == "parallel"
    # A[2i] = A[2i+1]: distinct parities, nothing carried.
    p = _single(lambda v: [Stmt(ArrayRef("A", (_aff(0, i=2),)), "=",
                                (ArrayRef("A", (_aff(1, i=2),)),))])
    assert oracle(p)[0].verdict == "parallel"
    # A[i] = A[8 - i]: a dependence between i and 8 - i.
    p = _single(lambda v: [Stmt(ArrayRef("A", (_aff(0, i=1),)), "=",
                                (ArrayRef("A", (_aff(8, i=-1),)),))])
    assert oracle(p)[0].verdict == "carried"
    # ... but not when the loop only runs over i < 4 and reads 8 - i > 4.
    p = _single(lambda v: [Stmt(ArrayRef("A", (_aff(0, i=1),)), "=",
                                (ArrayRef("A", (_aff(8, i=-1),)),))], end=4)
    assert oracle(p)[0].verdict == "parallel"
    # One iteration only: nothing can be carried.
    p = _single(lambda v: [Stmt(ArrayRef("A", (_aff(1, i=1),)), "=",
                                (ArrayRef("A", (_aff(0, i=1),)),))], end=1)
    assert oracle(p)[0].verdict == "parallel"
    # A[0] = B[i]: output dependence on A[0].
    p = _single(lambda v: [Stmt(ArrayRef("A", (_aff(0),)), "=",
                                (ArrayRef("B", (_aff(0, i=1),)),))])
    assert oracle(p)[0].verdict == "carried"
    # A[0] += B[i]: an array-element reduction.
    p = _single(lambda v: [Stmt(ArrayRef("A", (_aff(0),)), "+=",
                                (ArrayRef("B", (_aff(0, i=1),)),))])
    t = oracle(p)[0]
    assert t.verdict == "array-reduction" and t.red_arrays == {"A"}


def test_oracle_selfcheck_scalars():
    # t = A[i]; B[i] = t: t private.
    p = _single(lambda v: [Stmt(ScalarRef("t"), "=", (ArrayRef("A", (_aff(0, i=1),)),)),
                           Stmt(ArrayRef("B", (_aff(0, i=1),)), "=", (ScalarRef("t"),))])
    t = oracle(p)[0]
    assert t.verdict == "parallel" and t.private == {"t"}
    # B[i] = t; t = A[i]: t carries a value to the next iteration.
    p = _single(lambda v: [Stmt(ArrayRef("B", (_aff(0, i=1),)), "=", (ScalarRef("t"),)),
                           Stmt(ScalarRef("t"), "=", (ArrayRef("A", (_aff(0, i=1),)),))])
    assert oracle(p)[0].verdict == "carried"
    # ... unless the loop runs once: then nothing is carried, but the text alone cannot tell.
    p = _single(lambda v: [Stmt(ArrayRef("B", (_aff(0, i=1),)), "=", (ScalarRef("t"),)),
                           Stmt(ScalarRef("t"), "=", (ArrayRef("A", (_aff(0, i=1),)),))], end=1)
    assert oracle(p)[0].verdict == "degenerate"
    # s += A[i]: a reduction.
    p = _single(lambda v: [Stmt(ScalarRef("s"), "+=", (ArrayRef("A", (_aff(0, i=1),)),))])
    t = oracle(p)[0]
    assert t.verdict == "parallel" and t.reductions == {"s"}
    # s += A[i]; B[i] = s: a scan.
    p = _single(lambda v: [Stmt(ScalarRef("s"), "+=", (ArrayRef("A", (_aff(0, i=1),)),)),
                           Stmt(ArrayRef("B", (_aff(0, i=1),)), "=", (ScalarRef("s"),))])
    assert oracle(p)[0].verdict == "carried"


def test_oracle_selfcheck_nests():
    def nest(stmt, inner_start=Affine(0), inner_end=Affine(4)):
        outer = Loop(0, "i", Affine(0), Affine(4), "<", 1, True, 0, None)
        inner = Loop(1, "j", inner_start, inner_end, "<", 1, True, 1, 0)
        outer.body = [inner]
        inner.body = [stmt]
        return finalize(Program([outer], [outer, inner], [stmt], {}, {}, ()))

    # P[i][j] = P[i-1][j]: carried by i only.
    p = nest(Stmt(ArrayRef("P", (_aff(0, i=1, j=0), _aff(0, i=0, j=1))), "=",
                  (ArrayRef("P", (_aff(-1, i=1, j=0), _aff(0, i=0, j=1))),)))
    t = oracle(p)
    assert (t[0].verdict, t[1].verdict) == ("carried", "parallel")
    # P[i][j] = P[i][j-1]: carried by j only.
    p = nest(Stmt(ArrayRef("P", (_aff(0, i=1, j=0), _aff(0, i=0, j=1))), "=",
                  (ArrayRef("P", (_aff(0, i=1, j=0), _aff(-1, i=0, j=1))),)))
    t = oracle(p)
    assert (t[0].verdict, t[1].verdict) == ("parallel", "carried")
    # A[j] = A[j] + 1 inside i: carried by i (every i touches every A[j]), not by j.
    p = nest(Stmt(ArrayRef("A", (_aff(0, i=0, j=1),)), "=",
                  (ArrayRef("A", (_aff(0, i=0, j=1),)),), "1.0"))
    t = oracle(p)
    assert (t[0].verdict, t[1].verdict) == ("carried", "parallel")
    # Triangular j < i: A[i] = A[j] reads only already-final elements -> carried by i.
    p = nest(Stmt(ArrayRef("A", (_aff(0, i=1, j=0),)), "=",
                  (ArrayRef("A", (_aff(0, i=0, j=1),)),)), inner_end=_aff(0, i=1))
    assert oracle(p)[0].verdict == "carried"


def test_generated_programs_compile(tmp_path):
    """A handful of generated programs are valid C (and the sizing keeps accesses in bounds)."""
    import subprocess

    prog_strategy = programs()
    examples = []

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(prog_strategy)
    def collect(p):
        examples.append(p)

    collect()
    assert examples
    for n, p in enumerate(examples):
        for penv in p.param_envs():
            for acc in execute(p, penv):
                if len(acc.loc) > 1:
                    dims = p.arrays[acc.loc[0]]
                    assert all(0 <= x < m for x, m in zip(acc.loc[1:], dims)), (p.source, acc)
        if n % 4 and not p.params:
            continue
        src = tmp_path / f"g{n}.c"
        setp = "".join(f"{k} = {max(v)}; " for k, v in p.params.items())
        src.write_text(p.source + f"\nint main(void) {{ {setp}kernel(); return 0; }}\n")
        r = subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", "-fsanitize=address",
                            "-o", str(tmp_path / f"g{n}"), str(src)],
                           capture_output=True, text=True)
        if r.returncode != 0 and "sanitize" in r.stderr:
            r = subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", "-o",
                                str(tmp_path / f"g{n}"), str(src)],
                               capture_output=True, text=True)
        assert r.returncode == 0, r.stderr + "\n" + p.source
        r = subprocess.run([str(tmp_path / f"g{n}")], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr + "\n" + p.source


# --------------------------------------------------------------------------------------
# The property against the analyzer
# --------------------------------------------------------------------------------------

# Recall counts programs without a parameter only: with one, the oracle tries the parameter
# values -6..6 while the analyzer must be right for every int, so there the oracle's "truly
# parallel" is only an upper bound (counted apart, under "parametric_*").
STATS = {"examples": 0, "loops": 0, "truly_parallel": 0, "found_parallel": 0,
         "unsafe": 0,
         # the same, restricted to loops that run >= 2 iterations in some context
         "truly_parallel_multi": 0, "found_parallel_multi": 0,
         "parametric_examples": 0, "parametric_loops": 0,
         "parametric_truly_parallel": 0, "parametric_found_parallel": 0}
SEEN: set[str] = set()
MISSED: list = []               # (runs <= 1 iteration, text) of truly-parallel loops not found
REPORTED: dict = {}


def _analyzer():
    try:
        from offloader.analysis import analyze_program
    except ImportError as exc:  # the analyzer is being written
        pytest.skip(f"offloader.analysis.analyze_program not importable yet: {exc}")
    from offloader.buildopts import BuildOptions
    return analyze_program, BuildOptions


def _eval_c(expr: str, env: dict[str, int]) -> int | None:
    """Value of a simple integer C expression (the analyzer's trip start/end), or None."""
    if not re.fullmatch(r"[\sA-Za-z_0-9+\-*()]*", expr):
        return None
    try:
        return int(eval(expr, {"__builtins__": {}}, dict(env)))
    except Exception:
        return None


def _trip_values(trip: dict, env: dict[str, int]) -> list[int] | None:
    s, e = _eval_c(str(trip["start"]), env), _eval_c(str(trip["end"]), env)
    step = int(trip["step"])
    if s is None or e is None or step == 0:
        return None
    incl = bool(trip.get("end_inclusive"))
    out, v = [], s
    while (v < e or (incl and v == e)) if step > 0 else (v > e or (incl and v == e)):
        out.append(v)
        v += step
        if len(out) > 10_000:
            break
    return out


def check_program(prog: Program, tmp_dir: Path) -> list[str]:
    """Run the analyzer on `prog`; return the list of safety/contract violations."""
    analyze_program, BuildOptions = _analyzer()
    path = tmp_dir / "prog.c"
    path.write_text(prog.source)
    result = analyze_program(BuildOptions(sources=(str(path),)))
    doc = result.to_json()
    truths = oracle(prog)
    by_line = {}
    for entry in doc["loops"]:
        by_line.setdefault(entry["line"], []).append(entry)
    problems: list[str] = []
    new = prog.source not in SEEN
    SEEN.add(prog.source)
    pre = "parametric_" if prog.params else ""
    if new:
        STATS[pre + "examples"] += 1
    for loop in prog.loops:
        entries = by_line.get(loop.line, [])
        truth = truths[loop.id]
        multi = max((len(v) for v in truth.contexts.values()), default=0) >= 2
        if new:
            STATS[pre + "loops"] += 1
            STATS[pre + "truly_parallel"] += truth.verdict == "parallel"
            if not pre:
                STATS["truly_parallel_multi"] += truth.verdict == "parallel" and multi
        if len(entries) != 1:
            problems.append(f"loop at line {loop.line}: {len(entries)} analyzer entries")
            continue
        a = entries[0]
        if a.get("var") != loop.var or a.get("depth") != loop.depth:
            problems.append(f"loop at line {loop.line}: var/depth {a.get('var')}/{a.get('depth')}"
                            f" != {loop.var}/{loop.depth}")
        parent_line = prog.loops[loop.parent].line if loop.parent is not None else None
        if loop.parent is None:
            if a.get("parent") is not None:
                problems.append(f"loop at line {loop.line}: parent should be null")
        else:
            pe = [e for e in doc["loops"] if e["id"] == a.get("parent")]
            if not pe or pe[0]["line"] != parent_line:
                problems.append(f"loop at line {loop.line}: parent id {a.get('parent')} is not the"
                                f" loop at line {parent_line}")
        if a["verdict"] != "parallel":
            if new and truth.verdict == "parallel" and not pre and len(MISSED) < 40:
                MISSED.append((not multi, f"line {loop.line} ({a['verdict']}: "
                                          f"{a.get('reasons')}):\n{prog.source}"))
            continue
        if new:
            STATS[pre + "found_parallel"] += truth.verdict == "parallel"
            if not pre:
                STATS["found_parallel_multi"] += truth.verdict == "parallel" and multi
        red_vars = {r["var"]: r.get("op") for r in a.get("reductions", [])}
        private = set(a.get("private", [])) | set(a.get("lastprivate", []))
        if truth.verdict == "carried":
            problems.append(f"UNSAFE: loop at line {loop.line} ({loop.var}) is parallel but carries"
                            f" a dependence: location {truth.witness[0]} with enclosing values "
                            f"{truth.witness[1]} touched at {loop.var}={truth.witness[2]} and "
                            f"{loop.var}={truth.witness[3]}")
        elif truth.verdict == "array-reduction":
            missing = {x for x in truth.red_arrays if red_vars.get(x) != "+"}
            if missing:
                problems.append(f"UNSAFE: loop at line {loop.line} is parallel but accumulates into"
                                f" {sorted(missing)} across iterations without a reduction")
        for x in truth.reductions:
            if red_vars.get(x) != "+":
                problems.append(f"UNSAFE: loop at line {loop.line} is parallel but scalar {x!r} "
                                f"(s += ...) is not reported as a '+' reduction: {red_vars}")
        for x in truth.private:
            if x not in private:
                problems.append(f"UNSAFE: loop at line {loop.line} is parallel but temporary {x!r}"
                                f" is not listed as private: {sorted(private)}")
        for inner in walk(loop.body):
            if isinstance(inner, Loop) and inner.var in prog.top_vars and inner.var not in private:
                problems.append(f"UNSAFE: loop at line {loop.line} is parallel but inner loop "
                                f"variable {inner.var!r} (declared at function top) is not "
                                f"private: {sorted(private)}")
        trip = a.get("trip")
        if not trip:
            problems.append(f"loop at line {loop.line} is parallel but has no trip")
            continue
        for ctx, values in truth.contexts.items():
            env = dict(ctx)
            got = _trip_values(trip, env)
            if got is not None and got != values:
                problems.append(f"loop at line {loop.line}: trip {trip} runs {got} for {env}, "
                                f"the loop runs {values}")
                break
    if any(p.startswith("UNSAFE") for p in problems) and new:
        STATS["unsafe"] += 1
    return problems


@settings(max_examples=250, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(prog=programs())
def test_analyzer_agrees_with_oracle(prog, tmp_path):
    problems = check_program(prog, tmp_path)
    assert not problems, "\n".join(problems) + "\n--- program ---\n" + prog.source


def test_recall_reported():
    """Runs after the property: report recall and require >= 0.9."""
    _analyzer()
    n_examples = STATS["examples"] + STATS["parametric_examples"]
    if n_examples == 0:
        pytest.skip("test_analyzer_agrees_with_oracle did not run in this session")
    truly = STATS["truly_parallel"]
    found = STATS["found_parallel"]
    recall = found / truly if truly else 1.0
    p_truly, p_found = STATS["parametric_truly_parallel"], STATS["parametric_found_parallel"]
    report = {
        "examples": n_examples,
        "loops": STATS["loops"] + STATS["parametric_loops"],
        "truly_parallel": truly,
        "found_parallel": found,
        "recall": round(recall, 4),
        "unsafe": STATS["unsafe"],
        "recall_over": f"the {STATS['examples']} programs with constant bounds "
                       f"({STATS['loops']} loops)",
        "truly_parallel_multi_iteration": STATS["truly_parallel_multi"],
        "found_parallel_multi_iteration": STATS["found_parallel_multi"],
        "parametric": {
            "examples": STATS["parametric_examples"],
            "loops": STATS["parametric_loops"],
            "truly_parallel_for_n_in_-6..6": p_truly,
            "found_parallel": p_found,
            "recall_lower_bound": round(p_found / p_truly, 4) if p_truly else None,
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    REPORTED.update(report)
    print(f"\noracle recall: {found}/{truly} = {recall:.3f} over {STATS['examples']} programs"
          f" with constant bounds ({STATS['loops']} loops); with a parameter n: {p_found}/"
          f"{p_truly} over {STATS['parametric_examples']} programs; unsafe {STATS['unsafe']}"
          f"  -> {RESULTS}")
    assert STATS["unsafe"] == 0
    assert recall >= RECALL_THRESHOLD, (
        f"recall {recall:.3f} < {RECALL_THRESHOLD}; some truly parallel loops not found:\n\n"
        + "\n\n".join(text for _, text in sorted(MISSED, key=lambda m: m[0])[:6]))

"""Dynamic cross-check of `parallel` verdicts on the real sample programs.

For every loop the analyzer calls `parallel` in samples/*.c, a copy of the program is made in
which that one loop runs its iterations in reverse order (rewriting the loop header from the
loop's `trip`); the original and the reversed program are compiled with gcc and run, and their
outputs must agree: exactly when the loop has no reductions, up to floating-point reassociation
(relative 1e-6, absolute 1e-9 per numeric token) when it has.  A loop that carries a dependence
almost always changes the output when its iterations are reversed, so a wrong `parallel`
verdict shows up here as a difference.

The rewriter itself is tested without the analyzer: it really reverses the iterations of
headers of every shape (declared or not, <, <=, >, >=, steps of +-1/+-2, empty loops,
unsigned counters), and reversing a prefix sum does change the program's output, which proves
the cross-check can detect a wrong verdict.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SAMPLE_FILES = sorted(SAMPLES.glob("*.c"))
CC = shutil.which("gcc") or shutil.which("cc")
CFLAGS = ["-O1", "-std=c99", "-w"]
RUN_TIMEOUT = 20

pytestmark = pytest.mark.skipif(CC is None, reason="needs gcc")


# --------------------------------------------------------------------------------------
# The rewriter
# --------------------------------------------------------------------------------------


class RewriteError(Exception):
    pass


class MacroLoop(RewriteError):
    """The loop comes from a macro expansion: its position names the macro, not a `for`."""


def _offset(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        raise RewriteError(f"line {line} is outside the file ({len(lines)} lines)")
    return sum(len(l) + 1 for l in lines[: line - 1]) + column - 1


def _skip_literal(text: str, i: int) -> int:
    """Index just past the string/char literal or comment starting at i (or i if none)."""
    c = text[i]
    if c in "\"'":
        j = i + 1
        while j < len(text) and text[j] != c:
            j += 2 if text[j] == "\\" else 1
        return j + 1
    if text.startswith("//", i):
        j = text.find("\n", i)
        return len(text) if j < 0 else j
    if text.startswith("/*", i):
        j = text.find("*/", i + 2)
        if j < 0:
            raise RewriteError("unterminated comment")
        return j + 2
    return i


def _match(text: str, i: int, open_: str, close: str) -> int:
    """Index of the bracket closing the one at text[i]."""
    assert text[i] == open_
    depth = 0
    while i < len(text):
        j = _skip_literal(text, i)
        if j != i:
            i = j
            continue
        if text[i] == open_:
            depth += 1
        elif text[i] == close:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise RewriteError(f"no matching {close!r}")


def _split_top(text: str, sep: str) -> list[str]:
    parts, depth, cur, i = [], 0, [], 0
    while i < len(text):
        j = _skip_literal(text, i)
        if j != i:
            cur.append(text[i:j])
            i = j
            continue
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _skip_ws(text: str, i: int) -> int:
    while i < len(text):
        j = _skip_literal(text, i) if text[i] == "/" else i
        if j != i:
            i = j
        elif text[i].isspace():
            i += 1
        else:
            break
    return i


def _statement_end(text: str, i: int) -> int | None:
    """Index just past the statement starting at text[i], or None if too hard to tell."""
    i = _skip_ws(text, i)
    if text[i] == "{":
        return _match(text, i, "{", "}") + 1
    if text[i] == ";":
        return i + 1
    m = re.match(r"(for|while|if|do|switch)\b", text[i:])
    if m:
        kw = m.group(1)
        if kw == "do":
            end = _statement_end(text, i + 2)
            if end is None:
                return None
            p = _skip_ws(text, end)
            if not re.match(r"while\b", text[p:]):
                return None
            p = _skip_ws(text, p + 5)
            if text[p] != "(":
                return None
            p = _skip_ws(text, _match(text, p, "(", ")") + 1)
            return p + 1 if text[p] == ";" else None
        p = _skip_ws(text, i + len(kw))
        if text[p] != "(":
            return None
        end = _statement_end(text, _match(text, p, "(", ")") + 1)
        if kw == "if" and end is not None:
            q = _skip_ws(text, end)
            if re.match(r"else\b", text[q:]):
                return _statement_end(text, q + 4)
        return end
    depth = 0
    while i < len(text):
        j = _skip_literal(text, i)
        if j != i:
            i = j
            continue
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == ";" and depth == 0:
            return i + 1
        i += 1
    return None


def reverse_loop(text: str, line: int, column: int, var: str, trip: dict,
                 keep_last: bool = False) -> str:
    """`text` with the `for` loop at (line, column) running the same iterations backwards.

    With `keep_last`, the sequentially last iteration still runs last (order: n-2, ..., 1,
    0, n-1), so that variables the analyzer calls lastprivate get their sequential values.
    """
    at = _offset(text, line, column)
    if not re.match(r"for\b", text[at:]):
        name = re.match(r"[A-Za-z_]\w*", text[at:])
        if name and re.search(r"^\s*#\s*define\s+" + name.group() + r"\b", text, re.M):
            raise MacroLoop(f"the loop at {line}:{column} comes from the macro {name.group()}")
        raise RewriteError(f"no `for` at {line}:{column}: {text[at:at + 30]!r}")
    p = _skip_ws(text, at + 3)
    if p >= len(text) or text[p] != "(":
        raise RewriteError(f"no `(` after the `for` at {line}:{column}")
    close = _match(text, p, "(", ")")
    header = text[p + 1:close]
    parts = _split_top(header, ";")
    if len(parts) != 3:
        raise RewriteError(f"cannot split the header {header!r}")
    init = parts[0].strip()
    m = re.match(r"^(?P<type>.*?)\b" + re.escape(var) + r"\s*=(?!=)", init, re.S)
    if not m:
        raise RewriteError(f"init clause {init!r} does not assign {var!r}")
    typ = m.group("type").strip()
    if len(_split_top(init, ",")) != 1:
        raise RewriteError(f"init clause {init!r} declares or assigns more than one variable")
    if typ and not re.fullmatch(r"[A-Za-z_][\w\s]*", typ):
        raise RewriteError(f"unexpected text {typ!r} before {var!r} in {init!r}")

    step = int(trip["step"])
    if step == 0:
        raise RewriteError("step 0")
    a = abs(step)
    S = f"((long long)({trip['start']}))"
    E = f"((long long)({trip['end']}))"
    incl = bool(trip.get("end_inclusive"))
    span = f"({E} - {S})" if step > 0 else f"({S} - {E})"
    count = f"(({span} + {a if incl else a - 1}) / {a})"
    last = f"({S} + ({count} - 1) * {step})"
    lo, hi = (S, last) if step > 0 else (last, S)
    v = f"((long long)({var}))"
    new_init = f"{typ + ' ' if typ else ''}{var} = {last}"
    new_cond = f"{count} > 0 && {v} >= {lo} && {v} <= {hi}"
    new_incr = f"{var} -= {step}" if step > 0 else f"{var} += {a}"
    if keep_last:
        # Start one before the last value (or at it, for a single iteration); after the
        # first value come back to the last one, and after that step out of the range.
        new_init = (f"{typ + ' ' if typ else ''}{var} = {count} >= 2 ? {last} - {step} "
                    f": {last}")
        new_incr = (f"{var} = {v} == {last} ? {last} + {step} "
                    f": ({v} == {S} ? {last} : {v} - {step})")
    new = text[:p + 1] + f"{new_init}; {new_cond}; {new_incr}" + text[close:]
    if typ:
        return new
    # The variable outlives the loop: give it the value the original loop leaves in it.
    body_at = p + 1 + len(f"{new_init}; {new_cond}; {new_incr}") + 1
    end = _statement_end(new, body_at)
    if end is None:
        raise RewriteError("cannot find the end of the loop body to restore the variable")
    final = f"{var} = {S} + ({count} > 0 ? {count} : 0) * {step};"
    return new[:at] + "{ " + new[at:end] + " " + final + " }" + new[end:]


# --------------------------------------------------------------------------------------
# Compile, run, compare
# --------------------------------------------------------------------------------------


def build_and_run(src: Path, extra: list[str] = ()) -> subprocess.CompletedProcess:
    exe = src.with_suffix("")
    cp = subprocess.run([CC, *CFLAGS, *extra, "-o", str(exe), str(src), "-lm"],
                        capture_output=True, text=True)
    if cp.returncode != 0:
        raise RuntimeError(f"gcc failed on {src}:\n{cp.stderr[-3000:]}")
    return subprocess.run([str(exe)], capture_output=True, text=True, timeout=RUN_TIMEOUT,
                          cwd=src.parent)


_NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf|nan)\b", re.I)


def _tokens(out: str) -> list[str]:
    toks: list[str] = []
    for word in out.split():
        pos = 0
        for m in _NUM.finditer(word):
            if m.start() > pos:
                toks.append(word[pos:m.start()])
            toks.append(m.group())
            pos = m.end()
        if pos < len(word):
            toks.append(word[pos:])
    return toks


def outputs_match(a: str, b: str, tolerant: bool) -> tuple[bool, str]:
    if not tolerant:
        if a == b:
            return True, ""
        la, lb = a.splitlines(), b.splitlines()
        for n, (x, y) in enumerate(zip(la, lb)):
            if x != y:
                return False, f"line {n + 1}: {x!r} != {y!r}"
        return False, f"{len(la)} lines != {len(lb)} lines"
    ta, tb = _tokens(a), _tokens(b)
    if len(ta) != len(tb):
        return False, f"{len(ta)} tokens != {len(tb)} tokens"
    for x, y in zip(ta, tb):
        if x == y:
            continue
        if _NUM.fullmatch(x) and _NUM.fullmatch(y):
            fx, fy = float(x), float(y)
            if math.isnan(fx) and math.isnan(fy):
                continue
            if math.isclose(fx, fy, rel_tol=1e-6, abs_tol=1e-9):
                continue
        return False, f"token {x!r} != {y!r}"
    return True, ""


# --------------------------------------------------------------------------------------
# Tests of the rewriter (no analyzer needed)
# --------------------------------------------------------------------------------------

HEADER_CASES = [
    # (header, var, trip, declaration outside the loop)
    ("for (int i = 0; i < 10; i++)", "i", dict(start="0", end="10", step=1), ""),
    ("for (int i = 2; i < 11; i += 3)", "i", dict(start="2", end="11", step=3), ""),
    ("for (int i = 2; i <= 11; i += 3)", "i", dict(start="2", end="11", end_inclusive=True, step=3), ""),
    ("for (int i = 3; i <= 12; i += 3)", "i", dict(start="3", end="12", end_inclusive=True, step=3), ""),
    ("for (i = 0; i < n; ++i)", "i", dict(start="0", end="n", step=1), "int i;"),
    ("for (i = 5; i < n; i++)", "i", dict(start="5", end="n", step=1), "int i;"),      # empty
    ("for (int i = 5; i <= 4; i++)", "i", dict(start="5", end="4", end_inclusive=True, step=1), ""),
    ("for (int i = 9; i >= 0; i--)", "i", dict(start="9", end="0", end_inclusive=True, step=-1), ""),
    ("for (int i = n - 1; i > 0; i -= 2)", "i", dict(start="n - 1", end="0", step=-2), ""),
    ("for (int i = 1; i > 3; i--)", "i", dict(start="1", end="3", step=-1), ""),         # empty
    ("for (unsigned u = 0; u < (unsigned)n; u++)", "u", dict(start="0", end="(unsigned)n", step=1), ""),
    ("for (size_t u = 0; u < (size_t)n; u += 2)", "u", dict(start="0", end="(size_t)n", step=2), ""),
    ("for (unsigned u = 0; u < 0u; u++)", "u", dict(start="0", end="0u", step=1), ""),     # empty
    ("for (long k = -4; k < f(n, 3); k++)", "k", dict(start="-4", end="f(n, 3)", step=1), ""),
    ("for (i = 0; i < n; i++)  /* (tricky ) */", "i", dict(start="0", end="n", step=1), "int i;"),
]


@pytest.mark.parametrize("keep_last", [False, True], ids=["reverse", "keep-last"])
@pytest.mark.parametrize("header,var,trip,decl", HEADER_CASES,
                         ids=[c[0] for c in HEADER_CASES])
def test_rewriter_reverses_iterations(tmp_path, header, var, trip, decl, keep_last):
    """The reversed loop visits exactly the original values in reverse (with `keep_last`:
    in reverse except that the last one stays last), and leaves a variable declared outside
    the loop with the value the original loop leaves in it."""
    final = f'printf("final %ld\\n", (long){var});' if decl else ""
    prog = f"""#include <stdio.h>
#include <stddef.h>
static int f(int a, int b) {{ return a + b; }}
int main(void)
{{
    int n = 10;
    {decl}
    {header}
        printf("%ld\\n", (long)({var}));
    {final}
    return 0;
}}
"""
    (tmp_path / "a.c").write_text(prog)
    line = prog.splitlines().index(next(l for l in prog.splitlines() if "for (" in l)) + 1
    col = prog.splitlines()[line - 1].index("for (") + 1
    rev = reverse_loop(prog, line, col, var, trip, keep_last)
    assert rev != prog
    (tmp_path / "b.c").write_text(rev)
    out_a = build_and_run(tmp_path / "a.c").stdout.splitlines()
    out_b = build_and_run(tmp_path / "b.c").stdout.splitlines()
    vals_a = [l for l in out_a if not l.startswith("final")]
    vals_b = [l for l in out_b if not l.startswith("final")]
    want = vals_a[::-1] if not keep_last or not vals_a else vals_a[-2::-1] + vals_a[-1:]
    assert vals_b == want, (rev, out_a, out_b)
    assert [l for l in out_a if l.startswith("final")] == \
        [l for l in out_b if l.startswith("final")], rev


@pytest.mark.parametrize("stmt", [
    "x = f(a, ';');",
    "{ x = 1; { y = 2; } }",
    "if (a > 0) { x = 1; }",
    "if (a > 0) x = 1; else if (b) y = 2; else { z = 3; }",
    "for (j = 0; j < 3; j++) if (j) x += j;",
    "while (k--) x++;",
    "do { x++; } while (x < 3);",
    "/* ; */ x = g(\"; }\");",
])
def test_statement_end(stmt):
    text = stmt + " AFTER;"
    end = _statement_end(text, 0)
    assert end is not None and text[end:].strip() == "AFTER;", text[end or 0:]


def test_macro_loops_are_recognised():
    text = "#define LOOP for (int q = 0; q < 4; q++) a[q] = 0\nvoid f(void) {\n    LOOP;\n}\n"
    with pytest.raises(MacroLoop):
        reverse_loop(text, 3, 5, "q", dict(start="0", end="4", step=1))
    with pytest.raises(RewriteError):
        reverse_loop(text, 2, 1, "q", dict(start="0", end="4", step=1))


def test_rewriter_restores_an_outer_variable_after_an_if_body(tmp_path):
    prog = """#include <stdio.h>
int main(void)
{
    int i, first = -1, n = 9;
    double b[9] = {1, 4, 2, 8, 5, 7, 3, 6, 0};
    for (i = 0; i < n; i++)
        if (b[i] > 4.5) {
            first = i;
        } else
            b[i] = -b[i];
    printf("%d %d\\n", first, i);
    return 0;
}
"""
    (tmp_path / "a.c").write_text(prog)
    line, col = _find_for(prog, "for (i")
    rev = reverse_loop(prog, line, col, "i", dict(start="0", end="n", step=1))
    (tmp_path / "b.c").write_text(rev)
    # The loop is sequential (`first` keeps the last match): reversing it changes `first`,
    # and the variable i must still end at n.
    assert build_and_run(tmp_path / "a.c").stdout == "7 9\n"
    assert build_and_run(tmp_path / "b.c").stdout == "3 9\n"


PREFIX_PROGRAM = """#include <stdio.h>
#define N 16
double a[N], b[N], s[N];
int main(void)
{
    for (int i = 0; i < N; i++)
        a[i] = 0.5 * i + 1;
    for (int i = 0; i < N; i++) {   /* PAR */
        b[i] = 2.0 * a[i];
    }
    s[0] = a[0];
    for (int i = 1; i < N; i++) {   /* SEQ */
        s[i] = s[i-1] + a[i];
    }
    for (int i = 0; i < N; i++)
        printf("%g %g\\n", b[i], s[i]);
    return 0;
}
"""


def _find_for(text: str, needle: str) -> tuple[int, int]:
    for n, l in enumerate(text.splitlines(), 1):
        if needle in l:
            return n, l.index("for") + 1
    raise AssertionError(needle)


def test_crosscheck_detects_a_wrong_verdict(tmp_path):
    """Meta-test: reversing a parallel loop changes the text but not the output; reversing
    the prefix sum (a deliberately sequential loop) changes the output."""
    orig = tmp_path / "orig.c"
    orig.write_text(PREFIX_PROGRAM)
    base = build_and_run(orig)
    assert base.returncode == 0

    line, col = _find_for(PREFIX_PROGRAM, "/* PAR */")
    par = reverse_loop(PREFIX_PROGRAM, line, col, "i", dict(start="0", end="N", step=1))
    assert par != PREFIX_PROGRAM
    (tmp_path / "par.c").write_text(par)
    ok, why = outputs_match(base.stdout, build_and_run(tmp_path / "par.c").stdout, False)
    assert ok, why

    line, col = _find_for(PREFIX_PROGRAM, "/* SEQ */")
    seq = reverse_loop(PREFIX_PROGRAM, line, col, "i", dict(start="1", end="N", step=1))
    (tmp_path / "seq.c").write_text(seq)
    ok, why = outputs_match(base.stdout, build_and_run(tmp_path / "seq.c").stdout, True)
    assert not ok, "reversing a prefix sum did not change the output: the cross-check is blind"


def test_keep_last_preserves_a_lastprivate_value(tmp_path):
    """A temporary that is live after the loop (lastprivate) ends with the value of the last
    iteration: plain reversal changes it, the keep-last order does not."""
    prog = """#include <stdio.h>
double a[10], b[10];
int main(void)
{
    double t = 0.0;
    for (int i = 0; i < 10; i++)
        a[i] = i * i;
    for (int i = 0; i < 10; i++) {   /* LP */
        t = a[i] + 1.0;
        b[i] = 2.0 * t;
    }
    printf("%g %g %g\\n", t, b[0], b[9]);
    return 0;
}
"""
    (tmp_path / "a.c").write_text(prog)
    base = build_and_run(tmp_path / "a.c").stdout
    line, col = _find_for(prog, "/* LP */")
    trip = dict(start="0", end="10", step=1)
    (tmp_path / "rev.c").write_text(reverse_loop(prog, line, col, "i", trip))
    (tmp_path / "last.c").write_text(reverse_loop(prog, line, col, "i", trip, keep_last=True))
    assert build_and_run(tmp_path / "rev.c").stdout != base
    assert build_and_run(tmp_path / "last.c").stdout == base


def test_output_comparison():
    assert outputs_match("sum = 1.0000001\n", "sum = 1.0000002\n", True)[0]
    assert not outputs_match("sum = 1.0000001\n", "sum = 1.0000002\n", False)[0]
    assert not outputs_match("sum = 1.001\n", "sum = 1.002\n", True)[0]
    assert not outputs_match("x=1 y=2\n", "x=1 z=2\n", True)[0]
    assert outputs_match("a: 3.5e-12, 7\n", "a: 3.6e-12, 7\n", True)[0]     # absolute 1e-9
    assert not outputs_match("1 2 3\n", "1 2\n", True)[0]


# --------------------------------------------------------------------------------------
# The cross-check on the samples
# --------------------------------------------------------------------------------------


def _analyze(path: Path) -> dict:
    try:
        from offloader.analysis import analyze_program
    except ImportError as exc:
        pytest.skip(f"offloader.analysis.analyze_program not importable yet: {exc}")
    from offloader.buildopts import BuildOptions
    return analyze_program(BuildOptions(sources=(str(path),))).to_json()


@pytest.mark.skipif(not SAMPLE_FILES, reason="no samples/*.c yet")
@pytest.mark.parametrize("sample", SAMPLE_FILES, ids=[p.name for p in SAMPLE_FILES])
def test_reversing_parallel_loops_keeps_output(sample, tmp_path):
    if not sample.exists():
        pytest.skip(f"{sample} does not exist yet")
    text = sample.read_text()
    if not re.search(r"\bmain\s*\(", text):
        pytest.skip(f"{sample.name} has no main(): nothing to run")
    doc = _analyze(sample)
    loops = [l for l in doc["loops"] if l["verdict"] == "parallel"
             and Path(l.get("file", sample.name)).name == sample.name]
    if not loops:
        pytest.skip(f"the analyzer finds no parallel loop in {sample.name}")

    orig = tmp_path / sample.name
    orig.write_text(text)
    base = build_and_run(orig)
    again = subprocess.run([str(orig.with_suffix(""))], capture_output=True, text=True,
                           timeout=RUN_TIMEOUT, cwd=tmp_path)
    if base.stdout != again.stdout or base.returncode != again.returncode:
        pytest.skip(f"{sample.name} is not deterministic: two runs print different output")

    failures, macro_loops = [], []
    for loop in loops:
        where = f"{sample.name}:{loop['line']}:{loop['column']} (loop {loop['id']}, {loop['var']})"
        trip = loop.get("trip")
        if not trip:
            failures.append(f"{where}: parallel without a trip")
            continue
        try:
            rev = reverse_loop(text, loop["line"], loop["column"], loop["var"], trip,
                               keep_last=bool(loop.get("lastprivate")))
        except MacroLoop as exc:
            macro_loops.append(str(exc))          # nothing to rewrite in the original text
            continue
        except RewriteError as exc:
            failures.append(f"{where}: cannot rewrite: {exc}")
            continue
        assert rev != text
        src = tmp_path / f"rev{loop['id']}_{sample.name}"
        src.write_text(rev)
        try:
            out = build_and_run(src)
        except RuntimeError as exc:
            failures.append(f"{where}: the reversed program does not build (trip {trip}): {exc}")
            continue
        except subprocess.TimeoutExpired:
            failures.append(f"{where}: the reversed program runs past {RUN_TIMEOUT} s (trip {trip})")
            continue
        if out.returncode != base.returncode:
            failures.append(f"{where}: exit status {out.returncode} != {base.returncode}")
            continue
        ok, why = outputs_match(base.stdout, out.stdout, tolerant=bool(loop.get("reductions")))
        if not ok:
            cond = loop.get("conditions")
            failures.append(f"{where}: reversing the loop changes the output ({why}); "
                            f"trip {trip}, reductions {loop.get('reductions')}, "
                            f"private {loop.get('private')}, lastprivate "
                            f"{loop.get('lastprivate')}"
                            + (f"; the verdict holds only under {cond}: if those do not hold"
                               f" in this run, the run-time check must catch it" if cond else ""))
    assert not failures, "\n".join(failures)
    if len(macro_loops) == len(loops):
        pytest.skip(f"every parallel loop of {sample.name} comes from a macro: {macro_loops}")

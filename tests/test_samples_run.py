"""Every sample compiles warning-free, runs, prints a checksum, and has hand-written verdicts for each for-loop."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sample_expectations import EXPECTED

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"
SAMPLES = sorted(SAMPLES_DIR.glob("*.c"))
NAMES = [p.name for p in SAMPLES]

# Comments, string literals and character literals, matched together so that a
# quote inside a comment (or "/*" inside a string) is handled correctly.
_STRIP_RE = re.compile(
    r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'',
    re.DOTALL,
)
_FOR_RE = re.compile(r"\bfor\b")


def _strip(src: str) -> str:
    """Blank out comments and literals, keeping newlines so line numbers stay valid."""
    def blank(m: re.Match) -> str:
        return re.sub(r"[^\n]", " ", m.group(0))
    return _STRIP_RE.sub(blank, src)


def _for_lines(path: Path) -> list[int]:
    code = _strip(path.read_text())
    return [code.count("\n", 0, m.start()) + 1 for m in _FOR_RE.finditer(code)]


def test_samples_exist():
    assert SAMPLES, f"no samples in {SAMPLES_DIR}"
    assert sorted(EXPECTED) == NAMES, "EXPECTED keys must match samples/*.c exactly"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not available")
@pytest.mark.parametrize("path", SAMPLES, ids=NAMES)
def test_sample_compiles_and_runs(path, tmp_path):
    exe = tmp_path / path.stem
    cc = subprocess.run(
        ["gcc", "-O2", "-std=c99", "-Wall", "-Werror", "-o", str(exe), str(path), "-lm"],
        capture_output=True, text=True, timeout=60,
    )
    assert cc.returncode == 0, f"compile failed:\n{cc.stderr}"
    assert cc.stderr.strip() == "", f"compiler output:\n{cc.stderr}"
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=10)
    assert run.returncode == 0, f"exit {run.returncode}:\n{run.stderr}"
    assert any("checksum" in line for line in run.stdout.splitlines()), run.stdout


@pytest.mark.parametrize("path", SAMPLES, ids=NAMES)
def test_expectations_cover_every_for(path):
    assert path.name in EXPECTED, f"{path.name} has no entry in EXPECTED"
    expects = EXPECTED[path.name]
    lines = path.read_text().splitlines()
    found = _for_lines(path)
    assert len(found) == len(expects), f"{len(found)} for-loops in file, {len(expects)} expectations"
    assert sorted(e.line for e in expects) == found
    code_lines = _strip(path.read_text()).splitlines()
    for e in expects:
        assert 1 <= e.line <= len(lines)
        assert _FOR_RE.search(code_lines[e.line - 1]), f"line {e.line} has no `for`: {lines[e.line - 1]!r}"
        m = re.search(r"\bfor\s*\(\s*(?:int\s+)?(\w+)\s*=", code_lines[e.line - 1])
        assert m and m.group(1) == e.var, f"line {e.line}: loop variable is not {e.var!r}"


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=sorted(EXPECTED))
def test_expectations_well_formed(name):
    for e in EXPECTED[name]:
        assert e.verdict in ("parallel", "sequential", "not-offloadable"), e
        for var, op in e.reductions:
            assert op in ("+", "*", "min", "max"), e
        if e.verdict != "parallel":
            assert not e.reductions and not e.conditions and not e.not_written, e
            assert e.reason_words, f"{name}:{e.line} non-parallel verdict needs reason_words"
        assert list(e.not_written) == sorted(e.not_written), e
        assert len(e.conditions) <= 1, e
        for cond in e.conditions:
            assert list(cond) == sorted(cond) and len(cond) >= 2, e
        assert e.why, e

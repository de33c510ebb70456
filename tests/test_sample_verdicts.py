"""Every loop of every sample gets exactly the verdict written down in sample_expectations.py;
every `sequential` verdict names its blocking accesses with a witness (two iterations)."""

from pathlib import Path

import pytest

from offloader.analysis import analyze_program
from offloader.buildopts import BuildOptions
from sample_expectations import EXPECTED

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@pytest.fixture(scope="module")
def analyses():
    cache = {}

    def get(name):
        if name not in cache:
            path = str(SAMPLES / name)
            cache[name] = {loop["line"]: loop for loop in
                           analyze_program(BuildOptions(sources=(path,))).to_json()["loops"]}
        return cache[name]
    return get


CASES = [(name, e) for name, loops in sorted(EXPECTED.items()) for e in loops]


@pytest.mark.parametrize("name,expect", CASES, ids=[f"{n}:{e.line}:{e.var}" for n, e in CASES])
def test_verdict(analyses, name, expect):
    loop = analyses(name).get(expect.line)
    assert loop is not None, f"no loop reported at {name}:{expect.line}"
    assert loop["var"] == expect.var
    assert loop["verdict"] == expect.verdict, loop["reasons"]
    assert {(r["var"], r["op"]) for r in loop["reductions"]} == set(expect.reductions)
    kinds = [c["kind"] for c in loop["conditions"]]
    assert set(kinds) <= {"no-alias", "not-written"} and len(kinds) == len(set(kinds)), loop["conditions"]
    assert [tuple(c["vars"]) for c in loop["conditions"] if c["kind"] == "no-alias"] == \
        [tuple(sorted(c)) for c in expect.conditions]
    assert [tuple(c["vars"]) for c in loop["conditions"] if c["kind"] == "not-written"] == \
        ([tuple(expect.not_written)] if expect.not_written else [])
    assert set(expect.private) <= set(loop["private"]), loop["private"]
    reasons = " ".join(loop["reasons"])
    for word in expect.reason_words:
        assert word in reasons, reasons
    if expect.verdict != "parallel":
        assert loop["reasons"], "a loop that is not parallel must say why"
    if expect.verdict == "sequential":
        assert len(loop["dependences"]) == len(loop["reasons"]), (loop["reasons"], loop["dependences"])
        for reason, dependence in zip(loop["reasons"], loop["dependences"]):
            assert len(dependence["iterations"]) == 2, dependence
            assert dependence["source"] and dependence["sink"], dependence
            assert f"{expect.var}=" in reason, reason


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_loop_is_expected(analyses, name):
    assert sorted(analyses(name)) == sorted(e.line for e in EXPECTED[name])

"""profile.json has one writer per part: `offload tune` the times, `offload profile` the CPU
scaling. Rerunning tune keeps a scaling measured for the same program and build, drops one
measured for another, and the sizer says when it assumes the scaling instead of measuring it."""

import json
import textwrap

from sizing_support import invoke, write_profile

from offloader.buildopts import BuildOptions
from offloader.tune.command import TuneRequest, tune_program

# Large enough that offloading wins: the modeled time counts the runtime's host work per call.
PROGRAM = """
    #include <stdio.h>
    #ifndef N
    #define N 2000000
    #endif
    double a[N];
    int main(void) {
      for (int i = 0; i < N; i++) a[i] = i * 0.5;
      double s = 0;
      for (int i = 0; i < N; i++) s += a[i];
      printf("%.3f\\n", s);
      return 0;
    }"""


def tune(src, out, defines=()):
    said = []
    tune_program(TuneRequest(BuildOptions((str(src),), defines=tuple(defines)), budget=2, device="emu", out=out,
                             repeats=1), say=said.append)
    return json.loads((out / "profile.json").read_text()), said


def test_rerunning_tune_keeps_the_cpu_scaling_of_the_same_build_and_drops_another(tmp_path):
    src, out = tmp_path / "fill.c", tmp_path / "results"
    src.write_text(textwrap.dedent(PROGRAM))
    tune(src, out)
    profiled = invoke("profile", out, "--program", src, "--repeat", "1", "--cores", "1")
    assert profiled.exit_code == 0, profiled.stderr
    scaling = json.loads((out / "profile.json").read_text())["cpu_scaling"]

    again, said = tune(src, out)
    assert again["cpu_scaling"] == scaling and "kept the CPU scaling" in " ".join(said)
    assert again["cpu_scaling_fit"]["baseline"] == again["baseline"]["fingerprint"]

    other, said = tune(src, out, defines=("N=3000000",))
    assert "cpu_scaling" not in other and "cpu_scaling_fit" not in other
    assert "measured for another build" in " ".join(said)
    sized = invoke("size", out / "profile.json", "--json")
    assert sized.exit_code == 0, sized.stderr
    doc = json.loads(sized.stdout)
    assert doc["cpu_scaling"] == "assumed" and "assumed flat across vCPUs, not measured" in doc["notes"][0]


def test_the_sizer_does_not_use_a_scaling_measured_for_another_build(tmp_path):
    scaling = {"1": {"seconds": 10.0, "kind": "measured"}, "2": {"seconds": 5.0, "kind": "measured"}}
    stale = write_profile(tmp_path / "stale", baseline={"fingerprint": "aaaa", "build": "cc -O2 a.c"},
                          cpu_scaling=scaling, cpu_scaling_fit={"baseline": "bbbb"})
    doc = json.loads(invoke("size", stale, "--json").stdout)
    assert doc["cpu_scaling"] == "assumed" and "measured for another build" in doc["notes"][0]
    assert {c["cpu_kind"] for c in doc["candidates"]} == {"assumed"}
    fresh = write_profile(tmp_path / "fresh", baseline={"fingerprint": "aaaa", "build": "cc -O2 a.c"},
                          cpu_scaling=scaling, cpu_scaling_fit={"baseline": "aaaa"})
    doc = json.loads(invoke("size", fresh, "--json").stdout)
    assert doc["cpu_scaling"] == "measured" and "scaled by cpu_scaling measured on 1, 2 core(s)" in doc["notes"][0]

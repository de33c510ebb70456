"""`offload tune` at a real size (4M elements) counts the runtime's host-side work: the modeled
time of a pattern includes the dispatcher and fault-handler time measured in the run it comes
from, per region, and plan.json and profile.json report the same figures as that run."""

import json
from pathlib import Path

import pytest

from offloader.buildopts import BuildOptions
from offloader.tune.command import TuneRequest, tune_program

ROOT = Path(__file__).resolve().parent.parent
STENCIL = ROOT / "benchmarks" / "programs" / "stencil1d.c"


def test_the_modeled_time_includes_the_measured_host_overhead(tmp_path):
    tune_program(TuneRequest(BuildOptions(sources=(str(STENCIL),)), budget=2, device="emu", gpu_model="h200",
                             out=tmp_path, args_sets=[("4194304", "3")], repeats=1))
    plan = json.loads((tmp_path / "plan.json").read_text())
    profile = json.loads((tmp_path / "profile.json").read_text())
    assert plan["verified"] and plan["timing"] == "modeled" and plan["gpu_regions"], plan
    stored = [json.loads(p.read_text()) for p in (tmp_path / "measurements").glob("*.json")]
    baseline = next(m["reports"][0] for m in stored if "reports" in m)
    chosen = [m for m in stored if m.get("outcome", {}).get("seconds") == plan["offloaded_seconds"]]
    assert len(chosen) == 1
    report = {r["id"]: r for r in chosen[0]["report"]["regions"]}
    modeled = {r["region"]: r for r in chosen[0]["model"]["models"][0]["regions"]}
    expected = baseline["total_seconds"]
    for region in (r for r in plan["regions"] if r["device"] == "gpu"):
        ran = report[region["id"]]
        assert ran["device_runs"] == ran["calls"] > 0 and ran["verify_d2h_bytes"] == 0   # a production run
        assert region["host"]["host_seconds"] == ran["host_seconds"] > 0
        assert region["host"]["timing"] == "measured"
        assert region["launch"]["block"] and region["launch"]["grids"][0]["grid"]      # the launch shape is kept
        assert next(r for r in profile["regions"] if r["id"] == region["id"])["host_seconds"] == ran["host_seconds"]
        cpu = next(r["cpu_seconds"] for r in baseline["regions"] if r["id"] == region["id"])
        expected += modeled[region["id"]]["gpu_seconds"] + ran["host_seconds"] + ran["cpu_seconds"] - cpu
    assert plan["offloaded_seconds"] == pytest.approx(expected, rel=1e-9)
    assert profile["host_overhead_seconds"] == pytest.approx(
        sum(report[r["id"]]["host_seconds"] for r in plan["regions"] if r["device"] == "gpu"))

"""Every sample, built once as a host library with all regions wrapped and run through the
runner with every region on the CPU, prints exactly what the unmodified program prints; the
recording dispatcher sees each region as often as the program runs it, with the values and
array extents the runtime will need to move its data."""

import json
import math
import subprocess
from pathlib import Path

import pytest

from offloader.analysis import analyze_program
from offloader.buildopts import BuildOptions
from offloader.codegen.regions import find_regions
from offloader.hostprog.baseline import build_cpu_baseline
from offloader.hostprog.build import build_host_library
from offloader.hostprog.runner import runner_command, runner_env

SAMPLES = sorted((Path(__file__).resolve().parent.parent / "samples").glob("*.c"))

# How often each region (by the line of its `for`) runs, counted by hand from the samples.
CALLS = {
    "blur.c": {21: 8, 31: 8, 37: 8, 50: 1, 62: 1, 65: 1},
    "csr.c": {24: 25, 59: 1, 66: 25, 70: 25, 75: 1},
    "heat2d.c": {23: 1, 32: 50, 37: 50, 42: 1},
    "histogram.c": {20: 1, 24: 1, 32: 1, 38: 1},
    "jacobi3d.c": {32: 1, 42: 20, 55: 1},
    "linearised.c": {27: 10, 36: 1, 50: 1, 64: 1},
    "matmul.c": {17: 1, 24: 1, 32: 1, 41: 1},
    "nbody.c": {23: 1, 35: 10, 54: 10, 65: 1, 69: 1},
    "particles.c": {43: 20, 56: 40, 63: 1, 75: 1, 92: 1},
    "prefix_sum.c": {16: 1, 30: 1},
    "printf_loop.c": {16: 1, 26: 1, 32: 4},
    "reductions.c": {18: 1, 24: 1, 30: 1, 34: 1, 38: 1, 45: 1, 49: 1},
    "saxpy.c": {16: 3, 23: 1, 37: 1, 48: 1},
    "scratch.c": {20: 1, 38: 1, 42: 1, 49: 1},
    "swap_stencil.c": {28: 40},
}
FREED = {"blur.c": 2, "csr.c": 5, "jacobi3d.c": 2, "linearised.c": 2, "particles.c": 5, "saxpy.c": 2,
         "swap_stencil.c": 2}     # malloc'ed arrays regions use


def build(tmp_path, sources, **options):
    opts = BuildOptions(sources=tuple(map(str, sources)), cflags="-Wall -Werror", **options)
    result = analyze_program(opts)
    regions, _ = find_regions(result)
    host = build_host_library(result, regions, opts, str(tmp_path / "host"))
    return host, build_cpu_baseline(opts, str(tmp_path / "reference"))


def run(host, dispatcher, stats=None):
    return subprocess.run(runner_command(host.library, dispatcher=dispatcher, stats=stats),
                          capture_output=True, env=runner_env(), timeout=60)


@pytest.fixture(scope="module", params=SAMPLES, ids=[p.name for p in SAMPLES])
def sample(request, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp(request.param.stem)
    host, reference = build(tmp_path, [request.param])
    expected = subprocess.run([reference], capture_output=True, timeout=60)
    stats_path = tmp_path / "stats.json"
    done = run(host, "record", str(stats_path))
    return request.param.name, host, expected, done, json.loads(stats_path.read_text())


def by_line(host, stats):
    """{line of the region's `for`: its statistics}"""
    return {int(host.regions[int(k)].location.split(":")[1]): v for k, v in stats["regions"].items()}


def test_output_is_byte_identical_to_the_unmodified_program(sample):
    _, host, expected, done, _ = sample
    assert not host.skipped
    assert (done.returncode, done.stdout, done.stderr) == (expected.returncode, expected.stdout, expected.stderr)


def test_each_region_is_dispatched_as_often_as_it_runs(sample):
    name, host, _, _, stats = sample
    assert {int(r.location.split(":")[1]) for r in host.regions.values()} == set(CALLS[name])
    assert {line: s["calls"] for line, s in by_line(host, stats).items()} == CALLS[name]
    assert stats["unknown_regions"] == 0
    assert stats["watched_frees"] == FREED.get(name, 0)


def test_dispatch_slots_carry_readable_values_and_extents(sample):
    _, host, _, _, stats = sample
    for key, entry in stats["regions"].items():
        region = host.regions[int(key)]
        for seen in entry["samples"]:
            assert [s["name"] for s in seen] == [slot.name for slot in region.slots]
            for slot, value in zip(region.slots, seen):
                if slot.kind == "pointer":              # every sample's pointers are malloc'ed
                    assert value["allocation"]["offset"] == 0 and value["allocation"]["size"] > 0
                elif slot.kind == "array":
                    assert value["static_size"] > 0
                elif slot.role != "loopvar":            # a loop variable may be unset before its loop
                    assert isinstance(value["value"], (int, float)) and math.isfinite(value["value"])
        assert region.twin and not region.twin_error


def slot_values(host, stats, line, call=0):
    return {s["name"]: s for s in by_line(host, stats)[line]["samples"][call]}


def test_values_seen_in_particular_samples(sample):
    name, host, _, _, stats = sample
    if name == "saxpy.c":
        first = slot_values(host, stats, 16)
        assert (first["a"]["value"], first["n"]["value"]) == (0.5, 200000)
        assert first["x"]["allocation"]["size"] == first["y"]["allocation"]["size"] == 200000 * 4
        assert slot_values(host, stats, 23)["a"]["value"] == -0.25
        assert slot_values(host, stats, 48)["sum"]["value"] == 0.0
    elif name == "heat2d.c":
        values = slot_values(host, stats, 32)
        assert values["u"]["static_size"] == values["v"]["static_size"] == 128 * 128 * 8
        assert values["u"]["allocation"]["size"] == 128 * 128 * 8        # file-scope arrays are registered
        assert values["u"]["allocation"]["offset"] == 0 and values["alpha"]["value"] == 0.2
    elif name == "jacobi3d.c":
        first, second = slot_values(host, stats, 42, 0), slot_values(host, stats, 42, 1)
        assert first["a"]["allocation"]["size"] == 40 * 36 * 32 * 8
        assert first["a"]["allocation"]["base"] == second["b"]["allocation"]["base"]    # swapped
        assert first["b"]["allocation"]["base"] == second["a"]["allocation"]["base"]
        assert (first["c0"]["value"], first["c1"]["value"]) == (0.4, 0.1)
    elif name == "printf_loop.c":
        values = slot_values(host, stats, 16)
        assert values["a"]["static_size"] == 16 * 8 and values["a"]["allocation"] is None
        assert [slot_values(host, stats, 32, k)["i"]["value"] for k in range(4)] == [0, 1, 2, 3]
    elif name == "nbody.c":
        assert slot_values(host, stats, 23)["p"]["static_size"] == 256 * 7 * 8
        assert slot_values(host, stats, 69)["pot"]["value"] == 0.0
    elif name == "linearised.c":
        values = slot_values(host, stats, 27)
        assert (values["n"]["value"], values["m"]["value"]) == (200, 150)
        assert values["in"]["allocation"]["size"] == 200 * 150 * 8
    elif name == "reductions.c":
        assert slot_values(host, stats, 45)["mn"]["value"] == 1.0e300
        assert slot_values(host, stats, 49)["p"]["value"] == 1.0
    elif name == "histogram.c":
        values = slot_values(host, stats, 32)
        assert {k: v["static_size"] for k, v in values.items() if k != "i"} == {
            "bin": 100000 * 4, "hist": 61 * 4, "val": 100000 * 4}


@pytest.mark.parametrize("dispatcher", ["none", "cpu"])
def test_other_dispatchers_and_user_defines(dispatcher, tmp_path):
    saxpy = next(p for p in SAMPLES if p.name == "saxpy.c")
    host, reference = build(tmp_path, [saxpy], defines=("N=1000", "REPS=5"))
    expected = subprocess.run([reference], capture_output=True, timeout=60)
    done = run(host, dispatcher)
    assert (done.returncode, done.stdout) == (expected.returncode, expected.stdout)
    path = tmp_path / "stats.json"
    run(host, "record", str(path))
    stats = json.loads(path.read_text())
    assert by_line(host, stats)[16]["calls"] == 5
    assert slot_values(host, stats, 16)["x"]["allocation"]["size"] == 1000 * 4

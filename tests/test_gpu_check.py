"""The GPU check (scripts/gpu-check.sh), without a GPU: its dry run in the smoke mode end to end,
its time boxes, and its stop in the first seconds when a GPU library is missing."""

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpucheck import contract  # noqa: E402
from gpucheck.boxes import become_subreaper, run_boxed  # noqa: E402
from gpucheck.record import GPU_FIELDS, STEP_STATUSES  # noqa: E402
from gpucheck.sizes import GPU_SIZES  # noqa: E402

from offloader.tune.replay import load_recorded_runs, load_recordings  # noqa: E402

HEADER = ("schema", "kind", "mode", "started", "finished", "wall_seconds", "commit", "host", "gpu", "libraries",
          "library", "steps", "figures", "recordings", "runs")


def check(tmp_path, **env):
    """Run the check as the device tool would (the dry run needs no .gpu-vendor)."""
    out = tmp_path / "out"
    started = time.monotonic()
    done = subprocess.run(["bash", "scripts/gpu-check.sh"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GPU_CHECK_DRY": "1", "GPU_CHECK_PYTHON": sys.executable,
                               "GPU_CHECK_OUT": str(out),
                               "GPU_CHECK_WORK": str(tmp_path / "work"), **env})
    results = sorted(out.glob("*.json"))
    return done, (json.loads(results[0].read_text()) if results else None), sorted(out.iterdir()), \
        time.monotonic() - started


def test_the_dry_smoke_run_measures_every_step_it_can_and_writes_every_field(tmp_path):
    done, result, files, seconds = check(tmp_path, GPU_CHECK_SMOKE="1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert seconds < result["mode"]["seconds"] and result["wall_seconds"] < result["mode"]["seconds"]
    assert len(files) == 3 and {f.suffix for f in files} == {".json", ".log", ".gz"}
    assert set(HEADER) <= set(result) and result["kind"] == "emulated" and result["finished"]
    assert result["commit"]["sha"] and result["commit"]["source_sha256"]
    assert result["host"]["uname_r"] == os.uname().release
    gpu = result["gpu"]
    assert [gpu[k] for k in GPU_FIELDS] == [None] * len(GPU_FIELDS) and "dry run" in gpu["reason"]
    for library in ("cupy", "pycuda"):
        assert result["libraries"][library]["ok"] is None and "dry run" in result["libraries"][library]["reason"]
    assert result["library"]["used"] == "emulated"
    steps = result["steps"]
    assert {name: step["status"] for name, step in steps.items()} == {
        name: "ok" for name in ("preflight", "contract", "ceilings", "fault", "sample:saxpy", "launch", "compile")}
    assert all(step["seconds"] <= step["box_seconds"] for step in steps.values())
    assert {step["status"] for step in result["steps"].values()} <= set(STEP_STATUSES)
    # the contract ran on the emulator; the GPU cases skipped with pytest's reasons
    by_library = steps["contract"]["by_library"]
    assert by_library["emu"]["passed"] >= 4 and by_library["pycuda"]["passed"] == 0 and by_library["pycuda"]["skipped"]
    # copies through the device interface measured (emulated), CuPy's left null with the reason
    ceilings = steps["ceilings"]
    assert ceilings["timing"] == "emulated" and all(row["intact"] for row in ceilings["pageable"])
    assert ceilings["device_to_device"] is None and "dry run" in ceilings["cupy_reason"]
    (fault,) = steps["fault"]["sizes"]
    assert fault["verified"] and fault["copied_back_bytes_per_round"] == fault["bytes"] == 1 << 20
    assert fault["round_trip_seconds"] > 0 and fault["pages"] == 256
    # the sample: verified, each region's error, kernels launched directly at two grids, the model
    saxpy = steps["sample:saxpy"]
    assert saxpy["full_run"]["verified"] and saxpy["full_run"]["timing"] == "emulated"
    assert saxpy["full_run"]["fmad_false"] == {"verified": None, "reason": "verified: no rerun needed"}
    assert all(r["max_rel_error"] is not None for r in saxpy["full_run"]["regions"] if r["device_runs"])
    kernels = saxpy["kernels"]["regions"]
    assert kernels and all(k["grids"]["runtime"]["seconds_median"] > 0 for k in kernels)
    assert all(k["grids"]["runtime"]["gbps"] is None for k in kernels)             # no GPU rates when emulated
    wide = kernels[0]["grids"]["thread_per_iteration"]
    assert wide["grid"][0] * wide["block"][0] >= kernels[0]["values"]["n"] > kernels[0]["grids"]["runtime"]["grid"][0]
    assert saxpy["model"]["regions"] and saxpy["model"]["compared"] is None and "emulated" in saxpy["model"]["reason"]
    assert steps["launch"]["bookkeeping_seconds_per_call"] > 0
    compiled = {row["sample"]: row for row in steps["compile"]["samples"]}
    assert set(compiled) == set(GPU_SIZES) and all(row["built"] for row in compiled.values())
    assert compiled["saxpy"]["nvcc"]["ok"] in (True, None)
    # what replay reads: the recording and the run, at the top level
    assert {f["label"] for f in result["figures"]} == {"emulated"}
    (recording,) = load_recordings(files[0]).values()
    assert len(recording.outcomes) == 2 and not recording.complete
    (run,) = load_recorded_runs(files[0])
    assert run.recorded and run.name == "saxpy" and run.plans
    (bundle,) = [f for f in files if f.name.endswith(".logs.tar.gz")]
    with tarfile.open(bundle) as tar:
        logs = set(tar.getnames())
    assert {f"logs/{name.replace(':', '-')}.log" for name in steps} <= logs and "logs/contract.xml" in logs


def test_an_overrun_is_killed_with_its_process_group_and_costs_no_later_step(tmp_path):
    done, result, files, _ = check(tmp_path, GPU_CHECK_STEPS="fault,launch", GPU_CHECK_BOXES="fault=1",
                                   GPU_CHECK_SMOKE="1")
    assert done.returncode == 1, done.stdout + done.stderr
    steps = result["steps"]
    assert steps["fault"]["status"] == "overran" and "process group" in steps["fault"]["reason"]
    assert steps["launch"]["status"] == "ok"
    assert steps["sample:saxpy"] == {"status": "not_run", "reason": "not in GPU_CHECK_STEPS"}
    assert "gpu-check: fault: overran" in done.stdout
    assert _left_over(tmp_path / "work") == [], "processes of the killed step outlived it"


def _left_over(work):
    """Processes whose command line names the check's work folder."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(work).encode() in (proc / "cmdline").read_bytes():
                found.append(proc.name)
        except OSError:
            pass
    return found


def test_a_check_stopped_from_outside_kills_its_step_and_keeps_what_it_had(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "GPU_CHECK_DRY": "1", "GPU_CHECK_PYTHON": sys.executable, "GPU_CHECK_OUT": str(out),
           "GPU_CHECK_WORK": str(work), "GPU_CHECK_STEPS": "sample:saxpy"}
    check = subprocess.Popen(["bash", "scripts/gpu-check.sh"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    for _ in range(300):                      # until the sample's step has started
        if (work / "logs" / "sample-saxpy.log").exists():
            break
        time.sleep(0.1)
    time.sleep(1.0)
    check.terminate()
    stdout, _ = check.communicate(timeout=60)
    assert check.returncode == 1 and "stopped by SIGTERM during sample:saxpy" in stdout
    (path,) = out.glob("*.json")
    result = json.loads(path.read_text())
    assert result["steps"]["preflight"]["status"] == "ok"
    assert result["steps"]["sample:saxpy"]["status"] == "interrupted"
    time.sleep(0.5)
    assert _left_over(work) == []


def test_a_box_kills_the_grandchildren_too(tmp_path):
    become_subreaper()
    pid_file = tmp_path / "pid"
    boxed = run_boxed(["bash", "-c", f"sleep 300 & echo $! > {pid_file}; sleep 300"], 0.5, str(tmp_path / "log"))
    assert boxed.status == "overran" and boxed.returncode is None and boxed.seconds < 5
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
    left_behind = run_boxed(["bash", "-c", f"sleep 300 & echo $! > {pid_file}; exit 3"], 5, str(tmp_path / "log"))
    assert (left_behind.status, left_behind.returncode) == ("exited", 3)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def _imports(module):
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


@pytest.mark.skipif(_imports("cupy") and _imports("pycuda.driver"), reason="CuPy and pycuda import here")
def test_without_a_gpu_library_the_check_stops_in_seconds_with_one_clear_line(tmp_path):
    started = time.monotonic()
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "GPU_CHECK_OUT": str(tmp_path), "GPU_CHECK_DRY": "0"})
    assert done.returncode == 3 and time.monotonic() - started < 30
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("gpu-check: stopped: ")]
    assert "does not import" in line
    (path,) = tmp_path.glob("*.json")
    result = json.loads(path.read_text())
    assert list(result["steps"]) == ["preflight"] and result["steps"]["preflight"]["status"] == "failed"
    assert result["kind"] == "measured" and result["figures"] == []


def test_the_gpu_host_box_is_at_most_eight_minutes(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "GPU_CHECK_OUT": str(tmp_path), "GPU_CHECK_SECONDS": "900"})
    assert done.returncode == 2 and "over 480" in done.stderr and not list(tmp_path.iterdir())


def test_every_sample_has_gpu_sizes():
    assert set(GPU_SIZES) == {path.stem for path in (ROOT / "samples").glob("*.c")}


def test_the_library_that_passes_its_contract_is_chosen_and_a_failure_is_said():
    passed = {"passed": 20, "failed": 0, "skipped": 0, "failures": [], "skip_reasons": []}
    failed = {"passed": 18, "failed": 2, "skipped": 0, "failures": ["test_vector_add[pycuda]: wrong sum"],
              "skip_reasons": []}
    assert contract.choose({"pycuda": passed, "cupy": passed}, dry=False)[0] == "pycuda"
    library, why = contract.choose({"pycuda": failed, "cupy": passed}, dry=False)
    assert library == "cupy" and "pycuda failed 2" in why and "wrong sum" in why
    name = "test_launch_errors_are_typed[cupy-grid0-block0-ok-LaunchFailure.BAD_CONFIGURATION]"
    assert contract.library_of("tests.test_device_contract", name, False) == "cupy"
    assert contract.library_of("tests.test_device_cupy", "test_a_fault_is_a_typed_illegal_address", False) == "cupy"
    assert contract.library_of("tests.test_device_cupy", "test_a_fault_is_a_typed_illegal_address", True) == "emu"

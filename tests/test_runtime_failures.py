"""Failures are typed where they happen (contracts/run_report.py), the runner says out of band
how it ended, and the run report reads and writes as its contract says.

Real runs on the emulated device; broken kernels as in test_tune_failure_outcomes.
"""

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from offloader.buildopts import BuildOptions
from offloader.codegen.kernel import Variant
from offloader.contracts.run_report import (Failure, FailureCode, RegionReport, RunReport, RuntimeStats,
                                            read_stats)
from offloader.hostprog.status import read_status
from offloader.runtime.limits import MemoryLimit
from offloader.runtime.run import PreparedProgram, RunOptions, _run
from offloader.tune.candidates import OUTCOME_OF, failed_outcome
from offloader.tune.objective import FAILURES
from test_tune_failure_outcomes import CANCELLING, FILL, Edited, program


def report_all_on_the_gpu(tmp_path, prepared, **options):
    variants = {region.id: Variant() for region in prepared.regions}
    return prepared.run(RunOptions(device="emu", timeout=120, **options), variants, tag="all")


def test_a_wrong_output_that_mentions_timeout_is_typed_as_a_mismatch(tmp_path):
    src = program(tmp_path, CANCELLING % 'printf("timeout budget left: %.1f\\n", s);\n      return 0;')
    report = report_all_on_the_gpu(tmp_path, PreparedProgram(BuildOptions((str(src),)), str(tmp_path / "b")))
    codes = {f.code for f in report.typed_failures}
    assert FailureCode.OUTPUT_MISMATCH in codes and codes <= {FailureCode.REGION_MISMATCH, FailureCode.OUTPUT_MISMATCH}
    assert any("timeout" in f.message for f in report.typed_failures)


def test_a_user_program_that_exits_125_ended_as_a_program(tmp_path):
    src = program(tmp_path, CANCELLING % 'printf("sum %.1f\\n", s);\n      return s == 0.0 ? 0 : 125;')
    report = report_all_on_the_gpu(tmp_path, PreparedProgram(BuildOptions((str(src),)), str(tmp_path / "b")))
    assert (report.exit_status, report.cpu_exit_status) == (125, 0)
    assert report.failure.code is FailureCode.EXIT_STATUS
    assert FailureCode.RUNNER_ERROR not in {f.code for f in report.typed_failures}
    same = program(tmp_path, FILL.replace("return 0;", "return 125;"), "same.c")
    report = PreparedProgram(BuildOptions((str(same),)), str(tmp_path / "s")).run(RunOptions(device="emu"))
    assert report.verified, report.to_json()["failures"]
    assert (report.exit_status, report.cpu_exit_status) == (125, 125)


def test_broken_kernels_are_typed_where_they_fail(tmp_path):
    src = program(tmp_path, FILL)
    options = BuildOptions((str(src),))
    broken = Edited(options, str(tmp_path / "c"), lambda text: text + "\nthis is not CUDA;\n")
    report = report_all_on_the_gpu(tmp_path, broken)
    assert report.failure.code is FailureCode.COMPILE_ERROR and report.failure.detail == "compiler-error"
    past = Edited(options, str(tmp_path / "l"), lambda text: text.replace("a[i] = i * 0.5;", "a[i + 1] = i * 0.5;"))
    report = report_all_on_the_gpu(tmp_path, past)
    region = report.region(0)
    assert region.failure.code is FailureCode.LAUNCH_ERROR and region.failure.detail == "illegal-address"
    assert report.failure.region == 0 and report.failure.code is FailureCode.LAUNCH_ERROR


def test_a_compile_failure_is_compile_error_whatever_the_notes():
    """On a GPU the kernels compile in the child and only its status file says so; the notes
    (loops not offloaded, for people) may hold anything, or nothing."""
    compile_failure = Failure(FailureCode.COMPILE_ERROR, "the offloaded program was stopped: the generated "
                              "kernels did not compile: compiler-error: ...", detail="compiler-error")
    exit_status = Failure(FailureCode.NO_STATISTICS, "the offloaded program wrote no statistics: a timeout here")
    for notes in ((), ({"loop": "a.c:3:5", "reason": "calls printf"},),
                  ({"loop": "a.c:9:5", "reason": "a timeout in the loop condition"},)):
        report = RunReport(file="a.c", timing="measured", not_offloaded=notes,
                           typed_failures=(compile_failure, exit_status))
        assert failed_outcome(report).status == "compile_error"
        assert failed_outcome(RunReport.from_json(report.to_json())).status == "compile_error"


def test_the_child_says_out_of_band_that_the_kernels_did_not_compile(tmp_path):
    src = program(tmp_path, FILL)
    prepared = PreparedProgram(BuildOptions((str(src),)), str(tmp_path / "b"))
    module, plans = prepared.kernels()
    (tmp_path / "kernels.cu").write_text(module + "\nthis is not CUDA;\n")
    (tmp_path / "plans.json").write_text(json.dumps({str(k): p.to_json() for k, p in plans.items()}))
    status = tmp_path / "status.json"
    done = subprocess.run([sys.executable, "-m", "offloader.hostprog.runner", prepared.build.library,
                           "--dispatcher", "device", "--stats", str(tmp_path / "stats.json"), "--status", str(status),
                           "--plans", str(tmp_path / "plans.json"), "--kernels", str(tmp_path / "kernels.cu"),
                           "--device", "emu", "--"], capture_output=True, text=True, timeout=120)
    said = read_status(str(status))
    assert said.failure is FailureCode.COMPILE_ERROR and said.detail == "compiler-error", done.stderr
    assert "did not compile" in said.message and not (tmp_path / "stats.json").exists()


def test_a_runner_that_cannot_load_the_program_is_a_runner_error(tmp_path):
    src = program(tmp_path, FILL)
    prepared = PreparedProgram(BuildOptions((str(src),)), str(tmp_path / "b"))
    with open(prepared.build.library, "wb") as handle:
        handle.write(b"not a library")
    report = prepared.run(RunOptions(device="emu"))
    assert report.failure.code is FailureCode.RUNNER_ERROR and "cannot load" in report.failure.message
    status = tmp_path / "none.json"
    ended = _run([sys.executable, "-c", "import sys; sys.exit(125)"], 30, limit=1 << 30, status=str(status))
    assert ended.failure is FailureCode.RUNNER_ERROR and "did not start" in ended.message


def test_a_hang_is_a_timeout(tmp_path):
    src = program(tmp_path, "double a[64];\nint main(void) { for (int i = 0; i < 64; i++) a[i] = i; while (1) ; }\n")
    report = PreparedProgram(BuildOptions((str(src),)), str(tmp_path / "b")).run(RunOptions(device="emu", timeout=3))
    assert report.failure.code is FailureCode.REFERENCE_FAILED and report.failure.detail == "timeout"
    assert FailureCode.TIMEOUT in {f.code for f in report.typed_failures} and report.exit_status is None


@pytest.mark.parametrize("files, killed", [
    ({"memory.events": "low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\noom_group_kill 0\n"}, False),
    ({"memory.events": "low 0\nhigh 0\nmax 40\noom 2\noom_kill 1\noom_group_kill 0\n"}, True),
    ({"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"}, True),
    ({"memory.failcnt": "17\n"}, False),          # v1 touched the limit; nothing was killed
])
def test_out_of_memory_is_read_from_the_cgroups_own_counter(tmp_path, files, killed):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    limit = MemoryLimit(1 << 20)
    limit.directory = str(tmp_path)
    assert limit.hit() is killed


def test_every_failure_code_has_an_outcome():
    assert set(OUTCOME_OF) == set(FailureCode) and set(OUTCOME_OF.values()) <= set(FAILURES)


def test_reports_round_trip_keep_unknown_fields_and_accept_both_device_spellings(tmp_path):
    region = RegionReport(3, line=7, location="a.c:7:5", calls=2, device_runs=2, kernel_seconds=0.5,
                          failure=Failure(FailureCode.LAUNCH_ERROR, "boom", 3, "illegal-address"))
    report = RunReport(file="a.c", device="emulated (2 CPU threads)", device_kind="emu", regions=(region,),
                       typed_failures=(region.failure,), extra={"host_overhead": {"dispatcher_seconds": 1e-5}})
    data = report.to_json()
    assert data["failures"] == ["boom"] and data["mismatch"] == "boom" and data["verified"] is False
    assert RunReport.from_json(data) == report
    newer = {**data, "verification": "reassociated", "regions": [{**data["regions"][0], "grid": [4, 1, 1]}]}
    again = RunReport.from_json(newer)
    assert again.extra["verification"] == "reassociated" and again.regions[0].extra == {"grid": [4, 1, 1]}
    assert RunReport.from_json(again.to_json()).to_json() == again.to_json()
    for spelling in ("emu", "emulated"):
        assert RunReport.from_json({**data, "device_kind": spelling}).device_kind == "emu"
    assert RunReport.from_json({"file": "a.c"}).verified                     # every other field is optional
    assert not RunReport.from_json({"file": "a.c", "failures": ["said so"]}).verified
    with pytest.raises(ValueError, match="newer"):
        RunReport.from_json({**data, "schema": 99})


def test_a_c_writer_needs_only_the_fields_it_measures(tmp_path):
    """stats.json as the C runtime will write it: a few counters per region, nothing else."""
    path = tmp_path / "stats.json"
    path.write_text('{"schema": 1, "device": "NVIDIA H200", "device_kind": "cuda", "timing": "measured",'
                    ' "regions": {"0": {"calls": 4, "device_runs": 4, "kernel_seconds": 0.25,'
                    ' "failure": {"code": "launch_error", "detail": "illegal-address", "message": "x"},'
                    ' "c_timers": {"copies": 0.001}}}}')
    stats, why = read_stats(str(path))
    assert why == "" and stats.regions[0].calls == 4 and stats.regions[0].failure.detail == "illegal-address"
    assert stats.regions[0].extra == {"c_timers": {"copies": 0.001}}
    assert replace(stats.regions[0], calls=5).to_json()["c_timers"] == {"copies": 0.001}
    assert RuntimeStats.from_json(stats.to_json()) == stats
    assert read_stats(str(tmp_path / "missing.json")) == (None, "the program wrote no statistics")


TODAY_FIELDS = {"schema", "file", "workdir", "gpu_regions", "device", "order", "timing", "total_seconds", "cpu_seconds",
                "cpu_peak_rss_bytes", "device_memory_peak_bytes", "memory_limit", "not_offloaded", "regions",
                "verified", "mismatch", "failures", "device_choice"}
TODAY_REGION_FIELDS = {"id", "line", "location", "device", "calls", "device_runs", "kernel_seconds", "h2d_bytes",
                       "d2h_bytes", "verify_d2h_bytes", "transfer_seconds", "cpu_seconds", "cpu_calls",
                       "alias_fallbacks", "cpu_fallbacks", "fallback_reasons", "mismatches", "errors", "shapes",
                       "timing"}


def test_offload_run_json_keeps_the_fields_it_had_and_adds_the_typed_ones(tmp_path):
    done = subprocess.run([sys.executable, "-m", "offloader", "run", str(program(tmp_path, FILL)), "--device", "emu",
                           "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert TODAY_FIELDS <= set(data) and {"device_kind", "typed_failures", "exit_status"} <= set(data)
    assert all(TODAY_REGION_FIELDS | {"failure"} <= set(region) for region in data["regions"])
    assert (data["device_kind"], data["timing"], data["typed_failures"], data["verified"]) == ("emu", "emulated", [], True)

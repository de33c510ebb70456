"""`offload tune` end to end on the emulated device: every sample ends with a verified plan
(or says why nothing is offloaded), a resumed run measures nothing new, a run killed with
SIGKILL loses no finished trial, and bad input is one clear line."""

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from offloader.buildopts import BuildOptions
from offloader.tune.command import TuneRequest, tune_program
from sizing.profile import load_profile

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "samples").glob("*.c"))


def offload(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "offloader", *args], capture_output=True, text=True,
                          cwd=kwargs.pop("cwd", ROOT), timeout=kwargs.pop("timeout", 600), **kwargs)


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_every_sample_ends_with_a_verified_plan_or_says_why_not(sample, tmp_path):
    summary = tune_program(TuneRequest(BuildOptions(sources=(str(sample),)), budget=6, device="emu",
                                       out=tmp_path, repeats=1))
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["verified"] and plan["verified_on"] == "emu"
    assert plan["gpu_regions"] or plan["reason_none"]
    assert plan["timing"] in ("modeled", "measured") and plan["speedup"] > 0
    if plan["gpu_regions"]:
        assert plan["timing"] == "modeled" and plan["gpu_model"] == "t4"
    profile = load_profile(tmp_path / "profile.json")          # the sizer can read what tune wrote
    assert profile.app == sample.stem and profile.kind == plan["timing"]
    with open(tmp_path / "trials.csv") as handle:
        trials = list(csv.DictReader(handle))
    assert 1 <= sum(t["cached"] == "False" for t in trials) <= 6
    assert (tmp_path / "report.html").read_text().count("<svg") >= 3
    assert (tmp_path / "program" / "Makefile").exists() and summary["measured"] <= 6


def test_a_resumed_tune_measures_nothing_new_and_a_changed_source_starts_over(tmp_path):
    src = tmp_path / "saxpy.c"
    src.write_text((ROOT / "samples" / "saxpy.c").read_text())
    out = tmp_path / "results"
    first = offload("tune", str(src), "--device", "emu", "--budget", "5", "--out", str(out))
    assert first.returncode == 0, first.stderr
    again = offload("tune", str(src), "--device", "emu", "--budget", "5", "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert "(0 now, study resumed" in again.stdout and "resumed the study" in again.stderr
    src.write_text(src.read_text().replace("#define N 200000", "#define N 150000"))
    changed = offload("tune", str(src), "--device", "emu", "--budget", "3", "--out", str(out))
    assert changed.returncode == 0, changed.stderr
    assert "started a new study: source_hash changed" in changed.stderr
    assert "study replaced" in changed.stdout


def test_a_killed_tune_resumes_without_losing_a_finished_trial(tmp_path):
    out = tmp_path / "results"
    command = [sys.executable, "-m", "offloader", "tune", str(ROOT / "samples" / "reductions.c"),
               "--device", "emu", "--strategy", "exhaustive", "--budget", "40", "--out", str(out)]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finished = 0
    deadline = time.time() + 300
    while finished < 3 and time.time() < deadline and child.poll() is None:
        time.sleep(0.5)
        finished = _complete_trials(out / "study.db")
    assert child.poll() is None, "the tune ended before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = _complete_trials(out / "study.db")
    assert before >= 3
    resumed = offload("tune", str(ROOT / "samples" / "reductions.c"), "--device", "emu", "--strategy",
                      "exhaustive", "--budget", str(before + 1), "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert f"{before + 1} unique measurement(s) (1 now" in resumed.stdout
    assert _complete_trials(out / "study.db") == before + 1


def _complete_trials(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as connection:
            return connection.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:       # the tables are not there yet
        return 0


def test_bad_input_is_one_line_and_exit_status_2(tmp_path):
    bad_model = offload("tune", "samples/saxpy.c", "--gpu-model", "v100", "--out", str(tmp_path / "r"))
    assert bad_model.returncode == 2 and "--gpu-model v100: unknown" in bad_model.stderr
    assert "Traceback" not in bad_model.stderr
    missing = offload("tune", str(tmp_path / "nope.c"), "--out", str(tmp_path / "r"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    taken = offload("tune", "samples/saxpy.c", "--out", str(tmp_path / "mine"))
    assert taken.returncode == 2 and "offload did not write" in taken.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    not_c = offload("tune", "README.md")
    assert not_c.returncode == 2 and "expected C source files" in not_c.stderr


def test_ctrl_c_stops_cleanly_and_keeps_what_was_found(tmp_path):
    out = tmp_path / "results"
    command = [sys.executable, "-m", "offloader", "tune", str(ROOT / "samples" / "reductions.c"),
               "--device", "emu", "--strategy", "exhaustive", "--budget", "40", "--out", str(out)]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while _complete_trials(out / "study.db") < 2 and time.time() < deadline and child.poll() is None:
        time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=300)
    assert "Traceback" not in stderr, stderr
    assert "search interrupted" in stdout, stdout
    plan = json.loads((out / "plan.json").read_text())
    assert plan["measurements"] >= 2 and plan["verified"]
    assert child.returncode == 0


def test_a_program_that_crashes_on_its_own_is_refused_with_why(tmp_path):
    src = tmp_path / "crash.c"
    src.write_text("#include <stdio.h>\nint main(void) { int *p = 0; double a[64];\n"
                   "  for (int i = 0; i < 64; i++) a[i] = i;\n  printf(\"%f\\n\", a[3]);\n  return *p; }\n")
    done = offload("tune", str(src), "--device", "emu", "--out", str(tmp_path / "r"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "the CPU original itself failed: crash" in done.stderr

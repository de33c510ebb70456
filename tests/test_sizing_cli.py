"""`offload size`: the JSON contract, the reports beside the profile, batch mode, and exit statuses."""

import csv
import json
import re
import subprocess
import sys

from sizing_support import GIB, invoke, run_offload, write_profile

RECOMMENDATION_KEYS = {"cpu", "gpu", "vcpus", "fraction", "vgpu_type", "price_per_hour", "predicted_seconds",
                       "cost_per_run"}
CANDIDATE_KEYS = {"feasible", "reason", "predicted_seconds", "cost_per_run"}


def test_json_contract_and_reports_beside_the_profile(tmp_path):
    profile = write_profile(tmp_path / "results" / "demo")
    done = run_offload("size", profile, "--json", "--max-price", "0.8")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["schema"] == 1 and doc["policy"] == "cost-perf" and doc["app"] == "demo"
    assert RECOMMENDATION_KEYS <= set(doc["recommendation"])
    assert len(doc["candidates"]) == 9 and all(CANDIDATE_KEYS <= set(c) for c in doc["candidates"])
    assert doc["comparison"]["policy"] == "ratio" and doc["comparison"]["explanation"]
    out = profile.parent
    assert json.loads((out / "sizing.json").read_text()) == doc
    rows = list(csv.DictReader((out / "sizing.csv").open()))
    assert [r["config"] for r in rows] == [c["config"] for c in doc["candidates"]]
    assert {"reason", "cpu_kind", "gpu_kind", "transfer_kind", "cost_per_run"} <= set(rows[0])
    page = (out / "sizing.html").read_text()
    assert page.count("<svg") == 3 and "Pareto" in page and "half + half-T4" in page
    # opens offline: nothing fetched, nothing run
    assert not re.search(r"<script|<link|<img|src=|url\(|https?://(?!www\.w3\.org/2000/svg)", page)


def test_text_output_names_recommendation_comparison_and_sources(tmp_path):
    profile = write_profile(tmp_path / "app")
    result = invoke("size", profile, "--max-price", "0.8", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "Recommendation (cost-perf): half + half-T4" in text
    assert "ratio would choose standard + whole-T4" in text and "(+20.0%) per run" in text
    assert "note: CPU part: single-threaded" in text
    assert (tmp_path / "out" / "sizing.html").exists() and not (profile.parent / "sizing.html").exists()


def test_nothing_feasible_exits_1_and_names_each_constraint(tmp_path):
    profile = write_profile(tmp_path / "app", device_memory_bytes=6 * GIB)
    done = run_offload("size", profile, "--max-price", "0.3")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "offload: no configuration meets the constraints:"
    assert "  half + quarter-T4: device memory peak 6.00 GiB does not fit the 4 GiB framebuffer of T4-4C" in lines
    assert "  double + whole-T4: price 0.80/h is over --max-price 0.3/h" in lines
    assert len(lines) == 10


def test_a_file_that_is_not_ours_is_never_overwritten(tmp_path):
    profile = write_profile(tmp_path / "app")
    mine = profile.parent / "sizing.html"
    mine.write_text("<html>my own notes</html>")
    result = invoke("size", profile)
    assert result.exit_code == 2 and "was not written by `offload size`" in result.stderr
    assert mine.read_text() == "<html>my own notes</html>" and not (profile.parent / "sizing.json").exists()
    mine.unlink()
    assert invoke("size", profile).exit_code == 0
    assert invoke("size", profile, "--policy", "ratio").exit_code == 0      # our own files are replaced
    assert json.loads((profile.parent / "sizing.json").read_text())["policy"] == "ratio"


def test_bad_options_exit_2_without_traceback(tmp_path):
    profile = write_profile(tmp_path / "app")
    for args in (("--max-price", "-1"), ("--deadline", "soon"), ("--policy", "cheapest"),
                 ("--board-occupancy", "0")):
        done = run_offload("size", profile, *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr and "Error" in done.stderr, args


def _jobs(tmp_path, rows):
    path = tmp_path / "jobs.csv"
    path.write_text("app,profile,max_price,deadline\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def test_batch_sizes_each_app_under_its_own_limits(tmp_path):
    write_profile(tmp_path / "a")
    write_profile(tmp_path / "b", cpu_part_seconds=40, gpu_kernel_seconds=4, app="b")
    jobs = _jobs(tmp_path, [("alpha", "a/profile.json", "", ""), ("alpha-capped", "a/profile.json", 0.3, ""),
                            ("beta", "b/profile.json", "", 45)])
    result = invoke("size", "--batch", jobs)
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "jobs-sizing"
    rows = {r["app"]: r for r in csv.DictReader((out / "batch-sizing.csv").open())}
    assert rows["alpha"]["config"] == "half + half-T4" and rows["alpha"]["compared_config"] == "standard + whole-T4"
    assert rows["alpha-capped"]["config"] == "half + quarter-T4" and rows["alpha-capped"]["max_price"] == "0.3"
    assert rows["beta"]["deadline"] == "45.0" and rows["beta"]["config"] == "half + whole-T4"
    for app in rows:
        assert (out / app / "sizing.html").exists() and (out / app / "sizing.csv").exists()
    page = (out / "batch-sizing.html").read_text()
    assert '<a href="alpha/sizing.html">' in page and "<svg" in page and "<table" in page


def test_batch_with_an_infeasible_app_exits_1_after_writing_everything(tmp_path):
    write_profile(tmp_path / "a")
    jobs = _jobs(tmp_path, [("ok", "a/profile.json", "", ""), ("broke", "a/profile.json", 0.1, "")])
    done = run_offload("size", "--batch", jobs, "--json", "--out", tmp_path / "out")
    assert done.returncode == 1 and "for broke" in done.stderr
    doc = json.loads(done.stdout)
    assert [r["feasible"] for r in doc["apps"]] == [True, False]
    assert "price 0.20/h is over --max-price 0.1/h" in doc["apps"][1]["note"]
    assert (tmp_path / "out" / "batch-sizing.csv").exists() and (tmp_path / "out" / "broke" / "sizing.html").exists()


def test_bad_jobs_files(tmp_path):
    write_profile(tmp_path / "a")
    cases = [
        ("app,profile\nx,a/profile.json\n", r"missing column\(s\) max_price, deadline"),
        ("app,profile,max_price,deadline\n", r"no jobs"),
        ("app,profile,max_price,deadline\nx,a/profile.json,cheap,\n",
         r"line 2 \(app 'x'\): max_price must be a positive number or empty, got 'cheap'"),
        ("app,profile,max_price,deadline\nx,a/profile.json,,\nx,a/profile.json,,\n", r"line 3 .*appears twice"),
        ("app,profile,max_price,deadline\n../x,a/profile.json,,\n", r"app must be a plain name"),
        ("app,profile,max_price,deadline\nx,nowhere.json,,\n", r"line 2 \(app 'x'\): .*nowhere.json: no such profile"),
    ]
    for text, message in cases:
        jobs = tmp_path / "jobs.csv"
        jobs.write_text(text)
        result = invoke("size", "--batch", jobs)
        assert result.exit_code == 2 and re.search(message, result.stderr), (text, result.stderr)


def test_importing_the_sizing_cli_stays_cheap():
    code = ("import sys, sizing.cli, sizing.sizer, sizing.batch, sizing.report\n"
            "print(','.join(m for m in ('pandas', 'numpy', 'rich.table') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""

"""The outputs of `offload tune` that people open or deploy: report.html and the shipped program."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from offloader.buildopts import BuildOptions
from offloader.codegen.kernel import Variant
from offloader.runtime.run import PreparedProgram
from offloader.tune.report_html import write_report
from offloader.tune.ship import ship_program, verify_shipped

ROOT = Path(__file__).resolve().parent.parent
EVIL = "<script>alert(1)</script>"


def _write_results(folder: Path, timing: str, kind: str) -> Path:
    plan = {"schema": 1, "app": "saxpy", "source_hash": "abc123", "build_options": {"defines": ["N=1000"]},
            "args": [[]], "verified": True, "verified_on": "emu", "cpu_seconds": 0.8, "offloaded_seconds": 0.2,
            "speedup": 4.0, "timing": timing, "device": "NVIDIA H100", "gpu_model": "h100", "strategy": "default",
            "measurements": 5, "reason_none": None, "gpu_regions": [1],
            "regions": [{"id": 0, "location": "samples/saxpy.c:16:5", "device": "cpu", "settings": None},
                        {"id": 1, "location": "samples/saxpy.c:23:5", "device": "gpu",
                         "settings": {"block": "256x1x1", "axes": "default", "reduction": "tree"}}]}
    profile = {"schema": 1, "app": "saxpy", "kind": kind, "device": "NVIDIA H100", "cpu_part_seconds": 0.1,
               "gpu_kernel_seconds": 0.05, "transfer_seconds": 0.05, "device_memory_bytes": 1600000,
               "regions": [{"id": 0, "line": 16, "cpu_seconds": 0.3, "kernel_seconds": 0.0},
                           {"id": 1, "line": 23, "kernel_seconds": 0.05, "transfer_seconds": 0.05,
                            "cpu_seconds": 0.4, "flops": 2e5, "bytes": 1.2e6, "h2d_bytes": 800000,
                            "d2h_bytes": 400000, "precision": "fp32"}]}
    (folder / "plan.json").write_text(json.dumps(plan))
    (folder / "profile.json").write_text(json.dumps(profile))
    with open(folder / "trials.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["number", "config", "gpu_regions", "status", "seconds", "kind", "reason", "cached"])
        writer.writerow([0, "0=cpu;1=cpu", "", "ok", 0.8, "measured", "", "false"])
        writer.writerow([1, "0=cpu;1=gpu(block=256x1x1)", "1", "ok", 0.2, kind, "", "false"])
        writer.writerow([2, "0=gpu;1=gpu(block=256x1x1)", "0,1", "wrong_output", "", "emulated",
                         f"region 0 wrote y[3] {EVIL}", "false"])
        writer.writerow([3, "0=cpu;1=gpu(block=256x1x1)", "1", "ok", 0.2, kind, "", "true"])
    return folder


@pytest.mark.parametrize("timing", ["modeled", "measured"])
def test_report_is_one_offline_page_with_three_plots(tmp_path, timing):
    page = write_report(_write_results(tmp_path, timing, timing))
    assert page == tmp_path / "report.html"
    text = page.read_text()
    assert text.count("<svg") == 3
    assert f"GPU times <span class=\"kind\">{timing}</span>" in text
    assert f"0.2 s <span class=\"kind\">{timing}</span></span>" in text         # the word next to the time
    assert "256x1x1" in text and "samples/saxpy.c:23:5" in text and "4×" in text
    assert EVIL not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "wrong_output" in text
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert not re.search(r"<(?:script|link|img|iframe)\b", text, re.I)
    assert "@import" not in text and not re.search(r"url\(\s*['\"]?(?!#)", text)     # clip paths are #ids


def test_report_says_why_nothing_was_offloaded(tmp_path):
    _write_results(tmp_path, "modeled", "modeled")
    plan = json.loads((tmp_path / "plan.json").read_text())
    plan.update(gpu_regions=[], speedup=1.0, reason_none="transfers cost more than the kernels save")
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    (tmp_path / "profile.json").unlink()
    text = write_report(tmp_path).read_text()
    assert "transfers cost more than the kernels save" in text and text.count("<svg") == 3


def test_report_module_loads_matplotlib_only_when_writing():
    code = "import sys, offloader.tune.report_html; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def _code(obj: Path) -> bytes:
    """The object's code and data, without the file names and symbols that name build paths."""
    dump = obj.with_suffix(".code")
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text*", "-j", ".rodata*", "-j", ".data*", str(obj), str(dump)],
                   check=True)
    return dump.read_bytes()


@pytest.mark.parametrize("sample", ["saxpy.c", "heat2d.c"])
def test_shipped_program_is_the_verified_build(tmp_path, sample, monkeypatch):
    monkeypatch.chdir(ROOT)
    prepared = PreparedProgram(BuildOptions(sources=(f"samples/{sample}",), defines=("STEPS=5",)), tmp_path / "build")
    chosen = [r.id for r in prepared.regions][1:]
    variants = {r.id: Variant(block=(32, 4, 1) if len(r.mapped) == 2 else (64, 1, 1))
                for r in prepared.regions if r.id in chosen}
    out = ship_program(prepared, variants, chosen, tmp_path / "program")
    for name in ("Makefile", "run.sh", "README.txt", "kernels.cu", "plans.json", "hostprog.json"):
        assert (out / name).is_file()
    assert f"--regions {','.join(map(str, chosen))}" in (out / "run.sh").read_text()

    ok, why = verify_shipped(out, prepared, [])
    assert ok and " 0 region run" not in why, why
    built = Path(prepared.build.workdir) / "obj"
    for obj in built.glob("*.o"):
        assert _code(out / "obj" / obj.name) == _code(obj), f"{obj.name} differs from the verified build"
    plans = json.loads((out / "plans.json").read_text())
    assert plans[str(chosen[0])]["block"] == list(variants[chosen[0]].block)


def test_a_shipped_program_that_differs_is_not_verified(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    prepared = PreparedProgram(BuildOptions(sources=("samples/saxpy.c",)), tmp_path / "build")
    out = ship_program(prepared, {}, [], tmp_path / "program")
    assert "--dispatcher none" in (out / "run.sh").read_text()
    source = out / "src" / "0" / "saxpy.c"
    source.write_text(source.read_text().replace("0.5f, x, y", "0.75f, x, y"))
    ok, why = verify_shipped(out, prepared, [])
    assert not ok and "stdout" in why


PROGRAM = """#include <stdio.h>
#include "local.h"
#include "params.h"
static double a[N];
int main(void)
{
    double s = 0;
    for (int i = 0; i < N; i++)
        a[i] = SCALE * i;
    for (int i = 0; i < N; i++)
        s += a[i];
    printf("%s %.6f %s\\n", GREETING, s, __FILE__);
    return 0;
}
"""


def test_shipped_program_finds_the_users_headers_from_its_own_folder(tmp_path, monkeypatch):
    """Quoted includes next to the source and relative -I folders resolve as in the tuning
    build, though make runs in the shipped folder."""
    (tmp_path / "app").mkdir()
    (tmp_path / "inc").mkdir()
    (tmp_path / "app" / "prog.c").write_text(PROGRAM)
    (tmp_path / "app" / "local.h").write_text('#define GREETING "sum"\n')
    (tmp_path / "inc" / "params.h").write_text("#define N 1000\n#define SCALE 0.5\n")
    monkeypatch.chdir(tmp_path)
    prepared = PreparedProgram(BuildOptions(sources=("app/prog.c",), include_dirs=("inc",)), "build")
    regions = [r.id for r in prepared.regions]
    assert regions
    out = ship_program(prepared, {}, regions, Path("program"))
    ok, why = verify_shipped(out, prepared, [])
    assert ok, why
    with pytest.raises(ValueError, match="not in the host build"):
        ship_program(prepared, {}, [99], Path("program"))

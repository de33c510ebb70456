"""`offload run` on the emulated device: every sample verifies at both levels in every order;
wrong kernels, overlapping pointers, exit() and hangs are handled as the issue asks."""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from offloader.buildopts import BuildOptions
from offloader.runtime.run import RunOptions, run_program

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "samples").glob("*.c"))


def run(path, **options):
    return run_program(BuildOptions(sources=(str(path),)), RunOptions(device="emu", **options)).to_json()


@pytest.mark.parametrize("order", ["forward", "reverse", "shuffle"])
@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_every_sample_verifies_with_all_regions_on_the_emulator(sample, order):
    report = run(sample, order=order)
    assert report["verified"], report["failures"]
    assert report["timing"] == "emulated"
    assert report["regions"] and all(r["device_runs"] == r["calls"] for r in report["regions"])
    assert sum(r["h2d_bytes"] + r["d2h_bytes"] for r in report["regions"]) > 0


def test_a_wrong_kernel_is_caught_by_region_verification(tmp_path):
    report = run(ROOT / "samples" / "saxpy.c", workdir=str(tmp_path / "w"))
    kernels = tmp_path / "w" / "kernels.cu"
    text = kernels.read_text()
    broken = text.replace("y[i] = (a * x[i]) + y[i];", "y[i] = (a * x[i]) - y[i];", 1)
    assert broken != text, "the test needs the saxpy statement in the kernel text"
    kernels.write_text(broken)
    stats = tmp_path / "stats.json"
    command = [sys.executable, "-m", "offloader.hostprog.runner", str(tmp_path / "w" / "host" / "libhost.so"),
               "--dispatcher", "device", "--stats", str(stats), "--plans", str(tmp_path / "w" / "plans.json"),
               "--kernels", str(kernels), "--device", "emu", "--verify-regions", "--"]
    subprocess.run(command, capture_output=True, timeout=120, check=False)
    region = json.loads(stats.read_text())["regions"]["0"]
    assert report["verified"] and region["mismatches"] and region["mismatches"][0]["array"] == "y"
    assert region["max_rel_error"] > 0.01 and report["regions"][0]["max_rel_error"] < 1e-6


def test_nvcc_flags_reach_no_emulator_and_each_region_says_its_largest_error(monkeypatch):
    monkeypatch.setenv("OFFLOAD_NVCC_FLAGS", "-fmad=false")          # g++ would reject it
    report = run(ROOT / "samples" / "reductions.c")
    assert report["verified"], report["failures"]
    assert all(r["max_rel_error"] is not None and 0 <= r["max_rel_error"] < 1e-6 for r in report["regions"])


def test_overlapping_pointers_fall_back_to_the_cpu_and_still_verify(tmp_path):
    src = tmp_path / "alias.c"
    src.write_text(textwrap.dedent("""
        #include <stdio.h>
        #include <stdlib.h>
        void shift(int n, double *dst, const double *src) {
          for (int i = 0; i < n; i++) dst[i] = 2.0 * src[i];
        }
        int main(void) {
          int n = 1000;
          double *a = malloc(sizeof(double) * (n + 1)), *b = malloc(sizeof(double) * n);
          for (int i = 0; i <= n; i++) a[i] = i % 17;
          shift(n, b, a);          /* separate blocks: on the device */
          shift(n, a + 1, a);      /* overlapping: must run the CPU loop */
          shift(n, a, a);          /* same block, same place: overlapping too */
          double s = 0;
          for (int i = 0; i < n; i++) s += a[i] + b[i];
          printf("%.6f\\n", s);
          free(a); free(b);
          return 0;
        }"""))
    report = run(src)
    shift = next(r for r in report["regions"] if r["line"] == 5)
    assert report["verified"], report["failures"]
    assert shift["calls"] == 3 and shift["device_runs"] == 1 and shift["cpu_fallbacks"] == 2
    assert any("overlap" in why or "inside an allocation" in why for why in shift["fallback_reasons"])


def test_exit_from_user_code_still_reports_every_region(tmp_path):
    src = tmp_path / "quits.c"
    src.write_text(textwrap.dedent("""
        #include <stdio.h>
        #include <stdlib.h>
        double a[4096];
        static void finish(double s) { printf("sum %.3f\\n", s); exit(0); }
        int main(void) {
          double s = 0;
          for (int i = 0; i < 4096; i++) a[i] = i * 0.5;
          for (int i = 0; i < 4096; i++) s += a[i];
          finish(s);
          return 1;
        }"""))
    report = run(src)
    assert report["verified"], report["failures"]
    assert [r["device_runs"] for r in report["regions"]] == [1, 1]


def test_a_hang_is_a_typed_failure(tmp_path):
    src = tmp_path / "hang.c"
    src.write_text("double a[64];\nint main(void) { for (int i = 0; i < 64; i++) a[i] = i; while (1) ; }\n")
    report = run(src, timeout=3)
    assert not report["verified"] and any("timeout" in f for f in report["failures"])


def test_the_memory_limit_stops_a_program_that_uses_too_much(tmp_path):
    src = tmp_path / "hog.c"
    src.write_text(textwrap.dedent("""
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        int main(void) {
          size_t n = (size_t)512 << 20;
          char *p = malloc(n);
          if (!p) { puts("no memory"); return 0; }
          memset(p, 1, n);
          printf("%d\\n", p[n - 1]);
          return 0;
        }"""))
    report = run(src, memory_limit=128 << 20)
    if not report["memory_limit"]["applied"].startswith("cgroup"):
        pytest.skip(f"no cgroup here: {report['memory_limit']['applied']}")
    if not any("CPU original itself failed" in f for f in report["failures"]):
        pytest.skip("this machine accepts cgroup memory limits but does not enforce them "
                    "(the CPU original used 512 MiB under a 128 MiB limit)")
    assert not report["verified"]
    assert any("memory limit" in f for f in report["failures"]), report["failures"]


def test_the_command_line_reports_and_exits_by_verification(tmp_path):
    done = subprocess.run([sys.executable, "-m", "offloader", "run", "samples/reductions.c", "--device", "emu",
                           "--gpu-regions", "1,2", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["verified"] and report["timing"] == "emulated"
    on_device = {r["id"] for r in report["regions"] if r["device_runs"]}
    assert on_device == {1, 2}
    bad = subprocess.run([sys.executable, "-m", "offloader", "run", "samples/saxpy.c", "--gpu-regions", "x"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and re.search(r"--gpu-regions takes", bad.stderr) and "Traceback" not in bad.stderr


def test_arrays_stay_on_the_device_across_time_steps(tmp_path):
    def program(steps):
        src = tmp_path / f"heat_{steps}.c"
        src.write_text(textwrap.dedent(f"""
            #include <stdio.h>
            #define N 256
            double u[N], v[N];
            int main(void) {{
              for (int i = 0; i < N; i++) u[i] = (i % 13) * 0.25;
              for (int t = 0; t < {steps}; t++) {{
                for (int i = 1; i < N - 1; i++) v[i] = 0.5 * (u[i - 1] + u[i + 1]);
                for (int i = 1; i < N - 1; i++) u[i] = v[i];
              }}
              double s = 0;
              for (int i = 0; i < N; i++) s += u[i];
              printf("%.9f\\n", s);
              return 0;
            }}"""))
        report = run(src, verify="program")
        assert report["verified"], report["failures"]
        return sum(r["h2d_bytes"] for r in report["regions"])
    assert program(10) == program(20) <= 3 * 2 * 256 * 8     # u and v once, not once per step


def test_a_harness_in_a_second_file_with_typedefs_structs_and_overlap():
    fixtures = ROOT / "tests" / "fixtures" / "programs"
    report = run_program(BuildOptions(sources=(str(fixtures / "harness_main.c"), str(fixtures / "harness_kernels.c"))),
                         RunOptions(device="emu", order="shuffle", args=("40",))).to_json()
    assert report["verified"], report["failures"]
    by_line = {(Path(r["location"]).name.split(":")[0], r["line"]): r for r in report["regions"]}
    assert by_line[("harness_kernels.c", 5)]["device_runs"] == 1            # triangular nest
    assert by_line[("harness_kernels.c", 10)]["device_runs"] == 3           # struct array, 3 steps
    overlapping = by_line[("harness_kernels.c", 21)]
    assert overlapping["calls"] == 2 and overlapping["cpu_fallbacks"] == 1


def test_file_scope_arrays_passed_to_a_helper_run_on_the_device(tmp_path):
    src = tmp_path / "globals.c"
    src.write_text(textwrap.dedent("""
        #include <stdio.h>
        #define N 1000
        static double src[N], dst[N];
        static void scale(int n, const double *a, double *b) { for (int i = 0; i < n; i++) b[i] = 3.0 * a[i]; }
        int main(void) {
          for (int i = 0; i < N; i++) src[i] = i % 9;
          scale(N, src, dst);
          double s = 0;
          for (int i = 0; i < N; i++) s += dst[i];
          printf("%.3f\\n", s);
          return 0;
        }"""))
    report = run(src)
    helper = next(r for r in report["regions"] if r["line"] == 5)
    assert report["verified"], report["failures"]
    assert helper["device_runs"] == 1 and helper["cpu_fallbacks"] == 0


def test_a_pointer_into_the_middle_of_an_allocation_runs_on_the_device(tmp_path):
    src = tmp_path / "middle.c"
    src.write_text(textwrap.dedent("""
        #include <stdio.h>
        #include <stdlib.h>
        static void halve(int n, double *p) { for (int i = 0; i < n; i++) p[i] *= 0.5; }
        int main(void) {
          int n = 1000;
          double *a = malloc(sizeof(double) * n);
          for (int i = 0; i < n; i++) a[i] = i;
          halve(n / 2, a + n / 2);       /* only the upper half */
          double s = 0;
          for (int i = 0; i < n; i++) s += a[i] * (i + 1);
          printf("%.6f\\n", s);
          free(a);
          return 0;
        }"""))
    report = run(src, order="reverse")
    halve = next(r for r in report["regions"] if r["line"] == 4)
    assert report["verified"], report["failures"]
    assert halve["device_runs"] == 1 and halve["cpu_fallbacks"] == 0


def test_a_pointer_to_a_global_scalar_the_loop_reads_falls_back(tmp_path):
    src = tmp_path / "scalar_alias.c"
    src.write_text(textwrap.dedent("""
        #include <stdio.h>
        double scale = 2.0;
        double buf[100];
        static void fill(int n, double *y) { for (int i = 0; i < n; i++) y[i] = scale + i; }
        int main(void) {
          fill(100, buf);          /* on the device */
          fill(1, &scale);         /* writes the scalar it reads: the CPU loop */
          printf("%.3f %.3f\\n", buf[99], scale);
          return 0;
        }"""))
    report = run(src)
    fill = next(r for r in report["regions"] if r["line"] == 5)
    assert report["verified"], report["failures"]
    assert fill["device_runs"] == 1 and fill["cpu_fallbacks"] == 1       # &scale: never on the device


def test_loaded_fields_that_alias_or_overlap_the_struct_fall_back_with_their_reason(tmp_path):
    src = tmp_path / "fields.c"
    src.write_text(textwrap.dedent("""
        #include <stdio.h>
        #include <stdlib.h>
        struct soa { int n; double *x, *y; };
        static void axpy(struct soa *p) { for (int i = 0; i < p->n; i++) p->y[i] += 2.0 * p->x[i]; }
        int main(void) {
          int n = 1000;
          struct soa s = {n, malloc(sizeof(double) * n), malloc(sizeof(double) * n)};
          for (int i = 0; i < n; i++) { s.x[i] = i % 7; s.y[i] = 1; }
          axpy(&s);                          /* separate arrays, s on the stack: on the device */
          struct soa t = {n, s.x, s.x};      /* one field aliases the other: the CPU loop */
          axpy(&t);
          /* the struct lies in the block its own field points into: the CPU loop */
          char *block = malloc(sizeof(struct soa) + sizeof(double) * n);
          struct soa *u = (struct soa *)block;
          u->n = n; u->x = s.y; u->y = (double *)(block + sizeof(struct soa));
          for (int i = 0; i < n; i++) u->y[i] = 0;
          axpy(u);
          struct soa *none = NULL;
          int empty = 0;
          for (int i = 0; i < empty; i++) none->y[i] = 0;    /* never runs: its fields are never read */
          double sum = 0;
          for (int i = 0; i < n; i++) sum += s.x[i] + s.y[i] + u->y[i];
          printf("%.6f\\n", sum);
          return 0;
        }"""))
    report = run(src, order="shuffle")
    assert report["verified"], report["failures"]
    axpy = next(r for r in report["regions"] if r["line"] == 5)
    assert axpy["calls"] == 3 and axpy["device_runs"] == 1 and axpy["cpu_fallbacks"] == 2
    assert axpy["alias_fallbacks"] == 2
    assert any("`p->x` and `p->y` overlap" in why for why in axpy["fallback_reasons"])
    assert any("`p->n` is loaded from memory that `p->y`" in why for why in axpy["fallback_reasons"])
    never = next(r for r in report["regions"] if r["line"] == 21)
    assert never["calls"] == 1 and never["device_runs"] == 0
    assert never["fallback_reasons"] == ["`none->y` is read through a null pointer"]


def test_a_field_reached_through_a_loaded_pointer_runs_on_the_device_unless_its_place_is_written(tmp_path):
    src = tmp_path / "deep.c"
    src.write_text(textwrap.dedent("""
        #include <stdio.h>
        #include <stdlib.h>
        struct grid { int n; double *u; };
        struct mesh { struct grid *g; double scale; };
        static void fill(struct mesh *m) { for (int i = 0; i < m->g->n; i++) m->g->u[i] = m->scale * i; }
        int main(void) {
          int n = 1000;
          struct grid g = {n, malloc(sizeof(double) * n)};
          struct mesh m = {&g, 0.5};
          fill(&m);                              /* on the device */
          char *block = malloc(sizeof(struct mesh) + sizeof(double) * n);
          struct mesh *inside = (struct mesh *)block;    /* the mesh lies in the array it fills */
          struct grid h = {n, (double *)(block + sizeof(struct mesh))};
          inside->g = &h;
          inside->scale = 0.25;
          fill(inside);                          /* the CPU loop */
          double s = 0;
          for (int i = 0; i < n; i++) s += g.u[i] + h.u[i];
          printf("%.3f\\n", s);
          return 0;
        }"""))
    report = run(src, order="reverse")
    assert report["verified"], report["failures"]
    fill = next(r for r in report["regions"] if r["line"] == 6)
    assert fill["calls"] == 2 and fill["device_runs"] == 1 and fill["alias_fallbacks"] == 1
    assert fill["fallback_reasons"] == ["`m->g` is loaded from memory that `m->g->u`, which the loop writes, overlaps"]

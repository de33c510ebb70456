"""Transfers: only what the GPU reads before writing goes in, only what the host reads comes
back, and neither grows with the number of time steps. The traps the issue lists (pointer
swaps, free/realloc, host functions, indirect subscripts, partial writes, I/O from device-held
arrays) must still give the CPU original's output."""

import textwrap
from pathlib import Path

import pytest

from offloader.buildopts import BuildOptions
from offloader.runtime.run import RunOptions, run_program

DOUBLE = 8


def run(tmp_path, name, text, defines=(), verify="program", **options):
    src = tmp_path / name
    src.write_text(textwrap.dedent(text))
    return run_file(src, defines, verify, **options)


def run_file(src, defines=(), verify="program", **options):
    report = run_program(BuildOptions(sources=(str(src),), defines=tuple(defines)),
                         RunOptions(device="emu", verify=verify, **options)).to_json()
    assert report["verified"], report["failures"]
    return report


def totals(report):
    return (sum(r["h2d_bytes"] for r in report["regions"]), sum(r["d2h_bytes"] for r in report["regions"]))


SWAP_STENCIL = Path(__file__).resolve().parent.parent / "samples" / "swap_stencil.c"


@pytest.mark.parametrize("n", [96, 200])
def test_stencil_transfers_are_bounded_and_do_not_grow_with_time_steps(tmp_path, n):
    # The GPU reads all of `a` but its four corners before writing anything, then in step 2
    # the boundary of `b` (its interior it wrote itself); the host reads the final grid.
    gpu_reads_first = (n * n - 4 + 4 * (n - 2)) * DOUBLE
    host_reads_after = n * n * DOUBLE
    counts = {}
    for steps in (6, 12):
        report = run_file(SWAP_STENCIL, [f"N={n}", f"STEPS={steps}"])
        counts[steps] = totals(report)
    (h2d, d2h), (h2d_2t, d2h_2t) = counts[6], counts[12]
    assert h2d <= 1.1 * gpu_reads_first and d2h <= 1.1 * host_reads_after, counts
    assert (h2d, d2h) == (h2d_2t, d2h_2t), counts
    assert h2d >= gpu_reads_first and d2h > 0        # and the data did move: this is not vacuous


def test_file_scope_grids_stay_resident_and_come_back_once(tmp_path):
    text = """
        #include <stdio.h>
        #include <stdlib.h>
        double u[N][N], v[N][N];
        int main(void) {
          for (int i = 0; i < N; i++) for (int j = 0; j < N; j++) u[i][j] = rand() % 10;
          for (int t = 0; t < STEPS; t++) {
            for (int i = 1; i < N - 1; i++) for (int j = 1; j < N - 1; j++)
              v[i][j] = 0.2 * (u[i][j] + u[i - 1][j] + u[i + 1][j] + u[i][j - 1] + u[i][j + 1]);
            for (int i = 1; i < N - 1; i++) for (int j = 1; j < N - 1; j++) u[i][j] = v[i][j];
          }
          double s = 0;
          for (int i = 0; i < N; i++) for (int j = 0; j < N; j++) s = s * 0.5 + u[i][j];
          printf("%.10e\\n", s);
          return 0;
        }"""
    n = 128
    first = totals(run(tmp_path, "grid5.c", text, [f"N={n}", "STEPS=5"]))
    second = totals(run(tmp_path, "grid10.c", text, [f"N={n}", "STEPS=10"]))
    assert first == second
    h2d, d2h = first
    assert (n * n - 4) * DOUBLE <= h2d <= 1.1 * (n * n - 4) * DOUBLE     # u, once; v is written first
    assert 0 < d2h <= 1.1 * n * n * DOUBLE                                 # u's interior, once


def test_host_code_between_steps_sees_device_data_and_the_device_sees_its_changes(tmp_path):
    report = run(tmp_path, "poke.c", """
        #include <stdio.h>
        #include <stdlib.h>
        int main(void) {
          int n = 100000;
          double *a = malloc(sizeof(double) * n), *b = malloc(sizeof(double) * n);
          for (int i = 0; i < n; i++) a[i] = i % 7;
          for (int t = 0; t < 20; t++) {
            for (int i = 0; i < n; i++) b[i] = a[i] * 0.5 + 1.0;
            for (int i = 0; i < n; i++) a[i] = b[i];
            a[(t * 7919) % n] += b[(t * 104729) % n];      /* the host reads b and writes a */
          }
          double s = 0;
          for (int i = 0; i < n; i++) s = s * 0.5 + a[i];
          printf("%.10e\\n", s);
          return 0;
        }""")
    h2d, d2h = totals(report)
    assert 0 < d2h <= 20 * 2 * 8192 + 100000 * DOUBLE          # pages per step, the array once
    assert 0 < h2d <= 20 * 8192 + 100000 * DOUBLE


@pytest.mark.parametrize("verify", ["program", "both"])
def test_a_partial_write_does_not_return_garbage_to_the_host(tmp_path, verify):
    run(tmp_path, "stride.c", """
        #include <stdio.h>
        #include <stdlib.h>
        int main(void) {
          int n = 50001;
          double *a = malloc(sizeof(double) * n), *b = malloc(sizeof(double) * n);
          for (int i = 0; i < n; i++) { a[i] = -1.0 - i; b[i] = i; }
          for (int i = 1; i < n - 1; i += 2) a[i] = 2.0 * b[i];       /* odd elements only */
          double s = 0;
          for (int i = 0; i < n; i++) s = s * 0.75 + a[i];
          printf("%.10e %.3f %.3f\\n", s, a[0], a[n - 1]);
          return 0;
        }""", verify=verify)


@pytest.mark.parametrize("verify", ["program", "both"])
def test_io_realloc_free_host_functions_and_indirect_reads(tmp_path, verify):
    run(tmp_path, "traps.c", """
        #include <stdio.h>
        #include <stdlib.h>
        static double host_sum(const double *p, int n) {      /* host code reading device data */
          double s = 0;
          for (int i = 0; i < n; i++) s = s * 0.5 + p[i];
          return s;
        }
        int main(void) {
          int n = 40000;
          double *a = malloc(sizeof(double) * n), *c = malloc(sizeof(double) * n);
          int *idx = malloc(sizeof(int) * n);
          for (int i = 0; i < n; i++) { idx[i] = (i * 37) % n; c[i] = 0; }
          for (int i = 0; i < n; i++) a[i] = 0.5 * i;                   /* on the device */
          FILE *f = tmpfile();
          fwrite(a, sizeof(double), n, f);                              /* the kernel reads a */
          rewind(f);
          for (int i = 0; i < n; i++) c[i] = 3.0;                       /* c is on the device */
          if (fread(c, sizeof(double), n, f) != (size_t)n) return 3;    /* the kernel writes c */
          fclose(f);
          for (int i = 0; i < n; i++) a[i] = c[idx[i]] + 1.0;           /* indirect: all of c */
          printf("%.10e\\n", host_sum(a, n));
          a = realloc(a, sizeof(double) * 2 * n);                       /* its data comes back */
          for (int i = n; i < 2 * n; i++) a[i] = 1.0;
          for (int i = 0; i < 2 * n; i++) a[i] = a[i] * 2.0;
          printf("%.10e\\n", host_sum(a, 2 * n));
          free(a); free(c); free(idx);
          return 0;
        }""", verify=verify)


def test_triangular_writes_need_nothing_copied_in(tmp_path):
    report = run(tmp_path, "tri.c", """
        #include <stdio.h>
        #define N 300
        double a[N][N], l[N][N];
        int main(void) {
          for (int i = 0; i < N; i++) for (int j = 0; j < N; j++) a[i][j] = (i * 31 + j * 17) % 11 - 5.0;
          for (int i = 0; i < N; i++)
            for (int j = 0; j <= i; j++) l[i][j] = a[i][j] * 0.5 + a[j][i];
          for (int i = 0; i < N; i++)
            for (int j = i + 1; j < N; j++) l[i][j] = -1.0;        /* no iteration at all for i = N-1 */
          double s = 0;
          for (int i = 0; i < N; i++) for (int j = 0; j < N; j++) s = s * 0.999 + l[i][j];
          printf("%.10e\\n", s);
          return 0;
        }""")
    assert all(r["device_runs"] == 1 for r in report["regions"])
    assert totals(report)[0] == 0                          # every element is written before it is read
    assert totals(report)[1] >= 300 * 300 * DOUBLE         # the host reads all of l

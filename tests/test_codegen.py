"""Kernel generation: every sample region becomes CUDA that nvcc accepts, with a C twin gcc
accepts; C semantics survive the move to C++; unsupported regions are rejected with reasons."""

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from offloader.analysis import analyze_program
from offloader.buildopts import BuildOptions
from offloader.codegen.cpu_twin import generate_twin
from offloader.codegen.kernel import KernelError, Variant, generate_kernel, generate_module, kernel_preamble
from offloader.codegen.regions import find_regions, top_level_types

SAMPLES = sorted((Path(__file__).resolve().parent.parent / "samples").glob("*.c"))


def regions_of(path):
    result = analyze_program(BuildOptions(sources=(str(path),)))
    regions, rejected = find_regions(result)
    return result, regions, rejected


def program(tmp_path, code):
    src = tmp_path / "case.c"
    src.write_text(textwrap.dedent(code))
    return regions_of(src)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_every_sample_region_compiles_with_nvcc_for_sm75_and_sm90(sample, tmp_path):
    result, regions, _ = regions_of(sample)
    if not regions:
        pytest.skip(f"{sample.name} has no region")
    source = tmp_path / "module.cu"
    preamble = kernel_preamble(top_level_types(result))
    source.write_text(generate_module([generate_kernel(r, Variant(), preamble) for r in regions], preamble))
    done = subprocess.run(["nvcc", "--fatbin", "-gencode", "arch=compute_75,code=sm_75",
                           "-gencode", "arch=compute_90,code=sm_90", "-o", str(tmp_path / "m.fatbin"),
                           str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_every_region_has_a_c_twin_that_gcc_compiles(sample, tmp_path):
    result, regions, _ = regions_of(sample)
    types = top_level_types(result)
    for region in regions:
        twin = tmp_path / f"{region.name}.c"
        twin.write_text(generate_twin(region, types))
        done = subprocess.run(["gcc", "-std=gnu11", "-Wall", "-Werror", "-Wno-unused-variable", "-c", "-o",
                               str(tmp_path / "t.o"), str(twin)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def test_regions_are_outermost_parallel_nests_with_up_to_three_mapped_loops(tmp_path):
    _, regions, _ = program(tmp_path, """
        double a[8][8][8][8];
        void f(void) {
          for (int i = 0; i < 8; i++)
            for (int j = 0; j < 8; j++)
              for (int k = 0; k < 8; k++)
                for (int l = 0; l < 8; l++)
                  a[i][j][k][l] = i + j + k + l;
        }""")
    assert len(regions) == 1
    assert [v.header.var for v in regions[0].mapped] == ["i", "j", "k"]
    text = generate_kernel(regions[0], Variant(), "").text
    assert "int k = (int)" in text and "threadIdx.x" in text.split("int k = (int)")[0].rsplit("for (", 1)[1]
    assert "for (l = 0" in text or "for (int l = 0" in text           # the fourth stays in the thread


def test_c_conversions_are_explicit_and_cxx_keywords_renamed(tmp_path):
    result, regions, _ = program(tmp_path, """
        #include <math.h>
        #include <stdlib.h>
        float x[64]; int n[64]; double y[64];
        void f(int new) {
          for (int i = 0; i < 64; i++) y[i] = sqrt(x[i]) + abs(n[i] - new) + sqrtf(x[i]);
        }""")
    text = generate_kernel(regions[0], Variant(), "").text
    assert "sqrt((double)(x[i]))" in text and "sqrtf((float)(x[i]))" in text
    assert "abs((int)(n[i] - new_))" in text and "int new_" in text


def test_triangular_bounds_are_recomputed_per_outer_iteration(tmp_path):
    _, regions, _ = program(tmp_path, """
        double a[32][32];
        void f(void) {
          for (int i = 0; i < 32; i++)
            for (int j = i + 1; j < 32; j++)
              a[i][j] = 1.0;
        }""")
    text = generate_kernel(regions[0], Variant(), "").text
    assert "__n1 = __offload_trip((long long)(i + 1), (long long)(32), 1LL)" in text


def test_reductions_get_a_fixed_order_final_pass_or_atomics(tmp_path):
    _, regions, _ = program(tmp_path, """
        double a[100];
        double f(void) { double s = 0, m = -1e300;
          for (int i = 0; i < 100; i++) { s += a[i]; m = a[i] > m ? a[i] : m; }
          return s + m; }""")
    region = regions[0]
    tree = generate_kernel(region, Variant(), "")
    assert tree.final_name == "offload_region_0_final" and "__syncthreads();" in tree.text
    assert tree.arguments == ("param:a", "init:m", "part:m", "init:s", "part:s")
    with pytest.raises(KernelError, match="`\\+` only"):
        generate_kernel(region, Variant(reduction="atomic"), "")
    with pytest.raises(KernelError, match="distinct grid axes"):
        generate_kernel(region, Variant(axes=(1,)), "")


def test_atomic_variant_for_sums(tmp_path):
    _, regions, _ = program(tmp_path, """
        float a[100];
        float f(void) { float s = 0; for (int i = 0; i < 100; i++) s += a[i]; return s; }""")
    atomic = generate_kernel(regions[0], Variant(reduction="atomic"), "")
    assert "atomicAdd(__out_s, __r_s);" in atomic.text and atomic.final_name is None


def test_pure_helpers_become_device_functions(tmp_path):
    _, regions, _ = program(tmp_path, """
        static double twice(double v) { return 2 * v; }
        static double quad(double v) { return twice(twice(v)); }
        double a[16];
        void f(void) { for (int i = 0; i < 16; i++) a[i] = quad(i); }""")
    text = generate_kernel(regions[0], Variant(), "").text
    assert "__device__ double twice(double v);" in text and "__device__ double quad(double v)\n{" in text


def test_unsupported_regions_are_rejected_with_a_reason(tmp_path):
    _, regions, rejected = program(tmp_path, """
        struct pt { double x, y; };
        double a[16];
        static double len2(struct pt q) { return q.x * q.x + q.y * q.y; }
        double f(struct pt p) {
          double t = 0;
          for (int i = 0; i < 16; i++) { t = a[i] * 2; a[i] = t; }
          for (int i = 0; i < 16; i++) a[i] = len2(p);
          for (int i = 0; i < 16; i++) a[i] = p.x;
          return t;
        }""")
    reasons = {r.location.split(":")[1]: r.reason for r in rejected}
    assert "read after the loop" in reasons["7"]
    assert "struct value used as a whole" in reasons["8"]
    assert [r.top.loop.location.line for r in regions] == [9]          # p.x: a field, passed by value
    assert [p.name for p in regions[0].params] == ["a", "p.x"]


def test_row_pointer_arrays_are_rejected(tmp_path):
    _, regions, rejected = program(tmp_path, """
        void f(int n, int m, double **a) {
          for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++) a[i][j] = 0;
        }""")
    assert not regions and "holds pointers" in rejected[0].reason

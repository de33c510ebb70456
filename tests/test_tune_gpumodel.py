"""The GPU performance model on real programs: each is analysed, run and verified on the
emulated device with its build folder kept, and the run's call shapes, plans and kernels are
modeled for named GPUs. No GPU needed; the ptxas tests need nvcc."""

import json
import math
from pathlib import Path

import pytest

from offloader.analysis import analyze_program
from offloader.buildopts import BuildOptions
from offloader.codegen.regions import find_regions, top_level_types
from offloader.device.nvcc import KernelResources, find_nvcc
from offloader.runtime.run import RunOptions, run_program
from offloader.tune import gpumodel
from offloader.tune.gpumodel import (ModelError, compare_with_measured, gpu_spec, gpu_specs, iterations,
                                     model_program, model_run, occupancy, ptxas_resources)
from offloader.tune.opcount import region_ops
from offloader.tune.replay import load_recorded_runs
from sizing.gpu_models import PCIE_X16_GBPS

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")


def ops_of(path, defines=()):
    result = analyze_program(BuildOptions((str(path),), defines=tuple(defines)))
    regions, _ = find_regions(result)
    return {r.id: region_ops(r, top_level_types(result)) for r in regions}


class Kept:
    """A verified emulated run with its build folder, and the program's operation counts."""

    def __init__(self, path, folder, defines=()):
        options = BuildOptions((str(path),), defines=tuple(defines))
        self.report = run_program(options, RunOptions(device="emu", workdir=str(folder))).to_json()
        assert self.report["verified"], self.report["failures"]
        self.folder = next(Path(folder).rglob("plans.json")).parent
        self.plans = json.loads((self.folder / "plans.json").read_text())
        self.ops = ops_of(path, defines)

    def model(self, gpu, ptx=None):
        """Registers assumed unless given: ptxas has its own tests, and nvcc takes seconds."""
        return model_program(self.report, self.plans, self.ops, gpu, ptx or {})

    def region(self, gpu, rid):
        return next(r for r in self.model(gpu).regions if r.region == rid)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def matmul(tmp_path_factory):
    return Kept(SAMPLES / "matmul.c", tmp_path_factory.mktemp("matmul"), ("N=64",))


# ---- operation counts ---------------------------------------------------------------------------
KERNELS = """#include <math.h>
void k(int n, float a, float *restrict x, float *restrict y, double *restrict d, double *restrict e)
{
    for (int i = 0; i < n; i++)
        y[i] = a * x[i] + y[i];
    for (int i = 0; i < n; i++)
        d[i] = 0.5 * x[i] + sqrtf(x[i]) / 2.0f;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++)
            e[i * n + j] = d[i] * e[i * n + j] - 1.0;
        d[i] = sqrt(d[i]);
    }
}
"""


def test_operations_are_counted_by_the_type_they_are_computed_in(tmp_path):
    ops = ops_of(write(tmp_path, "k.c", KERNELS))
    counts = {rid: {g.loops: (g.fp32, g.fp64) for g in o.groups} for rid, o in ops.items()}
    saxpy, mixed, nest = (ops[rid] for rid in sorted(ops))
    # y[i] = a*x[i] + y[i] in float: one multiply, one add
    assert counts[saxpy.region] == {saxpy.mapped: (2, 0)}
    # 0.5*x[i] is a double multiply and the sum a double add; sqrtf (4) and / 2.0f (4) are FP32
    assert counts[mixed.region] == {mixed.mapped: (8, 2)}
    # the inner loop's statement per (i, j), sqrt (4) per i
    (outer,) = nest.mapped
    inner = next(loops for loops in counts[nest.region] if len(loops) == 2)
    assert inner[0] == outer
    assert counts[nest.region] == {inner: (0, 2), (outer,): (0, 4)}
    assert type(saxpy).from_json(json.loads(json.dumps(saxpy.to_json()))) == saxpy


def test_struct_fields_and_helpers_are_counted(tmp_path):
    ops = ops_of(SAMPLES / "nbody.c")
    # dx, dy, dz: 3; r2: 3 * and 3 +; inv: / (4), * and sqrt (4); fx, fy, fz += dx*inv: 6
    assert [(g.fp32, g.fp64) for g in ops[1].groups] == [(0, 24)]
    ops = ops_of(SAMPLES / "linearised.c")
    # weight(i, j): sin and cos (8 each), five more double operations (the call's line)
    assert [(g.fp64, g.lines) for g in ops[2].groups] == [(21, (52,))]


# ---- iteration counts -------------------------------------------------------------------------------
def poly(*terms):
    return [[list(symbols), coeff] for symbols, coeff in terms]


TRIANGLE = {"L0": {"lowers": [poly()], "uppers": [poly((("n",), 1), ((), -1))], "step": 1},
            "L1": {"lowers": [poly((("L0",), 1), ((), 1))], "uppers": [poly((("n",), 1), ((), -1))], "step": 1}}


def test_a_triangular_nest_runs_n_n_minus_1_over_2_times(monkeypatch):
    assert iterations(("L0", "L1"), TRIANGLE, {"n": 1000}) == (1000 * 999 // 2, [])
    assert iterations(("L0",), TRIANGLE, {"n": 1000}) == (1000, [])
    assert iterations(("L0", "L1"), TRIANGLE, {}) == (1, ["L0", "L1"])
    monkeypatch.setattr(gpumodel, "MAX_POINTS", 64)         # sampled beyond the limit
    count, _ = iterations(("L0", "L1"), TRIANGLE, {"n": 1000})
    assert count == pytest.approx(1000 * 999 / 2, rel=0.02)


def test_triangular_pairs_are_counted_from_a_run(tmp_path):
    kept = Kept(SAMPLES / "nbody.c", tmp_path, ("NB=64", "STEPS=2"))
    pairs = kept.region("a100", 4)                         # for i; for j = i + 1: 19 FP64 each
    assert pairs.fp64_flops == 19 * 64 * 63 / 2


# ---- bytes, compute, waves -------------------------------------------------------------------------
def test_a_matrix_product_is_compute_heavier_than_saxpy_of_the_same_bytes(matmul, tmp_path):
    saxpy = Kept(SAMPLES / "saxpy.c", tmp_path, ("N=10923", "REPS=1")).region("h100", 0)
    product = matmul.region("h100", 1)
    assert product.compulsory_bytes == pytest.approx(saxpy.compulsory_bytes, rel=0.05)
    assert product.fp64_flops == 2 * 64 ** 3 and saxpy.fp32_flops == 2 * 10923
    assert product.fp64_flops / product.compulsory_bytes > 20 * saxpy.fp32_flops / saxpy.compulsory_bytes
    assert saxpy.shapes[0]["bound"] == "memory" and product.shapes[0]["bound"] != "memory"
    assert product.kernel_seconds > 3 * saxpy.kernel_seconds


PRECISIONS = """#include <stdio.h>
#define N 4096
float xf[N];
double xd[N];
int main(void)
{
    double sum = 0.0;
    for (int i = 0; i < N; i++) {
        xf[i] = (float)(i % 7);
        xd[i] = (double)(i % 5);
    }
    for (int i = 0; i < N; i++) {
        float s = xf[i];
        for (int k = 0; k < 1000; k++)
            s = s * 0.999f + 0.5f;
        xf[i] = s;
    }
    for (int i = 0; i < N; i++) {
        double s = xd[i];
        for (int k = 0; k < 1000; k++)
            s = s * 0.999 + 0.5;
        xd[i] = s;
    }
    for (int i = 0; i < N; i++)
        sum += xf[i] + xd[i];
    printf("checksum %.6e\\n", sum);
    return 0;
}
"""


def test_fp64_is_much_slower_on_a_t4_than_on_an_a100_and_fp32_is_not(tmp_path):
    kept = Kept(write(tmp_path, "precisions.c", PRECISIONS), tmp_path / "build")
    t4, a100 = gpu_spec("t4").board, gpu_spec("a100").board
    single, double = kept.region("t4", 1), kept.region("t4", 2)
    single_a, double_a = kept.region("a100", 1), kept.region("a100", 2)
    assert single.fp32_flops == 2 * 1000 * 4096 and double.fp64_flops == 2 * 1000 * 4096
    assert single.shapes[0]["bound"] == "compute" and double.shapes[0]["bound"] == "compute"
    fp32_ratio = single.kernel_seconds / single_a.kernel_seconds
    fp64_ratio = double.kernel_seconds / double_a.kernel_seconds
    assert fp32_ratio <= a100.fp32_tflops / t4.fp32_tflops
    assert fp64_ratio > 10
    # the two loops differ in precision only: the ratios differ by the boards' FP64 rates
    expected = (t4.fp32_tflops / t4.fp64_tflops) / (a100.fp32_tflops / a100.fp64_tflops)
    assert fp64_ratio / fp32_ratio == pytest.approx(expected, rel=0.05)


TRANSPOSE = """#include <stdio.h>
#define N 768
float a[N][N], b[N][N], c[N][N];
int main(void)
{
    double sum = 0.0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            a[i][j] = (float)((i * 3 + j) % 11);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            b[i][j] = 2.0f * a[i][j];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            c[i][j] = 2.0f * a[j][i];
    for (int i = 0; i < N; i++)
        sum += b[i][7] + c[3][i];
    printf("checksum %.6e\\n", sum);
    return 0;
}
"""


def test_a_column_strided_access_costs_more_bytes_than_a_row_access(tmp_path):
    kept = Kept(write(tmp_path, "transpose.c", TRANSPOSE), tmp_path / "build")
    row, column = kept.region("t4", 1), kept.region("t4", 2)     # 4.5 MiB: more than the T4's L2
    matrix = 4 * 768 * 768
    assert row.compulsory_bytes == column.compulsory_bytes == 2 * matrix
    assert row.dram_bytes == row.compulsory_bytes
    assert column.dram_bytes == 8 * matrix + matrix              # a sector per element read
    assert column.kernel_seconds > 3 * row.kernel_seconds
    swapped = {**kept.plans, "1": {**kept.plans["1"], "axes": [0, 1]}}     # i on threadIdx.x
    model = model_program(kept.report, swapped, kept.ops, "t4", {})
    assert next(r for r in model.regions if r.region == 1).dram_bytes == 2 * 8 * matrix
    row, column = kept.region("h100", 1), kept.region("h100", 2)  # in a 50 MB L2 sectors are reused
    assert column.dram_bytes == row.dram_bytes
    assert column.shapes[0]["cache_bytes"] > 4 * row.shapes[0]["cache_bytes"]


def test_a_tiny_grid_is_dominated_by_launch_overhead_and_unused_sms(tmp_path):
    tiny = Kept(SAMPLES / "saxpy.c", tmp_path, ("N=1000", "REPS=1")).region("h100", 0)
    (shape,) = tiny.shapes
    assert shape["grid"] == [4, 1, 1] and shape["waves"] == 1
    assert tiny.launch_seconds > tiny.kernel_seconds > 10 * tiny.roofline_seconds


# ---- occupancy and ptxas ------------------------------------------------------------------------
def test_occupancy_is_limited_by_the_scarcest_resource():
    t4, h100 = gpu_spec("t4"), gpu_spec("h100")
    assert occupancy(t4, (256, 1, 1), KernelResources(registers=32)) == (4, "warps")
    assert occupancy(t4, (128, 1, 1), KernelResources(registers=96)) == (5, "registers")
    assert occupancy(h100, (32, 1, 1), KernelResources(registers=16)) == (32, "blocks")
    assert occupancy(h100, (256, 1, 1), KernelResources(registers=16, shared_bytes=48 << 10)) == (4, "shared memory")
    with pytest.raises(ModelError):
        occupancy(t4, (1024, 1, 1), KernelResources(registers=255))


@needs_nvcc
def test_ptxas_gives_registers_of_generated_kernels_once(matmul, tmp_path, monkeypatch):
    monkeypatch.setenv("OFFLOAD_EMU_CACHE", str(tmp_path))
    source = (matmul.folder / "kernels.cu").read_text()
    found = ptxas_resources(source, "t4")
    kernels = {p["kernel"] for p in matmul.plans.values()} | {p["final"] for p in matmul.plans.values() if p["final"]}
    assert kernels <= set(found) and all(found[k].registers > 0 for k in kernels)
    assert found[matmul.plans["3"]["kernel"]].shared_bytes > 0       # the reduction's tree
    monkeypatch.setattr(gpumodel, "check", lambda *a, **k: pytest.fail("nvcc ran again"))
    assert ptxas_resources(source, "t4") == found
    model = model_run(matmul.report, matmul.folder, matmul.ops, "t4")
    assert {r.resources for r in model.regions} == {"ptxas sm_75"}
    assert "Xptxas" in model.inputs.sources["occupancy"]


@needs_nvcc
def test_kernels_nvcc_rejects_are_a_model_error(tmp_path, monkeypatch):
    monkeypatch.setenv("OFFLOAD_EMU_CACHE", str(tmp_path))
    with pytest.raises(ModelError, match="sm_90"):
        ptxas_resources('extern "C" __global__ void k(int *x) { x[0] = nope; }', "h200")


# ---- outputs -----------------------------------------------------------------------------------------
def test_outputs_are_labelled_modeled_and_state_their_inputs(matmul):
    model = matmul.model("a100")
    data = json.loads(json.dumps(model.to_json()))
    assert data["timing"] == "modeled" and {r["timing"] for r in data["regions"]} == {"modeled"}
    assert data["inputs"]["gpu"]["fp64_tflops"] == 9.7 and "assumed" in data["inputs"]["sources"]["occupancy"]
    assert all("registers assumed" in " ".join(r["notes"]) for r in data["regions"])
    assert data["gpu_seconds"] == pytest.approx(sum(r.gpu_seconds for r in model.regions))
    region = model.regions[1]
    assert region.transfer_seconds == pytest.approx(region.h2d_bytes / 25e9 + 10e-6)


def test_the_model_is_compared_with_measurements_only(matmul):
    model = matmul.model("h200")
    with pytest.raises(ValueError, match="emulated"):
        compare_with_measured(model, matmul.report)
    measured = {**matmul.report, "timing": "measured", "device": "NVIDIA H200",
                "regions": [{**r, "kernel_seconds": 2 * m.kernel_seconds, "transfer_seconds": 0.0}
                            for r, m in zip(matmul.report["regions"], model.regions)]}
    rows = compare_with_measured(model, measured)
    assert [row["kernel_error"] for row in rows] == [pytest.approx(-0.5)] * len(model.regions)
    assert {row["transfer_error"] for row in rows} == {None}


def test_every_gpu_model_has_its_figures():
    assert set(gpu_specs()) == {"t4", "a100", "h100", "h200"}
    for spec in gpu_specs().values():
        assert spec.link_gbps <= PCIE_X16_GBPS[spec.board.pcie_gen]
        assert spec.max_warps_per_sm * 32 == spec.max_threads_per_sm
        assert math.isclose(spec.board.peak_flops("fp32"), spec.board.fp32_tflops * 1e12)
    with pytest.raises(ValueError, match="known"):
        gpu_spec("v100x")


# ---- replay of GPU recordings ----------------------------------------------------------------------
ROOT = SAMPLES.parent
RECORDED = sorted((ROOT / "results" / "gpu").glob("*.json"))       # scripts/gpu-check.sh on a GPU
PARTIAL = Path(__file__).parent / "fixtures" / "gpu" / "partial-check.json"


@pytest.mark.parametrize("path", [PARTIAL, *RECORDED], ids=lambda p: p.name)
def test_recorded_gpu_runs_are_modeled_again_and_what_is_missing_is_not_recorded(path):
    """Each sample's run a GPU check recorded is modeled again from its call shapes and plans
    and compared with its measured times; a sample whose run was not recorded says why. On a
    real recording the model must land within a factor of 100 of every kernel that ran 0.1 ms
    or more: a sanity bound (the errors themselves are in the check's result)."""
    runs = load_recorded_runs(path)
    if not runs:
        pytest.skip(f"{path.name} holds no sample runs")
    gpu = (json.loads(path.read_text()).get("gpu") or {}).get("model") or "h200"
    assert any(run.recorded for run in runs) or all(run.reason for run in runs)
    for run in runs:
        if not run.recorded:
            assert run.reason and run.plans is None
            continue
        report = dict(run.report)
        model = model_program(report, run.plans, ops_of(ROOT / run.sample, run.defines), gpu, {})
        rows = compare_with_measured(model, report)
        ran = {r["id"] for r in report["regions"] if r["device_runs"] and r["shapes"]}
        assert {row["region"] for row in rows if row["status"] == "compared"} == ran
        for row in (row for row in rows if row["status"] == "compared"):
            assert row["kernel_error"] is None or math.isfinite(row["kernel_error"])
            if path != PARTIAL and row["measured_kernel_seconds"] >= 1e-4:
                assert 0.01 <= row["modeled_kernel_seconds"] / row["measured_kernel_seconds"] <= 100, row


def test_a_region_the_measured_run_lacks_is_not_recorded(matmul):
    model = matmul.model("h200")
    first = model.regions[0].region
    measured = {**matmul.report, "timing": "measured",
                "regions": [r for r in matmul.report["regions"] if r["id"] != first]}
    rows = {row["region"]: row for row in compare_with_measured(model, measured)}
    assert rows[first]["status"] == "not_recorded" and "kernel_error" not in rows[first]
    assert {row["status"] for region, row in rows.items() if region != first} == {"compared"}

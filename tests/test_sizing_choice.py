"""Choosing a configuration from hand-made profiles: price caps, deadlines, the `ratio` worked
example, memory limits, scheduler policies, MIG, and profiles measured on another GPU."""

import pytest
from sizing_support import GIB, catalog_text, write_profile

from sizing.catalog import load_catalog
from sizing.profile import load_profile
from sizing.sizer import Options, size


def _size(tmp_path, catalog=None, profile=None, **options):
    profile_path = write_profile(tmp_path / "app", **(profile or {}))
    cat_path = None
    if catalog is not None:
        cat_path = tmp_path / "catalog.toml"
        cat_path.write_text(catalog)
    return size(load_profile(profile_path), load_catalog(cat_path), Options(**options))


def _by_config(doc):
    return {c["config"]: c for c in doc["candidates"]}


# Tc = 10 s (single-threaded, so flat), Tg = 20 s on a whole T4; with the default prices and a busy
# board the costs per run (x 3600) are: half+quarter 90 s x 0.20 = 18.0, standard+quarter 22.5,
# double+quarter 31.5, half+half 50 s x 0.35 = 17.5, standard+half 20, double+half 25,
# half+whole 30 s x 0.65 = 19.5, standard+whole 21, double+whole 24.
@pytest.mark.parametrize("max_price,deadline,expected", [
    (None, None, "half + half-T4"),
    (0.30, None, "half + quarter-T4"),
    (None, 40, "half + whole-T4"),
    (0.66, 40, "half + whole-T4"),
    (None, 60, "half + half-T4"),
    (0.4, 45, None),            # the cheap ones are too slow, the fast ones too dear
    (0.1, None, None),
])
def test_cost_perf_optimum_under_price_caps_and_deadlines(tmp_path, max_price, deadline, expected):
    doc = _size(tmp_path, max_price=max_price, deadline=deadline)
    rec = doc["recommendation"]
    assert (rec["config"] if rec else None) == expected
    times = {c["config"]: c["predicted_seconds"] for c in doc["candidates"]}
    assert times["double + quarter-T4"] == 90 and times["half + half-T4"] == 50 and times["standard + whole-T4"] == 30
    if rec:
        assert rec["cost_per_run"] == pytest.approx(dict(zip(
            ("half + half-T4", "half + quarter-T4", "half + whole-T4"), (17.5, 18.0, 19.5)))[expected] / 3600)
        assert {"cpu", "gpu", "vcpus", "fraction", "vgpu_type", "price_per_hour", "predicted_seconds",
                "cost_per_run"} <= set(rec)
    else:
        assert all(not c["feasible"] and c["reason"] for c in doc["candidates"])


def test_ties_in_cost_go_to_the_faster(tmp_path):
    # CPU part scales perfectly (40 s, 20 s measured; 10 s extrapolated for 4 vCPUs), Tg = 4 s.
    # standard+quarter: (20 + 16) x 0.25 = 9.0; double+half: (10 + 8) x 0.50 = 9.0, and faster.
    doc = _size(tmp_path, profile=dict(cpu_part_seconds=40, gpu_kernel_seconds=4, cpu_scaling={
        "1": {"seconds": 4.0, "kind": "measured"}, "2": {"seconds": 2.0, "kind": "measured"}}))
    rec = doc["recommendation"]
    assert rec["config"] == "double + half-T4" and rec["predicted_seconds"] == pytest.approx(18)
    assert rec["cpu_kind"] == "extrapolated"
    assert _by_config(doc)["standard + quarter-T4"]["cost_per_run"] == pytest.approx(rec["cost_per_run"])
    assert _by_config(doc)["standard + quarter-T4"]["cpu_kind"] == "measured"


@pytest.mark.parametrize("max_price,expected", [
    (0.8, "standard + whole-T4"),   # the worked example: ratio 0.5 pairs, the larger one
    (None, "standard + whole-T4"),
    (0.5, "half + half-T4"),        # only the smaller ratio-0.5 pair fits
    (0.3, "half + quarter-T4"),     # ratio 1 is closer to 0.5 than ratio 2 on a log scale
])
def test_ratio_worked_example(tmp_path, max_price, expected):
    doc = _size(tmp_path, policy="ratio", max_price=max_price)
    assert doc["ratio"]["rho"] == pytest.approx(0.5)
    assert doc["recommendation"]["config"] == expected
    if max_price == 0.8:
        assert doc["recommendation"]["price_per_hour"] == pytest.approx(0.70)


def test_ratio_and_cost_perf_disagree_and_the_output_says_why(tmp_path):
    doc = _size(tmp_path, max_price=0.8)
    assert doc["policy"] == "cost-perf" and doc["recommendation"]["config"] == "half + half-T4"
    comparison = doc["comparison"]
    assert comparison["policy"] == "ratio" and comparison["choice"]["config"] == "standard + whole-T4"
    assert comparison["cost_per_run_difference"] == pytest.approx((21 - 17.5) / 3600)
    assert comparison["relative_difference"] == pytest.approx(0.2)
    text = comparison["explanation"]
    assert "ratio would choose standard + whole-T4" in text and "(+20.0%) per run" in text
    assert "1.67x faster at 2.00x the hourly price, so each run costs more" in text
    assert "rho = Tc/Tg = 0.5" in text
    # and the other way round
    doc = _size(tmp_path, max_price=0.8, policy="ratio")
    assert doc["comparison"]["choice"]["config"] == "half + half-T4"
    assert "(-16.7%) per run" in doc["comparison"]["explanation"]


def test_pareto_front(tmp_path):
    doc = _size(tmp_path)
    # half+whole (30 s, 19.5) and half+half (50 s, 17.5) beat everything else on both counts
    assert doc["pareto"] == ["half + whole-T4", "half + half-T4"]
    assert [c["config"] for c in doc["candidates"] if c["pareto"]] == ["half + half-T4", "half + whole-T4"]


def test_memory_that_does_not_fit_is_infeasible_with_the_reason(tmp_path):
    doc = _size(tmp_path, profile=dict(device_memory_bytes=6 * GIB, host_memory_bytes=12 * GIB))
    by = _by_config(doc)
    assert by["double + quarter-T4"]["reason"] == ("device memory peak 6.00 GiB does not fit the 4 GiB "
                                                   "framebuffer of T4-4C")
    assert by["half + half-T4"]["reason"] == "host memory peak 12.00 GiB does not fit the VM's 8 GiB"
    assert by["half + quarter-T4"]["reason"].count("does not fit") == 2
    assert doc["recommendation"]["config"] == "standard + half-T4"
    doc = _size(tmp_path, profile=dict(device_memory_bytes=20 * GIB))
    assert doc["recommendation"] is None
    assert all("framebuffer" in c["reason"] for c in doc["candidates"])


def test_best_effort_ranges_from_idle_to_busy(tmp_path):
    doc = _size(tmp_path)                       # default catalog: best-effort
    quarter = _by_config(doc)["half + quarter-T4"]
    assert (quarter["predicted_seconds_idle"], quarter["predicted_seconds_busy"]) == (30, 90)
    assert quarter["predicted_seconds"] == 90 and quarter["gpu_kind"] == "modeled"
    idle = _size(tmp_path, assume_idle=True)
    assert _by_config(idle)["half + quarter-T4"]["predicted_seconds"] == 30
    assert idle["recommendation"]["config"] == "half + quarter-T4"     # every slice is a whole board when idle
    half_full = _size(tmp_path, board_occupancy=2)
    assert _by_config(half_full)["half + quarter-T4"]["predicted_seconds_busy"] == 50


def test_equal_share_and_fixed_share(tmp_path):
    equal = _size(tmp_path, catalog=catalog_text(policy="equal-share"), board_occupancy=2)
    times = {c["gpu"]: c["gpu_seconds"] for c in equal["candidates"] if c["cpu"] == "half"}
    assert times == {"quarter-T4": 40, "half-T4": 40, "whole-T4": 20}
    assert "predicted_seconds_idle" not in equal["candidates"][0]
    full = _size(tmp_path, catalog=catalog_text(policy="equal-share"))
    assert {c["gpu"]: c["gpu_seconds"] for c in full["candidates"] if c["cpu"] == "half"} == {
        "quarter-T4": 80, "half-T4": 40, "whole-T4": 20}
    fixed = _size(tmp_path, catalog=catalog_text(policy="fixed-share"), board_occupancy=1)
    assert {c["gpu"]: c["gpu_seconds"] for c in fixed["candidates"] if c["cpu"] == "half"} == {
        "quarter-T4": 80, "half-T4": 40, "whole-T4": 20}
    assert _by_config(fixed)["half + whole-T4"]["gpu_kind"] == "measured"


H200_REGIONS = [
    # memory-bound everywhere: 0.1 s of roofline on an H200 (4.8e11 B / 4800 GB/s), 1.5 s on a T4 (x15)
    {"id": 0, "line": 12, "kernel_seconds": 0.2, "transfer_seconds": 0.3, "flops": 1e9, "bytes": 4.8e11},
    # compute-bound fp32: 6.7e12 flops take 0.1 s on an H200 (67 TFLOP/s), 0.827 s on a T4 (8.1 TFLOP/s)
    {"id": 1, "line": 30, "kernel_seconds": 0.5, "transfer_seconds": 0.1, "flops": 6.7e12, "bytes": 1e9,
     "precision": "fp32"},
]


def test_profile_from_another_gpu_is_translated_and_labelled_modeled(tmp_path):
    doc = _size(tmp_path, catalog=catalog_text(policy="fixed-share"), profile=dict(
        device="NVIDIA H200", cpu_part_seconds=1.0, gpu_kernel_seconds=0.7, transfer_seconds=0.4,
        regions=H200_REGIONS))
    whole = _by_config(doc)["half + whole-T4"]
    board_kernel = 0.2 * 15 + 0.5 * (6.7e12 / 8.1e12) / 0.1
    assert whole["gpu_seconds"] == pytest.approx(board_kernel)
    assert whole["transfer_seconds"] == pytest.approx(0.4 * 63 / 15.75)       # PCIe Gen5 -> Gen3
    assert whole["gpu_kind"] == whole["transfer_kind"] == "modeled"
    assert _by_config(doc)["half + quarter-T4"]["gpu_seconds"] == pytest.approx(4 * board_kernel)
    note = next(n for n in doc["notes"] if "H200" in n)
    assert "measured on H200 and modeled for T4" in note and "4800 GB/s" in note and "320 GB/s" in note
    # the same profile sized for an H200 catalog keeps its measured times
    same = _size(tmp_path, catalog=catalog_text(policy="fixed-share", model="H200"), profile=dict(
        device="NVIDIA H200", gpu_kernel_seconds=0.7, transfer_seconds=0.4, regions=H200_REGIONS))
    whole = _by_config(same)["half + whole-H200"]
    assert (whole["gpu_seconds"], whole["gpu_kind"], whole["transfer_kind"]) == (0.7, "measured", "measured")


def test_mig_divides_by_the_fraction_that_bounds_each_region(tmp_path):
    gpus = [dict(name=name, fraction=c / 7, framebuffer_gib=fb, vgpu_type=f"A100-{name}", max_instances=7 // c,
                 price_per_hour=p, compute_fraction=f"{c}/7", memory_fraction=f"{m}/8")
            for name, c, m, fb, p in (("1g.5gb", 1, 1, 5, 0.2), ("3g.20gb", 3, 4, 20, 0.6), ("7g.40gb", 7, 8, 40, 1.4))]
    regions = [{"id": 0, "kernel_seconds": 1.0, "flops": 1e9, "bytes": 1.555e12},     # memory-bound on an A100
               {"id": 1, "kernel_seconds": 2.0, "flops": 1e13, "bytes": 1e9, "precision": "fp32"}]  # compute-bound
    doc = _size(tmp_path, catalog=catalog_text(policy="mig", model="A100", gpus=gpus), profile=dict(
        device="NVIDIA A100-SXM4-40GB", gpu_kernel_seconds=3.0, regions=regions))
    gpu = {c["gpu"]: c["gpu_seconds"] for c in doc["candidates"] if c["cpu"] == "half"}
    assert gpu["1g.5gb"] == pytest.approx(1.0 * 8 + 2.0 * 7)
    assert gpu["3g.20gb"] == pytest.approx(1.0 * 8 / 4 + 2.0 * 7 / 3)
    assert gpu["7g.40gb"] == pytest.approx(3.0)
    assert all(c["gpu_kind"] == "modeled" for c in doc["candidates"])
    assert any("MIG" in n for n in doc["notes"])

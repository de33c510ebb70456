#!/usr/bin/env python3
"""Benchmark of the emulated device: what a launch costs on the host CPU.

Measures, per execution order: the overhead of launching an empty kernel (1 block of 1
thread; the time launch() reports, and the whole Python call with its checks), the throughput of a trivial kernel over 1M threads (vector add, 4096 blocks of
256), and a shared-memory tree reduction of 1M floats with __syncthreads (so fibers); plus
the time to compile the kernel text cold (empty cache) and warm.  These are CPU wall times
of the emulator ("measured-on-cpu"); they say nothing about a GPU.  Targets: 1M trivial
threads in < 0.05 s and the reduction in < 0.4 s, in the forward order.

Writes results/bench/emulator.json.
Usage: .venv/bin/python benchmarks/bench_emulator.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "results" / "bench"
TARGETS_S = {"vector_add_1M": 0.05, "shared_reduction_1M": 0.4}
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import machine  # noqa: E402

from offloader.device.emulated import ORDERS, EmulatedDevice, ExecutionOrder  # noqa: E402

# Separate texts: a module whose text calls __syncthreads runs all its kernels as fibers.
PLAIN = """
extern "C" __global__ void nothing(void) {}
extern "C" __global__ void vector_add(const float *a, const float *b, float *c, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        c[i] = a[i] + b[i];
}
"""
REDUCTION = """
extern "C" __global__ void block_sum(const float *x, float *partial, int n)
{
    __shared__ float s[256];
    int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
    s[t] = i < n ? x[i] : 0.0f;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (t < stride)
            s[t] += s[t + stride];
        __syncthreads();
    }
    if (t == 0)
        partial[blockIdx.x] = s[0];
}
"""
N = 1 << 20


def compile_times() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as cache:
        os.environ["OFFLOAD_EMU_CACHE"] = cache
        dev = EmulatedDevice()
        t0 = time.perf_counter()
        dev.compile(PLAIN)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        dev.compile(PLAIN)
        warm = time.perf_counter() - t0
    del os.environ["OFFLOAD_EMU_CACHE"]
    return {"compile_cold_s": round(cold, 4), "compile_warm_s": round(warm, 5)}


def launches(order: ExecutionOrder, runs: int) -> dict[str, float]:
    dev = EmulatedDevice(order)
    plain, reduction = dev.compile(PLAIN), dev.compile(REDUCTION)
    a = (np.arange(N) % 7).astype(np.float32)
    xa, xb, xc, partial = dev.alloc(a.nbytes), dev.alloc(a.nbytes), dev.alloc(a.nbytes), dev.alloc(4096 * 4)
    dev.copy_to_device(xa, a)
    dev.copy_to_device(xb, a)
    empty, calls = [], []
    for _ in range(50 * runs):
        t0 = time.perf_counter()
        empty.append(dev.launch(plain, "nothing", (1,), (1,), []))
        calls.append(time.perf_counter() - t0)
    vadd = [dev.launch(plain, "vector_add", (N // 256,), (256,), [xa, xb, xc, np.int32(N)]) for _ in range(runs)]
    reduce = [dev.launch(reduction, "block_sum", (N // 256,), (256,), [xa, partial, np.int32(N)]) for _ in range(runs)]
    sums = np.empty(4096, np.float32)
    dev.copy_to_host(partial, sums)
    assert sums.sum() == a.sum(), "the reduction is wrong"
    return {"empty_launch_us": round(statistics.median(empty) * 1e6, 1),
            "empty_launch_call_us": round(statistics.median(calls) * 1e6, 1),
            "vector_add_1M_s": round(statistics.median(vadd), 4),
            "shared_reduction_1M_s": round(statistics.median(reduce), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = ap.parse_args(argv)
    per_order = {kind: launches(ExecutionOrder(kind, 1), args.runs) for kind in ORDERS}
    forward = per_order["forward"]
    report = {
        "kind": "measured-on-cpu",
        "device_kind": "emulated",
        "benchmark": "emulated-device launch overhead and throughput (host CPU cost, not GPU time)",
        "runs": args.runs,
        "workers": EmulatedDevice().workers,
        **compile_times(),
        "orders": per_order,
        "targets_s": TARGETS_S,
        "meets_targets": all(forward[f"{k}_s"] < v for k, v in TARGETS_S.items()),
        **machine(),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / "emulator.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"bench_emulator: forward: empty launch {forward['empty_launch_us']} us "
          f"({forward['empty_launch_call_us']} us per call), 1M-thread vector add "
          f"{forward['vector_add_1M_s']} s, 1M shared reduction {forward['shared_reduction_1M_s']} s "
          f"(targets {'met' if report['meets_targets'] else 'MISSED'}); shuffle: "
          f"{per_order['shuffle']['vector_add_1M_s']} s / {per_order['shuffle']['shared_reduction_1M_s']} s; "
          f"compile {report['compile_cold_s']} s cold -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

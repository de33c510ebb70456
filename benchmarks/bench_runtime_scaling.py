"""How the runtime's host-side cost grows with array size: programs of our own
(benchmarks/programs/) at 1M, 4M, 16M and 64M elements, every region on the emulated device.
Writes results/bench/runtime_scaling.json.

Per program and size, from `offload run --json`:
- the CPU original's time (the plain program, measured) and its time outside the regions
  (less what the C runtime measured in the regions' loops in an all-CPU run of the
  instrumented build);
- the offloaded run's host-side time by component (all measured on this CPU): the
  dispatcher's own work, the fault handler's own work, copies to the device and back, and,
  apart, making device copies (`alloc`: the emulator fills fresh memory, labelled emulated
  like the kernels);
- the steady-state cost of one call of the time-step region (its dispatcher work less the
  preparation of calls unlike the ones before, per call, over CALLS steps) and the cost of
  preparing one (`first_call`: footprints, extents, checks, arguments). Twice: after an emulated kernel, which streams the
  arrays through this CPU's caches so the host code after it runs cold (`cold`), and with
  the kernels not run (`warm`, benchmarks/null_kernel: what a GPU run, whose kernel leaves
  the host's caches alone, pays; such runs are not verified);
- copy and read-back throughput against a memcpy into pages in the same state: warm pages
  for copies to the device (the host filled the arrays first) and for read-back after
  host-filled arrays, fresh pages (never touched) for read-back of data the device made.

Where kernel time starts and ends: the emulator's entry call alone (the blocks' threads
start and join inside it); argument checks, guard checks and everything after the entry
returns are host time. The 10-step case of the issue runs `swap_steps` as it was reported.
Under 10 minutes on a 2-core machine.
"""

from __future__ import annotations

import json
import mmap
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import numpy as np  # noqa: E402

from machine import machine  # noqa: E402
from offloader.buildopts import BuildOptions  # noqa: E402
from offloader.runtime.run import PreparedProgram, RunOptions  # noqa: E402

PROGRAMS = os.path.join(ROOT, "benchmarks", "programs")
SIZES = (1 << 20, 1 << 22, 1 << 24, 1 << 26)
STEPS = 3                      # time steps of the verified runs
CALLS = 12                     # time steps of the runs that give the steady state
TARGETS = {"dispatch_seconds_per_call": 100e-6, "flat_within": 2.0, "throughput_share": 0.5, "host_side_ratio": 1.5}
# program -> (arguments for a size and a step count, whether a region runs per time step)
CASES = {
    "stencil1d": (lambda n, t: [str(n), str(t)], True),
    "stencil2d": (lambda n, t: [str(_side(n)), str(t)], True),
    "everyother": (lambda n, t: [str(_side(n)), str(t)], True),
    "column": (lambda n, t: [str(_side(n)), str(t)], True),
    "initread": (lambda n, t: [str(n)], False),
}
ISSUE_SIZES = (1 << 20, 1 << 22, 1 << 24)     # the issue's 1M, 4M, 16M (as 2^20...)


def _side(n: int) -> int:
    return int(round(n ** 0.5))


def run(prepared: PreparedProgram, args: list[str], *, regions="all", verify="program", warm=False) -> dict:
    options = RunOptions(gpu_regions=regions, device="emu", verify=verify if not warm else "none",
                         args=tuple(args), timeout=900, memory_limit=16 << 30, skip_kernels=warm)
    report = prepared.run(options).to_json()
    if not warm and verify != "none" and not report["verified"]:
        raise SystemExit(f"bench_runtime_scaling: {args}: not verified: {report['failures'][:1]}")
    return report


def stepping_region(report: dict) -> dict:
    return max(report["regions"], key=lambda r: r["calls"])


def components(report: dict) -> dict:
    regions = report["regions"]
    total = lambda key: sum(r.get(key, 0) for r in regions)  # noqa: E731
    host = report["total_seconds"] - total("kernel_seconds") - total("alloc_seconds")
    return {"total_seconds": report["total_seconds"], "host_side_seconds": host,
            "dispatch_seconds": total("dispatch_seconds"), "fault_seconds": total("fault_seconds"),
            "h2d_seconds": total("h2d_seconds"), "d2h_seconds": total("d2h_seconds"),
            "alloc_seconds_emulated": total("alloc_seconds"), "kernel_seconds_emulated": total("kernel_seconds"),
            "h2d_bytes": total("h2d_bytes"), "d2h_bytes": total("d2h_bytes"),
            "h2d_copies": total("h2d_copies"), "d2h_copies": total("d2h_copies"), "faults": total("faults")}


def memcpy_rates(nbytes: int) -> dict:
    """Bytes per second of a memcpy of `nbytes` into pages never touched (fresh) and into pages
    already present (warm), the destination mapped like the runtime's blocks (no huge pages)."""
    source = np.ones(nbytes, dtype=np.uint8)
    rates = {}
    for state in ("fresh", "warm"):
        samples = []
        for _ in range(3):
            target = mmap.mmap(-1, nbytes)
            view = np.frombuffer(target, dtype=np.uint8)
            if state == "warm":
                view[:] = 0
            started = time.perf_counter()
            view[:] = source
            samples.append(nbytes / (time.perf_counter() - started))
            del view
            target.close()
        rates[state] = statistics.median(samples)
    return rates


def case(name: str, size: int, work: str) -> dict:
    arguments, stepping = CASES[name]
    prepared = PreparedProgram(BuildOptions(sources=(os.path.join(PROGRAMS, f"{name}.c"),)),
                               os.path.join(work, f"{name}-{size}"))
    cpu = run(prepared, arguments(size, STEPS), regions="none", verify="none")
    once = run(prepared, arguments(size, STEPS))
    row = {"program": name, "elements": size, "args": arguments(size, STEPS),
           "cpu_original_seconds": once["cpu_seconds"],
           "cpu_outside_regions_seconds": max(once["cpu_seconds"] - sum(r["cpu_seconds"] for r in cpu["regions"]), 0.0),
           "offloaded": components(once)}
    region = stepping_region(once)
    if stepping:
        for state, warm in (("cold", False), ("warm", True)):
            stepped = stepping_region(run(prepared, arguments(size, CALLS), verify="none", warm=warm))
            row[f"dispatch_per_call_{state}_seconds"] = (
                (stepped["dispatch_seconds"] - stepped["prepare_seconds"]) / stepped["device_runs"])
            row[f"first_call_{state}_seconds"] = stepped["prepare_seconds"] / max(stepped["prepared_calls"], 1)
    else:
        row["first_call_cold_seconds"] = region["prepare_seconds"] / max(region["prepared_calls"], 1)
    parts = row["offloaded"]
    rates = memcpy_rates(min(max(parts["h2d_bytes"], parts["d2h_bytes"], 1 << 20), 1 << 29))
    readback_state = "fresh" if name == "initread" else "warm"
    row["h2d"] = _throughput(parts["h2d_bytes"], parts["h2d_seconds"], rates["warm"], "warm")
    row["readback"] = _throughput(parts["d2h_bytes"], parts["d2h_seconds"], rates[readback_state], readback_state)
    print(f"  {name:10s} {size >> 20:3d}M: dispatch/call cold "
          f"{row.get('dispatch_per_call_cold_seconds', 0) * 1e6:7.1f} us, warm "
          f"{row.get('dispatch_per_call_warm_seconds', 0) * 1e6:6.1f} us; h2d {row['h2d']['share'] or 0:.2f}, "
          f"read-back {row['readback']['share'] or 0:.2f} of memcpy", flush=True)
    return row


def _throughput(nbytes: int, seconds: float, memcpy: float, state: str) -> dict:
    rate = nbytes / seconds if seconds > 0 and nbytes else None
    return {"bytes": nbytes, "seconds": seconds, "bytes_per_second": rate, "memcpy_bytes_per_second": memcpy,
            "pages": state, "share": rate / memcpy if rate else None}


def issue_case(size: int, work: str) -> dict:
    """The issue's 10-step stencil: host-side time (less emulated materialisation) against
    the CPU original's time outside the moved regions plus the copies' memcpy time."""
    prepared = PreparedProgram(BuildOptions(sources=(os.path.join(PROGRAMS, "swap_steps.c"),)),
                               os.path.join(work, f"swap_steps-{size}"))
    args = [str(size), "10"]
    cpu = run(prepared, args, regions="none", verify="none")
    offloaded = run(prepared, args)
    parts = components(offloaded)
    outside = max(offloaded["cpu_seconds"] - sum(r["cpu_seconds"] for r in cpu["regions"]), 0.0)
    rates = memcpy_rates(max(parts["h2d_bytes"], parts["d2h_bytes"], 1 << 20))
    copies = (parts["h2d_bytes"] + parts["d2h_bytes"]) / rates["warm"]
    ratio = parts["host_side_seconds"] / (outside + copies) if outside + copies > 0 else None
    print(f"  swap_steps {size >> 20:3d}M, 10 steps: host side {parts['host_side_seconds']:.4f} s against "
          f"{outside:.4f} s outside the regions + {copies:.4f} s of memcpy: {ratio:.2f}x", flush=True)
    return {"elements": size, "steps": 10, "cpu_original_seconds": offloaded["cpu_seconds"],
            "cpu_outside_regions_seconds": outside, "copies_memcpy_seconds": copies, "offloaded": parts,
            "host_side_ratio": ratio}


def verdicts(rows: list[dict], issue: list[dict]) -> dict:
    warm = [r["dispatch_per_call_warm_seconds"] for r in rows if "dispatch_per_call_warm_seconds" in r]
    cold = [r["dispatch_per_call_cold_seconds"] for r in rows if "dispatch_per_call_cold_seconds" in r]
    shares = [t["share"] for r in rows for t in (r["h2d"], r["readback"]) if t["share"] is not None]
    ratios = [c["host_side_ratio"] for c in issue if c["host_side_ratio"] is not None]
    return {
        "dispatch_per_call_warm_max_seconds": max(warm),
        "dispatch_per_call_cold_max_seconds": max(cold),
        "dispatch_within_target_warm": max(warm) <= TARGETS["dispatch_seconds_per_call"],
        "dispatch_within_target_cold": max(cold) <= TARGETS["dispatch_seconds_per_call"],
        "dispatch_flat_warm": max(warm) <= TARGETS["flat_within"] * max(min(warm), 1e-7),
        "throughput_min_share": min(shares),
        "throughput_within_target": min(shares) >= TARGETS["throughput_share"],
        "host_side_ratio_max": max(ratios),
        "host_side_within_target": max(ratios) <= TARGETS["host_side_ratio"],
    }


def main() -> None:
    started = time.perf_counter()
    work = tempfile.mkdtemp(prefix="offload-bench-scaling-")
    rows = []
    for size in SIZES:
        for name in CASES:
            rows.append(case(name, size, work))
    issue = [issue_case(size, work) for size in ISSUE_SIZES]
    record = {"kind": "measured", "what": "host-side cost of the runtime at real sizes, on the emulated device",
              "timing": {"host": "measured on this CPU", "kernels_and_alloc": "emulated"},
              "kernel_time": "the emulator's entry call alone; checks before it and everything after it "
                             "returns are host time",
              "steps": STEPS, "targets": TARGETS, "cases": rows, "issue_stencil": issue,
              "verdicts": verdicts(rows, issue), "seconds": time.perf_counter() - started, **machine()}
    out = os.path.join(ROOT, "results", "bench", "runtime_scaling.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as handle:
        json.dump(record, handle, indent=2)
    print(f"bench_runtime_scaling: {json.dumps(record['verdicts'])} in {record['seconds']:.0f} s -> {out}")


if __name__ == "__main__":
    main()

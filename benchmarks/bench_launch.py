"""Host-side cost of one region launch: the runtime's bookkeeping per call (reading the
variables, the no-alias check, transfers of a tiny array, the launch call).

A generated program calls a 16-element region CALLS times. It runs with the region on the
device and with it on the CPU; per call, cost = (offloaded - CPU) / CALLS, and the bookkeeping
is that cost less the device's own kernel and copy time. Writes results/bench/launch.json (or
--out). On the emulated device (the default) times are measured on this CPU and the kernel
itself is emulated; `--device cuda` measures the same on a GPU (scripts/gpu-check.sh does).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from machine import machine  # noqa: E402
from offloader.buildopts import BuildOptions  # noqa: E402
from offloader.runtime.run import RunOptions, run_program  # noqa: E402

CALLS = 2000
PROGRAM = """
#include <stdio.h>
#include <stdlib.h>
int main(void) {{
  double *a = malloc(16 * sizeof(double));
  double s = 0;
  for (int i = 0; i < 16; i++) a[i] = i;
  for (int r = 0; r < {calls}; r++) {{
    for (int i = 0; i < 16; i++) a[i] = a[i] * 0.5 + 1.0;
    s += a[r % 16];
  }}
  printf("%.6f\\n", s);
  free(a);
  return 0;
}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("emu", "cuda"), default="emu")
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "bench", "launch.json"))
    options = parser.parse_args()
    calls = options.calls
    work = tempfile.mkdtemp(prefix="offload-bench-launch-")
    source = os.path.join(work, "launch.c")
    with open(source, "w") as handle:
        handle.write(PROGRAM.format(calls=calls))
    build = BuildOptions(sources=(source,))
    samples, device = [], None
    for _ in range(options.repeats):
        on = run_program(build, RunOptions(gpu_regions="all", device=options.device, verify="none")).to_json()
        off = run_program(build, RunOptions(gpu_regions="none", device=options.device, verify="none")).to_json()
        region = next(r for r in on["regions"] if r["calls"] == calls)
        per_call = (on["total_seconds"] - off["total_seconds"]) / calls
        kernel_and_copies = (region["kernel_seconds"] + region["transfer_seconds"]) / calls
        samples.append((per_call, kernel_and_copies))
        device = on["device"]
    per_call = statistics.median(s[0] for s in samples)
    kernel_and_copies = statistics.median(s[1] for s in samples)
    label = "emulated" if options.device == "emu" else "measured"
    record = {
        "kind": "measured",
        "what": f"host-side cost of one region launch on the {'emulated device' if label == 'emulated' else 'GPU'}",
        "device": device, "calls": calls, "repeats": options.repeats,
        "per_call_seconds_median": round(per_call, 7),
        f"{label}_kernel_and_copy_seconds_per_call": round(kernel_and_copies, 7),
        "bookkeeping_seconds_per_call": round(per_call - kernel_and_copies, 7),
        "note": ("kernel and copy times are the emulator's (emulated); the full launch on a GPU is "
                 "measured by scripts/gpu-check.sh when a GPU host is available") if label == "emulated" else
                "kernel times by CUDA events, copies by the runtime's clock, both measured on the GPU",
        **machine(),
    }
    os.makedirs(os.path.dirname(os.path.abspath(options.out)), exist_ok=True)
    with open(options.out, "w") as handle:
        json.dump(record, handle, indent=2)
    print(f"bench_launch: {per_call * 1e6:.1f} us per region call on {device}, of which "
          f"{(per_call - kernel_and_copies) * 1e6:.1f} us runtime bookkeeping -> {options.out}")


if __name__ == "__main__":
    main()

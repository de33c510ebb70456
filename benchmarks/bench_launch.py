"""Host-side cost of one region launch: the runtime's bookkeeping per call on the emulated
device (reading the variables, the no-alias check, transfers of a tiny array, the launch call).

A generated program calls a 16-element region CALLS times. It runs with the region on the
emulated device and with it on the CPU; per call, cost = (offloaded - CPU) / CALLS, and the
bookkeeping is that cost less the emulator's own kernel and copy time. Writes
results/bench/launch.json. Times are measured on this CPU; the kernel itself is emulated.
"""

from __future__ import annotations

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
PROGRAM = f"""
#include <stdio.h>
#include <stdlib.h>
int main(void) {{
  double *a = malloc(16 * sizeof(double));
  double s = 0;
  for (int i = 0; i < 16; i++) a[i] = i;
  for (int r = 0; r < {CALLS}; r++) {{
    for (int i = 0; i < 16; i++) a[i] = a[i] * 0.5 + 1.0;
    s += a[r % 16];
  }}
  printf("%.6f\\n", s);
  free(a);
  return 0;
}}
"""


def main() -> None:
    work = tempfile.mkdtemp(prefix="offload-bench-launch-")
    source = os.path.join(work, "launch.c")
    with open(source, "w") as handle:
        handle.write(PROGRAM)
    options = BuildOptions(sources=(source,))
    samples = []
    for _ in range(3):
        on = run_program(options, RunOptions(gpu_regions="all", device="emu", verify="none")).to_json()
        off = run_program(options, RunOptions(gpu_regions="none", device="emu", verify="none")).to_json()
        region = next(r for r in on["regions"] if r["calls"] == CALLS)
        per_call = (on["total_seconds"] - off["total_seconds"]) / CALLS
        device = (region["kernel_seconds"] + region["transfer_seconds"]) / CALLS
        samples.append((per_call, device))
    per_call = statistics.median(s[0] for s in samples)
    device = statistics.median(s[1] for s in samples)
    record = {
        "kind": "measured", "what": "host-side cost of one region launch on the emulated device",
        "calls": CALLS, "per_call_seconds_median": round(per_call, 7),
        "emulated_kernel_and_copy_seconds_per_call": round(device, 7),
        "bookkeeping_seconds_per_call": round(per_call - device, 7),
        "note": "kernel and copy times are the emulator's (emulated); the full launch on a GPU is "
                "measured by scripts/gpu-check.sh when a GPU host is available",
        **machine(),
    }
    out = os.path.join(ROOT, "results", "bench", "launch.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as handle:
        json.dump(record, handle, indent=2)
    print(f"bench_launch: {per_call * 1e6:.1f} us per region call on the emulated device, of which "
          f"{(per_call - device) * 1e6:.1f} us runtime bookkeeping -> {out}")


if __name__ == "__main__":
    main()

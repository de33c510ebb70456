"""Bytes moved between host and device for samples/swap_stencil.c with T and 2T time steps,
against the bounds issue 3 sets: host-to-device at most 1.1x what the GPU reads before it
writes it, device-to-host at most 1.1x what the host reads afterwards, both the same for T
and 2T. Byte counts are exact (counted by the runtime); times are not recorded. Writes
results/bench/transfers.json.
"""

from __future__ import annotations

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from machine import machine  # noqa: E402
from offloader.buildopts import BuildOptions  # noqa: E402
from offloader.runtime.run import RunOptions, run_program  # noqa: E402

N, STEPS = 512, 25
DOUBLE = 8


def main() -> None:
    source = os.path.join(ROOT, "samples", "swap_stencil.c")
    gpu_reads_first = (N * N - 4 + 4 * (N - 2)) * DOUBLE      # all of a but corners, then b's edges
    host_reads_after = N * N * DOUBLE                          # the checksum reads the final grid
    runs = {}
    for steps in (STEPS, 2 * STEPS):
        report = run_program(BuildOptions(sources=(source,), defines=(f"N={N}", f"STEPS={steps}")),
                             RunOptions(device="emu", verify="program")).to_json()
        if not report["verified"]:
            sys.exit(f"bench_transfers: not verified: {report['failures']}")
        runs[steps] = {"h2d_bytes": sum(r["h2d_bytes"] for r in report["regions"]),
                       "d2h_bytes": sum(r["d2h_bytes"] for r in report["regions"]),
                       "region_calls": sum(r["device_runs"] for r in report["regions"])}
    first = runs[STEPS]
    record = {
        "kind": "measured", "what": "bytes moved by samples/swap_stencil.c on the emulated device",
        "n": N, "steps": sorted(runs), "runs": {str(k): v for k, v in runs.items()},
        "gpu_reads_before_writing_bytes": gpu_reads_first, "host_reads_after_bytes": host_reads_after,
        "h2d_ratio": round(first["h2d_bytes"] / gpu_reads_first, 4),
        "d2h_ratio": round(first["d2h_bytes"] / host_reads_after, 4),
        "same_for_t_and_2t": runs[STEPS] == {**runs[2 * STEPS], "region_calls": first["region_calls"]},
        **machine(),
    }
    out = os.path.join(ROOT, "results", "bench", "transfers.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as handle:
        json.dump(record, handle, indent=2)
    print(f"bench_transfers: h2d {record['h2d_ratio']}x of what the GPU reads first, d2h "
          f"{record['d2h_ratio']}x of what the host reads after, same for T and 2T: "
          f"{record['same_for_t_and_2t']} -> {out}")


if __name__ == "__main__":
    main()

"""Step `fault`: the round trip of a host fault through the runtime's own fault path.

fault_roundtrip.c has a region write the first n doubles of a file-scope array (which the
runtime watches by page protection) on the device; host code then reads them, so each page
faults and the C runtime copies its units back from the device (hostprog/residency.c). The
program times its host loop; the same loop in the CPU original, which never faults, is the
baseline. Per round: the extra seconds, the bytes the runtime counted as copied back, and the
pages (faults) that took. Sizes: 4 KiB, 1 MiB and 4 MiB."""

from __future__ import annotations

import os
from pathlib import Path

from offloader.buildopts import BuildOptions
from offloader.runtime.run import PreparedProgram, RunOptions

from .stepio import Context, StepOutput

PROGRAM = Path(__file__).with_name("fault_roundtrip.c")
PAGE = os.sysconf("SC_PAGE_SIZE")                              # what the runtime protects
SIZES = ((4 << 10, 400), (1 << 20, 40), (4 << 20, 10))         # bytes, rounds


def run(context: Context, out: StepOutput) -> int:
    workdir = Path(context.work) / "fault"
    prepared = PreparedProgram(BuildOptions((str(PROGRAM),)), str(workdir))
    sizes = SIZES[1:2] if context.smoke else SIZES
    rows, problems = [], []
    for nbytes, rounds in sizes:
        times = workdir / f"host-read-{nbytes}.txt"
        times.unlink(missing_ok=True)
        # Program-level verification only: region verification would read the pages back itself.
        report = prepared.run(RunOptions(device=context.device, verify="program", timeout=60,
                                         args=(str(nbytes // 8), str(rounds), str(times))),
                              tag=f"bytes-{nbytes}").to_json()
        seconds = [float(line) for line in times.read_text().split()] if times.exists() else []
        (region,) = [r for r in report["regions"] if r["device_runs"]] or [None]
        row = {"bytes": nbytes, "rounds": rounds, "verified": report["verified"], "timing": report["timing"],
               "device": report["device"]}
        if not report["verified"] or region is None or len(seconds) != 3:
            problems.append(f"{nbytes} bytes: {report['mismatch'] or 'no host-read times or no device run'}")
            rows.append({**row, "reason": report["mismatch"] or "the program wrote no host-read times"})
            out.set(sizes=rows)
            continue
        cpu, offloaded = min(seconds[:2]), seconds[2]          # the CPU original ran twice, first
        pages = -(-nbytes // PAGE)
        extra = (offloaded - cpu) / rounds
        rows.append({**row, "host_read_seconds_cpu": cpu / rounds, "host_read_seconds_offloaded": offloaded / rounds,
                     "round_trip_seconds": extra, "pages": pages, "seconds_per_fault": extra / pages,
                     "copied_back_bytes_per_round": region["d2h_bytes"] / rounds,
                     "gbps": nbytes / extra / 1e9 if extra > 0 else None})
        out.set(sizes=rows)
    if problems:
        return out.finish("failed", "; ".join(problems))
    return out.finish("ok")

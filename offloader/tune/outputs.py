"""The files `offload tune` leaves in results/<app>/ for the later stages: plan.json (what to
offload and how; contracts/plan.py), profile.json (where the time goes, for the sizer; its
contract is sizing/profile.py) and trials.csv (every trial of the study). Each says whether
its times are measured or modeled."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Optional

from sizing.profile import SCHEMA as PROFILE_SCHEMA

from ..contracts.plan import SCHEMA as PLAN_SCHEMA
from ..contracts.run_report import RunReport
from ..hostprog.baseline import CpuBaseline
# The runtime's host-side work for a region, as the run report has it (measured on this host).
HOST_FIELDS = ("host_seconds", "dispatch_seconds", "fault_seconds", "faults", "h2d_copies", "d2h_copies")


def write_json(path: Path, data: dict) -> None:
    """Written whole or not at all: a reader never sees half a file."""
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(partial, path)


def plan_document(*, app: str, identity: dict, prepared, best_key: Optional[str], space, outcome, cpu_seconds: float,
                  verified: bool, verified_on: str, device: str, gpu_model: Optional[str], strategy: str,
                  measurements: int, reason_none: Optional[str], report: RunReport, plans: dict) -> dict:
    """plan.json. A region on the GPU carries its launch shape (`plans`: its KernelPlan; the
    grid per call shape as `report`, the chosen pattern's run, recorded it), so a later run or
    a reassociated reference can launch it exactly so, and the runtime's measured host-side
    work for it."""
    config = space.parse(best_key) if best_key else space.all_cpu()
    ran = {entry.id: entry.to_json() for entry in report.regions}
    regions = []
    for region in prepared.regions:
        settings = config.settings(str(region.id))
        row = {"id": region.id, "location": str(region.top.loop.location),
               "device": "gpu" if settings is not None else "cpu",
               "settings": dict(settings) if settings is not None else None}
        if settings is not None and region.id in plans:
            entry = ran.get(region.id, {})
            row["launch"] = {"block": list(plans[region.id].block), "waves": plans[region.id].waves,
                             "grids": [{"grid": shape.get("grid"), "values": shape["values"], "calls": shape["calls"]}
                                       for shape in entry.get("shapes", [])]}
            row["host"] = {key: entry.get(key, 0) for key in HOST_FIELDS}
            row["host"]["timing"] = "measured"
        regions.append(row)
    seconds = outcome.seconds if outcome is not None and outcome.ok else cpu_seconds
    return {"schema": PLAN_SCHEMA, "app": app, "source_hash": identity["source_hash"],
            "build_options": identity["build_options"], "args": identity["args"],
            "regions": regions, "gpu_regions": [int(r) for r in config.gpu_regions],
            "verified": verified, "verified_on": verified_on,
            "cpu_seconds": cpu_seconds, "offloaded_seconds": seconds,
            "speedup": cpu_seconds / seconds if seconds else None,
            "timing": outcome.kind if outcome is not None else "measured",
            "device": device, "gpu_model": gpu_model, "strategy": strategy, "measurements": measurements,
            "reason_none": reason_none}


def profile_document(*, app: str, kind: str, device: str, outcome, report: RunReport, model: Optional[dict],
                     cpu_seconds: float, region_cpu_seconds: dict[int, float], baseline: CpuBaseline) -> dict:
    """tune's part of profile.json (sizing/profile.py): the chosen pattern's time split into the
    CPU part, kernels and transfers, with peaks and a per-region breakdown: `regions` are those
    on the GPU, `cpu_regions` the rest, each with its measured time on one CPU core. The CPU
    part holds the runtime's host-side work for the GPU regions, given apart as
    `host_overhead_seconds` and per region as `host_seconds` (measured)."""
    modeled = {}
    for program in ((model or {}).get("models", []) if kind == "modeled" else [])[:1]:
        modeled = {r["region"]: r for r in program["regions"]}
    rows, cpu_rows, kernel_total, transfer_total, host_total, fp32, fp64 = [], [], 0.0, 0.0, 0.0, 0.0, 0.0
    for entry in report.regions:
        rid = entry.id
        on_gpu = entry.device_runs > 0
        if rid in modeled:
            m = modeled[rid]
            kernel = m["kernel_seconds"] + m["launch_seconds"]
            transfer, flops = m["transfer_seconds"], m["fp32_flops"] + m["fp64_flops"]
            nbytes, precision = m["dram_bytes"], "fp64" if m["fp64_flops"] > m["fp32_flops"] else "fp32"
            fp32, fp64 = fp32 + m["fp32_flops"], fp64 + m["fp64_flops"]
        elif on_gpu:
            kernel, transfer, flops, nbytes, precision = entry.kernel_seconds, entry.transfer_seconds, None, None, None
        else:
            cpu_rows.append({"id": rid, "line": entry.line, "cpu_seconds": region_cpu_seconds.get(rid)})
            continue
        kernel_total += kernel
        transfer_total += transfer
        host_total += entry.host_seconds
        rows.append({"id": rid, "line": entry.line, "kernel_seconds": kernel, "transfer_seconds": transfer,
                     "host_seconds": entry.host_seconds, "cpu_seconds": region_cpu_seconds.get(rid),
                     "flops": flops, "bytes": nbytes, "h2d_bytes": entry.h2d_bytes,
                     "d2h_bytes": entry.d2h_bytes, "precision": precision})
    total = outcome.seconds if outcome is not None and outcome.ok else cpu_seconds
    document = {"schema": PROFILE_SCHEMA, "app": app, "kind": kind, "device": device,
                "cpu_part_seconds": max(total - kernel_total - transfer_total, 0.0),
                "gpu_kernel_seconds": kernel_total, "transfer_seconds": transfer_total,
                "host_overhead_seconds": host_total, "host_overhead_timing": "measured",
                "device_memory_bytes": int(report.device_memory_peak_bytes or 0),
                "threads_used_by_cpu_part": 1, "regions": rows, "cpu_regions": cpu_rows,
                "baseline": {"fingerprint": baseline.fingerprint(), "build": baseline.describe()}}
    if report.cpu_peak_rss_bytes:
        document["host_memory_bytes"] = int(report.cpu_peak_rss_bytes)
    if fp32 or fp64:
        document["precision"] = "fp64" if fp64 > fp32 else "fp32"
    return document


def write_trials(path: Path, study) -> int:
    """trials.csv from the Optuna study: one row per trial, failures with their typed reason."""
    fields = ("number", "config", "gpu_regions", "status", "seconds", "kind", "reason", "cached")
    rows = 0
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for trial in study.get_trials(deepcopy=False):
            attrs = trial.user_attrs
            outcome = attrs.get("outcome", {})
            key = attrs.get("config", "")
            gpu = [part.split("=")[0] for part in key.split(";") if "=gpu" in part]
            writer.writerow({"number": trial.number, "config": key, "gpu_regions": " ".join(gpu),
                             "status": outcome.get("status", attrs.get("failed", trial.state.name.lower())),
                             "seconds": outcome.get("seconds", ""), "kind": outcome.get("kind", ""),
                             "reason": outcome.get("reason", attrs.get("failed", "")),
                             "cached": not attrs.get("measured", False)})
            rows += 1
    return rows

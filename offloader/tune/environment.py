"""What a tuning result was measured on: the host CPU, the compiler and flags of the CPU
baseline, and the GPU as NVML reports it. Timings mean little without these."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from ..hostprog.baseline import CpuBaseline


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(baseline: CpuBaseline, device_kind: str) -> dict:
    """The record every plan carries; NVML only when a GPU did the measuring."""
    record = {"host_cpu": cpu_model(), "host_cpus": os.cpu_count(),
              "compiler": baseline.identity()["compiler_version"],
              "baseline_flags": " ".join([*baseline.flags, baseline.options.cflags]).strip(),
              "baseline": baseline.describe()}
    if device_kind == "cuda":
        from vgpu.nvml import read_nvml

        nvml = read_nvml().to_json()
        record["gpu"] = {"driver_version": nvml["driver_version"], "unavailable": nvml["unavailable"],
                         "gpus": [{k: g[k] for k in ("index", "name", "pci_bus_id", "memory_mib", "mig")}
                                  for g in nvml["gpus"]]}
    return record

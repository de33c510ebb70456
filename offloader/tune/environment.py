"""What a tuning result was measured on: the host CPU, the compiler and flags of the CPU
baseline, and the GPU as NVML reports it. Timings mean little without these."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from ..hostprog.build import BASE_FLAGS
from ..hostprog.compiler import cc


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def compiler_version() -> str:
    try:
        done = subprocess.run([cc()[0], "--version"], capture_output=True, text=True, timeout=30)
        return done.stdout.splitlines()[0] if done.stdout else done.stderr.strip()
    except (OSError, subprocess.SubprocessError, IndexError) as exc:
        return f"unknown ({exc})"


def environment(cflags: str, device_kind: str) -> dict:
    """The record every plan carries; NVML only when a GPU did the measuring."""
    record = {"host_cpu": cpu_model(), "host_cpus": os.cpu_count(), "compiler": compiler_version(),
              "baseline_flags": " ".join([*BASE_FLAGS, cflags]).strip()}
    if device_kind == "cuda":
        from vgpu.nvml import read_nvml

        nvml = read_nvml().to_json()
        record["gpu"] = {"driver_version": nvml["driver_version"], "unavailable": nvml["unavailable"],
                         "gpus": [{k: g[k] for k in ("index", "name", "pci_bus_id", "memory_mib", "mig")}
                                  for g in nvml["gpus"]]}
    return record

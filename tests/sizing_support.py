"""Helpers for the sizing tests: hand-made profiles and catalogs, and the real `offload` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
GIB = 1 << 30



def profile_doc(**fields) -> dict:
    """A complete profile measured on a T4: Tc = 10 s single-threaded, Tg = 20 s, no transfers."""
    doc = {"schema": 1, "app": "demo", "kind": "measured", "device": "Tesla T4",
           "cpu_part_seconds": 10.0, "gpu_kernel_seconds": 20.0, "transfer_seconds": 0.0,
           "device_memory_bytes": 1 * GIB, "host_memory_bytes": 1 * GIB,
           "threads_used_by_cpu_part": 1, "regions": []}
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not None}


def write_profile(directory: Path, **fields) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "profile.json"
    path.write_text(json.dumps(profile_doc(**fields)))
    return path


def invoke(*args):
    """Run `offload ARGS` in-process; returns click's Result (exit_code, stdout, stderr)."""
    from offloader.cli import main
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def run_offload(*args, cwd=None) -> subprocess.CompletedProcess:
    """Run the real `offload` command line in a subprocess."""
    return subprocess.run([sys.executable, "-m", "offloader", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=120)


def catalog_text(policy="best-effort", model="T4", gpus=None) -> str:
    """The default CPU sizes with the given GPU slices, as TOML."""
    cpus = "".join(f'[[cpu]]\nname = "{n}"\nvcpus = {v}\nmemory_gib = {m}\nprice_per_hour = {p}\n\n'
                   for n, v, m, p in (("half", 1, 8, 0.05), ("standard", 2, 16, 0.10), ("double", 4, 32, 0.20)))
    if gpus is None:
        gpus = [dict(name=f"{label}-{model}", fraction=f, framebuffer_gib=16 * f, vgpu_type=f"{model}-{int(16 * f)}C",
                     max_instances=int(1 / f), price_per_hour=p)
                for label, f, p in (("quarter", 0.25, 0.15), ("half", 0.5, 0.30), ("whole", 1.0, 0.60))]
    tables = ""
    for gpu in gpus:
        gpu = {"model": model, **gpu}
        tables += "[[gpu]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in gpu.items()) + "\n"
    return f'[scheduler]\npolicy = "{policy}"\n\n{cpus}{tables}'

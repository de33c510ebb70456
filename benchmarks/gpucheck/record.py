"""The GPU check's result file: its fields, where the code it measured came from, and how it
is written (atomically, after every step, so what a killed check leaves is whole).

Every field is present from the start: a figure that was not measured is null, and the
`reason` beside it says why (a dry run, a step that overran, no time left).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import subprocess
import tarfile
import time
from pathlib import Path

SCHEMA = "offload.gpu-check/1"
MANIFEST = ".gpu-vendor/manifest.json"            # written by scripts/gpu-vendor.sh
DIGEST_FOLDERS = ("offloader", "sizing", "benchmarks", "samples", "scripts", "tests")
DIGEST_SUFFIXES = (".py", ".c", ".h", ".sh", ".toml", ".cu", ".cfg")
# ok; failed (it ran, and what it checks failed); overran (killed at its box); crashed (exited
# without saying how it went); skipped (no time left, or nothing to do here); not_run (not in
# GPU_CHECK_STEPS); interrupted (the check itself was stopped during it).
STEP_STATUSES = ("ok", "failed", "overran", "crashed", "skipped", "not_run", "interrupted")


GPU_FIELDS = ("name", "driver", "cuda_driver", "memory_bytes", "pci_bus_id", "count", "model")


def no_gpu(reason: str) -> dict:
    """The GPU fields, each null, and why."""
    return {**dict.fromkeys(GPU_FIELDS), "reason": reason}


def skeleton(mode: dict) -> dict:
    """The result before any step ran."""
    kind = "emulated" if mode["dry"] else "measured"
    return {"schema": SCHEMA, "kind": kind, "mode": mode, "started": now(), "finished": None,
            "wall_seconds": None, "commit": None, "host": None,
            "gpu": no_gpu("the preflight step has not run"),
            "libraries": None, "library": {"used": None, "why": "the contract step has not run"},
            "steps": {}, "figures": [], "recordings": [], "runs": []}


def source_digest(root: Path) -> str:
    """sha256 over the project's source files (paths and contents): says which code ran where
    there is no git history, as on the GPU host, which gets a copy of the working tree."""
    digest = hashlib.sha256()
    for folder in DIGEST_FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            if path.suffix in DIGEST_SUFFIXES and path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def commit_info(root: Path) -> dict:
    """The commit measured: $GPU_CHECK_COMMIT, else git, else the one scripts/gpu-vendor.sh
    recorded, trusted only as far as the source digest still matches it."""
    digest = source_digest(root)
    info = {"sha": None, "source": None, "dirty": None, "source_sha256": digest, "reason": None}
    given = os.environ.get("GPU_CHECK_COMMIT")
    if given:
        return {**info, "sha": given, "source": "GPU_CHECK_COMMIT"}
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=10)
        if sha and status.returncode == 0:
            return {**info, "sha": sha, "source": "git", "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        vendored = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return {**info, "reason": "no git history, no $GPU_CHECK_COMMIT and no .gpu-vendor/manifest.json"}
    same = vendored.get("source_sha256") == digest
    return {**info, "sha": vendored.get("commit"), "source": MANIFEST,
            "dirty": vendored.get("dirty") if same else True,
            "reason": None if same else "the source differs from that commit's (changed after gpu-vendor.sh ran)"}


def write_json(path: Path, data) -> None:
    """Atomically (a reader sees the old file or the new one, never half of one); strict JSON:
    infinities and NaN are written as the strings "inf", "-inf", "nan"."""
    staged = path.with_name(path.name + ".partial")
    staged.write_text(json.dumps(_finite(data), indent=1, allow_nan=False) + "\n")
    os.replace(staged, path)


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def bundle(files: list[Path], base: Path, target: Path) -> None:
    """The logs, as one .tar.gz (atomically): the whole result stays a few files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in files:
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(base)))
    staged = target.with_name(target.name + ".partial")
    staged.write_bytes(buffer.getvalue())
    os.replace(staged, target)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if value != value else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

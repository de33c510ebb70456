"""profile.json: the measured (or modeled) times the sizer predicts from. This module is its
contract: the writers (`offload tune`, `offload profile`) and the reader (the sizer) use it.

The file has two parts and each has one writer:
- `offload tune` owns the times (`write_tuned`): kernel and transfer times on the device that
  ran them, the CPU part, memory peaks, a per-region breakdown, and `baseline`, the CPU
  baseline they were measured against ({"fingerprint", "build"}, hostprog/baseline.py);
- `offload profile` owns SCALING_PART (`write_cpu_scaling`): the CPU baseline's time pinned
  to 1, 2, 4 ... cores, and the fit, which names the baseline it measured:

    "cpu_scaling": {"1": {"seconds": 2.01, "kind": "measured"},
                    "2": {"seconds": 1.07, "kind": "measured"},
                    "4": {"seconds": 0.60, "kind": "extrapolated"}},
    "cpu_scaling_fit": {"model": "amdahl", "serial_fraction": 0.06, "host_cores": 2,
                        "baseline": "3f9c...", ...}

Each writer replaces only its own part: a new tune keeps a scaling measured for the same
program and build, and drops (and says so) one measured for another.

Every field is checked here with an error that names the file and the field; the sizer then
only asks which of the fields it needs are present.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from offloader.errors import UserError
from offloader.userfiles import read_json_object

from .scaling import SCALING_KINDS, ScalingPoint
from .validate import Fields

SCHEMA = 1
SCALING_PART = ("cpu_scaling", "cpu_scaling_fit")
PROFILE_KINDS = ("measured", "modeled", "emulated")
PRECISIONS = ("fp32", "fp64")
GPU_FIELDS = ("kind", "device", "gpu_kernel_seconds", "transfer_seconds", "device_memory_bytes")
CPU_FIELDS = ("cpu_part_seconds", "host_memory_bytes", "threads_used_by_cpu_part")


@dataclass(frozen=True)
class Region:
    id: int
    line: int | None
    kernel_seconds: float
    transfer_seconds: float
    flops: float | None
    bytes: float | None
    precision: str | None       # fp32 or fp64 when the profile says


@dataclass(frozen=True)
class Profile:
    path: str
    app: str
    kind: str | None
    device: str | None
    cpu_part_seconds: float | None
    gpu_kernel_seconds: float | None
    transfer_seconds: float | None
    device_memory_bytes: int | None
    host_memory_bytes: int | None
    threads_used_by_cpu_part: int | None
    regions: tuple[Region, ...]
    cpu_scaling: dict[int, ScalingPoint]
    precision: str | None
    baseline: str | None = None                 # fingerprint of the CPU baseline tune measured against
    cpu_scaling_baseline: str | None = None     # ... and of the one `offload profile` pinned to cores

    def missing(self, names: tuple[str, ...]) -> list[str]:
        return [n for n in names if getattr(self, n) is None]


def load_profile(path: str | Path) -> Profile:
    path = Path(path)
    shown = str(path)
    f = Fields(read_json_object(path, "profile"), "", shown)
    schema = f.integer("schema", minimum=1)
    if schema > SCHEMA:
        f.fail(f"schema {schema} is newer than this offload understands ({SCHEMA})")
    return Profile(
        path=shown,
        app=f.string("app"),
        kind=f.string("kind", required=False, choices=PROFILE_KINDS),
        device=f.string("device", required=False),
        cpu_part_seconds=f.number("cpu_part_seconds", required=False),
        gpu_kernel_seconds=f.number("gpu_kernel_seconds", required=False),
        transfer_seconds=f.number("transfer_seconds", required=False),
        device_memory_bytes=f.integer("device_memory_bytes", required=False),
        host_memory_bytes=f.integer("host_memory_bytes", required=False),
        threads_used_by_cpu_part=f.integer("threads_used_by_cpu_part", required=False, minimum=1),
        regions=tuple(_region(r, i, shown) for i, r in enumerate(f.list("regions", required=False) or [])),
        cpu_scaling=_scaling(f.table.get("cpu_scaling"), shown),
        precision=f.string("precision", required=False, choices=PRECISIONS),
        baseline=_fingerprint(f.table.get("baseline"), "baseline", shown),
        cpu_scaling_baseline=_fingerprint(f.table.get("cpu_scaling_fit"), "cpu_scaling_fit", shown, "baseline"),
    )


def _fingerprint(table: object, where: str, file: str, key: str = "fingerprint") -> str | None:
    if table is None:
        return None
    return Fields(table, where, file).string(key, required=False)


def _region(table: object, index: int, file: str) -> Region:
    f = Fields(table, f"regions[{index}]", file)
    return Region(f.integer("id"), f.integer("line", required=False, minimum=1), f.number("kernel_seconds"),
                  f.number("transfer_seconds", required=False) or 0.0,
                  f.number("flops", required=False), f.number("bytes", required=False),
                  f.string("precision", required=False, choices=PRECISIONS))


def _scaling(table: object, file: str) -> dict[int, ScalingPoint]:
    if table is None:
        return {}
    top = Fields(table, "cpu_scaling", file)
    points = {}
    for key, entry in top.table.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) >= 1):
            top.fail(f"keys must be core counts such as \"1\", \"2\", \"4\"; got {key!r}")
        f = Fields(entry, f"cpu_scaling[{key!r}]", file)
        points[int(key)] = ScalingPoint(int(key), f.number("seconds", positive=True),
                                        f.string("kind", choices=SCALING_KINDS))
    if points and not any(p.kind == "measured" for p in points.values()):
        top.fail("has no measured point; run `offload profile` to measure it")
    return dict(sorted(points.items()))


def write_cpu_scaling(path: Path, app: str, points: dict[int, ScalingPoint], fit: dict) -> None:
    """`offload profile`'s part: create profile.json with the CPU scaling, or replace just
    SCALING_PART in an existing one. `fit["baseline"]` names the baseline that was measured."""
    data = _existing(path) or {"schema": SCHEMA, "app": app}
    data["cpu_scaling"] = {str(n): {"seconds": round(p.seconds, 6), "kind": p.kind}
                           for n, p in points.items()}
    data["cpu_scaling_fit"] = fit
    _write(path, data)


def write_tuned(path: Path, document: dict) -> str | None:
    """`offload tune`'s part: the whole file but SCALING_PART, which is kept when it was
    measured for the baseline `document["baseline"]` names. Returns what became of a scaling
    that was there (None when there was none)."""
    data = dict(document, schema=SCHEMA)
    old = _existing(path) or {}
    note = None
    if "cpu_scaling" in old:
        measured_for = (old.get("cpu_scaling_fit") or {}).get("baseline")
        if measured_for is not None and measured_for == (document.get("baseline") or {}).get("fingerprint"):
            data.update({k: old[k] for k in SCALING_PART if k in old})
            note = "kept the CPU scaling `offload profile` measured for this program and build"
        else:
            note = ("dropped the CPU scaling in profile.json: it was measured for another build of the program; "
                    "run `offload profile` again with the same sources and options")
    _write(path, data)
    return note


def _existing(path: Path) -> dict | None:
    if not path.exists():
        return None
    data = read_json_object(path, "profile")
    if not isinstance(data.get("schema"), int):
        raise UserError("exists but has no schema field, so it is not an offload profile; "
                        "not overwritten", file=str(path))
    return data


def _write(path: Path, data: dict) -> None:
    """Written whole or not at all: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)

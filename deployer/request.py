"""What to deploy: the plan, and the VM size that sizing chose (or the user names).

plan.json (written by `offload tune`, read through offloader/contracts/plan.py) is read for two
fields and carried whole into the domain's metadata: `app` (a name: letters, digits, `-`, `_`,
`.`) and `schema` (an integer).
The size comes from one of:
- sizing.json (`offload size`, read through sizing/document.py): `recommendation.{vcpus,
  memory_gib, fraction, vgpu_type}` and the top-level `gpu_model`; used by default when it sits
  beside plan.json;
- `--size NAME --gpu FRACTION`: a CPU size and a GPU share from the catalog (sizing's TOML,
  `--catalog` for another one); a fraction of 0 deploys a VM without a vGPU.
The vGPU profile is the one sizing names (e.g. T4-4C); `--series` asks for the same share
of the board in another series, found on the host by framebuffer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from offloader.contracts.plan import load_plan as read_plan
from offloader.errors import UserError
from sizing.document import load_sizing
from vgpu.profiles import DEFAULT_SERIES, SERIES

_APP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$")


@dataclass(frozen=True)
class Request:
    app: str
    plan: dict
    plan_path: str
    vcpus: int
    memory_mib: int
    gpu_fraction: float | None      # None: no vGPU
    gpu_model: str | None           # "T4"
    vgpu_profile: str | None        # "T4-4C"; None: find it on the host from fraction and series
    series: str
    source: str                     # where the size came from, for the report

    def to_json(self) -> dict:
        return {"app": self.app, "plan": self.plan_path, "vcpus": self.vcpus, "memory_mib": self.memory_mib,
                "gpu_fraction": self.gpu_fraction, "gpu_model": self.gpu_model,
                "vgpu_profile": self.vgpu_profile, "series": self.series, "source": self.source}


def load_plan(path: str | Path) -> dict:
    """The plan (offloader/contracts/plan.py), whose app also names the domain."""
    data = read_plan(path)
    if not _APP_NAME.match(data["app"]):
        raise UserError(f"`app` must be a short name (letters, digits, -, _, .), got {data['app']!r}", file=str(path))
    return data


def request_from_sizing(plan_path: str | Path, sizing_path: str | Path, series: str | None) -> Request:
    plan = load_plan(plan_path)
    sizing = load_sizing(sizing_path)
    rec = sizing.get("recommendation")
    where = str(sizing_path)
    if not isinstance(rec, dict):
        raise UserError("has no `recommendation` (nothing was feasible?); choose with --size and --gpu",
                        file=where)
    vcpus = _positive_int(rec.get("vcpus"), "recommendation.vcpus", where)
    memory = _positive_number(rec.get("memory_gib"), "recommendation.memory_gib", where)
    fraction = _fraction(rec.get("fraction"), "recommendation.fraction", where)
    if sizing.get("app") not in (None, plan["app"]):
        raise UserError(f"is the sizing of {sizing.get('app')!r}, but the plan is {plan['app']!r}", file=where)
    profile = rec.get("vgpu_type") if series is None else None
    return Request(plan["app"], plan, str(plan_path), vcpus, round(memory * 1024), fraction or None,
                   sizing.get("gpu_model"), profile if fraction else None, series or DEFAULT_SERIES,
                   f"{where}: {rec.get('config') or rec.get('cpu')}")


def request_from_size(plan_path: str | Path, size: str, gpu: str, catalog_path: str | None,
                      series: str | None) -> Request:
    from sizing.catalog import load_catalog

    plan = load_plan(plan_path)
    catalog = load_catalog(catalog_path)
    cpu = next((c for c in catalog.cpus if c.name == size), None)
    if cpu is None:
        raise UserError(f"no CPU size {size!r} in the catalog (sizes: {', '.join(c.name for c in catalog.cpus)})",
                        file=catalog.path)
    fraction = _fraction(gpu, "--gpu", None)
    profile = None
    if fraction and series is None:
        match = next((g for g in catalog.gpus if abs(g.fraction - fraction) < 1e-6), None)
        profile = match.vgpu_type if match else None
    return Request(plan["app"], plan, str(plan_path), cpu.vcpus, round(cpu.memory_gib * 1024),
                   fraction or None, catalog.model if fraction else None, profile,
                   series or DEFAULT_SERIES, f"--size {size} --gpu {gpu} ({catalog.path})")


def check_series(series: str | None) -> str | None:
    if series is not None and series.upper() not in SERIES:
        raise UserError(f"--series must be one of {', '.join(SERIES)} (got {series!r})")
    return series.upper() if series else None


def _positive_int(value, field: str, file: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"`{field}` must be a positive integer, got {value!r}", file=file)
    return value


def _positive_number(value, field: str, file: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise UserError(f"`{field}` must be a positive number, got {value!r}", file=file)
    return float(value)


def _fraction(value, field: str, file: str | None) -> float:
    """A GPU share in [0, 1]: 0.25, "1/4", or 0 for none."""
    try:
        share = Fraction(value) if isinstance(value, str) else Fraction(value).limit_denominator(64)
    except (TypeError, ValueError, ZeroDivisionError):
        share = None
    if isinstance(value, bool) or share is None or not 0 <= share <= 1:
        raise UserError(f"`{field}` must be a share of a GPU between 0 and 1 (0.25 or 1/4), got {value!r}",
                        file=file)
    return float(share)

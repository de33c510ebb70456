"""sizing.json: the sizer's choice of CPU size and vGPU slice, with every candidate and the
notes that say where each number comes from. This module is its contract.

Written by `sizer.size` (what `offload size --json` prints, saved by report.write_app); read
by the deployer (`recommendation` and `gpu_model`) and by the service, which copies
RECOMMENDATION_FIELDS into a job's result. `cpu_scaling` says whether the CPU part's time
across vCPU counts was "measured" (the profile's cpu_scaling) or "assumed" (flat, without one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

from offloader.errors import UserError
from offloader.userfiles import read_json_object

SCHEMA = 1
GENERATOR = "offload size"       # also marks the files the sizer may replace (outputs.py)
RECOMMENDATION_FIELDS = ("config", "vcpus", "vgpu_type", "fraction", "price_per_hour", "predicted_seconds",
                         "cost_per_run", "cpu_kind", "gpu_kind")


def load_sizing(path: str | Path) -> dict:
    data = read_json_object(path, "sizing")
    schema = data.get("schema", SCHEMA)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema > SCHEMA:
        raise UserError(f"`schema` {schema!r} is not a sizing schema this offload understands ({SCHEMA})",
                        file=str(path))
    return data


def recommendation_summary(sizing: Optional[Mapping[str, Any]]) -> Optional[dict]:
    """What a job's result says about the sizer's choice; None when nothing was feasible."""
    chosen = (sizing or {}).get("recommendation")
    return {k: chosen.get(k) for k in RECOMMENDATION_FIELDS} if isinstance(chosen, dict) else None

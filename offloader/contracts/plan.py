"""plan.json: what `offload tune` chose to offload and how, whether the shipped program
verified, and the times behind the choice (each labelled measured or modeled).

Written by tune/outputs.py; read by the deployer (which carries it whole into the domain's
metadata), by report.html, and by the service, which copies SUMMARY_FIELDS into a job's result.
Fields are added with new keys, never by renaming one; `schema` changes when a field changes
meaning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..errors import UserError
from ..userfiles import read_json_object

SCHEMA = 1
SUMMARY_FIELDS = ("app", "verified", "verified_on", "speedup", "timing", "gpu_regions", "reason_none",
                  "cpu_seconds", "offloaded_seconds", "gpu_model", "measurements")


def load_plan(path: str | Path) -> dict:
    """The plan as written, checked for what every reader needs: an integer schema this
    offload understands and an app name; UserError naming the file otherwise."""
    data = read_json_object(path, "plan")
    schema = data.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise UserError("`schema` must be an integer (the plan format's version)", file=str(path))
    if schema > SCHEMA:
        raise UserError(f"`schema` {schema} is newer than this offload understands ({SCHEMA})", file=str(path))
    if not isinstance(data.get("app"), str):
        raise UserError(f"`app` must be a string, got {data.get('app')!r}", file=str(path))
    return data


def summary(plan: Mapping[str, Any]) -> dict:
    """What a job's result says about its plan."""
    return {k: plan[k] for k in SUMMARY_FIELDS if k in plan}

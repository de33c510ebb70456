"""`offload size --batch jobs.csv`: size several apps, each under its own price cap and deadline.

jobs.csv has the columns app,profile,max_price,deadline (an empty cap or deadline means none, or
the command line's). Profiles are found relative to the CSV. Each app gets its own report in
OUT/<app>/, and the batch one combined table (OUT/batch-sizing.csv and .html).
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

from offloader.errors import UserError

from .catalog import Catalog
from .profile import load_profile
from .report import write_app
from .sizer import Options, size

COLUMNS = ("app", "profile", "max_price", "deadline")
APP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Job:
    app: str
    profile: Path
    max_price: float | None
    deadline: float | None
    where: str                  # "jobs.csv line 3 (app 'x')", for errors


def read_jobs(path: Path) -> list[Job]:
    shown = str(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = reader.fieldnames or []
    except FileNotFoundError:
        raise UserError("no such jobs file", file=shown) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read the jobs file: {exc}", file=shown) from None
    missing = [c for c in COLUMNS if c not in header]
    if not rows:
        raise UserError(f"no jobs: expected a header {','.join(COLUMNS)} and one row per app", file=shown)
    if missing:
        raise UserError(f"missing column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}", file=shown)
    jobs, seen = [], set()
    for line, row in enumerate(rows, 2):
        app = (row["app"] or "").strip()
        where = f"line {line}" + (f" (app {app!r})" if app else "")
        if not APP_NAME.fullmatch(app):
            raise UserError(f"{where}: app must be a plain name (letters, digits, '.', '_', '-'), since it "
                            f"names the app's report folder; got {app!r}", file=shown)
        if app in seen:
            raise UserError(f"{where}: app {app!r} appears twice", file=shown)
        seen.add(app)
        profile = (row["profile"] or "").strip()
        if not profile:
            raise UserError(f"{where}: profile is empty", file=shown)
        jobs.append(Job(app, path.parent / profile, _limit(row, "max_price", where, shown),
                        _limit(row, "deadline", where, shown), f"{shown} {where}"))
    return jobs


def _limit(row: dict, column: str, where: str, file: str) -> float | None:
    text = (row[column] or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"{where}: {column} must be a positive number or empty, got {text!r}", file=file)
    return value


def size_batch(jobs: list[Job], catalog: Catalog, options: Options, out_dir: Path) -> list[dict]:
    """Size every job, write its report under out_dir/<app>/, and return the combined rows."""
    rows = []
    for job in jobs:
        job_options = replace(options,
                              max_price=job.max_price if job.max_price is not None else options.max_price,
                              deadline=job.deadline if job.deadline is not None else options.deadline)
        try:
            doc = size(load_profile(job.profile), catalog, job_options)
        except UserError as exc:
            raise UserError(f"{job.where}: {exc}") from None
        write_app(doc, out_dir / job.app)
        rows.append(_row(job, doc))
    return rows


def _row(job: Job, doc: dict) -> dict:
    rec, comparison = doc["recommendation"], doc["comparison"]
    other = comparison["choice"]
    row = {"app": job.app, "profile": str(job.profile), "max_price": doc["constraints"]["max_price"],
           "deadline": doc["constraints"]["deadline"], "feasible": rec is not None,
           "compared_policy": comparison["policy"], "report": f"{job.app}/sizing.html"}
    if rec is None:
        row["note"] = "no configuration meets the constraints: " + "; ".join(
            f"{c['config']}: {c['reason']}" for c in doc["candidates"])
        return row
    row.update({k: rec[k] for k in ("config", "vcpus", "vgpu_type", "fraction", "price_per_hour",
                                    "predicted_seconds", "cost_per_run")})
    if other is not None:
        row.update(compared_config=other["config"], compared_cost_per_run=other["cost_per_run"],
                   cost_difference=comparison["cost_per_run_difference"])
    row["note"] = comparison["explanation"]
    return row

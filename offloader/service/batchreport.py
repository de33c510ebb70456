"""A batch's combined sizing report, made once all of its jobs have finished.

Each finished job stored its profile.json; they go through the sizer's own batch sizing
(`sizing.batch.size_batch`, one app at a time so that one app with nothing to size does not
hide the others), and `sizing.report.write_batch` makes the same HTML and CSV tables that
`offload size --batch` makes. Nothing here runs user code: the profiles are data, validated
by the sizer's loader."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import UserError
from .store import DONE, FINISHED, JobView, Store

FILES = ("batch-sizing.html", "batch-sizing.csv", "batch-sizing.json")


@dataclass(frozen=True)
class Report:
    document: dict
    files: dict[str, bytes]


def combined_report(store: Store, user: str, members: list[JobView], catalog: Optional[Path]) -> Optional[Report]:
    """None while a job of the batch is still queued or running."""
    if any(m.state not in FINISHED for m in members):
        return None
    from sizing.batch import Job, size_batch
    from sizing.catalog import load_catalog
    from sizing.report import write_batch
    from sizing.sizer import Options

    cat = load_catalog(catalog)
    rows = []
    with tempfile.TemporaryDirectory(prefix="offload-batch-") as tmp:
        out = Path(tmp)
        for member in members:
            app = member.options.get("app") or member.id
            profile = store.output(user, member.id, "profile.json") if member.state == DONE else None
            if profile is None:
                rows.append(_missing(app, member))
                continue
            path = out / "profiles" / f"{member.id}.json"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(profile)
            job = Job(app, path, member.options.get("max_price"), member.options.get("deadline"), f"job {member.id}")
            try:
                row = size_batch([job], cat, Options(), out / "apps")[0]
            except UserError as exc:
                row = _missing(app, member, str(exc).removeprefix(f"job {member.id}: "))
            rows.append({**row, "job": member.id, "profile": f"{app}/profile.json"})
        write_batch(rows, out)
        document = {"schema": 1, "generator": "offload serve", "batch": members[0].batch,
                    "catalog": members[0].options.get("catalog", "default"), "gpu_model": cat.model, "apps": rows}
        files = {name: (out / name).read_bytes() for name in FILES[:2]}
    files["batch-sizing.json"] = json.dumps(document, indent=2).encode()
    return Report(document, files)


def _missing(app: str, member: JobView, why: str = "") -> dict:
    note = why or f"job {member.state}" + (f": {member.note}" if member.note else "")
    return {"app": app, "job": member.id, "feasible": False, "report": f"{app}/sizing.html", "note": note}

"""How the runner tells its parent how it ended, out of band: a status file.

An exit status cannot say it: the user's program may return any of them, 125 included. So
the runner replaces one small JSON object as it goes:

    {"stage": "loading"}       the runner started and is loading the program
    {"stage": "program"}       the user's main runs from here
    {"stage": "failed", "failure": "runner_error" | "compile_error", "detail": ..., "message": ...}

Anything that ends the process after "loading" without a "failed" record is the program's own
ending (its constructors run while it loads), and its exit status is the program's. No file at
all means the runner never got as far as writing one: it did not start.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Optional

from ..contracts.run_report import FailureCode

LOADING, PROGRAM, FAILED = "loading", "program", "failed"
RUNNER_FAILURES = (FailureCode.RUNNER_ERROR, FailureCode.COMPILE_ERROR)


@dataclass(frozen=True)
class RunnerStatus:
    stage: str
    failure: Optional[FailureCode] = None
    detail: Optional[str] = None
    message: str = ""


def write_status(path: Optional[str], stage: str, failure: Optional[FailureCode] = None,
                 detail: Optional[str] = None, message: str = "") -> None:
    if not path:
        return
    if failure is not None and failure not in RUNNER_FAILURES:
        raise ValueError(f"the runner reports only {', '.join(f.value for f in RUNNER_FAILURES)}")
    record = {"stage": stage, **({"failure": failure.value, "detail": detail, "message": message}
                                 if failure is not None else {})}
    partial = f"{path}.partial"
    with open(partial, "w") as handle:
        json.dump(record, handle)
    os.replace(partial, path)


def read_status(path: str) -> Optional[RunnerStatus]:
    """The last status the runner wrote; None if it wrote none (or one that cannot be read)."""
    try:
        with open(path) as handle:
            data = json.load(handle)
        failure = data.get("failure")
        return RunnerStatus(str(data["stage"]), FailureCode(failure) if failure else None,
                            data.get("detail"), str(data.get("message", "")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None

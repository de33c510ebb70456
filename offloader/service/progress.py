"""A running tune's progress, read from its Optuna study (out/study.db in the job folder).

The study is the tune's own record, committed trial by trial, so reading it needs no change to
`offload tune`. The job folder is the sandbox's, so the database and its write-ahead log are
first copied out through safefs (no symlinks, size-capped) and queried as a private copy: a
crafted file can then cost a failed query, nothing more."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Optional

from .jobspec import OUT
from .safefs import maybe_read

CAP = 16 << 20        # a long study is a few MB; more is not a study worth copying each second

QUERY = """
WITH study AS (SELECT max(study_id) AS id FROM studies),
     done AS (SELECT trial_id FROM trials, study WHERE study_id = study.id AND state = 'COMPLETE')
SELECT (SELECT count(*) FROM done),
       (SELECT count(*) FROM trial_user_attributes
         WHERE trial_id IN (SELECT trial_id FROM done) AND key = 'measured' AND value_json = 'true'),
       (SELECT min(value) FROM trial_values
         WHERE trial_id IN (SELECT trial_id FROM done) AND value_type = 'FINITE')
"""


def tune_progress(job_dir: Path) -> Optional[dict]:
    """{"trials", "measured", "best_seconds"} of the study so far, or None before it exists."""
    db = maybe_read(job_dir, f"{OUT}/study.db", CAP)
    if not db:
        return None
    wal = maybe_read(job_dir, f"{OUT}/study.db-wal", CAP)
    with tempfile.TemporaryDirectory(prefix="offload-progress-") as tmp:
        path = Path(tmp) / "study.db"
        path.write_bytes(db)
        if wal:
            Path(tmp, "study.db-wal").write_bytes(wal)
        try:
            connection = sqlite3.connect(path)
            try:
                trials, measured, best = connection.execute(QUERY).fetchone()
            finally:
                connection.close()
        except sqlite3.Error:
            return None
    return {"trials": trials, "measured": measured, "best_seconds": best}

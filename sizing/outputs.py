"""Writing the sizer's files without ever overwriting one that the sizer did not write.

A file already at an output path is replaced only if it carries the sizer's mark (the JSON's
generator field, the HTML's generator meta tag) or, for a CSV, starts with the header about to
be written. Otherwise nothing is written and the user is told to pick another --out.
"""

from __future__ import annotations

import os
from pathlib import Path

from offloader.errors import UserError

from .document import GENERATOR

MARKS = (f'"generator": "{GENERATOR}"', f'<meta name="generator" content="{GENERATOR}">')


def write_all(files: dict[Path, str]) -> None:
    """Write every file, or none of them if any target belongs to someone else."""
    for path, text in files.items():
        if path.exists() and not _ours(path, text):
            raise UserError("exists and was not written by `offload size`, so it is left alone; "
                            "choose another --out", file=str(path))
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def _ours(path: Path, new_text: str) -> bool:
    if not path.is_file():
        return False
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    if path.suffix == ".csv":
        return head.splitlines()[:1] == new_text.splitlines()[:1]
    return any(mark in head for mark in MARKS)

"""The client's side of uploads: which local files a job sends, and under which names.

Names are relative to the main source's folder, so `#include "util.h"` and `-I include` mean on
the server what they mean on the laptop. The headers beside each source and in each -I folder
are sent too (not their subfolders): that is what a program's quoted includes usually need."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from ..errors import UserError

Upload = tuple[str, bytes]


def job_files(sources: list[Path], include_dirs: list[Path], prefix: str = "") -> tuple[list[Upload], list[str]]:
    """(uploads, include folders as the server sees them) for one job."""
    for source in sources:
        if source.suffix != ".c":
            raise UserError(f"expected C source files ending in .c, got `{source}`")
        if not source.is_file():
            raise UserError("no such file", file=str(source))
    base = sources[0].resolve().parent
    folders = [d for d in include_dirs if d.is_dir()]
    missing = [d for d in include_dirs if not d.is_dir()]
    if missing:
        raise UserError("-I: no such folder", file=str(missing[0]))
    headers = sorted({h for folder in {s.resolve().parent for s in sources} | {d.resolve() for d in folders}
                      for h in folder.glob("*.h") if h.is_file()})
    uploads: dict[str, bytes] = {}
    for path in [*sources, *headers]:
        name = prefix + _name(path.resolve(), base)
        if name in uploads:
            continue
        try:
            uploads[name] = path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read it: {exc.strerror}", file=str(path)) from None
    includes = [_join(prefix, _name(d.resolve(), base, folder=True)) for d in folders]
    return list(uploads.items()), includes


def _join(prefix: str, name: str) -> str:
    return (prefix.rstrip("/") or ".") if name == "." else prefix + name


def _name(path: Path, base: Path, folder: bool = False) -> str:
    """The path relative to `base` when it lies under it, else its own name at the top."""
    try:
        relative = path.relative_to(base).as_posix()
    except ValueError:
        relative = "." if folder else path.name
    return relative or "."


def batch_files(source: Path, include_dirs: list[Path]) -> tuple[list[Upload], list[dict]]:
    """(uploads, the manifest's jobs) for a folder of programs (one app per .c file) or a CSV
    with the columns app,sources[,args,max_price,deadline]. Each app's files go under its name."""
    if source.is_dir():
        entries = [{"app": c.stem, "sources": [c]} for c in sorted(source.glob("*.c"))]
        if not entries:
            raise UserError("no .c files in this folder", file=str(source))
    elif source.is_file():
        entries = _csv_entries(source)
    else:
        raise UserError("no such folder or CSV file", file=str(source))
    uploads, jobs = [], []
    for entry in entries:
        files, includes = job_files(entry.pop("sources"), include_dirs, prefix=f"{entry['app']}/")
        uploads += files
        options = entry.pop("options", {})
        if includes:
            options["include_dirs"] = includes
        jobs.append({"app": entry["app"], "files": [name for name, _ in files], "options": options})
    return uploads, jobs


def _csv_entries(path: Path) -> list[dict]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read the batch file: {exc}", file=str(path)) from None
    if "app" not in header or "sources" not in header or not rows:
        raise UserError("expected a header app,sources[,args,max_price,deadline] and a row per app", file=str(path))
    entries = []
    for line, row in enumerate(rows, 2):
        app, sources = (row.get("app") or "").strip(), (row.get("sources") or "").split()
        if not app or not sources:
            raise UserError(f"line {line}: app and sources are both needed", file=str(path))
        options = {}
        if (row.get("args") or "").strip():
            options["args"] = [row["args"].strip()]
        for column in ("max_price", "deadline"):
            text = (row.get(column) or "").strip()
            if text:
                try:
                    options[column] = float(text)
                except ValueError:
                    raise UserError(f"line {line}: {column} must be a number, got {text!r}", file=str(path)) from None
        entries.append({"app": app, "sources": [path.parent / os.path.expanduser(s) for s in sources],
                        "options": options})
    return entries

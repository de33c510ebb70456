"""Read the user's C files safely: clear errors for missing, empty, binary or oversized input."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

from ..errors import UserError

MAX_SOURCE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class SourceFile:
    """One original C file as the user wrote it; diagnostics point into its lines."""

    path: str
    text: str

    @cached_property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def line(self, number: int) -> str:
        """The 1-based line `number`, or "" past the end."""
        return self.lines[number - 1] if 0 < number <= len(self.lines) else ""


def read_source(path: str) -> SourceFile:
    """Check and read one C source file, raising UserError for anything unusable."""
    if not os.path.exists(path):
        raise UserError("no such file", file=path)
    if os.path.isdir(path):
        raise UserError("is a directory, not a C file", file=path)
    size = os.path.getsize(path)
    if size > MAX_SOURCE_BYTES:
        raise UserError(f"file is {size} bytes, over the {MAX_SOURCE_BYTES} byte limit", file=path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise UserError(f"cannot read: {exc.strerror}", file=path) from None
    if not data.strip():
        raise UserError("file is empty: there is no C code to analyse", file=path)
    if b"\0" in data:
        raise UserError("file is binary (it contains NUL bytes), not C source", file=path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(f"line {line}: not UTF-8 text; is this a C source file?", file=path) from None
    return SourceFile(path=path, text=text)

"""Errors that reach the user as one clear line and exit status 2, never as a traceback."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceLocation:
    """A position in the user's original source (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class UserError(Exception):
    """Bad input from the user: printed as `file:line:col: what` and exit status 2."""

    exit_status = 2

    def __init__(self, message: str, location: SourceLocation | None = None, file: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.file = file

    def __str__(self) -> str:
        if self.location is not None:
            return f"{self.location}: {self.message}"
        if self.file is not None:
            return f"{self.file}: {self.message}"
        return self.message

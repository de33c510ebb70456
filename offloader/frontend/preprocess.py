"""Preprocess with the system C compiler against the real system headers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from importlib import resources

from ..errors import SourceLocation, UserError

_DIAGNOSTIC = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:(?P<col>\d+):)?\s*(?:fatal )?error:\s*(?P<what>.*)$", re.M)


def compiler() -> str:
    """The C compiler to use: $CC, else cc, else gcc."""
    for candidate in (os.environ.get("CC"), "cc", "gcc"):
        if candidate and shutil.which(candidate):
            return candidate
    raise UserError("no C compiler found: install gcc (apt-get install gcc) or set CC")


def gnu_compat_header() -> str:
    """Path of the header that defines GNU extensions away for pycparser."""
    return str(resources.files("offloader.frontend").joinpath("gnu_compat.h"))


def preprocess(path: str, flags: list[str]) -> str:
    """Run `cc -E` on one file and return the text with line markers.

    Compiler errors (a missing include, a bad directive) become UserError with the
    compiler's own `file:line:col` and message.
    """
    command = [compiler(), "-E", "-std=gnu11", "-D__OFFLOAD_ANALYSIS__=1",
               "-include", gnu_compat_header(), *flags, path]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                              errors="replace")
    except subprocess.TimeoutExpired:
        raise UserError("the preprocessor ran for over 60 s", file=path) from None
    if done.returncode != 0:
        match = _DIAGNOSTIC.search(done.stderr)
        if match:
            location = SourceLocation(match["file"], int(match["line"]), int(match["col"] or 1))
            raise UserError(match["what"].strip(), location)
        first = done.stderr.strip().splitlines()[:1] or ["the preprocessor failed"]
        raise UserError(first[0], file=path)
    return done.stdout

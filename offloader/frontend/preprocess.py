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
    return _IMAGINARY.sub(r"\1", strip_inline_assembly(done.stdout))


# GNU imaginary constants (`1.0iF`, from complex.h's I): pycparser has no such literal; the
# analysis only needs a number there.
_IMAGINARY = re.compile(r"\b(\d+\.?\d*(?:[eE][-+]?\d+)?)[iIjJ][fFlL]?\b")


_ASM = re.compile(r"\b(?:__asm__|__asm|asm)\b(?:\s+(?:volatile|__volatile__|goto|inline))*\s*\(")


def strip_inline_assembly(text: str) -> str:
    """Replace GNU inline assembly (`__asm__ volatile (...)`), which pycparser cannot parse,
    by a call to an unknown function, so that a loop containing it is never offloaded."""
    out, position = [], 0
    for match in _ASM.finditer(text):
        if match.start() < position:
            continue
        depth, k = 1, match.end()
        while k < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[k], 0)
            k += 1
        out.append(text[position:match.start()])
        before = text[:match.start()].rstrip()
        if not before or before[-1] in ";{}:":
            out.append("__offload_inline_asm()")      # a statement: an opaque call
        position = k                                  # else a declaration's symbol name: dropped
    out.append(text[position:])
    return "".join(out)

"""Build options shared by every verb that compiles C: -I, -D, extra sources, --cflags."""

from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class BuildOptions:
    """How to preprocess and compile the user's program.

    `sources` are the user's `.c` files, the first one being the main file.
    """

    sources: tuple[str, ...]
    include_dirs: tuple[str, ...] = ()
    defines: tuple[str, ...] = ()          # "NAME" or "NAME=VALUE"
    cflags: str = ""                       # extra compiler flags, shell-quoted

    def preprocessor_flags(self) -> list[str]:
        """Flags for `cc -E`, in the order the user gave them."""
        flags = [f"-I{d}" for d in self.include_dirs]
        flags += [f"-D{d}" for d in self.defines]
        flags += shlex.split(self.cflags)
        return flags

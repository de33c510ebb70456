"""Reading what a sandboxed job wrote, from outside the sandbox.

Everything in a job folder may have been replaced by the user's code: `out/plan.json` can be a
symlink to /etc/shadow, a FIFO that blocks the reader, or a 10 GB file. So each path component
is opened with O_NOFOLLOW relative to the previous one, the file must be a regular file, and
no more than `cap` bytes are read."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Optional


class Unsafe(Exception):
    """The file is missing, not a regular file, behind a symlink, or over its cap."""


def read_inside(root: Path, relative: str, cap: int) -> bytes:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        parts = relative.split("/")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_NONBLOCK if last else os.O_DIRECTORY
            parent, fd = fd, -1                  # _step closes the parent, even when it fails
            fd = _step(parent, part, os.O_RDONLY | os.O_NOFOLLOW | flags)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unsafe(f"{relative} is not a regular file")
        if info.st_size > cap:
            raise Unsafe(f"{relative} is {info.st_size} bytes, over the limit of {cap}")
        chunks, size = [], 0
        while chunk := os.read(fd, min(1 << 20, cap + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                raise Unsafe(f"{relative} grew over the limit of {cap} bytes")
        return b"".join(chunks)
    finally:
        if fd >= 0:
            os.close(fd)


def maybe_read(root: Path, relative: str, cap: int) -> Optional[bytes]:
    """The file's bytes, or None when it is missing or unsafe to read."""
    try:
        return read_inside(root, relative, cap)
    except (OSError, Unsafe):
        return None


def _step(dir_fd: int, name: str, flags: int) -> int:
    """Opens `name` in `dir_fd` and closes `dir_fd`, whatever happens."""
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)

"""One timed measurement at a time per device on this host: runs side by side (two tunes, or
the service's workers) share the GPU, the memory bus and the CPU caches, and time each other.
An flock on a file in the cache folder; the kernel drops it when its holder dies."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path


def lock_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "offload" / "locks"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def measurement_lock(device: str):
    """Held while `device` ("cuda0", "cpu") is timed."""
    with open(lock_dir() / f"measure-{device}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

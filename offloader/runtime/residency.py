"""Device copies of host allocations that stay resident while host code runs, moving only what
a region reads before it writes and what the host reads afterwards.

Copies are keyed by allocation (not by variable name), so a time-step pointer swap finds the
right copy, and `free`/`realloc` drop it. Each allocation keeps two flags per unit of bytes,
shared with the C runtime (hostprog/residency.c):
  valid  the device copy holds the current value;
  stale  the device copy is newer than the host's.
Before a launch, the units the region needs that are not valid are copied in; after it, the
units it may write become valid and stale. Nothing is copied back then: for allocations whose
pages the runtime may protect (mapped heap blocks and file-scope arrays), the first host
access to a stale page faults and the C runtime copies that page's stale units back. Other
allocations (small heap blocks, stack arrays) cannot be watched, so their written units are
copied back at once and their device copy is forgotten (the host may change them unseen).
"""

from __future__ import annotations

import ctypes
import math
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..device import Device, DeviceBuffer

BLOCK_MAPPED, BLOCK_STATIC = 1, 2


@dataclass
class Allocation:
    base: int
    size: int
    buffer: DeviceBuffer
    unit: int
    valid: np.ndarray              # uint8 per unit (shared with C while managed)
    stale: np.ndarray
    entry: int                     # C residency entry, or -1: not watched, copied back at once
    last_writer: int = -1          # region that last wrote it: host-access copies are its traffic
    copied_seen: int = 0


@dataclass
class Traffic:
    h2d_bytes: int = 0
    d2h_bytes: int = 0
    seconds: float = 0.0


class Residency:
    def __init__(self, device: Device, library: ctypes.CDLL):
        self.device = device
        self.allocations: dict[int, Allocation] = {}
        self._c = _Bound(library)
        self._copy_kind_set = False
        self._copied: dict[int, int] = {}        # region -> bytes copied back on host access
        self.device_bytes = self.peak_bytes = 0  # device memory the copies hold, now and at most

    # ---- before a launch ---------------------------------------------------------------
    def allocation(self, base: int, size: int, kind: int, unit: int) -> Allocation:
        """The device copy of the allocation at `base`, made on first use; `unit` (bytes) must
        divide every element size and offset the caller will use."""
        found = self.allocations.get(base)
        if found is not None and found.size != size:
            self.drop(base, keeps_data=False)
            found = None
        if found is None:
            buffer = self.device.alloc(size)
            self.device_bytes += size
            self.peak_bytes = max(self.peak_bytes, self.device_bytes)
            count = -(-size // unit)
            found = Allocation(base, size, buffer, unit, np.zeros(count, np.uint8), np.zeros(count, np.uint8), -1)
            self.allocations[base] = found
            if kind in (BLOCK_MAPPED, BLOCK_STATIC):
                self._manage(found)
        elif unit < found.unit or found.unit % unit:
            self._refine(found, math.gcd(found.unit, unit))
        return found

    def bring_in(self, alloc: Allocation, need: Optional[np.ndarray], traffic: Traffic) -> None:
        """Copy to the device the units in `need` (unit indices; None: all) it does not hold."""
        wanted = np.ones(len(alloc.valid), dtype=bool) if need is None else _mask(need, len(alloc.valid))
        missing = wanted & (alloc.valid == 0)
        if not missing.any():
            return
        started = time.perf_counter()
        if alloc.entry >= 0:
            self._c.open(alloc.entry)                     # readable, until protect() after the launch
        host = _host_bytes(alloc.base, alloc.size)
        for start, end in _runs(missing):
            lo, hi = start * alloc.unit, min(end * alloc.unit, alloc.size)
            self.device.copy_to_device(alloc.buffer.at(lo), host[lo:hi])
            traffic.h2d_bytes += hi - lo
        alloc.valid[missing] = 1
        traffic.seconds += time.perf_counter() - started

    # ---- after a launch ----------------------------------------------------------------
    def written(self, alloc: Allocation, units: Optional[np.ndarray], region: int, traffic: Traffic) -> None:
        """The launch may have changed `units` (None: all) on the device."""
        if units is None:
            alloc.valid[:] = 1
            alloc.stale[:] = 1
        else:
            alloc.valid[units] = 1
            alloc.stale[units] = 1
        if alloc.last_writer != region:
            self._collect(alloc)                  # what came back so far was the last writer's
            alloc.last_writer = region
        if alloc.entry >= 0:
            if self._c.protect(alloc.entry):
                return
            self._c.release(alloc.entry)                  # too many mappings: stop watching it
            alloc.entry = -1
        started = time.perf_counter()
        traffic.d2h_bytes += self._copy_back(alloc)
        alloc.valid[:] = 0                                # the host may change it unseen
        traffic.seconds += time.perf_counter() - started

    def release_read(self, alloc: Allocation) -> None:
        """After a launch that only read the allocation: watch it again, or, if it cannot be
        watched, forget the device copy (host code may change it unseen)."""
        if alloc.entry >= 0 and self._c.protect(alloc.entry):
            return
        if alloc.entry >= 0:
            self._c.release(alloc.entry)
            alloc.entry = -1
            self._copy_back(alloc)
        alloc.valid[:] = 0

    # ---- host access and release -------------------------------------------------------
    def copied_on_access(self) -> dict[int, int]:
        """Bytes copied back on host access since the last call, by the region that wrote them."""
        for alloc in self.allocations.values():
            self._collect(alloc)
        out, self._copied = self._copied, {}
        return out

    def _collect(self, alloc: Allocation) -> None:
        if alloc.entry >= 0:
            total = self._c.copied_back(alloc.entry)
            if total > alloc.copied_seen:
                self._copied[alloc.last_writer] = self._copied.get(alloc.last_writer, 0) + total - alloc.copied_seen
                alloc.copied_seen = total

    def drop(self, base: int, keeps_data: bool) -> tuple[int, int]:
        """Forget the device copy of the allocation at `base` (it is being freed or moved by
        realloc; then, `keeps_data`, its newer units come back first). Returns the writer
        region and the bytes copied back."""
        alloc = self.allocations.pop(base, None)
        if alloc is None:
            return -1, 0
        copied = 0
        if alloc.entry >= 0:
            total = self._c.release(alloc.entry)
            copied += total - alloc.copied_seen
        if keeps_data:
            copied += self._copy_back(alloc)
        self.device.free(alloc.buffer)
        self.device_bytes -= alloc.size
        return alloc.last_writer, copied

    # ---- helpers -----------------------------------------------------------------------
    def _copy_back(self, alloc: Allocation) -> int:
        host = _host_bytes(alloc.base, alloc.size)
        moved = 0
        for start, end in _runs(alloc.stale != 0):
            lo, hi = start * alloc.unit, min(end * alloc.unit, alloc.size)
            self.device.copy_to_host(alloc.buffer.at(lo), host[lo:hi])
            moved += hi - lo
        alloc.stale[:] = 0
        return moved

    def _manage(self, alloc: Allocation) -> None:
        kind, address = self.device.address(alloc.buffer)
        if not self._copy_kind_set:
            self._copy_kind_set = bool(self._c.copy_kind(kind))
        if not self._copy_kind_set:
            return
        alloc.entry = self._c.manage(alloc.base, alloc.size, address, alloc.unit,
                                     alloc.valid.ctypes.data, alloc.stale.ctypes.data)

    def _refine(self, alloc: Allocation, unit: int) -> None:
        factor = alloc.unit // unit
        count = -(-alloc.size // unit)
        alloc.valid = np.repeat(alloc.valid, factor)[:count].copy()
        alloc.stale = np.repeat(alloc.stale, factor)[:count].copy()
        alloc.unit = unit
        if alloc.entry >= 0:
            kind, address = self.device.address(alloc.buffer)
            self._c.manage(alloc.base, alloc.size, address, unit, alloc.valid.ctypes.data, alloc.stale.ctypes.data)


class _Bound:
    """The C runtime's residency functions, typed."""

    def __init__(self, library: ctypes.CDLL):
        f = lambda name: getattr(library, "__offload_residency_" + name)  # noqa: E731 - no name mangling
        self.copy_kind = f("copy_kind")
        self.copy_kind.argtypes, self.copy_kind.restype = [ctypes.c_int], ctypes.c_int
        self.manage = f("manage")
        self.manage.argtypes = [ctypes.c_void_p, ctypes.c_longlong, ctypes.c_ulonglong, ctypes.c_longlong,
                                ctypes.c_void_p, ctypes.c_void_p]
        self.manage.restype = ctypes.c_int
        self.protect = f("protect")
        self.protect.argtypes, self.protect.restype = [ctypes.c_int], ctypes.c_int
        self.open = f("open")
        self.open.argtypes, self.open.restype = [ctypes.c_int], None
        self.release = f("release")
        self.release.argtypes, self.release.restype = [ctypes.c_int], ctypes.c_ulonglong
        self.copied_back = f("copied_back")
        self.copied_back.argtypes, self.copied_back.restype = [ctypes.c_int], ctypes.c_ulonglong


def _host_bytes(base: int, size: int) -> np.ndarray:
    return np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(base))


def _mask(indices: np.ndarray, count: int) -> np.ndarray:
    mask = np.zeros(count, dtype=bool)
    mask[indices] = True
    return mask


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of True (mask: bool or 0/1 uint8)."""
    if mask.all():
        return [(0, len(mask))] if len(mask) else []
    edges = np.flatnonzero(np.diff(mask.view(np.int8), prepend=0, append=0))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def element_units(elements: Optional[np.ndarray], offset: int, element_size: int, unit: int) -> Optional[np.ndarray]:
    """Unit indices of the given elements of an array that starts `offset` bytes into its
    allocation (None stays None: all of it)."""
    if elements is None:
        return None
    per = element_size // unit
    first = offset // unit + elements * per
    if per == 1:
        return first
    return (first[:, None] + np.arange(per, dtype=np.int64)).ravel()

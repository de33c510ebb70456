"""Device copies of host allocations that stay resident while host code runs, moving only what
a region reads before it writes and what the host reads afterwards.

Copies are keyed by allocation (not by variable name), so a time-step pointer swap finds the
right copy, and `free`/`realloc` drop it. What each copy holds is kept in C
(hostprog/residency.c) as byte intervals: `valid` (the device holds the current value) and
`stale` (the device is newer). The C side also makes the copies and, for allocations whose
pages it may protect (mapped heap blocks and file-scope arrays), catches host access to
stale pages and copies back what they hold. Other allocations (small heap blocks, stack
arrays) cannot be watched: their written bytes come back at once and their device copy is
forgotten after each launch. This module creates and drops the copies and reads the C side's
counters; it does no per-byte work.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..device import Device, DeviceBuffer

BLOCK_MAPPED, BLOCK_STATIC = 1, 2


class Traffic(ctypes.Structure):
    """struct __offload_traffic (runtime.h): what one region call copied."""

    _fields_ = [("h2d_bytes", ctypes.c_ulonglong), ("d2h_bytes", ctypes.c_ulonglong),
                ("h2d_copies", ctypes.c_ulonglong), ("d2h_copies", ctypes.c_ulonglong),
                ("h2d_seconds", ctypes.c_double), ("d2h_seconds", ctypes.c_double)]


class FaultStats(ctypes.Structure):
    """struct __offload_fault_stats (runtime.h): host access to one allocation's device data."""

    _fields_ = [("faults", ctypes.c_ulonglong), ("copies", ctypes.c_ulonglong),
                ("copied_back", ctypes.c_ulonglong), ("fault_seconds", ctypes.c_double),
                ("copy_seconds", ctypes.c_double)]


@dataclass(frozen=True)
class HostAccess:
    """What host access to data a region wrote cost since the last look: copies back through
    page faults or settled I/O buffers, and the fault handler's own time beside its copies."""

    bytes: int = 0
    copies: int = 0
    faults: int = 0
    fault_seconds: float = 0.0        # in the handler, without its copies
    copy_seconds: float = 0.0

    def __add__(self, other: "HostAccess") -> "HostAccess":
        return HostAccess(*(a + b for a, b in zip(self.astuple(), other.astuple())))

    def astuple(self) -> tuple:
        return (self.bytes, self.copies, self.faults, self.fault_seconds, self.copy_seconds)


@dataclass
class Allocation:
    base: int
    size: int
    buffer: DeviceBuffer
    entry: int                     # the C residency entry
    last_writer: int = -1          # region that last wrote it: host-access copies are its traffic
    seen: HostAccess = HostAccess()


class ResidencyFull(Exception):
    """No C residency entry is left for another allocation (the call runs on the CPU)."""


class Residency:
    def __init__(self, device: Device, library: ctypes.CDLL):
        self.device = device
        self.allocations: dict[int, Allocation] = {}
        self._c = _Bound(library)
        self._copy_kind: Optional[int] = None
        self._access: dict[int, HostAccess] = {}      # region -> host access since the last look
        self.device_bytes = self.peak_bytes = 0       # device memory the copies hold, now and at most
        self.alloc_seconds = 0.0                      # making device copies (the emulator fills them)
        self.generation = 0                           # counts drops: what referred to a copy may be gone

    def allocation(self, base: int, size: int, kind: int) -> Allocation:
        """The device copy of the allocation at `base`, made on first use."""
        found = self.allocations.get(base)
        if found is not None and found.size != size:
            self.drop(base, keeps_data=False)
            found = None
        if found is None:
            started = time.perf_counter()
            buffer = self.device.alloc(size)
            self.alloc_seconds += time.perf_counter() - started
            copy_kind, address = self.device.address(buffer)
            if self._copy_kind is None:
                if not self._c.copy_kind(copy_kind):
                    self.device.free(buffer)
                    raise ResidencyFull(f"the runtime cannot copy device memory of kind {copy_kind}")
                self._copy_kind = copy_kind
            entry = self._c.manage(base, size, address, int(kind in (BLOCK_MAPPED, BLOCK_STATIC)),
                                   int(kind == BLOCK_MAPPED))
            if entry < 0:
                self.device.free(buffer)
                raise ResidencyFull("more allocations are on the device than the runtime can track")
            self.device_bytes += size
            self.peak_bytes = max(self.peak_bytes, self.device_bytes)
            found = self.allocations[base] = Allocation(base, size, buffer, entry)
        return found

    def bring_in(self, alloc: Allocation, runs: "Runs", traffic) -> None:
        """Copy to the device the bytes of `runs` that it does not hold (`traffic`: a
        ctypes.byref of a Traffic, which the copies are added to)."""
        if not self._c.need(alloc.entry, runs.address, runs.count, traffic):
            raise RuntimeError("a copy to the device failed")

    def written(self, alloc: Allocation, runs: "Runs", region: int, traffic) -> None:
        """The launch may have changed `runs` on the device."""
        if alloc.last_writer != region:
            self._collect(alloc)                  # what came back so far was the last writer's
            alloc.last_writer = region
        if not self._c.wrote(alloc.entry, runs.address, runs.count, traffic):
            raise RuntimeError("a copy from the device failed")

    def release_read(self, alloc: Allocation) -> None:
        """After a launch that only read the allocation (an unwatched copy is forgotten)."""
        self._c.read_done(alloc.entry)

    def host_access(self) -> dict[int, HostAccess]:
        """Per region, what host access to the data it wrote cost since the last call."""
        for alloc in self.allocations.values():
            self._collect(alloc)
        out, self._access = self._access, {}
        return out

    def _collect(self, alloc: Allocation) -> None:
        stats = FaultStats()
        self._c.stats(alloc.entry, ctypes.byref(stats))
        now = HostAccess(stats.copied_back, stats.copies, stats.faults,
                         stats.fault_seconds - stats.copy_seconds, stats.copy_seconds)
        new = HostAccess(*(a - b for a, b in zip(now.astuple(), alloc.seen.astuple())))
        if new.bytes or new.faults:
            self._access[alloc.last_writer] = self._access.get(alloc.last_writer, HostAccess()) + new
        alloc.seen = now

    def drop(self, base: int, keeps_data: bool) -> tuple[int, int]:
        """Forget the device copy of the allocation at `base` (it is being freed or moved by
        realloc; then, `keeps_data`, its newer bytes come back first). Returns the writer
        region and the bytes copied back."""
        alloc = self.allocations.pop(base, None)
        if alloc is None:
            return -1, 0
        self.generation += 1
        self._collect(alloc)
        traffic = Traffic()
        if not self._c.release(alloc.entry, int(keeps_data), ctypes.byref(traffic)):
            raise RuntimeError("a copy from the device failed")
        self.device.free(alloc.buffer)
        self.device_bytes -= alloc.size
        return alloc.last_writer, traffic.d2h_bytes


class Runs:
    """Byte runs from an allocation's base, as C takes them: [lo, hi) pairs, sorted and
    disjoint, in an int64 array of shape (k, 2) this object keeps alive; None: all of it."""

    __slots__ = ("pairs", "address", "count")

    def __init__(self, pairs: Optional[np.ndarray]):
        self.pairs = None if pairs is None else np.ascontiguousarray(pairs, dtype=np.int64)
        self.address, self.count = (0, -1) if self.pairs is None else (self.pairs.ctypes.data, len(self.pairs))


class _Bound:
    """The C runtime's residency functions, typed."""

    def __init__(self, library: ctypes.CDLL):
        f = lambda name: getattr(library, "__offload_residency_" + name)  # noqa: E731 - no name mangling
        traffic = ctypes.POINTER(Traffic)
        self.copy_kind = f("copy_kind")
        self.copy_kind.argtypes, self.copy_kind.restype = [ctypes.c_int], ctypes.c_int
        self.manage = f("manage")
        self.manage.argtypes = [ctypes.c_void_p, ctypes.c_longlong, ctypes.c_ulonglong, ctypes.c_int, ctypes.c_int]
        self.manage.restype = ctypes.c_int
        for name in ("need", "wrote"):
            function = f(name)
            function.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_longlong, traffic]
            function.restype = ctypes.c_int
            setattr(self, name, function)
        self.read_done = f("read_done")
        self.read_done.argtypes, self.read_done.restype = [ctypes.c_int], None
        self.release = f("release")
        self.release.argtypes, self.release.restype = [ctypes.c_int, ctypes.c_int, traffic], ctypes.c_int
        self.stats = f("stats")
        self.stats.argtypes, self.stats.restype = [ctypes.c_int, ctypes.POINTER(FaultStats)], None

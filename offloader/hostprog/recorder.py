"""A dispatcher that runs every region on the CPU and writes down what it saw at each call:
how often each region ran, and for its first calls every scalar's value and the heap block
(or static size) behind every array. It checks, without a GPU, that the runtime receives all
it will need to move a region's data, and it shows a program's region traffic.

The statistics are written by the exit hook, so they survive `exit()` anywhere in the program.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct

from .abi import HostRegion, Slot

SAMPLES = 4
STATS_SCHEMA = 1
DISPATCHER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                              ctypes.POINTER(ctypes.c_longlong))
EXIT_HOOK = ctypes.CFUNCTYPE(None)
FREE_HOOK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_longlong, ctypes.c_int)
_FORMATS = {("float", 4): "f", ("float", 8): "d", ("int", 1): "b", ("int", 2): "h", ("int", 4): "i",
            ("int", 8): "q", ("uint", 1): "B", ("uint", 2): "H", ("uint", 4): "I", ("uint", 8): "Q"}


class Recorder:
    def __init__(self, library: ctypes.CDLL, regions: dict[int, HostRegion], path: str):
        self.regions = regions
        self.path = path
        self.stats = {"schema": STATS_SCHEMA, "regions": {}, "unknown_regions": 0, "watched_frees": 0}
        self._lookup = getattr(library, "__offload_alloc_lookup")     # getattr: no name mangling
        self._lookup.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_longlong)]
        self._watch = getattr(library, "__offload_alloc_watch")
        self._watch.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self._callbacks = (DISPATCHER(self.dispatch), EXIT_HOOK(self.flush), FREE_HOOK(self.freed))
        for setter, callback in zip(("dispatcher", "exit_hook", "free_hook"), self._callbacks):
            getattr(library, "__offload_set_" + setter)(callback)

    def dispatch(self, region_id: int, addrs, sizes) -> int:
        region = self.regions.get(region_id)
        if region is None:
            self.stats["unknown_regions"] += 1
            return 0
        entry = self.stats["regions"].setdefault(str(region_id), {"location": region.location, "calls": 0,
                                                                  "samples": []})
        entry["calls"] += 1
        if len(entry["samples"]) < SAMPLES:
            entry["samples"].append([self._read(slot, addrs[slot.index], sizes[slot.index])
                                     for slot in region.slots])
        return 0

    def freed(self, base, size, keeps_data) -> None:
        self.stats["watched_frees"] += 1

    def flush(self) -> None:
        partial = self.path + ".partial"
        with open(partial, "w") as handle:
            json.dump(self.stats, handle, indent=1)
        os.replace(partial, self.path)

    def _read(self, slot: Slot, address: int, size: int) -> dict:
        seen = {"name": slot.name, "role": slot.role, "kind": slot.kind}
        if slot.kind == "place":
            return seen
        if slot.kind == "scalar":
            layout = _FORMATS.get((slot.value, size))
            seen["value"] = struct.unpack(layout, ctypes.string_at(address, size))[0] if layout else None
            return seen
        if slot.kind == "array":
            seen["static_size"] = size if size >= 0 else None
            pointer = address
        else:
            pointer = ctypes.c_void_p.from_address(address).value
        seen["allocation"] = self._allocation(pointer)
        return seen

    def _allocation(self, pointer: int | None) -> dict | None:
        """The heap block holding `pointer`, watched from now on so its release is counted."""
        base, size = ctypes.c_void_p(), ctypes.c_longlong()
        if not pointer or not self._lookup(pointer, ctypes.byref(base), ctypes.byref(size)):
            return None
        self._watch(base, 1)
        return {"base": base.value, "size": size.value, "offset": pointer - base.value}

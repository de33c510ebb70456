"""Device copies of host allocations, keyed by the allocation (not by variable name), so a
pointer swap between time steps still finds the right copy and `free` drops it."""

from __future__ import annotations

import numpy as np

from ..device import Device, DeviceBuffer


class PresentTable:
    def __init__(self, device: Device):
        self.device = device
        self.buffers: dict[int, DeviceBuffer] = {}

    def to_device(self, base: int, host: np.ndarray) -> DeviceBuffer:
        """The device copy of the allocation at `base`, refreshed from `host`."""
        buffer = self.buffers.get(base)
        if buffer is None or buffer.nbytes != host.nbytes:
            if buffer is not None:
                self.device.free(buffer)
            buffer = self.buffers[base] = self.device.alloc(host.nbytes)
        self.device.copy_to_device(buffer, host)
        return buffer

    def to_host(self, base: int, host: np.ndarray) -> None:
        self.device.copy_to_host(self.buffers[base], host)

    def drop(self, base: int) -> None:
        buffer = self.buffers.pop(base, None)
        if buffer is not None:
            self.device.free(buffer)

"""Device copies of host allocations, keyed by the allocation (not by variable name), so a
pointer swap between time steps still finds the right copy and `free` drops it.

Each copy remembers the host bytes it was last made equal to. A region that finds the host
allocation unchanged since then (host code between regions did not touch it) skips the copy
to the device, so arrays stay resident across regions and across time-step loops. Copies
back to the host are still made after every region that writes the array.
"""

from __future__ import annotations

import numpy as np

from ..device import Device, DeviceBuffer


class PresentTable:
    def __init__(self, device: Device):
        self.device = device
        self.buffers: dict[int, DeviceBuffer] = {}
        self._synced: dict[int, np.ndarray] = {}        # host bytes the device copy equals

    def to_device(self, base: int, host: np.ndarray) -> tuple[DeviceBuffer, int]:
        """The device copy of the allocation at `base`, and how many bytes were copied to
        bring it up to date with `host` (0 when it already was)."""
        buffer = self.buffers.get(base)
        if buffer is not None and buffer.nbytes == host.nbytes and np.array_equal(self._synced[base], host):
            return buffer, 0
        if buffer is None or buffer.nbytes != host.nbytes:
            if buffer is not None:
                self.device.free(buffer)
            buffer = self.buffers[base] = self.device.alloc(host.nbytes)
        self.device.copy_to_device(buffer, host)
        self._synced[base] = host.copy()
        return buffer, host.nbytes

    def to_host(self, base: int, host: np.ndarray) -> None:
        self.device.copy_to_host(self.buffers[base], host)
        self._synced[base] = host.copy()

    def drop(self, base: int) -> None:
        buffer = self.buffers.pop(base, None)
        self._synced.pop(base, None)
        if buffer is not None:
            self.device.free(buffer)

"""For bench_runtime_scaling.py only. With OFFLOAD_BENCH_NULL_KERNEL=1 in its environment, a
runner child's emulated launches return at once without running the kernel, so that the
runtime's own per-call work is timed with the host's caches as a GPU run leaves them: an
emulated kernel first streams the arrays through this CPU's caches and TLBs, and the host
code after it runs cold. Such runs compute nothing: they are never verified."""

import os

if os.environ.get("OFFLOAD_BENCH_NULL_KERNEL") == "1":
    from offloader.device import emulated

    def _prepare_nothing(self, module, kernel, grid, block, args):
        return lambda: 0.0

    emulated.EmulatedDevice.prepare = _prepare_nothing

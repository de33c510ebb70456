"""The device dispatcher installed in the runner's child process: open the device, compile
the kernels once, register the callbacks, and write statistics from the exit hook (so they
survive exit() anywhere in the user's program).

$OFFLOAD_NVCC_FLAGS adds nvcc flags to that compile on a GPU (the GPU check reruns a sample
that fails verification with -fmad=false, to tell FMA contraction from a bug); the emulator,
which compiles with g++, is given none of them."""

from __future__ import annotations

import ctypes
import json
import os
import shlex
import time
from dataclasses import asdict

from ..contracts.run_report import RegionReport, RuntimeStats, device_kind
from ..device import CompileError, open_device
from ..hostprog.recorder import DISPATCHER, EXIT_HOOK, FREE_HOOK
from .dispatcher import DeviceDispatcher
from .plan import KernelPlan

NVCC_FLAGS_ENV = "OFFLOAD_NVCC_FLAGS"


def _enabled(spec: str, ids) -> set[int]:
    if spec == "all":
        return set(ids)
    if spec == "none":
        return set()
    return {int(part) for part in spec.split(",") if part.strip()}


def install_device_dispatcher(library: ctypes.CDLL, regions, options):
    """CompileError when the device's compiler rejects the kernels (the runner reports it)."""
    with open(options.plans) as handle:
        plans = {int(k): KernelPlan.from_json(v) for k, v in json.load(handle).items()}
    with open(options.kernels) as handle:
        source = handle.read()
    device_options = {}
    if options.device != "cuda":
        from ..device.base import Capacity
        from ..device.emulated import ExecutionOrder

        capacity = Capacity(*map(int, options.capacity.split(","))) if options.capacity else None
        device_options = {"order": ExecutionOrder(kind=options.order), "capacity": capacity,
                          "skip_kernels": options.skip_kernels}
    device = open_device(options.device, **device_options)
    try:
        flags = shlex.split(os.environ.get(NVCC_FLAGS_ENV, "")) if device.kind == "cuda" else []
        module = device.compile(source, flags)
    except CompileError as exc:
        raise CompileError(exc.code, f"on {device.name}: {exc.message}", exc.log) from None
    dispatcher = DeviceDispatcher(library, regions, plans, device, module,
                                  _enabled(options.regions, plans), options.verify_regions, options.rtol)
    started = time.perf_counter()

    def flush() -> None:
        dispatcher.account_host_access()
        dispatcher.collect_times()
        RuntimeStats(device=device.name, device_kind=device_kind(device.kind), timing=device.timing_label,
                     total_seconds=time.perf_counter() - started,
                     device_memory_peak_bytes=dispatcher.residency.peak_bytes,
                     regions={rid: RegionReport.from_json({**asdict(s), "id": rid})
                              for rid, s in dispatcher.stats.items()}).write(options.stats)

    callbacks = (DISPATCHER(dispatcher), EXIT_HOOK(flush), FREE_HOOK(dispatcher.free_hook))
    for setter, callback in zip(("dispatcher", "exit_hook", "free_hook"), callbacks):
        getattr(library, "__offload_set_" + setter)(callback)
    return callbacks, dispatcher

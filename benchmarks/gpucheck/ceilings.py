"""Step `ceilings`: what copies and launches cost on this GPU, the figures a kernel's sustained
bandwidth and the model's link and launch constants are judged against.

- through the device the runtime uses (pycuda or CuPy; the emulator in a dry run): pageable
  host-to-device and device-to-host copies of 4 KiB to 256 MiB, as the runtime makes them, and
  one empty kernel's launch with the synchronisation the runtime does after it;
- through CuPy (GPU only): device-to-device copy (bytes read plus written, as the datasheet's
  HBM figure counts them), pinned host-to-device and device-to-host, and a 2-D copy (half of
  each row of a 4096-row matrix) in both directions between device and pinned memory.
Each figure is the median of its repeats after a warm-up; CUDA events time the CuPy copies,
the host clock the device interface's (its calls return when the copy is done)."""

from __future__ import annotations

import statistics
import time

import numpy as np

from .stepio import Context, StepOutput

EMPTY_KERNEL = 'extern "C" __global__ void empty(int n)\n{\n}\n'
REPEATS = 5
LAUNCHES = 200


def run(context: Context, out: StepOutput) -> int:
    from offloader.device import open_device

    big = 16 << 20 if context.dry else (64 << 20 if context.smoke else 256 << 20)
    device = open_device("emu" if context.dry else "cuda")
    try:
        out.set(device=device.name, timing=context.timing,
                pageable=host_copies(device, (4 << 10, 1 << 20, big)))
        out.set(launch=empty_launch(device))
    finally:
        device.close()
    if context.dry:
        reason = "dry run: CuPy and a GPU are not used"
        out.set(device_to_device=None, pinned=None, copy_2d=None, cupy_reason=reason)
        return out.finish("ok")
    d2d = (256 << 20) if context.smoke else (1 << 30)
    out.set(device_to_device=device_to_device(d2d), cupy_reason=None)
    _empty_pools()
    out.set(pinned=pinned_copies(big))
    _empty_pools()
    out.set(copy_2d=copies_2d(4096, 32 << 10, 16 << 10))
    return out.finish("ok")


def rate(nbytes: int, seconds: list[float]) -> dict:
    middle = statistics.median(seconds)
    return {"bytes": nbytes, "seconds_median": middle, "seconds_best": min(seconds),
            "gbps": nbytes / middle / 1e9 if middle > 0 else None, "repeats": len(seconds)}


def host_copies(device, sizes) -> list[dict]:
    rows = []
    for nbytes in sizes:
        host = np.ones(nbytes, dtype=np.uint8)
        back = np.empty_like(host)
        buffer = device.alloc(nbytes)
        try:
            h2d, d2h = [], []
            for k in range(REPEATS + 1):
                started = time.perf_counter()
                device.copy_to_device(buffer, host)
                middle = time.perf_counter()
                device.copy_to_host(buffer, back)
                if k:                                       # the first is the warm-up
                    h2d.append(middle - started)
                    d2h.append(time.perf_counter() - middle)
        finally:
            device.free(buffer)
        rows.append({"host_to_device": rate(nbytes, h2d), "device_to_host": rate(nbytes, d2h),
                     "intact": bool((back == host).all())})
    return rows


def empty_launch(device) -> dict:
    """One launch of an empty kernel as the runtime makes it (device.launch: the launch, then
    cuCtxSynchronize): the host clock around the call, and the kernel's own event time."""
    module = device.compile(EMPTY_KERNEL)
    argument = np.int32(0)
    device.launch(module, "empty", (1, 1, 1), (32, 1, 1), [argument])
    wall, events = [], []
    for _ in range(LAUNCHES):
        started = time.perf_counter()
        events.append(device.launch(module, "empty", (1, 1, 1), (32, 1, 1), [argument]))
        wall.append(time.perf_counter() - started)
    return {"launches": LAUNCHES, "wall_seconds_median": statistics.median(wall),
            "wall_seconds_best": min(wall), "event_seconds_median": statistics.median(events)}


def _timed(copy, repeats: int = REPEATS) -> list[float]:
    """CUDA-event times of `copy()`, after one warm-up."""
    import cupy

    copy()
    times = []
    for _ in range(repeats):
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        copy()
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end) / 1e3)
    return times


def device_to_device(nbytes: int) -> dict:
    import cupy

    runtime = cupy.cuda.runtime
    source, target = cupy.ones(nbytes, dtype=cupy.uint8), cupy.empty(nbytes, dtype=cupy.uint8)
    times = _timed(lambda: runtime.memcpy(target.data.ptr, source.data.ptr, nbytes, runtime.memcpyDeviceToDevice))
    ok = bool((target[::4096] == 1).all())
    return {**rate(2 * nbytes, times), "copied_bytes": nbytes, "intact": ok,
            "note": "bytes read plus written, as the datasheet's HBM bandwidth counts them"}


def pinned_copies(nbytes: int) -> dict:
    import cupy

    runtime = cupy.cuda.runtime
    pinned = cupy.cuda.alloc_pinned_memory(nbytes)
    device = cupy.empty(nbytes, dtype=cupy.uint8)
    h2d = _timed(lambda: runtime.memcpy(device.data.ptr, pinned.ptr, nbytes, runtime.memcpyHostToDevice))
    d2h = _timed(lambda: runtime.memcpy(pinned.ptr, device.data.ptr, nbytes, runtime.memcpyDeviceToHost))
    return {"host_to_device": rate(nbytes, h2d), "device_to_host": rate(nbytes, d2h)}


def copies_2d(rows: int, pitch: int, width: int) -> dict:
    """`width` bytes of each of `rows` rows `pitch` bytes apart, both sides pitched alike."""
    import cupy

    runtime = cupy.cuda.runtime
    pinned = cupy.cuda.alloc_pinned_memory(rows * pitch)
    device = cupy.zeros(rows * pitch, dtype=cupy.uint8)
    h2d = _timed(lambda: runtime.memcpy2D(device.data.ptr, pitch, pinned.ptr, pitch, width, rows,
                                          runtime.memcpyHostToDevice))
    d2h = _timed(lambda: runtime.memcpy2D(pinned.ptr, pitch, device.data.ptr, pitch, width, rows,
                                          runtime.memcpyDeviceToHost))
    shape = {"rows": rows, "pitch_bytes": pitch, "row_bytes": width}
    return {"shape": shape, "host_to_device": rate(rows * width, h2d), "device_to_host": rate(rows * width, d2h),
            "note": "pinned host memory; bytes are the payload (rows x row_bytes)"}


def _empty_pools() -> None:
    """CuPy's memory pools emptied (a measurement's buffers are gone once it returns), so they
    do not crowd the next one."""
    import cupy

    cupy.get_default_memory_pool().free_all_blocks()
    cupy.get_default_pinned_memory_pool().free_all_blocks()

"""The emulated device: the same kernel text, compiled by g++ and run on the CPU.

Its memory is separate host allocations, so a missing copy shows up as wrong data; fresh
memory holds GARBAGE_WORD, and GUARD bytes on each side of a buffer catch writes just
outside it (reported as LaunchError ILLEGAL_ADDRESS, as is a fault in kernel code).

The `order` decides how blocks and the threads of a block are run:
  forward  blocks and threads by ascending index; each thread runs until it ends or
           reaches __syncthreads (a missing barrier shows when a lower thread reads what
           a higher one writes);
  reverse  the same by descending index (shows a missing barrier the other way round);
  shuffle  blocks in a seeded random order, and every memory access of kernel code is a
           preemption point after which a seeded random thread of the block goes on, so
           races inside a block (a non-atomic += into one cell, a missing barrier)
           interleave as on a GPU, the same way for the same seed.
Blocks run on `workers` OS threads at once.  Times are CPU wall seconds, labelled emulated.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import emu_compiler
from .base import GARBAGE_WORD, Capacity, Device, DeviceBuffer, Module
from .checks import check_args, check_copy, check_geometry, host_bytes, kernel_signature
from .errors import LaunchError, LaunchFailure

ORDERS = ("forward", "reverse", "shuffle")
GUARD = 256           # bytes of GUARD_BYTE before and after every buffer
GUARD_BYTE = 0xFD
_GUARDS = bytes([GUARD_BYTE]) * GUARD
ALIGN = 256           # as cudaMalloc
_GARBAGE = np.array([GARBAGE_WORD], dtype="<u4").view(np.uint8)
_RUNTIME_ERRORS = {1: LaunchFailure.ILLEGAL_ADDRESS, 2: LaunchFailure.OUT_OF_RESOURCES,
                   3: LaunchFailure.LAUNCH_FAILED}
# One launch at a time per process: a launch installs process-wide fault handlers.
_launch_lock = threading.Lock()


@dataclass(frozen=True)
class ExecutionOrder:
    kind: str = "forward"
    seed: int = 0

    def __post_init__(self):
        if self.kind not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, not {self.kind!r}")

    def __str__(self):
        return f"shuffle(seed={self.seed})" if self.kind == "shuffle" else self.kind


class _LaunchConfig(ctypes.Structure):
    """__emu::Config in cuda_emu.h."""

    _fields_ = [("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3),
                ("order", ctypes.c_int), ("workers", ctypes.c_int), ("barrier", ctypes.c_int),
                ("seed", ctypes.c_ulonglong), ("error", ctypes.c_int),
                ("fault_address", ctypes.c_void_p),
                ("fault_block", ctypes.c_uint * 3), ("fault_thread", ctypes.c_uint * 3)]


class EmulatedDevice(Device):
    kind = "emulated"
    timing_label = "emulated"

    def __init__(self, order: ExecutionOrder = ExecutionOrder(), workers: int | None = None,
                 capacity: Capacity | None = None, skip_kernels: bool = False):
        """`capacity`: the GPU whose launch shapes to run (runtime/launch.py sizes grids from
        it); by default one multiprocessor per worker thread. `skip_kernels`: launches check
        their arguments and return at once, computing nothing: for timing the runtime's own
        host-side work with the host's caches as a GPU leaves them (an emulated kernel streams
        the arrays through them first). Such runs are never verified."""
        self.order = order      # of the next launches; may be changed between them
        self.workers = workers or len(os.sched_getaffinity(0))
        self.capacity = capacity or Capacity(self.workers, 2048, 32)
        self.skip_kernels = skip_kernels

    @property
    def name(self) -> str:
        return f"emulated ({self.workers} CPU threads, order {self.order})"

    def alloc(self, nbytes: int) -> DeviceBuffer:
        if nbytes <= 0:
            raise ValueError("allocation size must be positive")
        raw = np.empty(nbytes + 2 * GUARD + ALIGN, dtype=np.uint8)
        start = -raw.ctypes.data % ALIGN
        mem = raw[start:start + nbytes + 2 * GUARD]
        mem[:GUARD] = mem[GUARD + nbytes:] = GUARD_BYTE
        body = mem[GUARD:GUARD + nbytes]
        words = nbytes // 4
        body[:words * 4].view("<u4").fill(GARBAGE_WORD)        # a memset of the fresh pages
        body[words * 4:] = _GARBAGE[:nbytes - words * 4]
        return DeviceBuffer(nbytes, self, mem)

    def free(self, buf: DeviceBuffer) -> None:
        check_copy(buf, self, 0)
        buf.handle = None

    def copy_to_device(self, buf: DeviceBuffer, host) -> None:
        data = host_bytes(host)
        check_copy(buf, self, data.nbytes)
        start = GUARD + buf.offset
        buf.handle[start:start + data.nbytes] = np.frombuffer(data, dtype=np.uint8)

    def copy_to_host(self, buf: DeviceBuffer, out) -> None:
        view = host_bytes(out)
        check_copy(buf, self, view.nbytes)
        start = GUARD + buf.offset
        np.frombuffer(view, dtype=np.uint8)[:] = buf.handle[start:start + view.nbytes]

    def address(self, buf: DeviceBuffer) -> tuple[int, int]:
        return 0, buf.handle.ctypes.data + GUARD + buf.offset

    def compile(self, source: str, options: Sequence[str] = ()) -> Module:
        lib = emu_compiler.build(source, tuple(options))
        return Module(lib.kernels, lib.log, self, (ctypes.CDLL(str(lib.path)), lib.barrier_kernels))

    def launch(self, module: Module, kernel: str, grid: Sequence[int], block: Sequence[int],
               args: Sequence, shared_bytes: int = 0) -> float:
        if shared_bytes:
            raise LaunchError(LaunchFailure.BAD_CONFIGURATION,
                              f"{kernel}: the emulated device has no dynamic shared memory")
        return self.prepare(module, kernel, grid, block, args)()

    def prepare(self, module: Module, kernel: str, grid: Sequence[int], block: Sequence[int], args: Sequence):
        sig = kernel_signature(module, self, kernel)
        g, b = check_geometry(kernel, grid, block)
        check_args(sig, args, self)
        library, barrier_kernels = module.handle
        cells = [_arg_cell(a) for a in args]
        argv = (ctypes.c_void_p * max(1, len(cells)))(*(c.ctypes.data for c in cells))
        config = _LaunchConfig((ctypes.c_uint * 3)(*g), (ctypes.c_uint * 3)(*b), 0, self.workers,
                               int(kernel in barrier_kernels), 0)
        entry = getattr(library, f"__emu_launch_{kernel}")
        pointer = ctypes.byref(config)
        buffers = [a for a in args if isinstance(a, DeviceBuffer)]

        def run() -> float:
            """The kernel's time is the emulator's entry call alone, from the moment it is
            called to its return: the blocks' threads start and join inside it."""
            if self.skip_kernels:
                return 0.0
            config.order, config.seed, config.error = ORDERS.index(self.order.kind), self.order.seed & (2**64 - 1), 0
            with _launch_lock:
                start = time.perf_counter()
                error = entry(pointer, argv)
                seconds = time.perf_counter() - start
            if error:
                raise LaunchError(_RUNTIME_ERRORS.get(error, LaunchFailure.LAUNCH_FAILED),
                                  _describe(kernel, error, config), device_code=error)
            for buf in buffers:
                _check_guards(kernel, buf)
            return seconds

        run.cells = cells                     # the arguments' memory lives as long as the launch
        return run

    def synchronize(self) -> None:
        """Nothing to wait for: launch() returns when the kernel has finished."""


def _arg_cell(arg) -> np.ndarray:
    """Memory holding one argument as the wrapper reads it: a buffer's address, or the scalar."""
    if isinstance(arg, DeviceBuffer):
        return np.array([arg.handle.ctypes.data + GUARD + arg.offset], dtype=np.uintp)
    return np.array([arg], dtype=arg.dtype)


def _describe(kernel: str, error: int, config: _LaunchConfig) -> str:
    if error == 1:
        return (f"{kernel}: fault at address {config.fault_address or 0:#x} in block "
                f"{tuple(config.fault_block)} thread {tuple(config.fault_thread)}")
    if error == 2:
        return f"{kernel}: no memory for the emulator's fiber stacks or threads"
    return f"{kernel}: __syncthreads reached outside fiber mode (emulator error {error})"


def _check_guards(kernel: str, buf: DeviceBuffer) -> None:
    """A write just outside a buffer (an off-by-one, a dropped bounds check) is an error."""
    mem = buf.handle                        # the whole allocation, also for a view into it
    if mem[:GUARD].tobytes() == _GUARDS and mem[-GUARD:].tobytes() == _GUARDS:
        return
    size = len(mem) - 2 * GUARD
    before, after = mem[:GUARD] != GUARD_BYTE, mem[GUARD + size:] != GUARD_BYTE
    where = (f"{GUARD - int(np.argmax(before))} bytes before its start" if before.any()
             else f"{GUARD - int(np.argmax(after[::-1]))} bytes past its end")
    mem[:GUARD] = mem[GUARD + size:] = GUARD_BYTE
    raise LaunchError(LaunchFailure.ILLEGAL_ADDRESS, f"{kernel} wrote outside a {size}-byte buffer, up to {where}")

"""The one interface that every device implements (a real GPU through pycuda, or the
emulator), so that the runtime, tuner and tests are written once for both.

Kernel text is CUDA C++ whose kernels follow the contract in `signature.py`.  A launch's
arguments are, per kernel parameter, a `DeviceBuffer` of the same device for a pointer, or
a numpy scalar of exactly the parameter's type for a scalar: `np.int32` for `int`,
`np.uint32` for `unsigned`, `np.int64` for `long long`, `np.uint64` for `unsigned long long`
and `size_t`, `np.float32` for `float`, `np.float64` for `double`.  Fresh allocations hold
GARBAGE_WORD repeated, so reading memory that was never written shows up.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .signature import KernelSignature

GARBAGE_WORD = 0x7FF4DEAD  # a NaN as float and (twice) as double; 2146754221 as int


class DeviceBuffer:
    """`nbytes` of memory on `owner`; `handle` is the device's own and None once freed.
    A view (`at`) shares its buffer's memory from `offset` bytes on: a kernel argument that
    points into the middle of an allocation, as a C pointer can."""

    __slots__ = ("nbytes", "owner", "handle", "offset")

    def __init__(self, nbytes: int, owner: "Device", handle: Any, offset: int = 0):
        self.nbytes, self.owner, self.handle, self.offset = nbytes, owner, handle, offset

    def at(self, offset: int) -> "DeviceBuffer":
        """A view from `offset` bytes into this buffer (for launches and copies, not for free)."""
        if not 0 <= offset <= self.nbytes:
            raise ValueError(f"offset {offset} is outside a buffer of {self.nbytes} bytes")
        return DeviceBuffer(self.nbytes - offset, self.owner, self.handle, self.offset + offset)


@dataclass(frozen=True, eq=False)
class Module:
    """Compiled kernel text: its kernels' signatures, the compiler's warnings, a device handle."""

    kernels: Mapping[str, KernelSignature]
    log: str
    owner: "Device"
    handle: Any = field(repr=False)


@dataclass(frozen=True)
class Capacity:
    """What keeps a device busy: its multiprocessors and the threads and blocks each holds at
    once. Launch grids are sized from it (runtime/launch.py)."""

    multiprocessors: int
    threads_per_multiprocessor: int
    blocks_per_multiprocessor: int


class Device(abc.ABC):
    name: str           # e.g. "NVIDIA H200 (sm_90)"
    kind: str           # "cuda" | "emulated"
    timing_label: str   # "measured" | "emulated": what launch() times are
    capacity: Capacity  # a GPU's own; the emulator's is the GPU its launches are shaped for

    @abc.abstractmethod
    def alloc(self, nbytes: int) -> DeviceBuffer: ...

    @abc.abstractmethod
    def free(self, buf: DeviceBuffer) -> None: ...

    @abc.abstractmethod
    def copy_to_device(self, buf: DeviceBuffer, host) -> None:
        """Copy a C-contiguous numpy array or bytes-like `host` to the start of `buf` (or view)."""

    @abc.abstractmethod
    def copy_to_host(self, buf: DeviceBuffer, out) -> None:
        """Fill the C-contiguous numpy array `out` from the start of `buf` (or view)."""

    @abc.abstractmethod
    def address(self, buf: DeviceBuffer) -> tuple[int, int]:
        """(0, host address) when the buffer's memory is host memory, (1, CUDA device
        address) otherwise: how C code copies from it (the runtime's residency.c)."""

    @abc.abstractmethod
    def compile(self, source: str, options: Sequence[str] = ()) -> Module:
        """Raise CompileError; `options` are compiler flags, only -DNAME[=VALUE] portable."""

    @abc.abstractmethod
    def launch(self, module: Module, kernel: str, grid: Sequence[int], block: Sequence[int],
               args: Sequence, shared_bytes: int = 0) -> float:
        """Run a kernel to completion; its time in seconds (see timing_label); LaunchError."""

    def prepare(self, module: Module, kernel: str, grid: Sequence[int], block: Sequence[int],
                args: Sequence) -> "Callable[[], float]":
        """One launch, checked once, to be made again and again (the runtime repeats a call's
        launch at every time step): a function that makes it and returns its time, as launch()
        would. The arguments must stay alive and unchanged meanwhile."""
        return lambda: self.launch(module, kernel, grid, block, args)

    @abc.abstractmethod
    def synchronize(self) -> None: ...

    def close(self) -> None:
        """Release the device (a GPU context); the emulator holds nothing."""

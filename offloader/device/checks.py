"""Checks that every device runs before touching memory or launching, so both refuse the
same mistakes with the same typed error (a GPU would fail later, or not at all)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import DeviceBuffer
from .errors import LaunchError, LaunchFailure
from .signature import KernelSignature

MAX_BLOCK = (1024, 1024, 64)
MAX_THREADS_PER_BLOCK = 1024
MAX_GRID = (2**31 - 1, 65535, 65535)


def dims3(kernel: str, what: str, value: Sequence[int]) -> tuple[int, int, int]:
    """A grid or block as three ints, missing trailing dimensions being 1."""
    dims = tuple(int(v) for v in value)
    if not 1 <= len(dims) <= 3:
        raise LaunchError(LaunchFailure.BAD_CONFIGURATION, f"{kernel}: {what} has {len(dims)} dimensions")
    return dims + (1,) * (3 - len(dims))


def kernel_signature(module, owner, kernel: str) -> KernelSignature:
    """The signature of `kernel` in a module that `owner` compiled; UNKNOWN_KERNEL otherwise."""
    sig = module.kernels.get(kernel)
    if module.owner is not owner or sig is None:
        raise LaunchError(LaunchFailure.UNKNOWN_KERNEL, f"no kernel {kernel} in this device's module")
    return sig


def check_geometry(kernel: str, grid: Sequence[int], block: Sequence[int]):
    """(grid, block) as 3-tuples, within CUDA's limits for every GPU since sm_30."""
    g, b = dims3(kernel, "grid", grid), dims3(kernel, "block", block)
    for what, dims, limit in (("grid", g, MAX_GRID), ("block", b, MAX_BLOCK)):
        if any(not 1 <= d <= m for d, m in zip(dims, limit)):
            raise LaunchError(LaunchFailure.BAD_CONFIGURATION,
                              f"{kernel}: {what} {dims} is outside 1..{limit} per dimension")
    if b[0] * b[1] * b[2] > MAX_THREADS_PER_BLOCK:
        raise LaunchError(LaunchFailure.BAD_CONFIGURATION,
                          f"{kernel}: block {b} has more than {MAX_THREADS_PER_BLOCK} threads")
    return g, b


def check_args(sig: KernelSignature, args: Sequence, owner) -> None:
    """Buffers for pointers (live, of this device) and numpy scalars of the exact C type."""
    if len(args) != len(sig.params):
        raise LaunchError(LaunchFailure.BAD_ARGUMENTS,
                          f"{sig.name} takes {len(sig.params)} arguments, got {len(args)}")
    for param, arg in zip(sig.params, args):
        if param.is_pointer:
            if not isinstance(arg, DeviceBuffer) or arg.owner is not owner or arg.handle is None:
                raise LaunchError(LaunchFailure.BAD_ARGUMENTS,
                                  f"{sig.name}: {param.name} needs a live buffer of this device, "
                                  f"got {type(arg).__name__}")
        elif not isinstance(arg, np.generic) or arg.dtype != np.dtype(param.dtype):
            raise LaunchError(LaunchFailure.BAD_ARGUMENTS,
                              f"{sig.name}: {param.name} is `{param.ctype}`, pass "
                              f"np.{np.dtype(param.dtype).name}(...), got {arg!r} ({type(arg).__name__})")


def host_bytes(host) -> memoryview:
    """The bytes of a C-contiguous numpy array or a bytes-like object, without copying."""
    if isinstance(host, np.ndarray) and not host.flags.c_contiguous:
        raise ValueError("host array must be C-contiguous")
    return memoryview(host).cast("B")


def check_copy(buf, owner, nbytes: int) -> None:
    if buf.owner is not owner or buf.handle is None:
        raise ValueError("not a live buffer of this device")
    if nbytes > buf.nbytes:
        raise ValueError(f"copy of {nbytes} bytes into or out of a {buf.nbytes}-byte buffer")

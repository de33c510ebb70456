"""Devices that compile CUDA kernel text and run it: a GPU through pycuda or CuPy, or the emulator.

`open_device("auto")` takes the GPU when pycuda, else CuPy, imports and sees one, else the
emulator; `"cuda"` takes the GPU the same way, without the fallback.  `choose_kind` says which
and why, `gpu_library` which library.  $OFFLOAD_GPU_LIBRARY (pycuda | cupy) leaves only that one
to try: the GPU check (scripts/gpu-check.sh) runs through CuPy when pycuda fails its contract.
Nothing here imports pycuda or CuPy until a GPU is asked for.
"""

from __future__ import annotations

import logging
import os

from ..errors import UserError
from .base import GARBAGE_WORD, Device, DeviceBuffer, Module
from .errors import CompileError, CompileFailure, DeviceError, LaunchError, LaunchFailure

KINDS = ("auto", "cuda", "emu")
LIBRARY_ENV = "OFFLOAD_GPU_LIBRARY"

__all__ = ["GARBAGE_WORD", "KINDS", "CompileError", "CompileFailure", "Device", "DeviceBuffer",
           "DeviceError", "LaunchError", "LaunchFailure", "Module", "choose_kind", "gpu_library",
           "open_device"]


def choose_kind(kind: str = "auto") -> tuple[str, str]:
    """("cuda" | "emu", the reason), for `open_device(kind)`; UserError when `cuda` was asked
    for and no GPU library works (the user's request cannot be met: say so before building)."""
    chosen, library, why = _choose(kind)
    if chosen == "cuda" and library is None:
        raise UserError(why)
    return chosen, why


def gpu_library() -> tuple[str | None, str]:
    """("pycuda" | "cupy", what it found): the first of them that imports and sees a GPU;
    (None, why neither does) otherwise."""
    from .cupy_device import cupy_available
    from .pycuda_device import cuda_available

    libraries = (("pycuda", cuda_available), ("cupy", cupy_available))
    only = os.environ.get(LIBRARY_ENV)
    if only:
        libraries = tuple(entry for entry in libraries if entry[0] == only)
        if not libraries:
            return None, f"${LIBRARY_ENV} is {only!r}: it must be pycuda or cupy"
    reasons = []
    for library, available in libraries:
        ok, why = available()
        if ok:
            return library, f"{library} found {why}" + (f" (${LIBRARY_ENV}={only})" if only else "")
        reasons.append(why)
    return None, "; ".join(reasons)


def open_device(kind: str = "auto", **options) -> Device:
    """A device of `kind`; `options` go to its constructor (e.g. order= for the emulator)."""
    chosen, library, why = _choose(kind)
    logging.getLogger(__name__).info("device: %s (%s)", chosen, why)
    if library == "pycuda":
        from .pycuda_device import CudaDevice

        return CudaDevice(**options)
    if library == "cupy":
        from .cupy_device import CupyDevice

        return CupyDevice(**options)
    if chosen == "cuda":
        raise RuntimeError(why)
    from .emulated import EmulatedDevice

    return EmulatedDevice(**options)


def _choose(kind: str) -> tuple[str, str | None, str]:
    """(kind, GPU library or None, why): `cuda` and `auto` take the GPU of `gpu_library`,
    and `auto` the emulator when there is none."""
    if kind not in KINDS:
        raise ValueError(f"device kind must be one of {KINDS}, not {kind!r}")
    if kind == "emu":
        return kind, None, "emu was asked for"
    library, why = gpu_library()
    if kind == "cuda":
        return kind, library, (f"cuda was asked for: {why}" if library
                               else f"cuda was asked for, but no GPU library works: {why}")
    return ("cuda", library, why) if library else ("emu", None, f"emulated: {why}")

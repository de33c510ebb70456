"""Devices that compile CUDA kernel text and run it: a GPU through pycuda, or the emulator.

`open_device("auto")` takes the GPU when pycuda imports and sees one, else the emulator;
`choose_kind` says which and why.  Nothing here imports pycuda until a GPU is asked for.
"""

from __future__ import annotations

import logging

from .base import GARBAGE_WORD, Device, DeviceBuffer, Module
from .errors import CompileError, CompileFailure, DeviceError, LaunchError, LaunchFailure

KINDS = ("auto", "cuda", "emu")

__all__ = ["GARBAGE_WORD", "KINDS", "CompileError", "CompileFailure", "Device", "DeviceBuffer",
           "DeviceError", "LaunchError", "LaunchFailure", "Module", "choose_kind", "open_device"]


def choose_kind(kind: str = "auto") -> tuple[str, str]:
    """("cuda" | "emu", the reason), for `open_device(kind)`."""
    if kind not in KINDS:
        raise ValueError(f"device kind must be one of {KINDS}, not {kind!r}")
    if kind != "auto":
        return kind, f"{kind} was asked for"
    from .pycuda_device import cuda_available

    ok, why = cuda_available()
    return ("cuda", f"pycuda found {why}") if ok else ("emu", f"emulated: {why}")


def open_device(kind: str = "auto", **options) -> Device:
    """A device of `kind`; `options` go to its constructor (e.g. order= for the emulator)."""
    chosen, why = choose_kind(kind)
    logging.getLogger(__name__).info("device: %s (%s)", chosen, why)
    if chosen == "cuda":
        from .pycuda_device import CudaDevice

        return CudaDevice(**options)
    from .emulated import EmulatedDevice

    return EmulatedDevice(**options)

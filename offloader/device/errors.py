"""Typed device failures, classified by code so that callers never parse messages.

A tuner records a `CompileError` or `LaunchError` as a failed candidate (its `code` says
why) instead of aborting; the message is for people, the code is for programs.
"""

from __future__ import annotations

import enum


class CompileFailure(enum.Enum):
    COMPILER_ERROR = "compiler-error"   # the compiler rejected the text: see `log`
    UNSUPPORTED = "unsupported"         # valid CUDA that this device cannot run
    BAD_SIGNATURE = "bad-signature"     # no kernel, or a kernel outside the signature contract
    NO_COMPILER = "no-compiler"         # the device's compiler is not installed


class LaunchFailure(enum.Enum):
    UNKNOWN_KERNEL = "unknown-kernel"
    BAD_CONFIGURATION = "bad-configuration"  # grid, block or shared-memory size
    BAD_ARGUMENTS = "bad-arguments"          # count, type, or a freed or foreign buffer
    ILLEGAL_ADDRESS = "illegal-address"      # a fault, or a write outside a buffer
    OUT_OF_RESOURCES = "out-of-resources"
    LAUNCH_FAILED = "launch-failed"          # any other failure while the kernel ran


class DeviceError(Exception):
    """Base of the typed failures: `code` is an enum member, `message` one line of text."""

    def __init__(self, code: enum.Enum, message: str):
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message


class CompileError(DeviceError):
    """The kernel text did not become a module; `log` holds the compiler's output."""

    def __init__(self, code: CompileFailure, message: str, log: str = ""):
        super().__init__(code, message)
        self.log = log


class LaunchError(DeviceError):
    """A launch was refused or failed; `device_code` is the driver's CUresult when known."""

    def __init__(self, code: LaunchFailure, message: str, device_code: int | None = None):
        super().__init__(code, message)
        self.device_code = device_code

"""The real GPU through pycuda: the Device interface with CUDA events for `measured` times.

pycuda is imported here only, never by `import offloader` or `offloader.device`.  pycuda
turns driver errors into a few exception classes and drops the CUresult, so after each
launch this module asks the driver itself (cuCtxSynchronize through ctypes) and classifies
the failure by that code.  A fault (ILLEGAL_ADDRESS) leaves the CUDA context unusable: open
a new device after one.
"""

from __future__ import annotations

import atexit
import ctypes
from collections.abc import Sequence

import numpy as np

from .base import GARBAGE_WORD, Capacity, Device, DeviceBuffer, Module
from .checks import check_args, check_copy, check_geometry, host_bytes, kernel_signature
from .errors import CompileError, CompileFailure, LaunchError, LaunchFailure
from .signature import parse_kernels

# CUresult codes (cuda.h) that a kernel's run can end with.
_CU_RESULTS = {1: LaunchFailure.BAD_CONFIGURATION, 2: LaunchFailure.OUT_OF_RESOURCES,
               700: LaunchFailure.ILLEGAL_ADDRESS, 701: LaunchFailure.OUT_OF_RESOURCES,
               716: LaunchFailure.ILLEGAL_ADDRESS}


def cuda_available() -> tuple[bool, str]:
    """(whether pycuda imports and sees a GPU, why not)."""
    try:
        import pycuda.driver as cuda
    except ImportError as e:
        return False, f"pycuda is not installed ({e})"
    try:
        cuda.init()
        count = cuda.Device.count()
    except cuda.Error as e:
        return False, f"the CUDA driver is not usable ({e})"
    return (count > 0, f"{count} GPU(s)")


class CudaDevice(Device):
    kind = "cuda"
    timing_label = "measured"

    def __init__(self, ordinal: int = 0):
        import pycuda.driver as cuda

        self._cuda = cuda
        cuda.init()
        gpu = cuda.Device(ordinal)
        self._context = gpu.make_context()
        self._closed = False
        atexit.register(self.close)
        major, minor = gpu.compute_capability()
        self.name = f"{gpu.name()} (sm_{major}{minor})"
        self._max_shared = gpu.get_attribute(cuda.device_attribute.MAX_SHARED_MEMORY_PER_BLOCK)
        attribute = cuda.device_attribute
        blocks = getattr(attribute, "MAX_BLOCKS_PER_MULTIPROCESSOR", None)   # pycuda names it from CUDA 11
        self.capacity = Capacity(gpu.get_attribute(attribute.MULTIPROCESSOR_COUNT),
                                 gpu.get_attribute(attribute.MAX_THREADS_PER_MULTIPROCESSOR),
                                 gpu.get_attribute(blocks) if blocks is not None else 16)
        self._driver = ctypes.CDLL("libcuda.so.1")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._context.pop()

    def alloc(self, nbytes: int) -> DeviceBuffer:
        if nbytes <= 0:
            raise ValueError("allocation size must be positive")
        mem = self._cuda.mem_alloc(nbytes)
        self._cuda.memset_d32(mem, GARBAGE_WORD, nbytes // 4)
        tail = nbytes % 4
        if tail:
            self._cuda.memcpy_htod(int(mem) + nbytes - tail, np.resize(
                np.array([GARBAGE_WORD], dtype="<u4").view(np.uint8), tail))
        return DeviceBuffer(nbytes, self, mem)

    def free(self, buf: DeviceBuffer) -> None:
        check_copy(buf, self, 0)
        buf.handle.free()
        buf.handle = None

    def copy_to_device(self, buf: DeviceBuffer, host) -> None:
        data = host_bytes(host)
        check_copy(buf, self, data.nbytes)
        self._cuda.memcpy_htod(_pointer(buf), data)

    def copy_to_host(self, buf: DeviceBuffer, out) -> None:
        view = host_bytes(out)
        check_copy(buf, self, view.nbytes)
        self._cuda.memcpy_dtoh(view, _pointer(buf))

    def address(self, buf: DeviceBuffer) -> tuple[int, int]:
        return 1, int(buf.handle) + buf.offset

    def compile(self, source: str, options: Sequence[str] = ()) -> Module:
        from pycuda.compiler import SourceModule

        kernels = parse_kernels(source)
        try:
            module = SourceModule(source, no_extern_c=True, options=list(options))
        except self._cuda.CompileError as e:
            raise CompileError(CompileFailure.COMPILER_ERROR, "nvcc rejected the kernel text (see log)",
                               e.stderr or str(e)) from None
        functions = {name: module.get_function(name) for name in kernels}
        return Module(kernels, "", self, functions)

    def launch(self, module: Module, kernel: str, grid: Sequence[int], block: Sequence[int],
               args: Sequence, shared_bytes: int = 0) -> float:
        sig = kernel_signature(module, self, kernel)
        g, b = check_geometry(kernel, grid, block)
        function = module.handle[kernel]
        if not 0 <= shared_bytes <= self._max_shared:
            raise LaunchError(LaunchFailure.BAD_CONFIGURATION,
                              f"{kernel}: {shared_bytes} bytes of shared memory (at most {self._max_shared})")
        cuda = self._cuda
        most = function.get_attribute(cuda.function_attribute.MAX_THREADS_PER_BLOCK)
        if b[0] * b[1] * b[2] > most:
            raise LaunchError(LaunchFailure.OUT_OF_RESOURCES,
                              f"{kernel}: at most {most} threads per block with its registers")
        check_args(sig, args, self)
        start, end = cuda.Event(), cuda.Event()
        start.record()
        try:
            function(*(_pointer(a) if isinstance(a, DeviceBuffer) else a for a in args),
                     grid=g, block=b, shared=shared_bytes)
        except cuda.LaunchError as e:
            raise LaunchError(LaunchFailure.OUT_OF_RESOURCES, f"{kernel}: {e}") from None
        except cuda.LogicError as e:
            raise LaunchError(LaunchFailure.BAD_CONFIGURATION, f"{kernel}: {e}") from None
        end.record()
        result = self._driver.cuCtxSynchronize()
        if result:
            raise LaunchError(_CU_RESULTS.get(result, LaunchFailure.LAUNCH_FAILED),
                              f"{kernel}: {self._error_name(result)}", device_code=result)
        return end.time_since(start) / 1e3

    def synchronize(self) -> None:
        self._context.synchronize()

    def _error_name(self, result: int) -> str:
        name = ctypes.c_char_p()
        self._driver.cuGetErrorName(result, ctypes.byref(name))
        return (name.value or b"CUDA error").decode() + f" ({result})"


def _pointer(buf: DeviceBuffer):
    """The device address a kernel gets for a buffer or a view into one."""
    return buf.handle if not buf.offset else np.uintp(int(buf.handle) + buf.offset)

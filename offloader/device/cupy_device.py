"""The real GPU through CuPy, for a host where pycuda is missing or does not build (the GPU
test host has CuPy but no pycuda): the same contract and typed errors as pycuda_device.

CuPy is imported only when a device is made or checked, never by `import offloader`.
- Kernel text is compiled by nvcc with the flags pycuda uses (`-cubin -arch=sm_XX`), not by
  CuPy's RawModule: that adds -ftz=true, which flushes float denormals to zero and so would
  make results differ from the CPU and from the pycuda device.  CuPy loads and launches it.
  The cubin is cached by text, flags and nvcc version, as pycuda caches its own: every run of
  a program compiles the same kernels again.
- CuPy works in the GPU's *primary* context.  The constructor initialises it and checks that
  it is current on the calling thread, because the runtime's C side (hostprog/residency.c)
  takes the current context (cuCtxGetCurrent) when it is set up and copies device data back
  with cuMemcpyDtoH_v2 in it.  Other threads get it from the CUDA runtime on their first call.
- As in pycuda_device, each launch ends with cuCtxSynchronize through ctypes, and a failure
  is classified by its CUresult.  A fault (ILLEGAL_ADDRESS) leaves the primary context
  unusable for the rest of the process: the next launches belong in a new process.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .base import GARBAGE_WORD, Capacity, Device, DeviceBuffer, Module
from .checks import check_args, check_copy, check_geometry, host_bytes, kernel_signature
from .emu_compiler import cache_dir
from .errors import CompileError, CompileFailure, LaunchError, LaunchFailure
from .nvcc import find_nvcc, nvcc_version
from .pycuda_device import _CU_RESULTS
from .signature import parse_kernels

_GARBAGE = np.array([GARBAGE_WORD], dtype="<u4").view(np.uint8)


def cupy_available() -> tuple[bool, str]:
    """(whether CuPy imports and sees a GPU, why not)."""
    try:
        import cupy
    except ImportError as e:
        first_line = str(e).partition("\n")[0]
        return False, f"CuPy is not installed ({first_line})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as e:
        return False, f"CuPy cannot use the CUDA runtime ({e})"
    return (count > 0, f"{count} GPU(s)")


class CupyDevice(Device):
    """`close` keeps the primary context: it is the process's, shared with any other CuPy use."""

    kind = "cuda"
    timing_label = "measured"

    def __init__(self, ordinal: int = 0):
        import cupy

        self._cupy = cupy
        self._runtime = cupy.cuda.runtime
        cupy.cuda.Device(ordinal).use()
        self._runtime.free(0)  # the classic no-op that creates the primary context and binds it here
        self._driver = driver = ctypes.CDLL("libcuda.so.1")
        driver.cuMemsetD32_v2.argtypes = (ctypes.c_uint64, ctypes.c_uint32, ctypes.c_size_t)
        context = ctypes.c_void_p()
        if driver.cuCtxGetCurrent(ctypes.byref(context)) or not context.value:
            raise RuntimeError("CuPy made no CUDA context current, so the runtime could not copy back")
        properties = self._runtime.getDeviceProperties(ordinal)
        self._arch = f"sm_{properties['major']}{properties['minor']}"
        self.name = f"{properties['name'].decode()} ({self._arch}) through CuPy"
        self._max_shared = properties["sharedMemPerBlock"]
        self.capacity = Capacity(properties["multiProcessorCount"], properties["maxThreadsPerMultiProcessor"],
                                 properties.get("maxBlocksPerMultiProcessor", 16))

    def alloc(self, nbytes: int) -> DeviceBuffer:
        if nbytes <= 0:
            raise ValueError("allocation size must be positive")
        pointer = self._runtime.malloc(nbytes)
        result = self._driver.cuMemsetD32_v2(pointer, GARBAGE_WORD, nbytes // 4)
        if result:
            self._runtime.free(pointer)
            raise RuntimeError(f"cannot fill a new buffer: {self._error_name(result)}")
        tail = nbytes % 4
        if tail:
            self._runtime.memcpy(pointer + nbytes - tail, _GARBAGE.ctypes.data, tail,
                                 self._runtime.memcpyHostToDevice)
        return DeviceBuffer(nbytes, self, pointer)

    def free(self, buf: DeviceBuffer) -> None:
        check_copy(buf, self, 0)
        self._runtime.free(buf.handle)
        buf.handle = None

    def copy_to_device(self, buf: DeviceBuffer, host) -> None:
        data = host_bytes(host)
        check_copy(buf, self, data.nbytes)
        self._runtime.memcpy(buf.handle + buf.offset, _address(data), data.nbytes,
                             self._runtime.memcpyHostToDevice)

    def copy_to_host(self, buf: DeviceBuffer, out) -> None:
        view = host_bytes(out)
        check_copy(buf, self, view.nbytes)
        self._runtime.memcpy(_address(view), buf.handle + buf.offset, view.nbytes,
                             self._runtime.memcpyDeviceToHost)

    def address(self, buf: DeviceBuffer) -> tuple[int, int]:
        return 1, buf.handle + buf.offset

    def compile(self, source: str, options: Sequence[str] = ()) -> Module:
        kernels = parse_kernels(source)
        nvcc = find_nvcc()
        if nvcc is None:
            raise CompileError(CompileFailure.NO_COMPILER, "the CuPy device compiles with nvcc, which is missing")
        flags = ["-cubin", f"-arch={self._arch}", *options]
        key = hashlib.sha256("\0".join((nvcc_version(nvcc), *flags, source)).encode()).hexdigest()[:32]
        cached = cache_dir() / f"cupy-{key}.cubin"
        log = ""
        if cached.exists():
            image = cached.read_bytes()
        else:
            with tempfile.TemporaryDirectory(prefix="offload-cupy-") as tmp:
                src, cubin = Path(tmp) / "kernel.cu", Path(tmp) / "kernel.cubin"
                src.write_text(source)
                done = subprocess.run([nvcc, *flags, "-o", str(cubin), str(src)], capture_output=True, text=True,
                                      cwd=tmp)
                if done.returncode != 0:
                    raise CompileError(CompileFailure.COMPILER_ERROR, "nvcc rejected the kernel text (see log)",
                                       done.stdout + done.stderr)
                image, log = cubin.read_bytes(), done.stderr
            staged = cached.with_suffix(f".{os.getpid()}.tmp")
            staged.write_bytes(image)
            os.replace(staged, cached)
        module = self._cupy.cuda.Module()
        module.load(image)
        return Module(kernels, log, self, {name: module.get_function(name) for name in kernels})

    def launch(self, module: Module, kernel: str, grid: Sequence[int], block: Sequence[int],
               args: Sequence, shared_bytes: int = 0) -> float:
        sig = kernel_signature(module, self, kernel)
        g, b = check_geometry(kernel, grid, block)
        function = module.handle[kernel]
        if not 0 <= shared_bytes <= self._max_shared:
            raise LaunchError(LaunchFailure.BAD_CONFIGURATION,
                              f"{kernel}: {shared_bytes} bytes of shared memory (at most {self._max_shared})")
        cuda = self._cupy.cuda
        most = cuda.driver.funcGetAttribute(cuda.driver.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, function.ptr)
        if b[0] * b[1] * b[2] > most:
            raise LaunchError(LaunchFailure.OUT_OF_RESOURCES,
                              f"{kernel}: at most {most} threads per block with its registers")
        check_args(sig, args, self)
        start, end = cuda.Event(), cuda.Event()
        start.record()
        try:
            function(g, b, tuple(np.uint64(a.handle + a.offset) if isinstance(a, DeviceBuffer) else a
                                 for a in args), shared_mem=shared_bytes)
        except cuda.driver.CUDADriverError as e:
            raise LaunchError(_CU_RESULTS.get(e.status, LaunchFailure.LAUNCH_FAILED), f"{kernel}: {e}",
                              device_code=e.status) from None
        end.record()
        result = self._driver.cuCtxSynchronize()
        if result:
            raise LaunchError(_CU_RESULTS.get(result, LaunchFailure.LAUNCH_FAILED),
                              f"{kernel}: {self._error_name(result)}", device_code=result)
        return cuda.get_elapsed_time(start, end) / 1e3

    def synchronize(self) -> None:
        self._runtime.deviceSynchronize()

    def _error_name(self, result: int) -> str:
        name = ctypes.c_char_p()
        self._driver.cuGetErrorName(result, ctypes.byref(name))
        return (name.value or b"CUDA error").decode() + f" ({result})"


def _address(view: memoryview) -> int:
    """The host address of a bytes view (read-only ones too), for cudaMemcpy."""
    return np.frombuffer(view, dtype=np.uint8).ctypes.data

"""Step `preflight`: in the first seconds, that everything the check needs imports, and that
numpy, CuPy and pycuda see the GPU; what the host is (kernel, CPU, GPU, driver, versions).

It stops the check (exit status STOP) with one clear line when numpy, CuPy or pycuda does not
import or sees no GPU: every later step would fail, and a vendoring mistake found now costs
seconds, not the whole box. GPU_CHECK_WITHOUT_PYCUDA=1 goes on through CuPy without pycuda
(the contract step then chooses CuPy)."""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
from pathlib import Path

from .record import no_gpu
from .stepio import STOP, Context, StepOutput

# What the later steps import (the wheels scripts/gpu-vendor.sh carries, and the host's own).
NEEDED = ("numpy", "pycparser", "islpy", "pytest", "hypothesis", "offloader.runtime.run",
          "offloader.tune.candidates", "offloader.tune.gpumodel", "offloader.tune.replay", "sizing.gpu_models")
VERSIONS = ("numpy", "pycparser", "islpy", "pytools", "platformdirs", "siphash24", "mako", "pytest",
            "hypothesis", "optuna", "sqlalchemy", "cupy", "pycuda")
DRY = "dry run: no GPU library is used; the emulated device runs the kernels"


def run(context: Context, out: StepOutput) -> int:
    out.set(host=host(), packages=packages(), nvcc=nvcc_version())
    missing = []
    for name in NEEDED:
        try:
            importlib.import_module(name)
        except Exception as error:          # noqa: BLE001 - any import failure stops the check, named
            missing.append(f"{name}: {type(error).__name__}: {error}")
    out.set(missing=missing)
    if context.dry:
        out.set(gpu=no_gpu(DRY),
                libraries={"numpy": _numpy(), "cupy": {"ok": None, "reason": DRY},
                           "pycuda": {"ok": None, "reason": DRY}})
        if missing:
            say("cannot go on, these do not import: " + "; ".join(missing))
            out.finish("failed", "missing: " + "; ".join(missing))
            return STOP
        return out.finish("ok")
    libraries = {"numpy": _numpy(), "cupy": _cupy(), "pycuda": _pycuda()}
    out.set(gpu=nvidia_smi(), libraries=libraries)
    problems = [f"{name}: {entry['reason']}" for name, entry in libraries.items() if not entry["ok"]
                and not (name == "pycuda" and os.environ.get("GPU_CHECK_WITHOUT_PYCUDA") == "1")]
    problems += missing
    for name, entry in libraries.items():
        say(f"{name} {entry.get('version') or '-'}: " + ("sees " + entry["sees"] if entry["ok"] else entry["reason"]))
    if problems:
        say("cannot go on: " + "; ".join(problems))
        out.finish("failed", "; ".join(problems))
        return STOP
    return out.finish("ok")


def say(line: str) -> None:
    print(f"gpu-check preflight: {line}", flush=True)


def host() -> dict:
    from offloader.tune.environment import cpu_model

    memory = None
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        pass
    return {"uname_r": platform.release(), "machine": platform.machine(), "cpu": cpu_model(),
            "cpus": os.cpu_count(), "memory_bytes": memory, "python": platform.python_version(),
            "python_executable": os.path.realpath(sys.executable)}


def packages() -> dict:
    """Version and folder of each package, or why it is missing: shows whether a module came
    from the carried wheels or from the host's own site-packages."""
    found = {}
    for name in VERSIONS:
        try:
            module = importlib.import_module(name)
        except Exception as error:          # noqa: BLE001 - reported, never raised
            found[name] = {"version": None, "from": None, "reason": f"{type(error).__name__}: {error}"[:300]}
            continue
        where = Path(getattr(module, "__file__", None) or ".")
        folder = where.parent.parent if where.name == "__init__.py" else where.parent      # package or module
        found[name] = {"version": getattr(module, "__version__", None) or getattr(module, "VERSION_TEXT", None),
                       "from": str(folder) if where.name else None}
    return found


def nvcc_version() -> dict:
    from offloader.device.nvcc import find_nvcc

    nvcc = find_nvcc()
    if nvcc is None:
        return {"path": None, "version": None, "reason": "nvcc is not on PATH nor in /usr/local/cuda/bin"}
    done = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=30)
    return {"path": nvcc, "version": (done.stdout.strip().splitlines() or [""])[-1]}


def nvidia_smi() -> dict:
    fields = ("name", "driver_version", "memory.total", "pci.bus_id")
    try:
        done = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        return no_gpu(f"nvidia-smi did not run: {error}")
    rows = [[part.strip() for part in line.split(",")] for line in done.stdout.strip().splitlines()]
    if done.returncode or not rows or len(rows[0]) != len(fields):
        return no_gpu(f"nvidia-smi failed: {(done.stderr or done.stdout).strip()[:300]}")
    name, driver, memory, bus = rows[0]
    return {**no_gpu(None), "name": name, "driver": driver, "cuda_driver": _cuda_driver(),
            "memory_bytes": int(float(memory)) << 20, "pci_bus_id": bus, "count": len(rows)}


def _cuda_driver() -> str | None:
    """The CUDA version the driver supports (cuDriverGetVersion), e.g. "13.0"."""
    import ctypes

    try:
        version = ctypes.c_int()
        if ctypes.CDLL("libcuda.so.1").cuDriverGetVersion(ctypes.byref(version)) == 0:
            return f"{version.value // 1000}.{version.value % 1000 // 10}"
    except OSError:
        pass
    return None


def _numpy() -> dict:
    import numpy

    return {"ok": True, "version": numpy.__version__, "sees": "-"}


def _cupy() -> dict:
    try:
        import cupy
    except Exception as error:              # noqa: BLE001 - reported
        return {"ok": False, "version": None, "reason": f"does not import: {error}"[:400]}
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        properties = cupy.cuda.runtime.getDeviceProperties(0)
        if int(cupy.arange(1 << 20, dtype=cupy.int64).sum()) != (1 << 20) * ((1 << 20) - 1) // 2:
            return {"ok": False, "version": cupy.__version__, "reason": "a sum on the GPU came out wrong"}
        runtime = cupy.cuda.runtime.runtimeGetVersion()
    except Exception as error:              # noqa: BLE001 - reported
        return {"ok": False, "version": cupy.__version__, "reason": f"sees no usable GPU: {error}"[:400]}
    name = properties["name"].decode()
    return {"ok": count > 0, "version": cupy.__version__, "name": name, "sees": f"{count} GPU(s), {name} "
            f"(sm_{properties['major']}{properties['minor']})",
            "cuda_runtime": f"{runtime // 1000}.{runtime % 1000 // 10}",
            "reason": None if count else "no GPU"}


def _pycuda() -> dict:
    try:
        import pycuda
        import pycuda.driver as cuda
    except Exception as error:              # noqa: BLE001 - reported
        return {"ok": False, "version": None, "reason": f"does not import: {error}"[:400]}
    version = getattr(pycuda, "VERSION_TEXT", None)
    try:
        cuda.init()
        count = cuda.Device.count()
        gpu = cuda.Device(0)
        context = gpu.make_context()
        try:
            memory = cuda.mem_alloc(1 << 20)
            memory.free()
        finally:
            context.pop()
        major, minor = gpu.compute_capability()
    except Exception as error:              # noqa: BLE001 - reported
        return {"ok": False, "version": version, "reason": f"sees no usable GPU: {error}"[:400]}
    return {"ok": count > 0, "version": version, "sees": f"{count} GPU(s), {gpu.name()} (sm_{major}{minor})",
            "reason": None if count else "no GPU"}

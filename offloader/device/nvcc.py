"""Does kernel text compile for real GPUs, and at what register and shared-memory cost?

Runs `nvcc -cubin -arch=sm_XX -Xptxas -v` for each architecture (in parallel) and reads
ptxas's per-kernel report.  This needs nvcc but no GPU, so it runs on every machine that
has the CUDA toolkit; the result is a typed report, never an exception.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from .errors import CompileFailure

ARCHS = ("sm_75", "sm_90")
_ENTRY = re.compile(r"Compiling entry function '(\w+)' for '(\w+)'")
_PROPERTIES = re.compile(r"Function properties for (\w+)")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers(?:, used (\d+) barriers)?(?:, (\d+) bytes smem)?")


@dataclass(frozen=True)
class KernelResources:
    registers: int = 0
    shared_bytes: int = 0       # static shared memory per block
    barriers: int = 0
    stack_bytes: int = 0
    spill_stores: int = 0
    spill_loads: int = 0


@dataclass(frozen=True)
class NvccReport:
    arch: str
    ok: bool
    failure: CompileFailure | None
    log: str
    seconds: float
    kernels: dict[str, KernelResources] = field(default_factory=dict)


def find_nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found is None and Path("/usr/local/cuda/bin/nvcc").exists():
        found = "/usr/local/cuda/bin/nvcc"
    return found


@cache
def nvcc_version(nvcc: str) -> str:
    """The last line of `nvcc --version` (e.g. "Build cuda_13.0.r13.0/compiler.36424714_0"):
    part of every cache key of compiled kernel text."""
    return subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]


def check(source: str, archs: tuple[str, ...] = ARCHS, options: tuple[str, ...] = ()) -> list[NvccReport]:
    """One report per architecture, in the order of `archs`."""
    nvcc = find_nvcc()
    if nvcc is None:
        return [NvccReport(arch, False, CompileFailure.NO_COMPILER, "nvcc not found", 0.0) for arch in archs]
    with tempfile.TemporaryDirectory(prefix="offload-nvcc-") as tmp:
        src = Path(tmp) / "kernel.cu"
        src.write_text(source)
        with ThreadPoolExecutor(max_workers=len(archs)) as pool:
            return list(pool.map(lambda arch: _compile(nvcc, src, arch, options), archs))


def _compile(nvcc: str, src: Path, arch: str, options: tuple[str, ...]) -> NvccReport:
    start = time.perf_counter()
    done = subprocess.run([nvcc, "-cubin", f"-arch={arch}", "-Xptxas", "-v", *options, "-o",
                           str(src.with_suffix(f".{arch}.cubin")), str(src)],
                          capture_output=True, text=True, cwd=src.parent)
    seconds = time.perf_counter() - start
    log = done.stdout + done.stderr
    if done.returncode != 0:
        return NvccReport(arch, False, CompileFailure.COMPILER_ERROR, log, seconds)
    return NvccReport(arch, True, None, log, seconds, parse_ptxas(log))


def parse_ptxas(log: str) -> dict[str, KernelResources]:
    """Per entry function, what ptxas -v reported (device functions are left out)."""
    found: dict[str, dict[str, int]] = {}
    entry = properties = None
    for line in log.splitlines():
        if m := _ENTRY.search(line):
            entry = m.group(1)
            found.setdefault(entry, {})
        elif m := _PROPERTIES.search(line):
            properties = m.group(1)
        elif (m := _FRAME.search(line)) and properties in found:
            found[properties].update(stack_bytes=int(m.group(1)), spill_stores=int(m.group(2)),
                                     spill_loads=int(m.group(3)))
        elif (m := _USED.search(line)) and entry is not None:
            found[entry].update(registers=int(m.group(1)), barriers=int(m.group(2) or 0),
                                shared_bytes=int(m.group(3) or 0))
    return {name: KernelResources(**values) for name, values in found.items()}

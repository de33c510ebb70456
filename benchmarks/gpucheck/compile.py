"""Step `compile` (dry run): every sample built at its GPU sizes, as the GPU host will build it,
so that a size that no longer fits is found here and not there:
- the runtime's build (analysis, kernels, the host library and the CPU original);
- the kernels through nvcc for the GPU's architecture (a CUDA-only error the emulator's g++
  would not see), unless the smoke mode leaves that to the smoke sample;
- the stack frames (gcc -fstack-usage) against this process's stack limit: a local array
  that no longer fits crashes the program only when it runs;
- the CPU original's static arrays (.bss) against this machine's memory;
- outside the smoke mode, the CPU original run once at its GPU sizes: that it runs (a stack
  array that no longer fits crashes it), and how long it takes on this CPU (GPU sizes aim at
  half a second or more).
"""

from __future__ import annotations

import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from offloader.buildopts import BuildOptions
from offloader.device.nvcc import find_nvcc
from offloader.hostprog.build import BASE_FLAGS
from offloader.hostprog.compiler import cc
from offloader.runtime.run import PreparedProgram

from .sizes import GPU_SIZES, MIN_CPU_SECONDS, SMOKE_SAMPLES
from .stepio import Context, StepOutput


def run(context: Context, out: StepOutput) -> int:
    from offloader.tune.gpumodel import ModelError, ptxas_resources

    if not context.dry:
        return out.finish("skipped", "on a GPU every sample is built at its GPU sizes by its own step")
    limit = resource.getrlimit(resource.RLIMIT_STACK)[0]
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    rows, problems = [], []
    for source in sorted((Path(context.root) / "samples").glob("*.c")):
        name = source.stem
        defines = GPU_SIZES.get(name)
        if defines is None:
            problems.append(f"{name}: no GPU sizes (benchmarks/gpucheck/sizes.py)")
            rows.append({"sample": name, "reason": "no GPU sizes"})
            continue
        options = BuildOptions((str(source),), defines=defines)
        row = {"sample": name, "defines": list(defines)}
        with tempfile.TemporaryDirectory(prefix=f"offload-gpu-compile-{name}-") as folder:
            try:
                prepared = PreparedProgram(options, folder)
                module, _ = prepared.kernels()
            except Exception as error:          # noqa: BLE001 - the build's failure is the finding
                problems.append(f"{name}: does not build at GPU sizes: {error}")
                rows.append({**row, "built": False, "reason": str(error)[:500]})
                continue
            row.update(built=True, regions=len(prepared.regions),
                       bss_bytes=_bss(prepared.reference), stack=_deepest_frame(options, folder))
            if not context.smoke:
                row["cpu_original"] = _run_once(prepared.reference)
                if row["cpu_original"]["failure"]:
                    problems.append(f"{name}: the CPU original fails at GPU sizes: {row['cpu_original']['failure']}")
        if context.smoke and name not in SMOKE_SAMPLES:
            row["nvcc"] = {"ok": None, "reason": "smoke mode: nvcc checks the smoke sample only"}
        elif find_nvcc() is None:
            row["nvcc"] = {"ok": None, "reason": "nvcc is not installed here"}
        else:
            try:
                ptxas_resources(module, context.gpu_model)
                row["nvcc"] = {"ok": True}
            except ModelError as error:
                row["nvcc"] = {"ok": False, "reason": str(error)}
                problems.append(f"{name}: {error}")
        if row["stack"]["bytes"] is not None and limit != resource.RLIM_INFINITY and row["stack"]["bytes"] > limit // 2:
            problems.append(f"{name}: {row['stack']['function']} needs {row['stack']['bytes']} bytes of stack "
                            f"(the limit is {limit})")
        if row["bss_bytes"] is not None and row["bss_bytes"] > memory // 2:
            problems.append(f"{name}: {row['bss_bytes']} bytes of static arrays, over half this machine's memory")
        rows.append(row)
        out.set(samples=rows, stack_limit_bytes=None if limit == resource.RLIM_INFINITY else limit,
                memory_bytes=memory)
    out.set(samples=rows)
    if problems:
        return out.finish("failed", "; ".join(problems))
    return out.finish("ok")


def _run_once(program: str) -> dict:
    """Seconds on this CPU (measured here, not on the GPU host) and how it ended."""
    started = time.perf_counter()
    try:
        done = subprocess.run([program], capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return {"seconds": None, "failure": "over 60 s", "below_half_second": None}
    seconds = time.perf_counter() - started
    failure = None if done.returncode == 0 else \
        f"exit status {done.returncode}: {done.stderr.decode(errors='replace')[-200:]}"
    return {"seconds": seconds, "failure": failure, "below_half_second": seconds < MIN_CPU_SECONDS,
            "where": "this machine's CPU (the dry run's)"}


def _bss(program: str) -> int | None:
    """The size of the program's .bss section (its zero-initialised static arrays)."""
    done = subprocess.run(["readelf", "-S", "-W", program], capture_output=True, text=True)
    for line in done.stdout.splitlines():
        parts = line.replace("[ ", "[").split()
        if len(parts) > 5 and parts[1] == ".bss":
            return int(parts[5], 16)
    return None


def _deepest_frame(options: BuildOptions, folder: str) -> dict:
    """The largest stack frame gcc reports (-fstack-usage) for the program's own functions."""
    compiler = cc()
    deepest = {"function": None, "bytes": None}
    for k, source in enumerate(options.sources):
        target = Path(folder) / f"frames-{k}.o"
        done = subprocess.run([*compiler, *BASE_FLAGS, *options.preprocessor_flags(), "-w", "-fstack-usage",
                               "-c", source, "-o", str(target)], capture_output=True, text=True)
        usage = target.with_suffix(".su")
        if done.returncode or not usage.exists():
            continue
        for line in usage.read_text().splitlines():
            where, size, _ = line.rsplit("\t", 2)
            if deepest["bytes"] is None or int(size) > deepest["bytes"]:
                deepest = {"function": where.rsplit(":", 1)[-1], "bytes": int(size)}
    return deepest

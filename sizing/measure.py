"""`offload profile`: measure the CPU part's time pinned to 1, 2, 4 ... cores.

The CPU part is measured as the whole program built as the CPU baseline (hostprog/baseline.py,
the build `offload run` and `offload tune` compare against), nothing offloaded. Each core count
k runs the program `repetitions` times with its CPU affinity set to k cores (sched_setaffinity
in the child before exec) and OMP_NUM_THREADS (and the BLAS equivalents) set to k; the median
wall time is the point. Only core counts the host has are measured; the others are
extrapolated with an Amdahl fit (sizing/scaling.py).
"""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from offloader.buildopts import BuildOptions
from offloader.errors import UserError
from offloader.hostprog.baseline import build_cpu_baseline, cpu_baseline
from offloader.hostprog.compiler import BuildError

from .scaling import ScalingPoint, complete, fit_amdahl, predict, serial_fraction_from_usage

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Runs:
    """Repeated runs of the program on `cores` cores."""

    cores: int
    walls: tuple[float, ...]
    cpus: tuple[float, ...]         # user + system CPU time of each run

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus)

    @property
    def spread(self) -> float:
        """(max - min) / median of the wall times: how noisy this point is."""
        return (max(self.walls) - min(self.walls)) / self.wall


def build(options: BuildOptions, workdir: Path) -> tuple[Path, list[str]]:
    """The CPU baseline built in workdir: its executable and the command that built it."""
    for source in options.sources:
        if not Path(source).is_file():
            raise UserError("no such source file", file=source)
    try:
        exe = build_cpu_baseline(options, str(workdir))
        return Path(exe), cpu_baseline(options).command(exe)
    except BuildError as exc:
        first = next((line for line in exc.output.splitlines() if "error" in line), exc.output.strip())
        raise UserError(f"the build failed: {first}", file=options.sources[0]) from None


def host_cores() -> list[int]:
    """The CPUs this process may run on."""
    return sorted(os.sched_getaffinity(0))


def run_pinned(exe: Path, args: list[str], cores: list[int], repetitions: int, timeout: float) -> Runs:
    env = dict(os.environ, **{name: str(len(cores)) for name in THREAD_VARIABLES})
    walls, cpus = [], []
    for _ in range(repetitions):
        wall, cpu = _run_once([str(exe), *args], env, set(cores), timeout)
        walls.append(wall)
        cpus.append(cpu)
    return Runs(len(cores), tuple(walls), tuple(cpus))


def _run_once(argv: list[str], env: dict, cores: set[int], timeout: float) -> tuple[float, float]:
    """Wall and CPU time of one run; os.wait4 gives the child's own resource usage."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                 preexec_fn=lambda: os.sched_setaffinity(0, cores))
        timer = threading.Timer(timeout, child.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()[-1:] or [""]
            what = f"was stopped after {timeout:g} s" if child.returncode == -9 else \
                f"exited with status {child.returncode}"
            raise UserError(f"the program {what} on {len(cores)} core(s): {tail[0]}".rstrip(": "),
                            file=argv[0])
    return wall, usage.ru_utime + usage.ru_stime


def profile_cpu(options: BuildOptions, args: str, core_counts: list[int], repetitions: int,
                timeout: float) -> tuple[dict[int, ScalingPoint], dict]:
    """Build, run pinned to each core count the host has, and complete the curve with a fit."""
    available = host_cores()
    measurable = [k for k in core_counts if k <= len(available)]
    if not measurable:
        raise UserError(f"none of the core counts {core_counts} can be measured: this host lets "
                        f"offload use {len(available)} core(s)")
    baseline = cpu_baseline(options)
    with tempfile.TemporaryDirectory(prefix="offload-profile-") as tmp:
        exe, _ = build(options, Path(tmp))
        runs = [run_pinned(exe, shlex.split(args), available[:k], repetitions, timeout) for k in measurable]
    measured = {r.cores: ScalingPoint(r.cores, r.wall, "measured") for r in runs}
    points = complete(measured, core_counts)
    fit = fit_amdahl({n: p.seconds for n, p in measured.items()})
    usage = {r.cores: serial_fraction_from_usage(r.wall, r.cpu, r.cores) for r in runs if r.cores > 1}
    # Cross-check: each multi-core run, through its own CPU time, predicts the 1-core wall time.
    check = {str(n): {"serial_fraction": round(s, 4),
                      "predicted_1_core_seconds": round(predict(n, measured[n].seconds, s, 1), 6)}
             for n, s in usage.items()}
    info = {
        "model": "amdahl",
        "serial_fraction": round(fit.serial_fraction, 4),
        "serial_fraction_from_cpu_time": round(statistics.median(usage.values()), 4) if usage else None,
        "cpu_time_check": check,
        "host_cores": len(available),
        "measured_cores": measurable,
        "repetitions": repetitions,
        "statistic": "median wall time",
        "spread": {str(r.cores): round(r.spread, 4) for r in runs},
        "cpu_seconds": {str(r.cores): round(r.cpu, 6) for r in runs},
        "pinning": "sched_setaffinity to the first k allowed CPUs; " + ", ".join(THREAD_VARIABLES) + " = k",
        "what": "the whole program built as the CPU baseline, so the CPU part is all of it",
        "build": baseline.describe(),
        "baseline": baseline.fingerprint(),
        "args": args,
    }
    return points, info

"""`offload run`: build once, run with the chosen regions on a device, verify, report.

The program runs in a child process (the hostprog runner) under a time limit, so a crash,
hang or wrong output is a recorded failure with a typed code (contracts/run_report.py),
never a crash of offload.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace

from ..analysis import analyze_program
from ..buildopts import BuildOptions
from ..codegen.kernel import KernelError, Variant, generate_kernel, generate_module, kernel_preamble
from ..codegen.regions import find_regions, top_level_types
from ..contracts.run_report import Failure, FailureCode, RegionReport, RunReport, RuntimeStats, read_stats
from ..device import CompileError, choose_kind, open_device
from ..errors import UserError
from ..hostprog.baseline import build_cpu_baseline
from ..hostprog.build import build_host_library
from ..hostprog.compiler import BuildError
from ..hostprog.runner import runner_command, runner_env
from ..hostprog.status import read_status
from .compare import compare_outputs
from .limits import MemoryLimit
from .plan import KernelPlan, plan_for


@dataclass
class RunOptions:
    gpu_regions: str = "all"           # all | none | 1,3
    device: str = "auto"               # auto | cuda | emu
    order: str = "forward"             # emulator: forward | reverse | shuffle
    verify: str = "both"               # region | program | both | none
    args: tuple[str, ...] = ()
    rtol: float = 1e-6
    ignore: tuple[str, ...] = ()
    timeout: float = 600.0
    memory_limit: int = 8 << 30        # bytes the program may use, per run (a cgroup)
    workdir: str | None = None
    progress: object = field(default=None, repr=False)      # callable(str) or None
    gpu_model: str = "t4"              # emulator: the GPU whose launch shapes it runs (tune/gpus.toml)
    skip_kernels: bool = False         # emulator: run no kernel, to time the runtime alone (verify "none")

    def __post_init__(self):
        if self.skip_kernels and (self.device != "emu" or self.verify != "none"):
            raise ValueError("skip_kernels times the runtime on the emulated device, unverified (verify='none')")


def run_program(options: BuildOptions, run: RunOptions) -> RunReport:
    """Build, run and verify; the build folder is removed afterwards unless run.workdir names one."""
    choose_kind(run.device)                 # a device that cannot be had is said before any build
    if run.workdir:
        return PreparedProgram(options, run.workdir, run.progress).run(run)
    with tempfile.TemporaryDirectory(prefix="offload-run-") as workdir:
        report = PreparedProgram(options, workdir, run.progress).run(run)
    return replace(report, workdir=None)


class PreparedProgram:
    """One analysis and one host build of a program, run with any set of regions on the
    device and any kernel variants (the tuner's candidates) without rebuilding."""

    def __init__(self, options: BuildOptions, workdir: str, progress=None):
        self.options, self.workdir = options, os.path.abspath(workdir)
        say = progress or (lambda message: None)
        say("analysing")
        self.result = result = analyze_program(options)
        regions, rejected = find_regions(result)
        self.preamble = kernel_preamble(top_level_types(result))
        self.notes = [{"loop": r.location, "reason": r.reason} for r in rejected]
        usable = []
        for region in regions:
            try:
                generate_kernel(region, Variant(), self.preamble)
                usable.append(region)
            except KernelError as exc:
                self.notes.append({"loop": str(region.top.loop.location), "reason": str(exc)})
        say(f"building the host program with {len(usable)} region(s)")
        try:
            self.build = build_host_library(result, usable, options, os.path.join(self.workdir, "host"))
            self.reference = build_cpu_baseline(options, os.path.join(self.workdir, "reference"))
        except BuildError as exc:
            raise UserError(f"the program does not build: {exc}") from None
        for rid, why in self.build.skipped.items():
            self.notes.append({"loop": str(next(r for r in usable if r.id == rid).top.loop.location), "reason": why})
        self.regions = [r for r in usable if r.id in self.build.regions]
        self._references: dict[tuple, tuple] = {}

    def kernels(self, variants: dict[int, Variant] | None = None) -> tuple[str, dict[int, KernelPlan]]:
        """The CUDA module and plans for these variants (the default for regions not named);
        KernelError if a variant does not suit its region."""
        variants = variants or {}
        sources = [generate_kernel(r, variants.get(r.id, Variant()), self.preamble) for r in self.regions]
        return generate_module(sources, self.preamble), {k.region.id: plan_for(k) for k in sources}

    def reference_runs(self, run: RunOptions) -> tuple["Ended", "Ended"]:
        """The CPU original (the CPU baseline), run twice (outputs that differ between the two are unstable)."""
        key = (tuple(run.args), run.timeout, run.memory_limit)
        if key not in self._references:
            peak_file = os.path.join(self.workdir, "reference", "peak_rss")
            env = {**os.environ, "OFFLOAD_PEAK_RSS_FILE": peak_file}
            runs = [_run([self.reference, *run.args], run.timeout, env=env, limit=run.memory_limit) for _ in range(2)]
            try:
                with open(peak_file) as handle:
                    runs[0].peak_rss = int(handle.read())
            except (OSError, ValueError):
                runs[0].peak_rss = None      # it did not exit normally
            self._references[key] = tuple(runs)
        return self._references[key]

    def run(self, run: RunOptions, variants: dict[int, Variant] | None = None, tag: str = "") -> RunReport:
        """One run; its kernels, plans and statistics go in the build folder, or in its
        subfolder `tag`."""
        say = run.progress or (lambda message: None)
        folder = os.path.join(self.workdir, tag) if tag else self.workdir
        os.makedirs(folder, exist_ok=True)
        notes = list(self.notes)
        kind, why = choose_kind(run.device)
        module, plans = self.kernels(variants)
        kernels_path, plans_path = os.path.join(folder, "kernels.cu"), os.path.join(folder, "plans.json")
        with open(kernels_path, "w") as handle:
            handle.write(module)
        with open(plans_path, "w") as handle:
            json.dump({str(rid): plan.to_json() for rid, plan in plans.items()}, handle)
        compile_failure = None
        if kind == "emu":          # compile here, outside the program's memory limit (cached by content)
            try:
                open_device("emu").compile(module)
            except CompileError as exc:
                notes.append({"loop": "all regions", "reason": f"the kernels do not compile: {exc}"})
                compile_failure = Failure(FailureCode.COMPILE_ERROR, f"the kernels do not compile: {exc}",
                                          detail=exc.code.value)
        say("running the CPU original twice")
        first, second = self.reference_runs(run)
        offloaded, stats_path = None, os.path.join(folder, "stats.json")
        if compile_failure is None:            # else the run could only fail the same way
            say(f"running with regions {run.gpu_regions} on the "
                f"{'GPU' if kind == 'cuda' else 'emulated device'} ({why})")
            offloaded = self._run_offloaded(run, kind, plans_path, kernels_path, stats_path)
        report = _report(self.options, run, kind, self.regions, first, second, offloaded, stats_path, notes,
                         folder, compile_failure)
        return replace(report, device_choice=why, kernels_skipped=run.skip_kernels)

    def _run_offloaded(self, run: RunOptions, kind: str, plans_path: str, kernels_path: str,
                       stats_path: str) -> "Ended":
        """The host library's program under the runner, with the device dispatcher."""
        status_path = os.path.join(os.path.dirname(stats_path), "runner-status.json")
        if os.path.exists(stats_path):
            os.remove(stats_path)
        command = runner_command(self.build.library, list(run.args), dispatcher="device", stats=stats_path,
                                 argv0=self.reference, status=status_path)
        command[command.index("--"):command.index("--")] = [
            "--plans", plans_path, "--kernels", kernels_path, "--device", kind, "--order", run.order,
            "--regions", run.gpu_regions] + (["--verify-regions"] if run.verify in ("region", "both") else []) + (
            ["--capacity", _capacity(run.gpu_model)] if kind == "emu" else []) + (
            ["--skip-kernels"] if run.skip_kernels else [])
        return _run(command, run.timeout, env=runner_env(), limit=run.memory_limit, status=status_path)


def _capacity(gpu_model: str) -> str:
    """The runner's --capacity for the emulator: the named GPU's, so launches take its shapes."""
    from ..tune.gpumodel import gpu_spec

    spec = gpu_spec(gpu_model)
    return f"{spec.sms},{spec.max_threads_per_sm},{spec.max_blocks_per_sm}"


@dataclass
class Ended:
    """How one child process ended. `failure` is known out of band: the parent's own timer, the
    cgroup's OOM counter, the runner's status file, a signal; never the exit status alone."""

    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    failure: FailureCode | None = None     # TIMEOUT, MEMORY_LIMIT, CRASH, RUNNER_ERROR, COMPILE_ERROR
    message: str = ""
    detail: str | None = None
    memory_limit: str = ""                 # how the memory limit was applied, or why not
    peak_rss: int | None = None            # bytes, the program's largest resident set (the baseline's)


def _run(command: list[str], timeout: float, env=None, limit: int = 0, status: str | None = None) -> Ended:
    """Run to completion or timeout, under the memory limit; `status`: the runner's status file."""
    started = time.perf_counter()
    if status and os.path.exists(status):
        os.remove(status)
    with MemoryLimit(limit) as memory:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                preexec_fn=memory.enter)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            out, err = _drain(proc)
            wait_status = os.waitpid(proc.pid, 0)[1]
        finally:
            timed_out = timer.finished.is_set()         # set by firing; cancel() sets it after
            timer.cancel()
        returncode = os.waitstatus_to_exitcode(wait_status)
        seconds = time.perf_counter() - started
        ended = Ended(None if timed_out else returncode, out, err, seconds, memory_limit=memory.applied)
        if timed_out:
            return replace(ended, failure=FailureCode.TIMEOUT, message=f"timeout (stopped after {timeout:g} s)")
        if memory.hit():
            return replace(ended, failure=FailureCode.MEMORY_LIMIT,
                           message=f"memory limit ({limit >> 20} MiB; the cgroup's OOM killer stopped it)")
    runner = read_status(status) if status else None
    if status and runner is None:
        return replace(ended, failure=FailureCode.RUNNER_ERROR,
                       message="the runner did not start: " + (err.strip()[-400:] or f"exit status {returncode}"))
    if runner is not None and runner.failure is not None:
        return replace(ended, failure=runner.failure, message=runner.message, detail=runner.detail)
    if returncode < 0:
        return replace(ended, failure=FailureCode.CRASH, message=f"crash (killed by signal {-returncode})",
                       detail=str(-returncode))
    return ended


def _drain(proc: subprocess.Popen) -> tuple[str, str]:
    """Both pipes read to their end at once (one full pipe must not block the other)."""
    texts = {}

    def read(name, pipe):
        texts[name] = pipe.read().decode(errors="replace")
        pipe.close()

    readers = [threading.Thread(target=read, args=(n, p)) for n, p in (("out", proc.stdout), ("err", proc.stderr))]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    return texts["out"], texts["err"]


def _report(options, run, kind, regions, first, second, offloaded, stats_path, notes, workdir,
            compile_failure) -> RunReport:
    """The run report; each failure typed by where it happened (see FailureCode)."""
    found, no_stats = read_stats(stats_path) if offloaded is not None else (None, "")
    stats = found or RuntimeStats(device=kind, timing="emulated" if kind == "emu" else "measured")
    label, device = stats.timing, stats.device
    failures = []
    if compile_failure is not None:
        failures.append(compile_failure)
    if first.failure is not None:
        failures.append(Failure(FailureCode.REFERENCE_FAILED, f"the CPU original itself failed: {first.message}",
                                detail=first.failure.value))
    if offloaded is not None:
        if offloaded.failure is not None:
            failures.append(Failure(offloaded.failure, f"the offloaded program was stopped: {offloaded.message}",
                                    detail=offloaded.detail))
        elif offloaded.returncode != first.returncode:
            failures.append(Failure(FailureCode.EXIT_STATUS, f"exit status {offloaded.returncode}, the CPU "
                                                             f"original's is {first.returncode}"))
        if no_stats:
            failures.append(Failure(FailureCode.NO_STATISTICS,
                                    f"the offloaded program wrote no statistics ({no_stats}): "
                                    + offloaded.stderr.strip()[-400:]))
    entries = []
    for region in regions:
        entry = stats.regions.get(region.id) or RegionReport(region.id)
        entry = replace(entry, line=region.top.loop.location.line, location=str(region.top.loop.location),
                        device=device, timing=label)
        if entry.errors:
            typed = entry.failure or Failure(FailureCode.LAUNCH_ERROR, entry.errors[0])
            failures.append(replace(typed, region=region.id, message=f"region {region.id} "
                                    f"({region.top.loop.location}) failed on the device: {entry.errors[0]}"))
        if entry.mismatches:
            wrong = entry.mismatches[0]
            failures.append(Failure(FailureCode.REGION_MISMATCH,
                                    f"region {region.id} ({region.top.loop.location}) wrote `{wrong['array']}`"
                                    f"[{wrong['index']}] = {wrong['device']}, the CPU loop {wrong['cpu']}", region.id))
        entries.append(entry)
    unstable = {}
    if run.verify in ("program", "both") and offloaded is not None and offloaded.failure is None:
        for name, a, b, c in (("stdout", first.stdout, second.stdout, offloaded.stdout),
                              ("stderr", first.stderr, second.stderr, offloaded.stderr)):
            comparison = compare_outputs(name, a, b, c, run.rtol, run.ignore)
            if comparison.unstable:
                unstable[name] = comparison.unstable
            if not comparison.same:
                failures.append(Failure(FailureCode.OUTPUT_MISMATCH, comparison.mismatch))
    return RunReport(
        file=options.sources[0], workdir=workdir, gpu_regions=run.gpu_regions, device=device, device_kind=kind,
        order=run.order, timing=label, total_seconds=stats.total_seconds, cpu_seconds=first.seconds,
        cpu_peak_rss_bytes=first.peak_rss, device_memory_peak_bytes=stats.device_memory_peak_bytes,
        memory_limit={"bytes": run.memory_limit, "applied": (offloaded or first).memory_limit},
        exit_status=offloaded.returncode if offloaded is not None else None, cpu_exit_status=first.returncode,
        not_offloaded=tuple(notes), regions=tuple(entries), typed_failures=tuple(failures),
        unstable_tokens=unstable or None)

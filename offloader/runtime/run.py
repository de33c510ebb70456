"""`offload run`: build once, run with the chosen regions on a device, verify, report.

The program runs in a child process (the hostprog runner) under a time limit, so a crash,
hang or wrong output is a recorded failure with a typed reason, never a crash of offload.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

from ..analysis import analyze_program
from ..buildopts import BuildOptions
from ..codegen.kernel import KernelError, Variant, generate_kernel, generate_module, kernel_preamble
from ..codegen.regions import find_regions, top_level_types
from ..device import CompileError, choose_kind, open_device
from ..errors import UserError
from ..hostprog.build import build_host_library, build_reference_program
from ..hostprog.compiler import BuildError
from ..hostprog.runner import runner_command, runner_env
from .compare import compare_outputs
from .limits import MemoryLimit
from .plan import KernelPlan, plan_for

SCHEMA = 1


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


def run_program(options: BuildOptions, run: RunOptions) -> dict:
    """Build, run and verify; the build folder is removed afterwards unless run.workdir names one."""
    choose_kind(run.device)                 # a device that cannot be had is said before any build
    if run.workdir:
        return PreparedProgram(options, run.workdir, run.progress).run(run)
    with tempfile.TemporaryDirectory(prefix="offload-run-") as workdir:
        report = PreparedProgram(options, workdir, run.progress).run(run)
    report["workdir"] = None
    return report


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
            self.reference = build_reference_program(options, os.path.join(self.workdir, "reference"))
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

    def reference_runs(self, run: RunOptions) -> tuple["Outcome", "Outcome"]:
        """The CPU original, run twice (outputs that differ between the two are unstable)."""
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

    def run(self, run: RunOptions, variants: dict[int, Variant] | None = None, tag: str = "") -> dict:
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
        if kind == "emu":          # compile here, outside the program's memory limit (cached by content)
            try:
                open_device("emu").compile(module)
            except CompileError as exc:
                notes.append({"loop": "all regions", "reason": f"the kernels do not compile: {exc}"})
        say("running the CPU original twice")
        first, second = self.reference_runs(run)
        say(f"running with regions {run.gpu_regions} on the {'GPU' if kind == 'cuda' else 'emulated device'} ({why})")
        stats_path = os.path.join(folder, "stats.json")
        if os.path.exists(stats_path):
            os.remove(stats_path)
        command = runner_command(self.build.library, list(run.args), dispatcher="device", stats=stats_path,
                                 argv0=self.reference)
        command[command.index("--"):command.index("--")] = [
            "--plans", plans_path, "--kernels", kernels_path, "--device", kind, "--order", run.order,
            "--regions", run.gpu_regions] + (["--verify-regions"] if run.verify in ("region", "both") else []) + (
            ["--capacity", _capacity(run.gpu_model)] if kind == "emu" else [])
        offloaded = _run(command, run.timeout, env=runner_env(), limit=run.memory_limit)
        report = _report(self.options, run, self.regions, self.build, first, second, offloaded, stats_path, notes,
                         folder)
        report["device_choice"] = why
        return report


def _capacity(gpu_model: str) -> str:
    """The runner's --capacity for the emulator: the named GPU's, so launches take its shapes."""
    from ..tune.gpumodel import gpu_spec

    spec = gpu_spec(gpu_model)
    return f"{spec.sms},{spec.max_threads_per_sm},{spec.max_blocks_per_sm}"


@dataclass
class Outcome:
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    failure: str = ""          # typed: timeout | memory limit | crash | ""
    memory_limit: str = ""     # how the memory limit was applied, or why not
    peak_rss: int | None = None  # bytes, the program's largest resident set (the reference's)


def _run(command: list[str], timeout: float, env=None, limit: int = 0) -> Outcome:
    """Run to completion or timeout, under the memory limit."""
    started = time.perf_counter()
    with MemoryLimit(limit) as memory:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                preexec_fn=memory.enter)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            out, err = _drain(proc)
            status = os.waitpid(proc.pid, 0)[1]
        finally:
            timed_out = timer.finished.is_set()         # set by firing; cancel() sets it after
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        if timed_out:
            return Outcome(None, out, err, seconds, "timeout", memory.applied)
        failure = ""
        if proc.returncode < 0:
            failure = "memory limit" if memory.hit() else "crash"
    return Outcome(proc.returncode, out, err, seconds, failure, memory.applied)


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


def _report(options, run, regions, build, first, second, offloaded, stats_path, notes, workdir) -> dict:
    stats = {}
    if os.path.exists(stats_path):
        with open(stats_path) as handle:
            stats = json.load(handle)
    label = stats.get("timing", "emulated" if run.device == "emu" else "measured")
    report = {"schema": SCHEMA, "file": options.sources[0], "workdir": workdir, "gpu_regions": run.gpu_regions,
              "device": stats.get("device", run.device), "order": run.order, "timing": label,
              "total_seconds": stats.get("total_seconds"), "cpu_seconds": first.seconds,
              "cpu_peak_rss_bytes": first.peak_rss, "device_memory_peak_bytes": stats.get("device_memory_peak_bytes"),
              "memory_limit": {"bytes": run.memory_limit, "applied": offloaded.memory_limit},
              "not_offloaded": notes, "regions": []}
    failures = []
    if first.failure:
        failures.append(f"the CPU original itself failed: {first.failure}")
    if offloaded.failure:
        failures.append(f"the offloaded program was stopped: {offloaded.failure}")
    elif offloaded.returncode != first.returncode:
        failures.append(f"exit status {offloaded.returncode}, the CPU original's is {first.returncode}")
    if not stats:
        failures.append("the offloaded program wrote no statistics: " + offloaded.stderr.strip()[-400:])
    for region in regions:
        entry = stats.get("regions", {}).get(str(region.id), {})
        mismatches = entry.get("mismatches", [])
        for error in entry.get("errors", [])[:1]:
            failures.append(f"region {region.id} ({region.top.loop.location}) failed on the device: {error}")
        if mismatches:
            failures.append(f"region {region.id} ({region.top.loop.location}) wrote `{mismatches[0]['array']}`"
                            f"[{mismatches[0]['index']}] = {mismatches[0]['device']}, the CPU loop "
                            f"{mismatches[0]['cpu']}")
        report["regions"].append({
            "id": region.id, "line": region.top.loop.location.line, "location": str(region.top.loop.location),
            "device": report["device"], "calls": entry.get("calls", 0), "device_runs": entry.get("device_runs", 0),
            "kernel_seconds": entry.get("kernel_seconds", 0.0), "h2d_bytes": entry.get("h2d_bytes", 0),
            "d2h_bytes": entry.get("d2h_bytes", 0), "verify_d2h_bytes": entry.get("verify_d2h_bytes", 0),
            "transfer_seconds": entry.get("transfer_seconds", 0.0),
            "h2d_copies": entry.get("h2d_copies", 0), "d2h_copies": entry.get("d2h_copies", 0),
            "h2d_seconds": entry.get("h2d_seconds", 0.0), "d2h_seconds": entry.get("d2h_seconds", 0.0),
            "dispatch_seconds": entry.get("dispatch_seconds", 0.0), "faults": entry.get("faults", 0),
            "prepare_seconds": entry.get("prepare_seconds", 0.0), "prepared_calls": entry.get("prepared_calls", 0),
            "fault_seconds": entry.get("fault_seconds", 0.0), "alloc_seconds": entry.get("alloc_seconds", 0.0),
            "verify_seconds": entry.get("verify_seconds", 0.0),
            "host_seconds": entry.get("dispatch_seconds", 0.0) + entry.get("fault_seconds", 0.0),
            "cpu_seconds": entry.get("cpu_seconds", 0.0), "cpu_calls": entry.get("cpu_calls", 0),
            "alias_fallbacks": entry.get("alias_fallbacks", 0), "cpu_fallbacks": entry.get("cpu_fallbacks", 0),
            "fallback_reasons": entry.get("fallback_reasons", []), "mismatches": mismatches,
            "max_rel_error": entry.get("max_rel_error"),
            "errors": entry.get("errors", []), "shapes": entry.get("shapes", []), "timing": label})
    if run.verify in ("program", "both") and not offloaded.failure:
        for name, a, b, c in (("stdout", first.stdout, second.stdout, offloaded.stdout),
                              ("stderr", first.stderr, second.stderr, offloaded.stderr)):
            comparison = compare_outputs(name, a, b, c, run.rtol, run.ignore)
            if comparison.unstable:
                report.setdefault("unstable_tokens", {})[name] = comparison.unstable
            if not comparison.same:
                failures.append(comparison.mismatch)
    report["verified"] = not failures
    report["mismatch"] = failures[0] if failures else None
    report["failures"] = failures
    return report

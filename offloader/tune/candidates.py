"""The tuner's objective for a real program: run a configuration (which regions on the GPU,
with which launch settings) through the prepared program, verify it, and time it.

On a GPU the time is measured: one warm-up run, then `repeats` runs, the median kept, every
run verified against the CPU original. On the emulated device the kernels' times mean nothing
for a GPU, so the configuration is verified by emulation (regions and program), run once
more as production runs it (production_run: no region verification, whose shadow copies would
move data back early) and its time is modeled from that run:

    modeled = all-CPU time (measured) - the CPU time of the regions moved to the GPU (measured)
              + their modeled GPU time on the named board (kernels, launches, the transfers
                this placement causes, counted in bytes and copies by the runtime)
              + the runtime's host-side work for them (dispatcher, fault handling: measured)
              + the time of their calls that still ran on the CPU (measured)

A bad candidate never raises: it is an Outcome with a typed failure, mapped from the run
report's failure code by OUTCOME_OF (never read from the messages).
"""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from ..codegen.kernel import KernelError, Variant
from ..codegen.regions import top_level_types
from ..contracts.run_report import FailureCode, RunReport
from ..errors import UserError
from ..runtime.run import PreparedProgram, RunOptions
from .lock import measurement_lock
from .objective import Outcome, RegionProfile, Status
from .space import Config, Region, Space

BLOCKS = {1: ("128x1x1", "256x1x1", "64x1x1", "512x1x1"),
          2: ("32x8x1", "16x16x1", "32x4x1", "64x4x1"),
          3: ("8x8x4", "32x4x2", "16x8x2", "32x2x4")}
AXES = {2: ("default", "swapped"), 3: ("default", "outer-x")}
# Grid sizes: the blocks that fill the device 4, 1 or 16 times (runtime/launch.py), or as many
# as the trip counts need ("trip": one thread per iteration).
GRIDS = {"4w": 4, "1w": 1, "16w": 16, "trip": 0}


@dataclass(frozen=True)
class Measurement:
    """One configuration's verified run, for the outputs: its report and model (if any)."""

    outcome: Outcome
    report: RunReport
    model: Optional[dict]


def search_space(prepared: PreparedProgram) -> Space:
    """Per region: block shape, grid size, loop-to-axis map (nests of 2 or 3) and reduction
    scheme (`atomic` only where every reduction is a `+`)."""
    regions = []
    for region in prepared.regions:
        depth = len(region.mapped)
        options = {"block": BLOCKS[depth], "grid": tuple(GRIDS)}
        if depth in AXES:
            options["axes"] = AXES[depth]
        if region.reductions and all(op == "+" for _, op in region.reductions):
            options["reduction"] = ("tree", "atomic")
        regions.append(Region(str(region.id), options))
    return Space(regions)


def variant_of(settings) -> Variant:
    """A region's launch settings (space.py strings) as the generator's Variant."""
    values = dict(settings or ())
    block = tuple(int(v) for v in values["block"].split("x")) if "block" in values else None
    axes = None
    if values.get("axes") == "swapped":
        axes = (0, 1)
    elif values.get("axes") == "outer-x":
        axes = (0, 2, 1)
    return Variant(block=block, axes=axes, reduction=values.get("reduction", "tree"),
                   waves=GRIDS[values.get("grid", "4w")])


class ProgramObjective:
    """Measures configurations of one prepared program (see the module docstring)."""

    def __init__(self, prepared: PreparedProgram, run: RunOptions, args_sets: list[tuple[str, ...]],
                 gpu_model: Optional[str], store: Path, identity: str, repeats: int = 3):
        """`gpu_model`: on the emulator, the board the objective is modeled for; on a GPU,
        optional, the board to compare the model with the measurements for."""
        self.prepared, self.run_options, self.args_sets = prepared, run, args_sets or [()]
        self.gpu_model, self.repeats = gpu_model, repeats
        self.store, self.identity = store, identity      # what a resumed run needs to write its outputs
        store.mkdir(parents=True, exist_ok=True)
        self._ops = None
        self._baseline: Optional[list[RunReport]] = None
        self.measurements: dict[str, Measurement] = {}
        self.failed_reports: dict[str, RunReport] = {}  # config key -> the run that failed, to say why
        self.count = 0

    # ---- the baseline ------------------------------------------------------------------
    def baseline(self) -> list[RunReport]:
        """The all-CPU runs (one report per args set, median of the repeats): CPU time of the
        program's work and of each region's loop, measured."""
        if self._baseline is None:
            saved = self._load("baseline")
            if saved is not None:
                self._baseline = [RunReport.from_json(r) for r in saved["reports"]]
            else:
                reports = [self._median_run("none", {}, args, f"cpu-{k}") for k, args in enumerate(self.args_sets)]
                failed = next((r for r in reports if not r.verified), None)
                if failed is not None:
                    raise UserError(f"the program does not run as built for the CPU, so there is nothing to "
                                    f"compare with: {failed.failure.message}")
                self._baseline = reports
                self._save("baseline", {"reports": [r.to_json() for r in reports]})
        return self._baseline

    def measurement(self, key: str) -> Optional[Measurement]:
        """A configuration's measurement from this run or, after a resume, from the store."""
        if key in self.measurements:
            return self.measurements[key]
        saved = self._load(key)
        if saved is None:
            return None
        return Measurement(Outcome.from_dict(saved["outcome"]), RunReport.from_json(saved["report"]), saved["model"])

    def _remember(self, key: str, measurement: Measurement) -> None:
        self.measurements[key] = measurement
        self._save(key, {"outcome": measurement.outcome.to_dict(), "report": measurement.report.to_json(),
                         "model": measurement.model})

    def _path(self, key: str) -> Path:
        return self.store / (hashlib.sha256(f"{self.identity}:{key}".encode()).hexdigest()[:24] + ".json")

    def _load(self, key: str) -> Optional[dict]:
        try:
            return json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None

    def _save(self, key: str, data: dict) -> None:
        partial = self._path(key).with_suffix(".partial")
        partial.write_text(json.dumps(data))
        partial.replace(self._path(key))

    def cpu_seconds(self) -> float:
        return sum(report.total_seconds for report in self.baseline())

    def region_cpu_seconds(self) -> dict[int, float]:
        """Each region's measured time in its CPU loop, over all args sets."""
        return {r["id"]: r["cpu_seconds"] for r in _merged(self.baseline())}

    # ---- one configuration -------------------------------------------------------------
    def evaluate(self, config: Config) -> Outcome:
        self.count += 1
        gpu = [int(rid) for rid in config.gpu_regions]
        variants = {int(rid): variant_of(config.settings(rid)) for rid in config.gpu_regions}
        try:
            self.prepared.kernels(variants)
        except KernelError as exc:
            single = config.gpu_regions[0] if len(config.gpu_regions) == 1 else None
            return Outcome.failure("compile_error", str(exc), region=single)
        baseline = self.baseline()
        if not gpu:
            outcome = Outcome("ok", self.cpu_seconds(), kind="measured",
                              regions={str(r["id"]): RegionProfile(cpu_seconds=r["cpu_seconds"])
                                       for r in _merged(baseline)})
            self._remember(config.key, Measurement(outcome, baseline[0], None))
            return outcome
        spec = ",".join(map(str, gpu))
        reports = []
        for k, args in enumerate(self.args_sets):
            report = self._median_run(spec, variants, args, f"trial-{self.count}-{k}")
            if not report.verified:
                self.failed_reports[config.key] = report
                return failed_outcome(report)
            reports.append(report)
        if reports[0].timing == "measured":
            outcome = self._measured(reports, gpu)
            model = self._model_errors(reports[0]) if self.gpu_model else None
        else:
            outcome, model = self._modeled(reports, baseline, gpu)
        self._remember(config.key, Measurement(outcome, reports[0], model))
        return outcome

    def _measured(self, reports, gpu) -> Outcome:
        regions = {}
        for r in _merged(reports):
            if r["id"] in gpu:
                regions[str(r["id"])] = RegionProfile(gpu_seconds=r["kernel_seconds"] + r["transfer_seconds"],
                                                      transfer_seconds=r["transfer_seconds"])
            else:
                regions[str(r["id"])] = RegionProfile(cpu_seconds=r["cpu_seconds"])
        return Outcome("ok", sum(r.total_seconds for r in reports), kind="measured", regions=regions)

    def _model_errors(self, report: RunReport) -> dict:
        """On a GPU with --gpu-model naming it: the model of the same run against what was
        measured, per region (how far the emulator-side objective can be trusted)."""
        from .gpumodel import ModelError, compare_with_measured, model_run

        try:
            model = model_run(report.to_json(), report.workdir, self.ops(), self.gpu_model)
        except ModelError as exc:
            return {"model_errors": [], "model_note": str(exc)}
        return {"models": [model.to_json()], "model_errors": compare_with_measured(model, report.to_json())}

    def _modeled(self, reports, baseline, gpu) -> tuple[Outcome, dict]:
        from .gpumodel import model_run

        total, regions, models = 0.0, {}, []
        for report, cpu in zip(reports, baseline):
            model = model_run(report.to_json(), report.workdir, self.ops(), self.gpu_model)
            models.append(model.to_json())
            by_region = {m.region: m for m in model.regions}
            cpu_by_id = {r.id: r.cpu_seconds for r in cpu.regions}
            ran = {r.id: r for r in report.regions}
            seconds = cpu.total_seconds
            for rid in gpu:
                modeled = by_region.get(rid)
                if modeled is None:
                    continue          # no call reached the device (e.g. every call fell back)
                host = ran[rid].host_seconds
                seconds += modeled.gpu_seconds + host + ran[rid].cpu_seconds - cpu_by_id.get(rid, 0.0)
                previous = regions.get(str(rid), RegionProfile(gpu_seconds=0.0, transfer_seconds=0.0, host_seconds=0.0))
                regions[str(rid)] = RegionProfile(
                    gpu_seconds=previous.gpu_seconds + modeled.gpu_seconds + host,
                    transfer_seconds=previous.transfer_seconds + modeled.transfer_seconds,
                    host_seconds=previous.host_seconds + host)
            total += max(seconds, 0.0)
        for r in _merged(baseline):
            regions.setdefault(str(r["id"]), RegionProfile(cpu_seconds=r["cpu_seconds"]))
        return Outcome("ok", total, kind="modeled", regions=regions), {"models": models}

    def ops(self) -> dict:
        if self._ops is None:
            from .opcount import region_ops

            types = top_level_types(self.prepared.result)
            self._ops = {r.id: region_ops(r, types) for r in self.prepared.regions}
        return self._ops

    # ---- runs --------------------------------------------------------------------------
    def _median_run(self, gpu_regions: str, variants: dict, args: tuple, tag: str) -> RunReport:
        """The first run verifies at both levels (and warms up). Where its time counts (a GPU,
        or the all-CPU baseline) `repeats` more runs follow, verified at program level, and
        the median one is kept; on the emulator the model needs only the first."""
        options = replace(self.run_options, gpu_regions=gpu_regions, args=tuple(args), verify="both", progress=None)
        with measurement_lock("cuda0" if options.device == "cuda" else "cpu"):
            return self._timed_runs(options, gpu_regions, variants, tag)

    def _timed_runs(self, options: RunOptions, gpu_regions: str, variants: dict, tag: str) -> RunReport:
        first = self.prepared.run(options, variants, tag=tag)
        if not first.verified:
            return first
        quiet = replace(options, verify="program")
        # The runs after the first verify the program's output only: what region verification
        # saw is the first run's.
        errors = {r.id: r.max_rel_error for r in first.regions}

        def with_errors(report: RunReport) -> RunReport:
            return replace(report, regions=tuple(replace(r, max_rel_error=errors.get(r.id)) for r in report.regions))

        if first.timing != "measured" and gpu_regions != "none":
            production = production_run(self.prepared, options, variants, tag, first)    # what the model counts
            return with_errors(production) if production.verified else production
        runs = [self.prepared.run(quiet, variants, tag=f"{tag}-r{k}") for k in range(self.repeats)]
        failed = next((r for r in runs if not r.verified), None)
        if failed is not None or not runs:
            return failed or first
        middle = statistics.median_low([r.total_seconds for r in runs])
        chosen = next(r for r in runs if r.total_seconds == middle)
        return with_errors(replace(chosen, workdir=first.workdir, runs_seconds=tuple(r.total_seconds for r in runs)))


def production_run(prepared: PreparedProgram, options: RunOptions, variants: dict, tag: str,
                   verified: RunReport) -> RunReport:
    """The candidate run as production runs it, for the model, after `verified` (the run that
    verified it at both levels, whose region verification moved data back early): first with
    the emulator's kernels left out, so the runtime's own work is timed with the host's caches
    as a GPU run leaves them (an emulated kernel streams the arrays through them first); kept
    when it made the same region calls and ended as the verified run did. Else (the program's
    path depends on what the kernels compute) a run with the kernels, verified at program
    level: its host-side times then include the cache misses emulated kernels cause."""
    budget = min(options.timeout, 10.0 + 3 * (verified.total_seconds or 0.0))
    timing = prepared.run(replace(options, verify="none", skip_kernels=True, timeout=budget), variants,
                          tag=f"{tag}-timing")
    same = timing.verified and timing.exit_status == verified.exit_status and all(
        (verified.region(r.id) or r).calls == r.calls for r in timing.regions)
    if not same:
        timing = prepared.run(replace(options, verify="program"), variants, tag=f"{tag}-production")
    return replace(timing, workdir=verified.workdir)


def _merged(reports: list[RunReport]) -> list[dict]:
    """Per region, figures summed over the args sets."""
    merged: dict[int, dict] = {}
    for report in reports:
        for r in report.regions:
            entry = merged.setdefault(r.id, {"id": r.id, "cpu_seconds": 0.0, "kernel_seconds": 0.0,
                                             "transfer_seconds": 0.0})
            for key in ("cpu_seconds", "kernel_seconds", "transfer_seconds"):
                entry[key] += getattr(r, key)
    return list(merged.values())


# How the tuner records each failure of a run: a table, so a new code is a new row here.
OUTCOME_OF: dict[FailureCode, Status] = {
    FailureCode.COMPILE_ERROR: "compile_error",
    FailureCode.LAUNCH_ERROR: "launch_error",
    FailureCode.TIMEOUT: "timeout",
    FailureCode.MEMORY_LIMIT: "memory_limit",
    FailureCode.CRASH: "crash",
    FailureCode.RUNNER_ERROR: "crash",
    FailureCode.NO_STATISTICS: "crash",
    FailureCode.REFERENCE_FAILED: "crash",
    FailureCode.UNTYPED: "crash",
    FailureCode.EXIT_STATUS: "wrong_output",
    FailureCode.REGION_MISMATCH: "wrong_output",
    FailureCode.OUTPUT_MISMATCH: "wrong_output",
}


def failed_outcome(report: RunReport) -> Outcome:
    """The Outcome of an unverified run: its first failure's code through OUTCOME_OF, blamed
    on the region the failure names (else on the first region with errors or mismatches)."""
    failure = report.failure
    region = failure.region if failure.region is not None else next(
        (r.id for r in report.regions if r.mismatches or r.errors), None)
    return Outcome.failure(OUTCOME_OF[failure.code], "; ".join(f.message for f in report.typed_failures)[:500],
                           kind="emulated" if report.timing == "emulated" else "measured",
                           region=None if region is None else str(region))

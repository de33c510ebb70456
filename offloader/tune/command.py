"""`offload tune`: find the fastest verified offload pattern of a program and write what the
sizer and the deployer need.

One analysis and host build serve every candidate. The study is an Optuna study (SQLite in
results/<app>/study.db unless --storage names another), keyed by the program's identity, so
the same command resumes it; each measurement's report is kept in results/<app>/measurements
so a resumed run writes its outputs without measuring anything again.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from sizing.profile import write_tuned

from ..buildopts import BuildOptions
from ..device import choose_kind
from ..errors import UserError
from ..hostprog.baseline import cpu_baseline
from ..runtime.run import PreparedProgram, RunOptions
from .candidates import ProgramObjective, search_space, variant_of
from .environment import environment
from .outputs import plan_document, profile_document, write_json, write_trials
from .study import identity_hash


@dataclass
class TuneRequest:
    options: BuildOptions
    strategy: str = "default"
    budget: Optional[int] = None
    time_limit: Optional[float] = None
    device: str = "auto"
    gpu_model: Optional[str] = None
    out: Optional[Path] = None
    args_sets: list[tuple[str, ...]] = field(default_factory=lambda: [()])
    storage: Optional[str] = None
    seed: int = 0
    timeout: float = 600.0
    memory_limit: int = 8 << 30
    repeats: int = 3


def identity_of(request: TuneRequest, device_kind: str, gpu_model: Optional[str]) -> dict:
    """What makes two tunings the same study: the sources' text, build options, the CPU
    baseline they are compared with, inputs, the device and the GPU model the objective is for."""
    digest = hashlib.sha256()
    for path in request.options.sources:
        digest.update(Path(path).read_bytes())
    baseline = cpu_baseline(request.options)
    return {"source_hash": digest.hexdigest(),
            "build_options": {"sources": list(request.options.sources),
                              "include_dirs": list(request.options.include_dirs),
                              "defines": list(request.options.defines), "cflags": request.options.cflags,
                              "baseline_flags": " ".join(baseline.flags)},
            "baseline": baseline.identity(),
            "args": [list(a) for a in request.args_sets], "device": device_kind, "gpu_model": gpu_model}


def tune_program(request: TuneRequest, say: Callable[[str], None] = lambda m: None,
                 on_progress=None) -> dict:
    """Tune, write results/<app>/, and return the summary the CLI prints."""
    from .gpumodel import gpu_specs
    from .report_html import write_report
    from .session import tune
    from .ship import ship_program, verify_shipped
    from .strategies import make

    app = Path(request.options.sources[0]).stem
    out = _results_folder(Path(request.out or Path("results") / app))
    kind, why = choose_kind(request.device)
    gpu_model = request.gpu_model or ("t4" if kind == "emu" else None)
    if gpu_model is not None and gpu_model not in gpu_specs():
        raise UserError(f"--gpu-model {gpu_model}: unknown; choose from {', '.join(sorted(gpu_specs()))}")
    build = out / "build"
    shutil.rmtree(build, ignore_errors=True)
    prepared = PreparedProgram(request.options, str(build), say)      # a missing or bad source stops here
    identity = identity_of(request, kind, gpu_model)
    space = search_space(prepared)
    run = RunOptions(device=kind, timeout=request.timeout, memory_limit=request.memory_limit,
                     gpu_model=gpu_model or RunOptions.gpu_model)
    objective = ProgramObjective(prepared, run, request.args_sets, gpu_model,
                                 out / "measurements", identity_hash(identity), request.repeats)
    say(f"{len(prepared.regions)} region(s), {space.size} configuration(s); device: {why}"
        + (f"; GPU times are modeled for {gpu_model}" if kind == "emu" else ""))
    objective.baseline()                     # a program that fails on its own stops here, with why
    storage = request.storage or str(out / "study.db")
    strategy = make(request.strategy, **({} if request.strategy == "exhaustive" else {"seed": request.seed}))
    result = tune(space, objective, strategy, identity=identity, storage=storage, budget=request.budget,
                  time_limit=request.time_limit, on_progress=on_progress)
    opened = result.opened
    if opened.state == "replaced":
        say(f"started a new study: {', '.join(opened.changed) or 'the identity'} changed since the last one")
    elif opened.state == "resumed":
        say(f"resumed the study: {opened.reused} measurement(s) known"
            + (f", {opened.failed_running} left running by a stopped run marked failed" if opened.failed_running else ""))

    cpu_seconds = objective.cpu_seconds()
    best_key = result.best.key if result.best is not None else None
    measurement = objective.measurement(best_key) if best_key else None
    if measurement is None:
        best_key = space.all_cpu().key
        measurement = objective.measurement(best_key) or _all_cpu(objective, space)
    config = space.parse(best_key)
    gpu = [int(rid) for rid in config.gpu_regions]
    reason_none = None if gpu else _why_none(prepared, objective, result)
    variants = {int(rid): variant_of(config.settings(rid)) for rid in config.gpu_regions}
    say("building and verifying the offloaded program")
    ship_program(prepared, variants, gpu, out / "program")
    verified, note = verify_shipped(out / "program", prepared, list(request.args_sets[0]), device=kind)
    device = measurement.report.device or kind
    verified_on = "emu" if kind == "emu" else device
    outcome = measurement.outcome
    timing = outcome.kind if outcome.ok else "measured"
    plan = plan_document(app=app, identity=identity, prepared=prepared, best_key=best_key, space=space,
                         outcome=outcome, cpu_seconds=cpu_seconds, verified=verified, verified_on=verified_on,
                         device=device, gpu_model=gpu_model, strategy=request.strategy,
                         measurements=result.measured, reason_none=reason_none, report=measurement.report,
                         plans=prepared.kernels(variants)[1])
    profile_device = f"{gpu_model} (modeled)" if timing == "modeled" else device
    baseline = cpu_baseline(request.options)
    profile = profile_document(app=app, kind=timing, device=profile_device, outcome=outcome,
                               report=measurement.report, model=measurement.model, cpu_seconds=cpu_seconds,
                               region_cpu_seconds=objective.region_cpu_seconds(), baseline=baseline)
    plan["environment"] = environment(baseline, kind)
    if measurement.model and "model_errors" in measurement.model:
        plan["model_errors"] = measurement.model["model_errors"]     # on a GPU: modeled vs measured
    write_json(out / "plan.json", plan)
    scaling = write_tuned(out / "profile.json", profile)
    if scaling:
        say(scaling)
    write_trials(out / "trials.csv", _study(storage, opened.name))
    report = write_report(out)
    return {"app": app, "out": str(out), "plan": plan, "stopped": result.stopped, "measured": result.measured,
            "measured_now": result.measured_now, "trials": result.trials, "study": opened.state,
            "report": str(report), "ship_note": note}


MARKER = ".offload-results"


def _results_folder(out: Path) -> Path:
    """The results folder, made if new. One that holds files offload did not write is refused:
    the build folder in it is replaced at every run, and nothing of the user's may be lost."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file, not a folder")
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise UserError(f"--out {out}: holds files offload did not write; choose a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by offload tune; its files here are replaced by the next run\n")
    return out


def _all_cpu(objective: ProgramObjective, space):
    objective.evaluate(space.all_cpu())
    return objective.measurement(space.all_cpu().key)


def _why_none(prepared: PreparedProgram, objective: ProgramObjective, result) -> str:
    """Why the best pattern keeps every region on the CPU, in the user's terms."""
    if not prepared.regions:
        return "no loop is offloadable (see `offload analyze`)"
    gpu, transfer, host = 0.0, 0.0, 0.0
    for measurement in objective.measurements.values():
        for profile in measurement.outcome.regions.values():
            if profile.gpu_seconds is not None:
                gpu += profile.gpu_seconds
                transfer += profile.transfer_seconds or 0.0
                host += profile.host_seconds or 0.0
    if gpu and host > gpu / 2:
        return "the runtime's host-side work per call costs more than the kernels save"
    if gpu and transfer > gpu / 2:
        return "transfers cost more than the kernels save"
    if result.measured <= 1:
        return "no configuration with a region on the GPU was measured (budget or time limit)"
    return "no region ran faster on the GPU than on the CPU, or every GPU pattern failed verification"


def _study(storage: str, name: str):
    import optuna

    from .study import storage_for

    return optuna.load_study(study_name=name, storage=storage_for(storage))

"""Step `sample:NAME`: one sample at GPU sizes (its defaults in a dry run), in parts, each kept
as soon as it is done:

1. `cpu`: the CPU original (the reference build, run twice by the runtime) and the program as
   the runtime builds it with every region on the CPU: median of repeats, each region's time;
2. `full_run`: every region on the device at the default launch settings (`offload run
   --device cuda`), verified against the CPU, median of repeats; each region's largest relative
   error, kernel and transfer seconds and bytes. A run that fails verification is run again
   with nvcc's -fmad=false, which tells FMA contraction from a bug;
3. `model`: the GPU model of that run (gpumodel.model_run) against what was measured
   (compare_with_measured), per region;
4. `kernels`: each region's kernel launched directly at that size (kernels.py);
5. `recording`: the two configurations measured, as a tune recording (offloader/tune/replay.py)
   that the strategy benchmark replays; and `replay`: what the GPU model's tests need to model
   the same run again (the run's call shapes and the plans).
The two runs are the tuner's own (ProgramObjective), so their outcomes mean what a tune's do.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from offloader.buildopts import BuildOptions
from offloader.errors import UserError
from offloader.runtime.child import NVCC_FLAGS_ENV
from offloader.runtime.run import PreparedProgram, RunOptions
from offloader.tune.candidates import ProgramObjective, search_space
from offloader.tune.replay import recording_dict

from . import kernels
from .sizes import GPU_SIZES, MIN_CPU_SECONDS
from .stepio import Context, StepOutput

RUN_TIMEOUT = 60.0              # seconds, per program run (the step's box is the real limit)
MEMORY_LIMIT = 32 << 30
REGION_FIELDS = ("id", "location", "calls", "device_runs", "cpu_fallbacks", "kernel_seconds", "transfer_seconds",
                 "h2d_bytes", "d2h_bytes", "verify_d2h_bytes", "cpu_seconds", "cpu_calls")


def run(context: Context, out: StepOutput, name: str) -> int:
    source = Path(context.root) / "samples" / f"{name}.c"
    if not source.exists():
        return out.finish("failed", f"no sample {source}")
    defines = () if context.dry else GPU_SIZES.get(name)
    if defines is None:
        return out.finish("failed", f"no GPU sizes for {name}: add them to benchmarks/gpucheck/sizes.py")
    out.set(sample=f"samples/{name}.c", defines=list(defines), timing=context.timing,
            sizes="the sample's defaults (dry run)" if context.dry else "GPU sizes (benchmarks/gpucheck/sizes.py)")
    workdir = Path(context.work) / "samples" / name
    try:
        prepared = PreparedProgram(BuildOptions((str(source),), defines=tuple(defines)), str(workdir))
    except UserError as error:
        return out.finish("failed", str(error))
    space = search_space(prepared)
    options = RunOptions(device=context.device, timeout=RUN_TIMEOUT, memory_limit=MEMORY_LIMIT)
    objective = ProgramObjective(prepared, options, [()], gpu_model=context.gpu_model, store=workdir / "store",
                                 identity=name, repeats=1 if context.dry or context.smoke else 2)
    cpu_config, gpu_config = space.all_cpu(), space.config(space.ids)
    try:
        outcomes = {cpu_config.key: objective.evaluate(cpu_config)}
    except UserError as error:                      # the program fails on the CPU by itself
        return out.finish("failed", str(error))
    out.set(cpu=cpu_part(prepared, options, objective, outcomes[cpu_config.key]))
    outcomes[gpu_config.key] = objective.evaluate(gpu_config)
    out.set(recording=recording_dict(space, outcomes, name=name, sample=f"samples/{name}.c", defines=list(defines),
                                     kind="measured" if context.timing == "measured" else "modeled",
                                     device=context.device, note="measured by scripts/gpu-check.sh: all regions "
                                     "on the CPU, and all on the GPU at the default settings"))
    measurement = objective.measurement(gpu_config.key)
    report = measurement.report if measurement else objective.failed_reports.get(gpu_config.key)
    report = report.to_json() if report is not None else None
    if report is None:
        return out.finish("failed", f"no run with every region on the device: {outcomes[gpu_config.key].reason}")
    full = full_run_part(report, outcomes[gpu_config.key])
    full["fmad_false"] = fmad_rerun(prepared, options, context) if not full["verified"] else {
        "verified": None, "reason": "verified: no rerun needed"}
    out.set(full_run=full)
    out.set(model=model_part(measurement, report, context))
    folder = Path(report["workdir"])
    plans = json.loads((folder / "plans.json").read_text())
    out.set(replay={"defines": list(defines), "plans": plans,
                    "report": {"timing": report["timing"], "device": report["device"],
                               "regions": [{k: r.get(k) for k in ("id", "device_runs", "shapes", "h2d_bytes",
                                                                   "d2h_bytes", "kernel_seconds", "transfer_seconds")}
                                           for r in report["regions"]]}})
    out.set(kernels=kernels_part(context, folder, plans, report, objective))
    if not full["verified"]:
        return out.finish("failed", f"not verified: {full['mismatch']}")
    return out.finish("ok")


def cpu_part(prepared: PreparedProgram, options: RunOptions, objective: ProgramObjective, outcome) -> dict:
    original, again = prepared.reference_runs(options)
    baseline = objective.baseline()[0].to_json()
    seconds = min(original.seconds, again.seconds)
    return {"original_seconds": [original.seconds, again.seconds], "original_failure": original.failure or None,
            "below_half_second": seconds < MIN_CPU_SECONDS, "all_cpu": outcome.to_dict(),
            "all_cpu_runs_seconds": baseline.get("runs_seconds"), "peak_rss_bytes": original.peak_rss,
            "regions": [{k: r.get(k) for k in ("id", "location", "cpu_seconds", "cpu_calls")}
                        for r in baseline["regions"]]}


def full_run_part(report: dict, outcome) -> dict:
    return {"verified": report["verified"], "mismatch": report["mismatch"], "failures": report["failures"][:5],
            "device": report["device"], "timing": report["timing"], "device_choice": report.get("device_choice"),
            "cpu_seconds": report["cpu_seconds"], "total_seconds": report["total_seconds"],
            "runs_seconds": report.get("runs_seconds"), "outcome": outcome.to_dict(),
            "device_memory_peak_bytes": report.get("device_memory_peak_bytes"),
            "regions": [{**{k: r.get(k) for k in REGION_FIELDS},
                         "max_rel_error": r.get("max_rel_error"),
                         "mismatch": (r.get("mismatches") or [None])[0], "error": (r.get("errors") or [None])[0],
                         "fallback_reasons": r.get("fallback_reasons", [])[:2],
                         "shapes": [{k: s[k] for k in ("values", "elements", "calls")} for s in r.get("shapes", [])]}
                        for r in report["regions"]]}


def fmad_rerun(prepared: PreparedProgram, options: RunOptions, context: Context) -> dict:
    if context.device != "cuda":
        return {"verified": None, "reason": "the emulated device compiles with g++: -fmad is nvcc's"}
    os.environ[NVCC_FLAGS_ENV] = "-fmad=false"
    try:
        report = prepared.run(replace(options, verify="both"), tag="fmad-false").to_json()
    finally:
        del os.environ[NVCC_FLAGS_ENV]
    return {"verified": report["verified"], "mismatch": report["mismatch"],
            "max_rel_errors": {str(r["id"]): r.get("max_rel_error") for r in report["regions"]},
            "verdict": ("FMA contraction: verified without it" if report["verified"]
                        else "not FMA contraction alone: it fails without it too")}


def model_part(measurement, report: dict, context: Context) -> dict:
    model = (measurement.model or {}) if measurement else {}
    regions = []
    for entry in (model.get("models") or [{}])[0].get("regions", []):
        regions.append({k: entry.get(k) for k in ("region", "kernel_seconds", "launch_seconds", "transfer_seconds",
                                                  "gpu_seconds", "dram_bytes", "fp32_flops", "fp64_flops",
                                                  "occupancy", "limiter", "resources")})
    if context.timing != "measured":
        reason = "emulated run: nothing measured to compare the model with"
    elif measurement is None:
        reason = "the run failed verification: the model is compared with verified runs only"
    else:
        reason = model.get("model_note")
    return {"gpu": context.gpu_model, "timing": "modeled", "regions": regions,
            "compared": model.get("model_errors") if context.timing == "measured" else None, "reason": reason}


def kernels_part(context: Context, folder: Path, plans: dict, report: dict, objective: ProgramObjective) -> dict:
    from offloader.device import CompileError, LaunchError, open_device
    from offloader.tune.gpumodel import ModelError, ptxas_resources

    source = (folder / "kernels.cu").read_text()
    try:
        ptx = ptxas_resources(source, context.gpu_model)
    except ModelError as error:
        ptx, note = {}, str(error)
    else:
        note = None
    baseline = objective.baseline()[0]
    cpu = {r.id: r.cpu_seconds / r.cpu_calls for r in baseline.regions if r.cpu_calls}
    device = open_device(context.device)
    try:
        rows = kernels.measure_regions(device, source, plans, report, objective.ops(), context.gpu_model, ptx,
                                       context.ceilings, cpu, context.timing)
    except (CompileError, LaunchError) as error:
        return {"device": device.name, "timing": context.timing, "regions": [], "ptxas_note": note,
                "reason": f"{type(error).__name__} ({error.code.name}): {error}"}
    finally:
        device.close()
    return {"device": device.name, "timing": context.timing, "regions": rows, "ptxas_note": note, "reason": None}

"""Record the tuner's objective over the WHOLE search space of real samples, on the emulated
device with the GPU model (times are modeled), so bench_tune_strategies.py can compare the
strategies on real programs as well as on its synthetic cases.

Measuring every configuration through `offload tune`'s objective would run the program
thousands of times. This uses what the objective's time depends on instead: each placement
(which regions are on the GPU) is run once, verified, on the emulated device; that run gives
the measured CPU times, the call shapes and the bytes the placement moves. Launch settings
change only the kernels' modeled times, so each setting of each region is modeled from that
run without running again (the one assumption: a setting that verifies with the defaults
verifies with the others, which the tests check per kernel variant). The result equals what
`ProgramObjective` computes for the same configuration.

Writes results/bench/recordings/<sample>-<gpu>.json (offloader/tune/replay.py format).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import tempfile
import time
from dataclasses import replace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from offloader.buildopts import BuildOptions  # noqa: E402
from offloader.codegen.kernel import generate_kernel  # noqa: E402
from offloader.codegen.regions import top_level_types  # noqa: E402
from offloader.runtime.plan import plan_for  # noqa: E402
from offloader.runtime.run import PreparedProgram, RunOptions  # noqa: E402
from offloader.tune.candidates import production_run, search_space, variant_of  # noqa: E402
from offloader.tune.gpumodel import model_region, ptxas_resources  # noqa: E402
from offloader.tune.objective import Outcome, RegionProfile  # noqa: E402
from offloader.tune.opcount import region_ops  # noqa: E402
from offloader.tune.replay import save_recording  # noqa: E402

SAMPLES = {"saxpy.c": (), "heat2d.c": ("NX=512", "NY=512", "STEPS=20"), "matmul.c": ()}
GPU = "t4"


def record(sample: str, defines: tuple[str, ...], workdir: str) -> str:
    started = time.perf_counter()
    source = os.path.join(ROOT, "samples", sample)
    prepared = PreparedProgram(BuildOptions(sources=(source,), defines=defines), workdir)
    space = search_space(prepared)
    regions = {str(r.id): r for r in prepared.regions}
    types = top_level_types(prepared.result)
    ops = {rid: region_ops(r, types) for rid, r in regions.items()}
    options = RunOptions(device="emu", verify="both", gpu_model=GPU)
    cpu = prepared.run(RunOptions(device="emu", gpu_regions="none", verify="program", gpu_model=GPU),
                       tag="cpu").to_json()
    cpu_by_id = {str(r["id"]): r["cpu_seconds"] for r in cpu["regions"]}
    # each region's kernel time under each of its settings, given the call shapes of a run
    kernel_models: dict[tuple, object] = {}

    def modeled(rid, settings, entry):
        key = (rid, settings, json.dumps(entry["shapes"], sort_keys=True), entry["device_runs"],
               entry["h2d_bytes"], entry["d2h_bytes"])
        if key not in kernel_models:
            kernel = generate_kernel(regions[rid], variant_of(settings),
                                     prepared.preamble)
            plan = plan_for(kernel)
            ptx = ptxas_resources(kernel.text, GPU).get(plan.kernel)
            kernel_models[key] = model_region(plan, ops[rid], entry["shapes"], GPU, ptx, calls=entry["device_runs"],
                                              h2d_bytes=entry["h2d_bytes"], d2h_bytes=entry["d2h_bytes"],
                                              copies=entry["h2d_copies"] + entry["d2h_copies"])
        return kernel_models[key]

    outcomes = {}
    ids = space.ids
    for placement in itertools.product((False, True), repeat=len(ids)):
        gpu = [rid for rid, on in zip(ids, placement) if on]
        config = space.config(gpu)
        if not gpu:
            outcomes[config.key] = Outcome("ok", cpu["total_seconds"], kind="measured",
                                           regions={rid: RegionProfile(cpu_seconds=cpu_by_id[rid]) for rid in ids})
            continue
        placed = replace(options, gpu_regions=",".join(gpu))
        verified = prepared.run(placed, tag="p-" + "-".join(gpu))
        # as ProgramObjective models it: from a production run
        report = (production_run(prepared, placed, {}, "q-" + "-".join(gpu), verified) if verified.verified
                  else verified).to_json()
        if not report["verified"]:
            for settings in _settings(space, gpu):
                outcomes[space.config(settings).key] = Outcome.failure("wrong_output", report["failures"][0],
                                                                       kind="emulated")
            continue
        entries = {str(r["id"]): r for r in report["regions"]}
        for settings in _settings(space, gpu):
            total, profiles = cpu["total_seconds"], {}
            for rid in ids:
                if rid not in settings:
                    profiles[rid] = RegionProfile(cpu_seconds=cpu_by_id[rid])
                    continue
                entry = entries[rid]
                if not entry["device_runs"]:
                    profiles[rid] = RegionProfile(cpu_seconds=cpu_by_id[rid])
                    continue
                m = modeled(rid, settings[rid], entry)
                total += m.gpu_seconds + entry["host_seconds"] + entry["cpu_seconds"] - cpu_by_id[rid]
                profiles[rid] = RegionProfile(gpu_seconds=m.gpu_seconds + entry["host_seconds"],
                                              transfer_seconds=m.transfer_seconds, host_seconds=entry["host_seconds"])
            outcomes[space.config(settings).key] = Outcome("ok", max(total, 0.0), kind="modeled", regions=profiles)
    out = os.path.join(ROOT, "results", "bench", "recordings", f"{sample[:-2]}-{GPU}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    save_recording(out, space, outcomes, kind="modeled", device="emulated", gpu_model=GPU, sample=sample,
                   defines=list(defines), placements_run=2 ** len(ids),
                   note="each placement run and verified once on the emulated device; launch settings "
                        "modeled from that run (record_sample_spaces.py)")
    print(f"record_sample_spaces: {sample}: {len(outcomes)} configurations of {space.size} "
          f"in {time.perf_counter() - started:.0f} s -> {out}")
    return out


def _settings(space, gpu: list[str]):
    """Every combination of settings of the regions in `gpu`: {rid: settings}."""
    choices = [list(space.region(rid).all_settings()) for rid in gpu]
    for combo in itertools.product(*choices):
        yield dict(zip(gpu, combo))


def main() -> None:
    names = sys.argv[1:] or list(SAMPLES)
    for name in names:
        with tempfile.TemporaryDirectory(prefix="offload-record-") as workdir:
            record(name, SAMPLES.get(name, ()), workdir)


if __name__ == "__main__":
    main()

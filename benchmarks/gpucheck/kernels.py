"""Kernel times at real sizes: a sample's region kernels launched directly, outside the runtime,
timed by CUDA events, and their sustained rates against the ceilings.

Per region that ran on the device, its heaviest recorded call shape (the integer scalars and
array extents the runtime saw) is launched on zero-filled arrays of those extents: with the
grid the runtime launches (the plan's waves of the device's resident blocks, shrunk to the trip
counts: runtime/launch.py), and with the grid that gives every iteration a thread of its own, to
show the headroom of the default grid. Zero-filled data keeps indirect subscripts in bounds; a data-dependent branch
then takes one side only. Scalars the shape does not record (floating-point ones) are 1.

Rates: the region's compulsory DRAM bytes and FLOPs for that call, counted by the GPU model
(gpumodel.model_region), over the measured time; the model's own time for the same call and
grid stands beside it.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import replace

import numpy as np

from offloader.device import LaunchError, LaunchFailure
from offloader.runtime.launch import GRID_LIMITS, launch_grid
from offloader.runtime.plan import KernelPlan
LAUNCHES = 10
SECONDS = 1.0                           # per grid, at most (after the warm-up)


def heaviest(shapes: list[dict]) -> dict:
    """The recorded call shape that moves the most bytes (its arrays' extents)."""
    return max(shapes, key=lambda s: sum(n * s["element_sizes"].get(name, 1) for name, n in s["elements"].items()))


def launch_args(plan: KernelPlan, signature, buffers: dict, values: dict, parts: dict, outs: dict) -> list:
    """The kernel's arguments in the dispatcher's roles (param, init, part, out)."""
    args = []
    for role, param in zip(plan.arguments, signature.params):
        kind, name = role.split(":", 1)
        if kind == "param" and name in buffers:
            args.append(buffers[name])
        elif kind in ("param", "init"):
            args.append(param.dtype(values.get(name, 1)))
        elif kind == "part":
            args.append(parts[name])
        else:
            args.append(outs[name])
    return args


def time_region(device, module, plan: KernelPlan, shape: dict, grid: tuple[int, int, int]) -> dict:
    """Median event time of one call (the kernel, and its final reduction kernel if any)."""
    values = shape["values"]
    buffers, parts, outs = {}, {}, {}
    nblocks = math.prod(grid)
    try:
        for name, count in shape["elements"].items():
            nbytes = max(count * shape["element_sizes"].get(name, 1), 1)
            buffers[name] = device.alloc(nbytes)
            device.copy_to_device(buffers[name], np.zeros(nbytes, dtype=np.uint8))
        signature = module.kernels[plan.kernel]
        for role in plan.arguments:
            kind, name = role.split(":", 1)
            if kind == "part":
                parts[name] = device.alloc(nblocks * 8)
            elif kind == "out":
                outs[name] = device.alloc(8)
        args = launch_args(plan, signature, buffers, values, parts, outs)
        final_args = None
        if plan.final:
            final_signature = module.kernels[plan.final]
            final_args = [np.int64(nblocks)]
            for name in parts:
                outs.setdefault(name, device.alloc(8))              # the tree's result, from the final kernel
                final_args += [final_signature.params[len(final_args)].dtype(0), parts[name], outs[name]]

        def call() -> float:
            seconds = device.launch(module, plan.kernel, grid, plan.block, args)
            if final_args is not None:
                seconds += device.launch(module, plan.final, (1, 1, 1), (1, 1, 1), final_args)
            return seconds

        call()                                                  # warm-up
        times, started = [], time.monotonic()
        while len(times) < LAUNCHES and (not times or time.monotonic() - started < SECONDS):
            times.append(call())
        return {"grid": list(grid), "block": list(plan.block), "launches": len(times),
                "seconds_median": statistics.median(times), "seconds_best": min(times)}
    finally:
        for buffer in (*buffers.values(), *parts.values(), *outs.values()):
            device.free(buffer)


def widest(plan: KernelPlan, values: dict, capacity) -> tuple[int, int, int] | None:
    """A thread per iteration (launch_grid without the device's waves); None when a trip count
    is not known from the recorded values."""
    grid = launch_grid(replace(plan, waves=0), values, capacity)
    return None if any(g == w and w > 1 for g, w in zip(grid, GRID_LIMITS)) else grid


def measure_regions(device, source: str, plans: dict, report: dict, ops: dict, gpu: str, ptx: dict,
                    ceilings: dict, cpu_per_call: dict, timing: str) -> list[dict]:
    """One entry per region of `report` that ran on the device."""
    from offloader.tune.gpumodel import ModelError, gpu_spec, model_region

    spec = gpu_spec(gpu)
    module = device.compile(source)
    rows = []
    for entry in report["regions"]:
        rid = entry["id"]
        if not entry.get("device_runs") or not entry.get("shapes") or str(rid) not in plans:
            continue
        plan = KernelPlan.from_json(plans[str(rid)])
        shape = heaviest(entry["shapes"])
        row = {"region": rid, "location": entry.get("location"), "kernel": plan.kernel, "final": plan.final,
               "values": shape["values"], "elements": shape["elements"], "timing": timing,
               "run_kernel_seconds_per_call": entry["kernel_seconds"] / entry["device_runs"],
               "cpu_seconds_per_call": cpu_per_call.get(rid), "grids": {}}
        wide = widest(plan, shape["values"], device.capacity)
        runtime = tuple(shape["grid"]) if shape.get("grid") else launch_grid(plan, shape["values"], device.capacity)
        shaped = {"runtime": plan, "thread_per_iteration": replace(plan, waves=0)}
        for label, grid in (("runtime", runtime), ("thread_per_iteration", wide)):
            if grid is None:
                row["grids"][label] = {"reason": "the trip counts are not known from the recorded shape"}
                continue
            if label != "runtime" and list(grid) == row["grids"]["runtime"].get("grid"):
                row["grids"][label] = {**row["grids"]["runtime"], "same_as": "runtime"}
                continue
            try:
                measured = time_region(device, module, plan, shape, grid)
            except LaunchError as error:
                row["grids"][label] = {"grid": list(grid), "error": f"{error.code.name}: {error}"}
                if error.code is LaunchFailure.ILLEGAL_ADDRESS:     # the context is lost
                    row["grids"][label]["note"] = "the device's context was lost; later regions were not timed"
                    rows.append(row)
                    return rows
                continue
            try:
                modeled = model_region(shaped[label], ops[rid], [{**shape, "calls": 1}], spec,
                                       ptx.get(plan.kernel)).shapes[0]
            except (ModelError, KeyError) as error:
                modeled = {"reason": f"not modeled: {error}"}
            row["grids"][label] = {**measured, **rates(measured["seconds_median"], modeled, spec, ceilings, timing)}
        rows.append(row)
    return rows


def rates(seconds: float, modeled: dict, spec, ceilings: dict, timing: str) -> dict:
    """Sustained bandwidth and FLOP rate of one call, against the measured copy ceiling and the
    datasheet's peaks; on the emulated device, only the model's figures (a CPU's rate says
    nothing about a GPU)."""
    out = {"modeled_seconds": modeled.get("kernel_seconds"), "modeled_bound": modeled.get("bound"),
           "compulsory_bytes": modeled.get("compulsory_bytes"), "dram_bytes": modeled.get("dram_bytes"),
           "fp32_flops": modeled.get("fp32_flops"), "fp64_flops": modeled.get("fp64_flops")}
    if timing != "measured" or not seconds or modeled.get("compulsory_bytes") is None:
        return {**out, "gbps": None, "gflops": None, "rates_reason": "emulated: no GPU rates" if timing != "measured"
                else "no byte or FLOP counts"}
    gbps = modeled["compulsory_bytes"] / seconds / 1e9
    flops = modeled["fp32_flops"] + modeled["fp64_flops"]
    precision = "fp64" if modeled["fp64_flops"] >= modeled["fp32_flops"] else "fp32"
    d2d = ceilings.get("device_to_device_gbps")
    return {**out, "gbps": gbps, "gflops": flops / seconds / 1e9,
            "of_measured_copy_ceiling": gbps / d2d if d2d else None,
            "of_datasheet_bandwidth": gbps / spec.board.bandwidth_gbps,
            "of_datasheet_peak_flops": flops / seconds / spec.board.peak_flops(precision) if flops else None,
            "precision": precision, "model_error": (modeled["kernel_seconds"] - seconds) / seconds}

"""A GPU performance model: what a region's kernels would take on a named GPU, without one.

On the emulated device measured kernel times are CPU times, so the tuner's objective there is
this model. Every time it gives is `modeled`, and `ModelInputs` states what it comes from.

Per call (each distinct call shape the run recorded, times its calls):
- work: floating-point operations (opcount.py) times the trips of the loops around them;
  DRAM bytes: each array's compulsory footprint (footprints.region_accesses) in 32-byte
  sectors, and when the call's working set exceeds L2, an access whose threadIdx.x stride
  spreads a warp over more sectors than its elements fill pays for whole sectors
  (`sector_factor`); L1 bytes: every access of every iteration, in the sectors a warp
  touches (`cache_bytes`), since kernels that reread data are bound by cache, not DRAM;
- occupancy: resident blocks per SM from the block size and ptxas's registers and shared
  memory;
- time, wave by wave: blocks fill SMs x resident blocks; a wave takes the longer of its
  busiest SM's FLOPs (at that SM's share of the FP32 and FP64 peaks) or L1 bytes, and its
  DRAM bytes at the bandwidth, or at what its warps keep in flight over the memory latency
  (Little's law). So a small grid or a low occupancy is slower than the roofline
  max(fp32 / fp32_peak + fp64 / fp64_peak, dram / bandwidth, l1 / l1_bandwidth), which a
  full machine reaches;
- plus a launch overhead per kernel launch; transfers are the run's h2d/d2h bytes over the
  board's PCIe link plus a latency per copy the runtime made.
The host-side work of the runtime itself (the dispatcher, the fault handler) is not modeled
here: it is measured in the run, and the tuner adds it (tune/candidates.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tomllib
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np

from sizing.gpu_models import BOARDS, Board

from ..device.emu_compiler import cache_dir
from ..device.errors import CompileFailure
from ..device.base import Capacity
from ..device.nvcc import KernelResources, check, find_nvcc, nvcc_version
from ..runtime.footprints import bound_values, region_accesses
from ..runtime.launch import launch_grid
from ..runtime.plan import KernelPlan
from .opcount import ARITHMETIC, MATH, UNKNOWN_CALL, RegionOps

SCHEMA = 1
SPECS = Path(__file__).with_name("gpus.toml")
SECTOR = 32                      # bytes: the unit DRAM and L2 move
WARP = 32
REGISTER_UNIT = 256              # registers are allocated per warp in units of 256
COMPUTE_WARPS = 16               # warps per SM that hide FP pipeline latency (4 schedulers x ~4)
BYTES_IN_FLIGHT_PER_WARP = 512   # 32 lanes x 16 bytes: a few independent loads per thread
L1_BYTES_PER_CLOCK = 128         # per SM, Volta and later (Jia et al., "Dissecting the NVIDIA
                                 # Volta GPU Architecture via Microbenchmarking", 2018)
MEMORY_LATENCY_S = 600e-9        # DRAM latency under load, typical of pointer-chase benchmarks
ASSUMED_REGISTERS = 32           # per thread, when ptxas did not say
MAX_POINTS = 1 << 22             # loop values enumerated per chain; beyond, evenly sampled


class ModelError(Exception):
    """The configuration cannot run on that GPU (nvcc rejects it, or a block does not fit)."""


@dataclass(frozen=True)
class GpuSpec:
    name: str
    board: Board
    arch: str
    sms: int
    max_threads_per_sm: int
    max_warps_per_sm: int
    max_blocks_per_sm: int
    registers_per_sm: int
    shared_per_sm_kib: int
    shared_reserved_bytes: int
    l2_mib: float
    boost_ghz: float
    link_gbps: float
    link_latency_us: float
    launch_us: float

    @property
    def capacity(self) -> Capacity:
        return Capacity(self.sms, self.max_threads_per_sm, self.max_blocks_per_sm)

    def figures(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "board"}, "board": self.board.name,
                "fp32_tflops": self.board.fp32_tflops, "fp64_tflops": self.board.fp64_tflops,
                "bandwidth_gbps": self.board.bandwidth_gbps}


@cache
def gpu_specs() -> dict[str, GpuSpec]:
    """The GPUs `--gpu-model` accepts (gpus.toml), by name."""
    data = tomllib.loads(SPECS.read_text(encoding="utf-8"))
    return {name: GpuSpec(name=name, **{**entry, "board": BOARDS[entry["board"]]}) for name, entry in data.items()}


def gpu_spec(gpu: Union[str, GpuSpec]) -> GpuSpec:
    if isinstance(gpu, GpuSpec):
        return gpu
    found = gpu_specs().get(gpu.lower())
    if found is None:
        raise ValueError(f"unknown GPU model {gpu!r}; known: {', '.join(gpu_specs())}")
    return found


# ---- ptxas: registers and shared memory per kernel --------------------------------------------
def ptxas_resources(source: str, gpu: Union[str, GpuSpec]) -> dict[str, KernelResources]:
    """Per kernel of `source`, what `nvcc -Xptxas -v` reports for the GPU's arch (cached on
    disk by text, arch and nvcc version). {} when nvcc is missing: the model then assumes
    ASSUMED_REGISTERS and says so. ModelError when nvcc rejects the text."""
    spec = gpu_spec(gpu)
    nvcc = find_nvcc()
    if nvcc is None:
        return {}
    key = hashlib.sha256("\0".join((nvcc_version(nvcc), spec.arch, source)).encode()).hexdigest()
    path = cache_dir() / f"ptxas-{key[:32]}.json"
    if path.exists():
        return {name: KernelResources(**values) for name, values in json.loads(path.read_text()).items()}
    (report,) = check(source, archs=(spec.arch,))
    if report.failure is CompileFailure.NO_COMPILER:
        return {}
    if not report.ok:
        first = next((line for line in report.log.splitlines() if "error" in line), report.log[-300:])
        raise ModelError(f"nvcc rejects the kernels for {spec.arch}: {first.strip()}")
    staged = path.with_suffix(f".{os.getpid()}.tmp")
    staged.write_text(json.dumps({name: asdict(r) for name, r in report.kernels.items()}))
    os.replace(staged, path)
    return report.kernels


def occupancy(spec: GpuSpec, block: tuple[int, ...], resources: KernelResources) -> tuple[int, str]:
    """Resident blocks per SM and the resource that limits them (the CUDA occupancy rules,
    without per-block register granularity)."""
    threads = math.prod(block)
    if not 0 < threads <= 1024:
        raise ModelError(f"a block of {threads} threads is outside 1..1024")
    warps = -(-threads // WARP)
    per_warp = -(-max(resources.registers, 1) * WARP // REGISTER_UNIT) * REGISTER_UNIT
    limits = {"warps": min(spec.max_warps_per_sm, spec.max_threads_per_sm // WARP) // warps,
              "blocks": spec.max_blocks_per_sm,
              "registers": spec.registers_per_sm // (per_warp * warps),
              "shared memory": spec.shared_per_sm_kib * 1024 // (resources.shared_bytes + spec.shared_reserved_bytes or 1)}
    limiter = min(limits, key=limits.get)
    if limits[limiter] == 0:
        raise ModelError(f"a block of {threads} threads with {resources.registers} registers and "
                         f"{resources.shared_bytes} bytes of shared memory does not fit on a {spec.name} SM")
    return limits[limiter], limiter


# ---- iterations ----------------------------------------------------------------------------------
def iterations(chain: tuple[str, ...], ranges: Mapping[str, Mapping],
               values: Mapping[str, int]) -> tuple[int, list[str]]:
    """How often the body of the innermost loop of `chain` runs, and the loops whose bounds
    are unknown (each counted as one trip). Only loops whose values later bounds use are
    enumerated (vectorised); the others multiply. Triangular bounds are exact up to
    MAX_POINTS enumerated values, then evenly sampled."""
    needed, later = set(), set()
    for var in reversed(chain):
        if var in later:
            needed.add(var)
        for terms in (*ranges.get(var, {}).get("lowers", ()), *ranges.get(var, {}).get("uppers", ())):
            later.update(s for monomial, _ in terms for s in monomial)
    bindings: dict[str, np.ndarray] = {}
    weight = np.ones(1)
    unknown = []
    for var in chain:
        loop = ranges.get(var)
        lower = _bound(loop["lowers"], values, bindings, np.maximum) if loop else None
        upper = _bound(loop["uppers"], values, bindings, np.minimum) if loop else None
        if lower is None or upper is None:
            unknown.append(var)
            continue
        step = abs(loop["step"]) or 1
        trips = np.maximum((upper - lower) // step + 1, 0)
        if var not in needed:
            weight = weight * trips
            continue
        total = float(trips.sum())
        share = min(1.0, MAX_POINTS / max(total, 1))
        picks = np.where(trips > 0, np.maximum(1, np.ceil(trips * share)), 0).astype(np.int64)
        within = np.arange(int(picks.sum()), dtype=np.int64) - np.repeat(np.cumsum(picks) - picks, picks)
        spread = np.repeat(trips, picks) * within // np.maximum(np.repeat(picks, picks), 1)
        weight = np.repeat(weight * trips / np.maximum(picks, 1), picks)
        bindings = {name: np.repeat(b, picks) for name, b in bindings.items()}
        bindings[var] = np.repeat(lower, picks) + step * spread
    return int(round(float(weight.sum()))), unknown


def _bound(polys, values, bindings, pick) -> Optional[np.ndarray]:
    size = len(next(iter(bindings.values()))) if bindings else 1
    return bound_values(polys, {k: int(v) for k, v in values.items()}, bindings, size, pick)


_MEMO: dict[str, object] = {}
MEMO_KEPT = 1024


def _memo(key: list, compute):
    """Results that launch settings do not change, kept across calls: a tuner pays for each
    region and call shape once, not once per configuration."""
    text = json.dumps(key, sort_keys=True)
    if text not in _MEMO:
        if len(_MEMO) >= MEMO_KEPT:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[text] = compute()
    return _MEMO[text]


def trip_count(chain: tuple[str, ...], ranges: Mapping[str, Mapping], values: Mapping[str, int]) -> tuple[int, list]:
    """iterations(), memoised."""
    return _memo(["iterations", chain, [ranges.get(v) for v in chain], values],
                 lambda: iterations(chain, ranges, values))


# ---- bytes -------------------------------------------------------------------------------------
def _footprint_counts(plan: KernelPlan, shape: Mapping) -> dict[str, dict[str, tuple[int, int]]]:
    """Per array and direction ('read', 'write'): distinct elements and distinct 32-byte
    sectors a call touches (pointer assumed sector-aligned)."""
    return _memo(["footprints", plan.to_json()["footprints"], plan.to_json()["ranges"], shape],
                 lambda: _count_footprints(plan, shape))


def _count_footprints(plan: KernelPlan, shape: Mapping) -> dict[str, dict[str, tuple[int, int]]]:
    out: dict[str, dict[str, tuple[int, int]]] = {}
    elements, sizes = shape["elements"], shape["element_sizes"]
    for direction in ("read", "write"):
        part = replace(plan, footprints=tuple(f for f in plan.footprints if getattr(f, direction)))
        for name, access in region_accesses(part, shape["values"], elements).items():
            runs = access.need if direction == "read" else access.writes
            size = sizes.get(name, 1)
            if runs is None:
                runs = np.array([[0, int(elements[name])]], dtype=np.int64)
            count = int((runs[:, 1] - runs[:, 0]).sum())
            if count:
                out.setdefault(name, {})[direction] = (count, _sectors(runs, size))
    return out


def _sectors(runs: np.ndarray, size: int) -> int:
    """Distinct 32-byte sectors the element runs touch (the pointer assumed sector-aligned):
    per run its first to last sector, less the one a run shares with the run before."""
    first, last = runs[:, 0] * size // SECTOR, (runs[:, 1] * size - 1) // SECTOR
    shared = np.count_nonzero(first[1:] == last[:-1]) if len(runs) > 1 else 0
    return int((last - first + 1).sum()) - shared


def thread_x_stride(offset: Optional[list], thread_x: str, values: Mapping[str, int]) -> Optional[int]:
    """Elements between the accesses of neighbouring threadIdx.x threads; None when not a
    constant (indirect or non-linear subscripts)."""
    if offset is None:
        return None
    stride = 0
    for monomial, coeff in offset:
        uses = list(monomial).count(thread_x)
        if uses == 0:
            continue
        rest = [s for s in monomial if s != thread_x]
        if uses > 1 or any(s not in values for s in rest):
            return None
        stride += coeff * math.prod(int(values[s]) for s in rest)
    return abs(stride)


def row_sectors(stride: Optional[int], element: int, lanes: int) -> int:
    """Sectors one warp row (`lanes` neighbouring threadIdx.x threads) touches in one access:
    its elements span lanes * stride * element bytes; an unknown stride, or one of 32 bytes or
    more, gives each lane its own sectors; stride 0 is one element for the whole row."""
    per_element = -(-element // SECTOR)
    if stride == 0:
        return per_element
    if stride is None or stride * element >= SECTOR:
        return lanes * per_element
    return -(-lanes * stride * element // SECTOR)


def sector_factor(stride: Optional[int], element: int, block_x: int) -> float:
    """Bytes a warp moves from DRAM per useful byte when nothing else uses the rest of its
    sectors: 1 for stride 0 or 1 with a full warp row, up to 32 / element for scattered access."""
    if stride == 0:
        return 1.0
    lanes = min(block_x, WARP)
    return max(1.0, row_sectors(stride, element, lanes) * SECTOR / (lanes * element))


def dram_bytes(plan: KernelPlan, shape: Mapping, thread_x: str, spec: GpuSpec) -> tuple[int, float]:
    """(compulsory bytes in sectors, modeled DRAM bytes) of one call."""
    counts = _footprint_counts(plan, shape)
    sizes = shape["element_sizes"]
    working = sum(max(c[0] for c in arrays.values()) * sizes.get(name, 1) for name, arrays in counts.items())
    fits = working <= spec.l2_mib * 2 ** 20
    compulsory = modeled = 0.0
    for name, arrays in counts.items():
        size = sizes.get(name, 1)
        for direction, (elements, sectors) in arrays.items():
            compulsory += sectors * SECTOR
            factor = max((sector_factor(thread_x_stride(f.offset, thread_x, shape["values"]), size, plan.block[0])
                          for f in plan.footprints if f.array == name and getattr(f, direction)), default=1.0)
            modeled += sectors * SECTOR if fits else max(sectors * SECTOR, elements * size * factor)
    return int(compulsory), modeled


def cache_bytes(plan: KernelPlan, shape: Mapping, thread_x: str, ranges: Mapping) -> float:
    """Bytes one call's loads and stores move through L1 (hits included): per access, warp
    instructions (its iterations / 32) times the sectors a warp touches. This, not DRAM, is
    what limits kernels that reread data from cache, like a matrix product without tiling."""
    values, sizes = shape["values"], shape["element_sizes"]
    lanes = min(plan.block[0], WARP)
    total = 0.0
    for f in plan.footprints:
        stride = thread_x_stride(f.offset, thread_x, values)
        sectors = -(-WARP // lanes) * row_sectors(stride, sizes.get(f.array, 1), lanes)
        total += (f.read + f.write) * trip_count(f.loops, ranges, values)[0] / WARP * sectors * SECTOR
    return total


# ---- time ----------------------------------------------------------------------------------------
def kernel_seconds(spec: GpuSpec, blocks: int, block: tuple[int, ...], resident: int, fp32: float, fp64: float,
                   nbytes: float, cached: float, lanes: float) -> tuple[float, int]:
    """(seconds, waves) for `blocks` equal blocks doing a call's FLOPs, DRAM bytes and L1
    bytes (`cached`); `lanes`: the share of threadIdx.x lanes with work (idle lanes still take
    issue slots and keep no loads in flight). Per wave, the busiest SM's FLOPs and L1 traffic
    (separate pipelines: the longer counts) at its share of the peaks, slowed when it has too
    few warps to hide latency, against the wave's DRAM bytes at the bandwidth its warps can
    keep busy."""
    warps_per_block = -(-math.prod(block) // WARP)
    slots = spec.sms * resident
    full, rest = divmod(blocks, slots)
    peak32, peak64 = spec.board.peak_flops("fp32") / spec.sms, spec.board.peak_flops("fp64") / spec.sms
    l1 = L1_BYTES_PER_CLOCK * spec.boost_ghz * 1e9
    seconds = 0.0
    for count, in_wave in ((full, slots), (1 if rest else 0, rest)):
        if count == 0:
            continue
        per_sm = -(-in_wave // spec.sms)
        pace = min(1.0, per_sm * warps_per_block / COMPUTE_WARPS) * lanes
        compute = per_sm * max(fp32 / peak32 + fp64 / peak64, cached / l1) / blocks / pace
        in_flight = in_wave * warps_per_block * lanes * BYTES_IN_FLIGHT_PER_WARP / MEMORY_LATENCY_S
        memory = in_wave * nbytes / blocks / min(spec.board.bandwidth, in_flight)
        seconds += count * max(compute, memory)
    return seconds, full + (1 if rest else 0)


def roofline_seconds(spec: GpuSpec, fp32: float, fp64: float, nbytes: float, cached: float) -> tuple[float, str]:
    """The time a full machine needs, and what bounds it: compute, DRAM (memory) or L1 (cache)."""
    times = {"compute": fp32 / spec.board.peak_flops("fp32") + fp64 / spec.board.peak_flops("fp64"),
             "memory": nbytes / spec.board.bandwidth,
             "cache": cached / (L1_BYTES_PER_CLOCK * spec.boost_ghz * 1e9 * spec.sms)}
    bound = max(times, key=times.get)
    return times[bound], bound


@dataclass(frozen=True)
class RegionModel:
    """One region's modeled GPU time on `gpu`, summed over its device calls."""

    region: int
    kernel: str
    gpu: str
    calls: int
    fp32_flops: float
    fp64_flops: float
    compulsory_bytes: float
    dram_bytes: float
    roofline_seconds: float
    kernel_seconds: float
    launch_seconds: float
    transfer_seconds: float
    h2d_bytes: int
    d2h_bytes: int
    registers: int
    shared_bytes: int
    resources: str                 # where registers and shared memory come from
    resident_blocks: int
    occupancy: float               # resident warps / the SM's maximum
    limiter: str
    shapes: tuple[dict, ...]       # per call shape: its calls and modeled figures
    notes: tuple[str, ...]
    timing: str = "modeled"

    @property
    def gpu_seconds(self) -> float:
        return self.kernel_seconds + self.launch_seconds + self.transfer_seconds

    def to_json(self) -> dict:
        return {**asdict(self), "gpu_seconds": self.gpu_seconds}


def model_region(plan: KernelPlan, ops: RegionOps, shapes: list[dict], gpu: Union[str, GpuSpec],
                 ptx_info: Optional[KernelResources], *, calls: Optional[int] = None, h2d_bytes: int = 0,
                 d2h_bytes: int = 0, copies: Optional[int] = None) -> RegionModel:
    """The region's kernel time for the recorded call `shapes` (see the module docstring).
    `calls`: the region's device calls, when more than the shapes recorded (the runtime keeps
    a few distinct shapes; the rest are modeled as the average recorded call). Transfers:
    the bytes the run moved for this region, over the link, and the link's latency per copy
    the runtime made (`copies`; None: one per direction that moved data)."""
    spec = gpu_spec(gpu)
    resources = ptx_info or KernelResources(registers=ASSUMED_REGISTERS)
    resident, limiter = occupancy(spec, plan.block, resources)
    ranges = {r["var"]: r for r in ops.ranges}
    ranges.update({r.var: asdict(r) for r in plan.ranges})
    notes = list(ops.notes)
    if ptx_info is None:
        notes.append(f"registers assumed ({ASSUMED_REGISTERS} per thread): no ptxas report")
    if resources.spill_stores or resources.spill_loads:
        notes.append(f"ptxas spills {resources.spill_stores + resources.spill_loads} bytes; "
                     "local memory traffic is not modeled")
    axes = plan.axes or tuple(range(len(ops.mapped) - 1, -1, -1))
    x_index = axes.index(0)
    thread_x = ops.mapped[x_index]
    rows, totals = [], np.zeros(7)
    for shape in shapes:
        values = shape["values"]
        fp = [0.0, 0.0]
        for group in ops.groups:
            count, unknown = trip_count(group.loops, ranges, values)
            notes += [f"loop {v}'s bounds are unknown for {values}: counted as one trip" for v in unknown]
            fp[0] += count * group.fp32
            fp[1] += count * group.fp64
        compulsory, nbytes = dram_bytes(plan, shape, thread_x, spec)
        grid = launch_grid(plan, values, spec.capacity)
        outer = trip_count(ops.mapped[:x_index], ranges, values)[0]
        trips_x = trip_count(ops.mapped[:x_index + 1], ranges, values)[0] / max(outer, 1)
        threads_x = grid[0] * plan.block[0]
        lanes = trips_x / (math.ceil(trips_x / threads_x) * threads_x) if trips_x > 0 else 1.0
        cached = cache_bytes(plan, shape, thread_x, ranges)
        seconds, waves = kernel_seconds(spec, math.prod(grid), plan.block, resident, fp[0], fp[1], nbytes, cached,
                                        lanes)
        roof, bound = roofline_seconds(spec, fp[0], fp[1], nbytes, cached)
        n = shape["calls"]
        totals += n * np.array([fp[0], fp[1], compulsory, nbytes, roof, seconds, 1])
        rows.append({"calls": n, "values": values, "grid": list(grid), "waves": waves, "lanes": round(lanes, 4),
                     "fp32_flops": fp[0], "fp64_flops": fp[1], "compulsory_bytes": compulsory,
                     "dram_bytes": nbytes, "cache_bytes": cached, "roofline_seconds": roof,
                     "kernel_seconds": seconds, "bound": bound})
    recorded = int(totals[6])
    calls = max(calls or 0, recorded)
    if calls > recorded:
        notes.append(f"{calls - recorded} calls of unrecorded shapes modeled as the average recorded call")
        totals *= calls / max(recorded, 1)
    launches = calls * (2 if plan.final else 1)
    if copies is None:
        copies = (h2d_bytes > 0) + (d2h_bytes > 0)
    transfer = (h2d_bytes + d2h_bytes) / (spec.link_gbps * 1e9) + spec.link_latency_us * 1e-6 * copies
    return RegionModel(plan.region, plan.kernel, spec.name, calls, *map(float, totals[:6]),
                       launch_seconds=launches * spec.launch_us * 1e-6, transfer_seconds=transfer,
                       h2d_bytes=h2d_bytes, d2h_bytes=d2h_bytes, registers=resources.registers,
                       shared_bytes=resources.shared_bytes,
                       resources=f"ptxas {spec.arch}" if ptx_info else "assumed", resident_blocks=resident,
                       occupancy=resident * -(-math.prod(plan.block) // WARP) / spec.max_warps_per_sm,
                       limiter=limiter, shapes=tuple(rows), notes=tuple(dict.fromkeys(notes)))


# ---- a program ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelInputs:
    """What the modeled numbers come from, stated in every output."""

    gpu: dict
    sources: dict
    constants: dict = field(default_factory=lambda: {
        "sector_bytes": SECTOR, "compute_warps_per_sm": COMPUTE_WARPS,
        "bytes_in_flight_per_warp": BYTES_IN_FLIGHT_PER_WARP, "memory_latency_s": MEMORY_LATENCY_S,
        "l1_bytes_per_clock_per_sm": L1_BYTES_PER_CLOCK, "assumed_registers": ASSUMED_REGISTERS})
    flop_weights: dict = field(default_factory=lambda: {
        **ARITHMETIC, "comparison": 1, **MATH, "other calls": UNKNOWN_CALL})


def model_inputs(spec: GpuSpec, ptx_by_kernel: Mapping) -> ModelInputs:
    nvcc = find_nvcc()
    return ModelInputs(spec.figures(), {
        "peaks": f"sizing.gpu_models board {spec.board.name} (datasheet peaks); SM limits in {SPECS.name}",
        "iterations": "offload run call shapes (integer scalars, array extents) over the plan's loop ranges",
        "flops": "static counts per statement group (offloader/tune/opcount.py)",
        "bytes": "DRAM: compulsory footprint in 32-byte sectors, times the threadIdx.x sector factor when "
                 "the working set exceeds L2; L1: every access's warp sectors",
        "occupancy": f"nvcc -Xptxas -v for {spec.arch} ({nvcc_version(nvcc)})" if ptx_by_kernel and nvcc
        else f"assumed {ASSUMED_REGISTERS} registers per thread",
        "transfers": "offload run h2d/d2h bytes over link_gbps, plus link_latency_us per copy the runtime made",
        "launches": "launch_us per kernel launch"})


@dataclass(frozen=True)
class ProgramModel:
    gpu: str
    inputs: ModelInputs
    regions: tuple[RegionModel, ...]
    skipped: dict                      # region id -> why it is not modeled

    @property
    def totals(self) -> dict:
        keys = ("kernel_seconds", "launch_seconds", "transfer_seconds", "gpu_seconds", "fp32_flops",
                "fp64_flops", "dram_bytes")
        return {k: sum(getattr(r, k) for r in self.regions) for k in keys}

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "timing": "modeled", "gpu": self.gpu, "inputs": asdict(self.inputs),
                **self.totals, "regions": [r.to_json() for r in self.regions],
                "skipped": {str(k): v for k, v in self.skipped.items()}}


def model_program(report: dict, plans: Mapping, ops_by_region: Mapping[int, RegionOps], gpu: Union[str, GpuSpec],
                  ptx_by_kernel: Mapping[str, KernelResources]) -> ProgramModel:
    """Every region of an `offload run --json` report that ran on the device, modeled on
    `gpu`. `plans`: plans.json of the run's build folder (ids as keys, KernelPlans or JSON)."""
    spec = gpu_spec(gpu)
    plans = {str(k): p if isinstance(p, KernelPlan) else KernelPlan.from_json(p) for k, p in plans.items()}
    regions, skipped = [], {}
    for entry in report["regions"]:
        rid = entry["id"]
        if not entry.get("device_runs") or not entry.get("shapes"):
            skipped[rid] = "no call ran on the device"
        elif str(rid) not in plans or rid not in ops_by_region:
            skipped[rid] = "no kernel plan or operation counts"
        else:
            plan = plans[str(rid)]
            regions.append(model_region(plan, ops_by_region[rid], entry["shapes"], spec,
                                        ptx_by_kernel.get(plan.kernel), calls=entry["device_runs"],
                                        h2d_bytes=entry["h2d_bytes"], d2h_bytes=entry["d2h_bytes"],
                                        copies=_copies(entry)))
    return ProgramModel(spec.name, model_inputs(spec, ptx_by_kernel), tuple(regions), skipped)


def _copies(entry: dict) -> Optional[int]:
    """The copies a region's calls made, from a run report (None for reports from before
    the runtime counted them)."""
    if "h2d_copies" not in entry:
        return None
    return entry["h2d_copies"] + entry["d2h_copies"]


def model_run(report: dict, folder: Union[str, Path], ops_by_region: Mapping[int, RegionOps],
              gpu: Union[str, GpuSpec]) -> ProgramModel:
    """model_program for a run whose build folder was kept (`offload run --keep`): `folder`
    holds its plans.json and kernels.cu; ptxas runs on the kernels (cached)."""
    folder = Path(folder)
    plans = json.loads((folder / "plans.json").read_text())
    ptx = ptxas_resources((folder / "kernels.cu").read_text(), gpu)
    return model_program(report, plans, ops_by_region, gpu, ptx)


def compare_with_measured(model: ProgramModel, measured: dict) -> list[dict]:
    """Per modeled region, the model against a real GPU's `offload run --json` report of the
    same program and placement: kernel seconds (the model's, without launch overhead, as the
    runtime times kernels with CUDA events) and transfer seconds, with relative errors
    (model - measured) / measured. A region the report has no device run of is `not_recorded`."""
    if measured.get("timing") != "measured":
        raise ValueError(f"the report's times are {measured.get('timing')!r}, not measured on a GPU")
    by_id = {r["id"]: r for r in measured["regions"]}
    out = []
    for region in model.regions:
        real = by_id.get(region.region)
        row = {"region": region.region, "gpu": model.gpu, "device": measured.get("device")}
        if real is None or not real.get("device_runs"):
            out.append({**row, "status": "not_recorded"})
            continue
        row["status"] = "compared"
        for what, modeled in (("kernel", region.kernel_seconds), ("transfer", region.transfer_seconds)):
            seen = real[f"{what}_seconds"]
            row.update({f"modeled_{what}_seconds": modeled, f"measured_{what}_seconds": seen,
                        f"{what}_error": (modeled - seen) / seen if seen > 0 else None})
        out.append(row)
    return out

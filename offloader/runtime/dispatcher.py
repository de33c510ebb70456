"""The device dispatcher: runs a wrapped region on a Device instead of the CPU loop.

Per call: read every variable through its address (abi.py), refuse (CPU loop, counted) when
pointers may overlap or an extent is unknown, copy in what the region reads and the device
lacks (residency.py), launch, copy reduction results back, and set the loop variables' final
values. Written arrays stay on the device until host code touches them. In verify mode the
region's C twin also runs on shadow copies of the inputs and every written array is compared;
what that makes come back to the host is counted apart (`verify_d2h_bytes`).
"""

from __future__ import annotations

import ctypes
import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..device import Device, Module
from ..hostprog.abi import HostRegion, Slot
from .footprints import ArrayAccess, region_accesses
from .plan import KernelPlan, evaluate
from .region_check import compare_region, run_twin
from .residency import Residency, Traffic, element_units

ACCESS_CACHE = 32          # footprint evaluations kept per region (time steps repeat a few)
NULL_PAGE = 4096           # no variable lives below this address
SHAPES = 16                # distinct call shapes recorded per region


@dataclass
class RegionStats:
    calls: int = 0
    device_runs: int = 0
    cpu_fallbacks: int = 0
    alias_fallbacks: int = 0
    kernel_seconds: float = 0.0
    transfer_seconds: float = 0.0
    cpu_seconds: float = 0.0              # measured time in the region's CPU loop, all its calls
    cpu_calls: int = 0
    h2d_bytes: int = 0
    d2h_bytes: int = 0
    verify_d2h_bytes: int = 0
    fallback_reasons: list[str] = field(default_factory=list)
    shapes: list[dict] = field(default_factory=list)       # distinct call shapes, for the GPU model
    mismatches: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)        # launch or runtime failures


@dataclass
class Extent:
    slot: Slot
    address: int          # where the data the variable names starts
    base: int             # the allocation (or array) it lies in
    size: int
    element_size: int
    kind: int             # how the allocation was made (runtime.h OFFLOAD_BLOCK_*), -1: a local array


class CpuFallback(Exception):
    """This call runs the CPU loop; the message says why (recorded, never silent)."""


class DeviceDispatcher:
    def __init__(self, library: ctypes.CDLL, regions: dict[int, HostRegion], plans: dict[int, KernelPlan],
                 device: Device, module: Module, enabled: set[int], verify: bool, rtol: float):
        self.library, self.regions, self.plans = library, regions, plans
        self.device, self.module, self.enabled = device, module, enabled
        self.verify, self.rtol = verify, rtol
        self.residency = Residency(device, library)
        self.stats = {rid: RegionStats() for rid in regions}
        self._accesses: dict[int, dict] = {rid: {} for rid in regions}
        self.lookup = getattr(library, "__offload_alloc_lookup")   # getattr: no name mangling
        self.lookup.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_longlong)]
        self.lookup.restype = ctypes.c_int
        self.watch = getattr(library, "__offload_alloc_watch")
        self.watch.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self.block_kind = getattr(library, "__offload_alloc_kind")
        self.block_kind.argtypes, self.block_kind.restype = [ctypes.c_void_p], ctypes.c_int
        self.scalar_types: dict[str, np.dtype] = {}
        self.places: dict[str, tuple[int, int]] = {}    # where each slot's variable lives: address, size

    # ---- the callback ------------------------------------------------------------------
    def __call__(self, region_id: int, addrs, sizes) -> int:
        """Never raises into C: a failure is recorded (the run then fails verification) and
        the CPU loop runs."""
        try:
            return self._dispatch(region_id, addrs, sizes)
        except Exception as exc:  # noqa: BLE001 - typed below, and reported, never swallowed
            code = getattr(exc, "code", None)
            self.stats[region_id].errors.append(f"{type(exc).__name__}{f' ({code.name})' if code else ''}: {exc}")
            return 0

    def _dispatch(self, region_id: int, addrs, sizes) -> int:
        stats = self.stats[region_id]
        stats.calls += 1
        if region_id not in self.enabled or region_id not in self.plans:
            return 0
        region, plan = self.regions[region_id], self.plans[region_id]
        try:
            extents, scalars = self._read(region, addrs, sizes)
            self._check_overlap(plan, extents, stats)
            finals = self._finals(region, plan, scalars)
        except CpuFallback as why:
            stats.cpu_fallbacks += 1
            if len(stats.fallback_reasons) < 20:
                stats.fallback_reasons.append(str(why))
            return 0
        shadows = None
        if self.verify:
            self.account_host_copies()
            shadows = {name: self._host_view(e).copy() for name, e in extents.items()}
            stats.verify_d2h_bytes += sum(self.residency.copied_on_access().values())
        results = self._run(region, plan, extents, scalars, stats)
        self._write_back(region, addrs, results, finals)
        if self.verify:
            twin = run_twin(self.library, region, extents, shadows, scalars, self.scalar_types)
            for mismatch in compare_region(region, plan, extents, shadows, results, twin, self._host_view, self.rtol):
                if len(stats.mismatches) < 20:
                    stats.mismatches.append(mismatch.to_json())
            stats.verify_d2h_bytes += sum(self.residency.copied_on_access().values())
        stats.device_runs += 1
        return 1

    def collect_cpu_times(self) -> None:
        """Read what the C runtime measured in each region's CPU loop."""
        seconds = getattr(self.library, "__offload_cpu_seconds")
        seconds.argtypes, seconds.restype = [ctypes.c_int, ctypes.POINTER(ctypes.c_longlong)], ctypes.c_double
        for region_id, stats in self.stats.items():
            calls = ctypes.c_longlong()
            stats.cpu_seconds = seconds(region_id, ctypes.byref(calls))
            stats.cpu_calls = calls.value

    def account_host_copies(self) -> None:
        """Charge what host code made come back since the last call to the regions that wrote it."""
        for region_id, copied in self.residency.copied_on_access().items():
            if region_id in self.stats:
                self.stats[region_id].d2h_bytes += copied

    # ---- reading the variables ---------------------------------------------------------
    def _read(self, region: HostRegion, addrs, sizes):
        extents, scalars = {}, {}
        count = len(region.slots)
        for slot in region.slots:
            address = addrs[slot.index]
            element_size = sizes[count + slot.index]
            if address < NULL_PAGE:                       # `&p->n` with p NULL: nothing to read
                raise CpuFallback(f"`{slot.name}` is read through a null pointer")
            if slot.kind == "place":
                self.places[slot.name] = (address, sizes[slot.index])
            elif slot.kind == "scalar":
                scalars[slot.name] = _read_scalar(address, slot, sizes[slot.index])
                self.scalar_types[slot.name] = scalar_dtype(slot, sizes[slot.index])
                self.places[slot.name] = (address, sizes[slot.index])
            elif slot.kind == "array":
                if sizes[slot.index] <= 0:
                    raise CpuFallback(f"the size of array `{slot.name}` is not known")
                tracked = self.block_kind(address)
                extents[slot.name] = Extent(slot, address, address, sizes[slot.index], element_size, tracked)
            else:
                self.places[slot.name] = (address, ctypes.sizeof(ctypes.c_void_p))
                pointer = ctypes.c_void_p.from_address(address).value
                base, size = ctypes.c_void_p(), ctypes.c_longlong()
                if not pointer or not self.lookup(pointer, ctypes.byref(base), ctypes.byref(size)):
                    raise CpuFallback(f"`{slot.name}` does not point into a tracked allocation")
                extents[slot.name] = Extent(slot, pointer, base.value, size.value, element_size,
                                            self.block_kind(base.value))
        return extents, scalars

    def _check_overlap(self, plan: KernelPlan, extents: dict[str, Extent], stats: RegionStats) -> None:
        places = {n: (extents[n].base, extents[n].size) for n in plan.no_alias if n in extents}
        places.update({n: self.places[n] for n in plan.no_alias if n not in extents and n in self.places})
        names = sorted(places)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                (x, xs), (y, ys) = places[a], places[b]
                if x < y + ys and y < x + xs:
                    stats.alias_fallbacks += 1
                    raise CpuFallback(f"`{a}` and `{b}` overlap in memory")
        # A field loaded once at entry must not be stored to by the loop (analysis: not-written).
        for name in plan.not_written:
            x, xs = self.places[name]
            for written in plan.writes:
                if written in extents and x < extents[written].base + extents[written].size \
                        and extents[written].base < x + xs:
                    stats.alias_fallbacks += 1
                    raise CpuFallback(f"`{name}` is loaded from memory that `{written}`, which the loop writes, "
                                      "overlaps")

    @staticmethod
    def _host_view(extent: Extent) -> np.ndarray:
        return np.ctypeslib.as_array((ctypes.c_uint8 * extent.size).from_address(extent.base))

    # ---- moving data and launching -----------------------------------------------------
    def _run(self, region: HostRegion, plan: KernelPlan, extents, scalars, stats: RegionStats) -> dict:
        traffic = Traffic()
        params = {slot.name: scalars[slot.name] for slot in region.slots
                  if slot.role == "param" and slot.kind == "scalar"}
        accesses = self._region_accesses(plan, params, extents)
        units: dict[int, int] = {}
        for extent in extents.values():
            units[extent.base] = math.gcd(units.get(extent.base, 0), extent.element_size, extent.address - extent.base)
        buffers, allocations = {}, {}
        for name, extent in extents.items():
            if extent.slot.kind == "pointer" and extent.base not in self.residency.allocations:
                self.watch(extent.base, 1)             # so free() drops the device copy
            alloc = allocations[name] = self.residency.allocation(extent.base, extent.size, extent.kind,
                                                                  units[extent.base])
            offset = extent.address - extent.base
            buffers[name] = alloc.buffer.at(offset) if offset else alloc.buffer
        for name, extent in extents.items():
            access = accesses.get(name, ArrayAccess(None, None))
            self.residency.bring_in(allocations[name], element_units(
                access.need, extent.address - extent.base, extent.element_size, allocations[name].unit), traffic)
        signature = self.module.kernels[plan.kernel]
        grid = launch_grid(plan, scalars)
        nblocks = grid[0] * grid[1] * grid[2]
        parts, outs, args = {}, {}, []
        for role, param in zip(plan.arguments, signature.params):
            kind, name = role.split(":", 1)
            if kind == "param" and name in buffers:
                args.append(buffers[name])
            elif kind == "param":
                args.append(param.dtype(scalars[name]))
            elif kind == "init":
                args.append(param.dtype(scalars[name]))
            elif kind == "part":
                parts[name] = self.device.alloc(nblocks * self.scalar_types[name].itemsize)
                args.append(parts[name])
            else:                                          # out: the atomic variant adds into it
                outs[name] = self._scalar_buffer(name, scalars[name])
                args.append(outs[name])
        stats.kernel_seconds += self.device.launch(self.module, plan.kernel, grid, plan.block, args)
        if plan.final:
            final_args, final_sig = [np.int64(nblocks)], self.module.kernels[plan.final]
            for name in parts:
                outs[name] = self._scalar_buffer(name, scalars[name])
                final_args += [final_sig.params[len(final_args)].dtype(scalars[name]), parts[name], outs[name]]
            stats.kernel_seconds += self.device.launch(self.module, plan.final, (1, 1, 1), (1, 1, 1), final_args)
        for name in plan.writes:
            if name in extents:
                extent, access = extents[name], accesses.get(name, ArrayAccess(None, None))
                self.residency.written(allocations[name], element_units(
                    access.writes, extent.address - extent.base, extent.element_size, allocations[name].unit),
                    region.id, traffic)
        for name in set(extents) - set(plan.writes):
            self.residency.release_read(allocations[name])
        started = time.perf_counter()
        results = {}
        for name, buffer in outs.items():
            value = np.zeros(1, dtype=self.scalar_types[name])
            self.device.copy_to_host(buffer, value)
            stats.d2h_bytes += value.nbytes
            results[name] = value[0]
            self.device.free(buffer)
        for buffer in parts.values():
            self.device.free(buffer)
        stats.transfer_seconds += time.perf_counter() - started + traffic.seconds
        stats.h2d_bytes += traffic.h2d_bytes
        stats.d2h_bytes += traffic.d2h_bytes
        return results

    def _region_accesses(self, plan: KernelPlan, scalars, extents) -> dict[str, ArrayAccess]:
        """The footprints evaluated for this call's values (cached: time steps repeat them)."""
        counts = {name: (e.base + e.size - e.address) // max(e.element_size, 1) for name, e in extents.items()}
        key = (tuple(sorted((n, int(v)) for n, v in scalars.items() if np.issubdtype(type(v), np.integer))),
               tuple(sorted(counts.items())))
        cache = self._accesses[plan.region]
        found = cache.pop(key, None)
        if found is None:
            found = region_accesses(plan, scalars, counts)
            if len(cache) >= ACCESS_CACHE:
                cache.pop(next(iter(cache)))
        cache[key] = found
        self._record_shape(plan.region, key, extents)
        return found

    def _record_shape(self, region_id: int, key, extents) -> None:
        """Count calls per distinct (integer scalars, array extents): with the plan's
        footprints, enough for a model to recount a call's iterations and bytes."""
        shapes = self.stats[region_id].shapes
        values, counts = dict(key[0]), dict(key[1])
        for shape in shapes:
            if shape["values"] == values and shape["elements"] == counts:
                shape["calls"] += 1
                return
        if len(shapes) < SHAPES:
            shapes.append({"values": values, "elements": counts, "calls": 1,
                           "element_sizes": {name: e.element_size for name, e in extents.items()}})

    def _scalar_buffer(self, name: str, value):
        host = np.array([value], dtype=self.scalar_types[name])
        buffer = self.device.alloc(host.nbytes)
        self.device.copy_to_device(buffer, host)
        return buffer

    # ---- what the loop leaves behind ---------------------------------------------------
    def _finals(self, region: HostRegion, plan: KernelPlan, scalars) -> dict:
        if not any(slot.role == "loopvar" for slot in region.slots):
            return {}
        finals = final_loop_values(plan, scalars)
        if finals is None:
            raise CpuFallback("the loop bounds cannot be evaluated to set the loop variables afterwards")
        return finals

    def _write_back(self, region: HostRegion, addrs, results, finals) -> None:
        for slot in region.slots:
            if slot.role == "reduction":
                _write_scalar(addrs[slot.index], self.scalar_types[slot.name], results[slot.name])
            elif slot.role == "loopvar" and slot.name in finals:
                _write_scalar(addrs[slot.index], self.scalar_types[slot.name], finals[slot.name])

    def free_hook(self, base: int, size: int, keeps_data: int) -> None:
        writer, copied = self.residency.drop(base, bool(keeps_data))
        if writer in self.stats:
            self.stats[writer].d2h_bytes += copied


def launch_grid(plan: KernelPlan, scalars: dict) -> tuple[int, int, int]:
    """The plan's grid, shrunk to what the loops' trip counts need (the kernels stride over
    any grid, so this only saves idle threads). A loop whose bounds depend on an outer loop
    is sized at the outer loop's first and last values."""
    grid = list(plan.grid)
    depth = len(plan.loops)
    values = dict(scalars)
    for k, loop in enumerate(plan.loops):
        axis = plan.axes[k] if plan.axes else depth - 1 - k      # kernel.Variant's default map
        trips = []
        for outer in _outer_extremes(plan.loops[:k], values):
            start, end = evaluate(loop.start, outer), evaluate(loop.end, outer)
            if start is None or end is None:
                trips = []
                break
            trips.append(_trip_count(start, end, loop))
        if trips:
            needed = -(-max(trips) // plan.block[axis])
            grid[axis] = max(1, min(grid[axis], needed))
    return tuple(grid)


def _outer_extremes(outer_loops, values: dict) -> list[dict]:
    """Variable bindings at the first and at the last iteration of the outer loops."""
    choices = [dict(values)]
    for loop in outer_loops:
        extended = []
        for binding in choices:
            start, end = evaluate(loop.start, binding), evaluate(loop.end, binding)
            if start is None or end is None:
                return [values]
            trips = _trip_count(start, end, loop)
            last = start + max(trips - 1, 0) * loop.step
            extended += [{**binding, loop.var: start}, {**binding, loop.var: last}]
        choices = extended
    return choices


def _trip_count(start: int, end: int, loop) -> int:
    if loop.inclusive:
        end += 1 if loop.step > 0 else -1
    span = (end - start) if loop.step > 0 else (start - end)
    return max(0, -(-span // abs(loop.step)))


def final_loop_values(plan: KernelPlan, scalars: dict) -> dict[str, int] | None:
    """The values C leaves in the mapped loops' variables: each runs past its last iteration;
    an inner loop's value is the one from the outer loop's last iteration. None if a bound
    cannot be evaluated."""
    values, finals = dict(scalars), {}
    for loop in plan.loops:
        start, end = evaluate(loop.start, values), evaluate(loop.end, values)
        if start is None or end is None:
            return None
        trips = _trip_count(start, end, loop)
        finals[loop.var] = start + trips * loop.step
        if trips == 0:
            break
        values[loop.var] = start + (trips - 1) * loop.step
    return finals


_SCALARS = {("float", 4): np.float32, ("float", 8): np.float64, ("int", 1): np.int8, ("int", 2): np.int16,
            ("int", 4): np.int32, ("int", 8): np.int64, ("uint", 1): np.uint8, ("uint", 2): np.uint16,
            ("uint", 4): np.uint32, ("uint", 8): np.uint64}


def scalar_dtype(slot: Slot, size: int) -> np.dtype:
    """How a scalar slot's bytes read (its C type may be a typedef: size and kind decide)."""
    found = _SCALARS.get((slot.value, size))
    if found is None:
        raise CpuFallback(f"`{slot.name}` is a {size}-byte {slot.value or 'value'} the runtime cannot read")
    return np.dtype(found)


def _read_scalar(address: int, slot: Slot, size: int):
    return np.frombuffer(ctypes.string_at(address, size), dtype=scalar_dtype(slot, size), count=1)[0]


def _write_scalar(address: int, dtype: np.dtype, value) -> None:
    data = np.array([value]).astype(dtype).tobytes()
    ctypes.memmove(address, data, len(data))

"""The device dispatcher: runs a wrapped region on a Device instead of the CPU loop.

Per call: read every variable through its address (abi.py), refuse (CPU loop, counted) when
pointers may overlap or an extent is unknown, copy in what the region reads and the device
lacks (residency.py), launch, copy reduction results back, and set the loop variables' final
values. Written arrays stay on the device until host code touches them. In verify mode the
region's C twin also runs on shadow copies of the inputs and every written array is compared;
what that makes come back to the host is counted apart (`verify_d2h_bytes`).

The work per call is proportional to the accesses and runs, never to the elements: footprints
come in closed form (footprints.py) as byte runs, and residency.c answers a call whose data
are already in place with a binary search. A call like an earlier one (the same slot values,
read into a key by the C runtime) reuses that call's preparation: its extents, checks,
footprints, grid and kernel arguments, until an allocation it used is dropped. Where the
host-side time goes is measured per region: the C runtime times every call into the
dispatcher, and what is not kernel, copy, device allocation or region verification there is
the dispatcher's own work (`dispatch_seconds`), a cost a real GPU run pays as well.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..contracts.run_report import Failure, FailureCode
from ..device import Device, DeviceBuffer, Module
from ..hostprog.abi import HostRegion, Slot
from .footprints import region_accesses
from .launch import final_loop_values, launch_grid
from .plan import KernelPlan
from .region_check import compare_region, run_twin
from .residency import Allocation, Residency, ResidencyFull, Runs, Traffic

PREPARED = 32              # prepared calls kept per region (time steps repeat a few)
NULL_PAGE = 4096           # no variable lives below this address
SHAPES = 16                # distinct call shapes recorded per region
KEY_BYTES = 4096
_KEY_KINDS = {"scalar": 1, "pointer": 2, "array": 3, "place": 3}   # runtime.h OFFLOAD_KEY_*; loop variables: 0


@dataclass
class RegionStats:
    calls: int = 0
    device_runs: int = 0
    cpu_fallbacks: int = 0
    alias_fallbacks: int = 0
    kernel_seconds: float = 0.0           # the device's launches alone (labelled as the device times)
    transfer_seconds: float = 0.0         # copies, in the call and on host access afterwards
    h2d_seconds: float = 0.0              # of which to the device
    d2h_seconds: float = 0.0              # and back
    dispatch_seconds: float = 0.0         # the dispatcher's own work (host side, measured)
    prepare_seconds: float = 0.0          # of which preparing calls unlike the ones before
    prepared_calls: int = 0
    repeated_seconds: float = 0.0         # the dispatcher's own work in calls like an earlier one
    repeated_calls: int = 0
    fault_seconds: float = 0.0            # the fault handler's own work, without its copies
    protect_seconds: float = 0.0          # setting page protection in the calls (the runtime's own work)
    alloc_seconds: float = 0.0            # making device copies (the emulator fills fresh memory)
    verify_seconds: float = 0.0           # region verification: shadows, the twin, comparing
    cpu_seconds: float = 0.0              # measured time in the region's CPU loop, all its calls
    cpu_calls: int = 0
    h2d_bytes: int = 0
    d2h_bytes: int = 0
    h2d_copies: int = 0
    d2h_copies: int = 0
    faults: int = 0
    verify_d2h_bytes: int = 0
    max_rel_error: float | None = None    # largest relative error region verification saw
    fallback_reasons: list[str] = field(default_factory=list)
    shapes: list[dict] = field(default_factory=list)       # distinct call shapes, for the GPU model
    mismatches: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)        # launch or runtime failures
    failure: Optional[Failure] = None                      # the first of them, typed


@dataclass
class Extent:
    slot: Slot
    address: int          # where the data the variable names starts
    base: int             # the allocation (or array) it lies in
    size: int
    element_size: int
    kind: int             # how the allocation was made (runtime.h OFFLOAD_BLOCK_*), -1: a local array


@dataclass
class Transfer:
    """One array's part of a call: its device copy and the byte runs the call needs there
    and may write."""

    allocation: Allocation
    need: Runs
    writes: Runs
    written: bool


@dataclass
class PreparedCall:
    """Everything a call needs that its key (the slot values) decides."""

    generation: int                 # the residency's, when prepared: a dropped copy ends it
    extents: dict[str, Extent]
    scalars: dict
    finals: dict
    transfers: list[Transfer]
    grid: tuple[int, int, int]
    launches: list                  # the kernel, then the block-combining kernel: Device.prepare()d
    initial: list                   # (buffer, reduction): atomic reductions start from its value
    scalar_args: list               # (launch, argument index, slot): values the key leaves out
    outs: dict[str, DeviceBuffer]   # reduction results
    shape: dict


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
        self._prepared: dict[int, dict[bytes, PreparedCall]] = {rid: {} for rid in regions}
        self._key_kinds = {rid: _key_kinds(r, plans.get(rid)) for rid, r in regions.items()}
        self._free_scalars = {rid: [s for s, k in zip(r.slots, self._key_kinds[rid])
                                    if s.kind == "scalar" and k == _KEY_KINDS["array"]] for rid, r in regions.items()}
        self._key = ctypes.create_string_buffer(KEY_BYTES)
        self._reduction_buffers: dict[tuple[int, str, str], DeviceBuffer] = {}
        self._call_copies = {rid: 0.0 for rid in regions}     # copy seconds inside dispatcher calls
        self.lookup = getattr(library, "__offload_alloc_lookup")   # getattr: no name mangling
        self.lookup.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_longlong)]
        self.lookup.restype = ctypes.c_int
        self.watch = getattr(library, "__offload_alloc_watch")
        self.watch.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self.block_kind = getattr(library, "__offload_alloc_kind")
        self.block_kind.argtypes, self.block_kind.restype = [ctypes.c_void_p], ctypes.c_int
        self.call_key = getattr(library, "__offload_call_key")
        self.call_key.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                  ctypes.c_void_p, ctypes.c_int]
        self.call_key.restype = ctypes.c_int
        self.scalar_types: dict[str, np.dtype] = {}
        self.places: dict[str, tuple[int, int]] = {}    # where each slot's variable lives: address, size

    # ---- the callback ------------------------------------------------------------------
    def __call__(self, region_id: int, addrs, sizes) -> int:
        """Never raises into C: a failure is recorded (the run then fails verification) and
        the CPU loop runs."""
        try:
            return self._dispatch(region_id, addrs, sizes)
        except Exception as exc:  # noqa: BLE001 - typed here, and reported, never swallowed
            code = getattr(exc, "code", None)
            stats = self.stats[region_id]
            message = f"{type(exc).__name__}{f' ({code.name})' if code else ''}: {exc}"
            stats.errors.append(message)
            if stats.failure is None:
                stats.failure = Failure(FailureCode.LAUNCH_ERROR, message, region_id,
                                        code.value if code is not None else type(exc).__name__)
            return 0

    def _dispatch(self, region_id: int, addrs, sizes) -> int:
        stats = self.stats[region_id]
        stats.calls += 1
        if region_id not in self.enabled or region_id not in self.plans:
            return 0
        entered, before = time.perf_counter(), self._inside(stats)
        prepared = stats.prepared_calls
        region = self.regions[region_id]
        call = self._call(region, addrs, sizes, stats)
        if call is None:
            return 0
        if self._free_scalars[region_id]:
            self._refresh(call, self._free_scalars[region_id], addrs, sizes)
        shadows = None
        if self.verify:
            started = time.perf_counter()
            self.account_host_access()
            shadows = {name: self._host_view(e).copy() for name, e in call.extents.items()}
            stats.verify_d2h_bytes += self._verify_copies()
            stats.verify_seconds += time.perf_counter() - started
        results = self._run(region, self.plans[region_id], call, stats)
        self._write_back(region, addrs, results, call.finals)
        if self.verify:
            started = time.perf_counter()
            twin = run_twin(self.library, region, call.extents, shadows, call.scalars, self.scalar_types)
            mismatches, error = compare_region(region, self.plans[region_id], call.extents, shadows, results, twin,
                                               self._host_view, self.rtol)
            for mismatch in mismatches:
                if len(stats.mismatches) < 20:
                    stats.mismatches.append(mismatch.to_json())
            if error is not None:
                stats.max_rel_error = max(stats.max_rel_error or 0.0, error)
            stats.verify_d2h_bytes += self._verify_copies()
            stats.verify_seconds += time.perf_counter() - started
        stats.device_runs += 1
        if stats.prepared_calls == prepared:        # a repeated call: the steady state
            stats.repeated_calls += 1
            stats.repeated_seconds += time.perf_counter() - entered - (self._inside(stats) - before)
        return 1

    def _inside(self, stats: RegionStats) -> float:
        """The time so far in a region's calls that is not the dispatcher's own work."""
        return (stats.kernel_seconds + stats.h2d_seconds + stats.d2h_seconds + stats.alloc_seconds + stats.verify_seconds
                + stats.protect_seconds)

    def _call(self, region: HostRegion, addrs, sizes, stats: RegionStats):
        """The prepared call for these slot values (a repeated call's is reused), or None when
        the call runs on the CPU, with the reason recorded."""
        kinds = self._key_kinds[region.id]
        length = self.call_key(addrs, sizes, kinds, len(kinds), self._key, KEY_BYTES)
        key = self._key.raw[:length] if length >= 0 else None
        prepared = self._prepared[region.id]
        call = prepared.get(key) if key is not None else None
        if call is not None and call.generation == self.residency.generation:
            call.shape["calls"] += 1
            return call
        started, alloc = time.perf_counter(), stats.alloc_seconds
        try:
            call = self._prepare(region, self.plans[region.id], addrs, sizes, stats)
        except (CpuFallback, ResidencyFull) as why:
            stats.cpu_fallbacks += 1
            if len(stats.fallback_reasons) < 20:
                stats.fallback_reasons.append(str(why))
            return None
        finally:
            stats.prepare_seconds += time.perf_counter() - started - (stats.alloc_seconds - alloc)
            stats.prepared_calls += 1
        if key is not None:
            prepared.pop(key, None)
            if len(prepared) >= PREPARED:
                prepared.pop(next(iter(prepared)))
            prepared[key] = call
        return call

    def _verify_copies(self) -> int:
        """Bytes region verification's host reads made come back (counted apart)."""
        return sum(access.bytes for access in self.residency.host_access().values())

    def collect_times(self) -> None:
        """Read what the C runtime measured: each region's CPU loop, and its time in the
        dispatcher, of which what is not kernel, copy, allocation or verification is the
        dispatcher's own work."""
        cpu = getattr(self.library, "__offload_cpu_seconds")
        cpu.argtypes, cpu.restype = [ctypes.c_int, ctypes.POINTER(ctypes.c_longlong)], ctypes.c_double
        dispatch = getattr(self.library, "__offload_dispatch_seconds")
        dispatch.argtypes, dispatch.restype = [ctypes.c_int], ctypes.c_double
        for region_id, stats in self.stats.items():
            calls = ctypes.c_longlong()
            stats.cpu_seconds = cpu(region_id, ctypes.byref(calls))
            stats.cpu_calls = calls.value
            inside = (stats.kernel_seconds + stats.alloc_seconds + stats.verify_seconds + stats.protect_seconds
                      + self._call_copies[region_id])
            stats.dispatch_seconds = max(0.0, dispatch(region_id) - inside)

    def account_host_access(self) -> None:
        """Charge what host code made come back since the last call to the regions that wrote it."""
        for region_id, access in self.residency.host_access().items():
            if region_id in self.stats:
                stats = self.stats[region_id]
                stats.d2h_bytes += access.bytes
                stats.d2h_copies += access.copies
                stats.faults += access.faults
                stats.fault_seconds += access.fault_seconds
                stats.transfer_seconds += access.copy_seconds
                stats.d2h_seconds += access.copy_seconds

    # ---- preparing a call --------------------------------------------------------------
    def _prepare(self, region: HostRegion, plan: KernelPlan, addrs, sizes, stats: RegionStats) -> PreparedCall:
        """Read and check the call's variables, make the device copies it uses, and work out
        its footprints, grid and kernel arguments; CpuFallback when it cannot run there."""
        extents, scalars = self._read(region, addrs, sizes)
        self._check_overlap(plan, extents, stats)
        finals = self._finals(region, plan, scalars)
        params = {slot.name: scalars[slot.name] for slot in region.slots
                  if slot.role == "param" and slot.kind == "scalar"}
        counts = {name: (e.base + e.size - e.address) // max(e.element_size, 1) for name, e in extents.items()}
        accesses = region_accesses(plan, params, counts)
        transfers, buffers = [], {}
        for name, extent in extents.items():
            if extent.slot.kind == "pointer" and extent.base not in self.residency.allocations:
                self.watch(extent.base, 1)             # so free() drops the device copy
            before = self.residency.alloc_seconds
            allocation = self.residency.allocation(extent.base, extent.size, extent.kind)
            stats.alloc_seconds += self.residency.alloc_seconds - before
            offset = extent.address - extent.base
            buffers[name] = allocation.buffer.at(offset) if offset else allocation.buffer
            access = accesses.get(name)
            runs = [None, None] if access is None else [
                _byte_runs(r, offset, extent.element_size) for r in (access.need, access.writes)]
            transfers.append(Transfer(allocation, Runs(runs[0]), Runs(runs[1]), name in plan.writes))
        grid = launch_grid(plan, scalars, self.device.capacity)
        nblocks = grid[0] * grid[1] * grid[2]
        parts, outs, args, initial = {}, {}, [], []
        signature = self.module.kernels[plan.kernel]
        scalar_at = []                                     # (kernel 0 or 1, argument index, name, type)
        for role, param in zip(plan.arguments, signature.params):
            kind, name = role.split(":", 1)
            if kind == "param" and name in buffers:
                args.append(buffers[name])
            elif kind in ("param", "init"):
                scalar_at.append((0, len(args), name, param.dtype))
                args.append(param.dtype(scalars[name]))
            elif kind == "part":
                parts[name] = self._reduction_buffer(plan.region, "part", name, nblocks)
                args.append(parts[name])
            else:                                          # out: the atomic variant adds into it
                outs[name] = self._reduction_buffer(plan.region, "out", name, 1)
                initial.append((outs[name], name))
                args.append(outs[name])
        launches = [self.device.prepare(self.module, plan.kernel, grid, plan.block, args)]
        if plan.final:
            final_args, final_sig = [np.int64(nblocks)], self.module.kernels[plan.final]
            for name in parts:
                outs[name] = self._reduction_buffer(plan.region, "out", name, 1)
                dtype = final_sig.params[len(final_args)].dtype
                scalar_at.append((1, len(final_args), name, dtype))
                final_args += [dtype(scalars[name]), parts[name], outs[name]]
            launches.append(self.device.prepare(self.module, plan.final, (1, 1, 1), (1, 1, 1), final_args))
        free = {slot.name for slot in self._free_scalars[region.id]}
        scalar_args = [(launches[k], index, name, dtype) for k, index, name, dtype in scalar_at if name in free]
        shape = self._shape(stats, scalars, counts, extents, grid)
        return PreparedCall(self.residency.generation, extents, scalars, finals, transfers, grid, launches,
                            initial, scalar_args, outs, shape)

    def _refresh(self, call: PreparedCall, slots, addrs, sizes) -> None:
        """This call's values of the scalars its key leaves out (they decide nothing but what
        the kernels and the twin compute), into the prepared launches."""
        call.scalars = dict(call.scalars)
        for slot in slots:
            call.scalars[slot.name] = _read_scalar(addrs[slot.index], slot, sizes[slot.index])
        for launch, index, name, dtype in call.scalar_args:
            launch.set_scalar(index, dtype(call.scalars[name]))

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

    def _finals(self, region: HostRegion, plan: KernelPlan, scalars) -> dict:
        if not any(slot.role == "loopvar" for slot in region.slots):
            return {}
        finals = final_loop_values(plan, scalars)
        if finals is None:
            raise CpuFallback("the loop bounds cannot be evaluated to set the loop variables afterwards")
        return finals

    def _shape(self, stats: RegionStats, scalars: dict, counts: dict, extents, grid) -> dict:
        """This call's entry among the region's distinct call shapes (integer scalars, array
        extents and the grid they give), counted: with the plan's footprints, what a model
        needs to recount a call's iterations and bytes. Past SHAPES, calls go uncounted
        here (the model scales the recorded ones to all device runs)."""
        values = {n: int(v) for n, v in scalars.items() if np.issubdtype(type(v), np.integer)}
        for shape in stats.shapes:
            if shape["values"] == values and shape["elements"] == counts:
                shape["calls"] += 1
                return shape
        shape = {"values": values, "elements": counts, "calls": 1, "grid": list(grid),
                 "element_sizes": {name: e.element_size for name, e in extents.items()}}
        if len(stats.shapes) < SHAPES:
            stats.shapes.append(shape)
        return shape

    @staticmethod
    def _host_view(extent: Extent) -> np.ndarray:
        return np.ctypeslib.as_array((ctypes.c_uint8 * extent.size).from_address(extent.base))

    def _reduction_buffer(self, region: int, role: str, name: str, count: int) -> DeviceBuffer:
        """A reduction's device buffer, made once per region and grown when a grid needs more
        (freeing device memory synchronises a GPU)."""
        dtype = self.scalar_types[name]
        key = (region, role, name)
        buffer = self._reduction_buffers.get(key)
        if buffer is None or buffer.nbytes < count * dtype.itemsize:
            if buffer is not None:
                self.device.free(buffer)
                self._prepared[region].clear()     # their launches used the old buffer
            buffer = self._reduction_buffers[key] = self.device.alloc(count * dtype.itemsize)
        return buffer

    # ---- one call ----------------------------------------------------------------------
    def _run(self, region: HostRegion, plan: KernelPlan, call: PreparedCall, stats: RegionStats) -> dict:
        traffic = Traffic()
        counted = ctypes.byref(traffic)
        for transfer in call.transfers:
            self.residency.bring_in(transfer.allocation, transfer.need, counted)
        for buffer, name in call.initial:
            self.device.copy_to_device(buffer, np.array([call.scalars[name]], dtype=self.scalar_types[name]))
        for launch in call.launches:
            stats.kernel_seconds += launch()
        for transfer in call.transfers:
            if transfer.written:
                self.residency.written(transfer.allocation, transfer.writes, region.id, counted)
            else:
                self.residency.release_read(transfer.allocation)
        started = time.perf_counter()
        results = {}
        for name, buffer in call.outs.items():
            value = np.zeros(1, dtype=self.scalar_types[name])
            self.device.copy_to_host(buffer, value)
            traffic.d2h_bytes += value.nbytes
            traffic.d2h_copies += 1
            results[name] = value[0]
        traffic.d2h_seconds += time.perf_counter() - started
        stats.h2d_seconds += traffic.h2d_seconds
        stats.d2h_seconds += traffic.d2h_seconds
        stats.protect_seconds += traffic.protect_seconds
        stats.transfer_seconds += traffic.h2d_seconds + traffic.d2h_seconds
        self._call_copies[region.id] += traffic.h2d_seconds + traffic.d2h_seconds
        stats.h2d_bytes += traffic.h2d_bytes
        stats.d2h_bytes += traffic.d2h_bytes
        stats.h2d_copies += traffic.h2d_copies
        stats.d2h_copies += traffic.d2h_copies
        return results

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


def _key_kinds(region: HostRegion, plan: KernelPlan | None) -> bytes:
    """How the C runtime reads each slot into a call's key (runtime.h OFFLOAD_KEY_*): a scalar
    that no footprint, loop range or loop bound uses decides nothing a prepared call holds
    but a kernel argument, so only where it lies goes in the key and its value is read at
    every call; loop variables are written, not read."""
    structural = set() if plan is None else _symbols(plan)
    kinds = []
    for slot in region.slots:
        if slot.role == "loopvar":
            kinds.append(0)
        elif slot.kind == "scalar" and slot.name not in structural:
            kinds.append(_KEY_KINDS["array"])
        else:
            kinds.append(_KEY_KINDS.get(slot.kind, 255))
    return bytes(kinds)


def _symbols(plan: KernelPlan) -> set[str]:
    """Every name the plan's footprints, loop ranges and mapped loops' bounds use."""
    polys = [f.offset for f in plan.footprints] + [p for r in plan.ranges for p in (*r.lowers, *r.uppers)]
    polys += [p for loop in plan.loops for p in (loop.start, loop.end)]
    return {name for terms in polys if terms for monomial, _ in terms for name in monomial}


def _byte_runs(runs, offset: int, element_size: int):
    """Element runs of an array `offset` bytes into its allocation as byte runs from the base."""
    return None if runs is None else runs * element_size + offset


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

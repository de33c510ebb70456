"""Region verification: the region's C twin runs on shadow copies of the inputs, and every
array the region writes is compared element by element: |a - b| <= atol + rtol*|b|, with rtol
from the C type and NaN equal to NaN. Reductions, summed in another order on the device, get
a looser tolerance. The largest relative error of each call is kept too (how close a verified
region came to its tolerance, or how far a failing one is from it)."""

from __future__ import annotations

import ctypes
from dataclasses import asdict, dataclass

import numpy as np

from ..hostprog.abi import HostRegion
from .dtypes import dtype_of

TOLERANCE = {np.dtype(np.float64): (1e-9, 1e-12), np.dtype(np.float32): (1e-4, 1e-6)}
REDUCTION_TOLERANCE = {np.dtype(np.float64): (1e-6, 1e-9), np.dtype(np.float32): (1e-3, 1e-5)}


@dataclass(frozen=True)
class RegionMismatch:
    region: int
    location: str
    array: str
    index: int            # element index (byte index for arrays of structs)
    device: str
    cpu: str

    def to_json(self) -> dict:
        return asdict(self)


def run_twin(library: ctypes.CDLL, region: HostRegion, extents, shadows, scalars, scalar_types) -> dict | None:
    """Run the twin on the shadow arrays (changed in place); its reduction results, or None
    when the region has no twin."""
    if not region.twin:
        return None
    args, types, outs = [], [], {}
    for slot in region.slots:
        if slot.role == "param" and slot.name in extents:
            extent = extents[slot.name]
            args.append(shadows[slot.name].ctypes.data + (extent.address - extent.base))
            types.append(ctypes.c_void_p)
        elif slot.role == "param":
            ctype = np.ctypeslib.as_ctypes_type(scalar_types[slot.name])
            args.append(ctype(scalars[slot.name].item()))
            types.append(ctype)
    for slot in region.slots:
        if slot.role == "reduction":
            ctype = np.ctypeslib.as_ctypes_type(scalar_types[slot.name])
            outs[slot.name] = ctype()
            args += [ctype(scalars[slot.name].item()), ctypes.byref(outs[slot.name])]
            types += [ctype, ctypes.c_void_p]
    twin = getattr(library, region.twin)
    twin.argtypes, twin.restype = types, None
    twin(*args)
    return {name: out.value for name, out in outs.items()}


def compare_region(region: HostRegion, plan, extents, shadows, results, twin_results, host_view, rtol=None):
    """(mismatches between what the device left in host memory and what the twin computed,
    the largest relative error |device - cpu| / |cpu| of the floating-point values compared:
    None when there were none)."""
    if twin_results is None:
        return [], None
    found, largest = [], None
    for name in plan.writes:
        if name not in extents:
            continue
        extent = extents[name]
        dtype = dtype_of(extent.slot.element)
        device_bytes, cpu_bytes = host_view(extent), shadows[name]
        if dtype is None or extent.size % np.dtype(dtype).itemsize:
            bad = np.flatnonzero(device_bytes != cpu_bytes)
            if bad.size:
                k = int(bad[0])
                found.append(RegionMismatch(region.id, region.location, name, k,
                                            str(device_bytes[k]), str(cpu_bytes[k])))
            continue
        a, b = device_bytes.view(dtype), cpu_bytes.view(dtype)
        largest = _larger(largest, a, b)
        k = _first_difference(a, b, TOLERANCE.get(np.dtype(dtype)), rtol)
        if k is not None:
            found.append(RegionMismatch(region.id, region.location, name, k, repr(a[k].item()), repr(b[k].item())))
    for name, value in results.items():
        expected = twin_results[name]
        dtype = np.dtype(type(value)) if isinstance(value, np.generic) else np.dtype(np.float64)
        largest = _larger(largest, np.array([value]), np.array([expected], dtype=dtype))
        k = _first_difference(np.array([value]), np.array([expected], dtype=dtype),
                              REDUCTION_TOLERANCE.get(dtype), None)
        if k is not None:
            found.append(RegionMismatch(region.id, region.location, name, 0, repr(value.item()), repr(expected)))
    return found, largest


def _larger(largest: float | None, a: np.ndarray, b: np.ndarray) -> float | None:
    """max(largest, the largest relative error of a against b) over floating-point values where
    b is finite and not 0 (integers are compared exactly, so they have none)."""
    if not np.issubdtype(a.dtype, np.floating):
        return largest
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        usable = np.isfinite(b) & (b != 0)
        if not usable.any():
            return largest
        error = float(np.max(np.abs(a[usable] - b[usable]) / np.abs(b[usable])))
    if error != error:                  # a NaN where the CPU has a number: as far off as can be
        error = float("inf")
    return error if largest is None else max(largest, error)


def _first_difference(a: np.ndarray, b: np.ndarray, tolerance, rtol_override) -> int | None:
    if tolerance is None:                         # integers: exact
        bad = np.flatnonzero(a != b)
    else:
        rtol, atol = tolerance
        rtol = rtol_override if rtol_override is not None else rtol
        with np.errstate(invalid="ignore", over="ignore"):
            close = np.abs(a - b) <= atol + rtol * np.abs(b)
        close |= (np.isnan(a) & np.isnan(b)) | (a == b)
        bad = np.flatnonzero(~close)
    return int(bad[0]) if bad.size else None

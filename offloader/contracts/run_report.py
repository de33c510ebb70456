"""The run report (`offload run --json`) and the statistics the runtime writes from inside the
program (stats.json), as frozen records with typed failures.

A failure carries a `FailureCode` set where it happened: the dispatcher types a region's
device error, the runner's status file says that the runner or the kernel compiler failed,
the parent's timer says timeout and the cgroup's memory.events says out of memory. Nothing
downstream reads the messages to learn what went wrong; they are for people.

Writing either file from another language (the C runtime, for stats.json): one JSON object,
UTF-8, replaced whole (write a temporary file, then rename it over the old one). Every field
except `id` has a default, so a writer leaves out what it does not measure; a reader keeps
fields it does not know and writes them back. stats.json, schema STATS_SCHEMA:

    {"schema": 1, "device": "NVIDIA H200 (sm_90)", "device_kind": "cuda", "timing": "measured",
     "total_seconds": 1.25, "device_memory_peak_bytes": 1048576,
     "regions": {"0": {"calls": 10, "device_runs": 10, "kernel_seconds": 0.002,
                       "transfer_seconds": 0.001, "h2d_bytes": 8192, "d2h_bytes": 8192,
                       "failure": {"code": "launch_error", "detail": "illegal-address",
                                   "message": "LaunchError (ILLEGAL_ADDRESS): ..."}}}}

Region fields are RegionReport's (counts are integers, times float seconds, `timing` one of
TIMINGS); `failure` is null or {code: a FailureCode value, message, detail: the device layer's
code}. `device_kind` is "cuda" or "emu" ("emulated" is read as "emu"). The run report is the
same regions list plus the RunReport fields; `schema` is SCHEMA. New fields go in with a
default here, never by renaming one.
"""

from __future__ import annotations

import enum
import json
import os
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Optional

from .records import ContractError, check_schema, split_fields

SCHEMA = 1              # offload run --json
STATS_SCHEMA = 1        # stats.json, written by the runtime in the program's process
TIMINGS = ("measured", "modeled", "emulated")
_DEVICE_KINDS = {"cuda": "cuda", "emu": "emu", "emulated": "emu"}


class FailureCode(str, enum.Enum):
    """Why a run is not verified, set where the failure happened."""

    COMPILE_ERROR = "compile_error"        # the kernels did not compile (detail: the device's CompileFailure)
    RUNNER_ERROR = "runner_error"          # the runner could not start the program (status file, or none)
    LAUNCH_ERROR = "launch_error"          # a region failed on the device (detail: the device's LaunchFailure)
    TIMEOUT = "timeout"                    # stopped at the time limit
    MEMORY_LIMIT = "memory_limit"          # killed by the cgroup's OOM killer (memory.events oom_kill)
    CRASH = "crash"                        # ended by a signal (detail: its number)
    NO_STATISTICS = "no_statistics"        # ended without the runtime's statistics
    EXIT_STATUS = "exit_status"            # the program exited with another status than the CPU original
    REGION_MISMATCH = "region_mismatch"    # a region wrote other values than its CPU loop
    OUTPUT_MISMATCH = "output_mismatch"    # stdout or stderr differ from the CPU original's
    REFERENCE_FAILED = "reference_failed"  # the CPU original itself failed (detail: how)
    UNTYPED = "untyped"                    # read from a writer that gave a message and no known code


def device_kind(text: Optional[str]) -> str:
    """"cuda" or "emu" for any spelling a writer uses ("emulated" is the device class's)."""
    return _DEVICE_KINDS.get(text or "", text or "")


@dataclass(frozen=True)
class Failure:
    code: FailureCode
    message: str
    region: Optional[int] = None           # the region it happened in, when one did
    detail: Optional[str] = None           # the lower layer's own code: "illegal-address", "compiler-error", "9"

    def to_json(self) -> dict:
        out = {"code": self.code.value, "message": self.message}
        if self.region is not None:
            out["region"] = self.region
        if self.detail is not None:
            out["detail"] = self.detail
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Failure":
        if not isinstance(data, Mapping) or "code" not in data:
            raise ContractError(f"a failure must be an object with a code, got {data!r}")
        try:
            code, detail = FailureCode(data["code"]), data.get("detail")
        except ValueError:
            code, detail = FailureCode.UNTYPED, str(data["code"])
        region = data.get("region")
        return cls(code, str(data.get("message", "")), None if region is None else int(region), detail)


_REGION_DERIVED = ("host_seconds",)     # written from the other fields, never read back


def _tuple(value) -> tuple:
    return tuple(value or ())


def _failure_or_none(value) -> Optional[Failure]:
    return None if value is None else value if isinstance(value, Failure) else Failure.from_json(value)


@dataclass(frozen=True)
class RegionReport:
    """One region of a run: where it ran, how often, its times (labelled by `timing`) and bytes."""

    id: int
    line: Optional[int] = None
    location: str = ""                     # file:line:col of the region's loop in the user's source
    device: str = ""
    timing: str = "measured"
    calls: int = 0
    device_runs: int = 0
    cpu_fallbacks: int = 0
    alias_fallbacks: int = 0
    kernel_seconds: float = 0.0            # the device's launches alone (timed as `timing` says)
    transfer_seconds: float = 0.0          # copies, in the calls and on host access afterwards
    h2d_seconds: float = 0.0               # of which to the device
    d2h_seconds: float = 0.0               # and back
    dispatch_seconds: float = 0.0          # the dispatcher's own work (host side, measured)
    prepare_seconds: float = 0.0           # of which preparing calls unlike the ones before
    prepared_calls: int = 0
    fault_seconds: float = 0.0             # the fault handler's own work, without its copies (measured)
    faults: int = 0
    alloc_seconds: float = 0.0             # making device copies (timed as `timing` says: the emulator fills them)
    verify_seconds: float = 0.0            # region verification's shadows, twin and comparison
    cpu_seconds: float = 0.0               # measured in the region's CPU loop, all its calls
    cpu_calls: int = 0
    h2d_bytes: int = 0
    d2h_bytes: int = 0
    h2d_copies: int = 0
    d2h_copies: int = 0
    verify_d2h_bytes: int = 0              # what region verification made come back, counted apart
    max_rel_error: Optional[float] = None  # the largest relative error region verification saw
    fallback_reasons: tuple[str, ...] = ()
    shapes: tuple[Mapping, ...] = ()       # distinct call shapes, for the GPU model
    mismatches: tuple[Mapping, ...] = ()
    errors: tuple[str, ...] = ()
    failure: Optional[Failure] = None      # the first error, typed where it happened
    extra: Mapping[str, Any] = field(default_factory=dict)

    _CONVERT = {"fallback_reasons": _tuple, "shapes": _tuple, "mismatches": _tuple, "errors": _tuple,
                "failure": _failure_or_none}

    @property
    def host_seconds(self) -> float:
        """The runtime's own host-side work for the region (dispatcher and fault handler),
        measured: what a GPU run pays beside kernels and copies."""
        return self.dispatch_seconds + self.fault_seconds

    def to_json(self) -> dict:
        out = dict(self.extra)
        for f in fields(self):
            if f.name != "extra":
                value = getattr(self, f.name)
                out[f.name] = (value.to_json() if isinstance(value, Failure)
                               else list(value) if isinstance(value, tuple) else value)
        out["host_seconds"] = self.host_seconds
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RegionReport":
        known, extra = split_fields(cls, data, "a region")
        extra = {k: v for k, v in extra.items() if k not in _REGION_DERIVED}
        if "id" not in known:
            raise ContractError("a region needs its id")
        known = {k: cls._CONVERT.get(k, lambda v: v)(v) for k, v in known.items()}
        known["id"] = int(known["id"])
        return cls(**known, extra=extra)


_DERIVED = ("verified", "mismatch", "failures")     # written from typed_failures, never read back


@dataclass(frozen=True)
class RunReport:
    """One run of a program with some regions on a device, checked against the CPU original.

    `typed_failures` is empty exactly when the run is verified; `failures` and `mismatch` in
    the JSON are their messages, for people."""

    file: str = ""
    workdir: Optional[str] = None          # the build folder, if it was kept
    gpu_regions: str = "all"
    device: str = ""
    device_kind: str = ""                  # "cuda" | "emu"
    device_choice: str = ""                # why that device
    order: str = "forward"
    timing: str = "measured"               # what kernel_seconds are: measured | emulated
    total_seconds: Optional[float] = None  # the offloaded program's time, inside its process
    cpu_seconds: Optional[float] = None    # the CPU original's wall time, measured
    cpu_peak_rss_bytes: Optional[int] = None
    device_memory_peak_bytes: Optional[int] = None
    memory_limit: Mapping[str, Any] = field(default_factory=lambda: {"bytes": 0, "applied": "not applied"})
    exit_status: Optional[int] = None      # the offloaded program's; None when it was stopped
    cpu_exit_status: Optional[int] = None  # the CPU original's
    not_offloaded: tuple[Mapping, ...] = ()  # {"loop": file:line:col, "reason": ...}
    regions: tuple[RegionReport, ...] = ()
    typed_failures: tuple[Failure, ...] = ()
    unstable_tokens: Optional[Mapping[str, int]] = None   # output tokens the CPU original varies in
    runs_seconds: tuple[float, ...] = ()   # the timed repeats a tuner took (the median is total_seconds)
    kernels_skipped: bool = False          # the emulator ran no kernel: a timing of the runtime alone, unverified
    schema: int = SCHEMA
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        return not self.typed_failures

    @property
    def failure(self) -> Optional[Failure]:
        """The first failure, the one that explains the others (a timeout leaves no statistics)."""
        return self.typed_failures[0] if self.typed_failures else None

    def region(self, region_id: int) -> Optional[RegionReport]:
        return next((r for r in self.regions if r.id == region_id), None)

    def to_json(self) -> dict:
        out = dict(self.extra)
        for f in fields(self):
            name, value = f.name, getattr(self, f.name)
            if name == "extra" or (name in ("unstable_tokens", "runs_seconds") and not value):
                continue
            if name == "regions":
                value = [r.to_json() for r in value]
            elif name == "typed_failures":
                value = [failure.to_json() for failure in value]
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[name] = value
        messages = [failure.message for failure in self.typed_failures]
        out.update(verified=self.verified, mismatch=messages[0] if messages else None, failures=messages)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RunReport":
        known, extra = split_fields(cls, data, "a run report")
        extra = {k: v for k, v in extra.items() if k not in _DERIVED}
        known["schema"] = check_schema(data, SCHEMA, "the run report")
        known["device_kind"] = device_kind(known.get("device_kind"))
        known["regions"] = tuple(RegionReport.from_json(r) for r in known.get("regions") or ())
        if "typed_failures" in known:
            known["typed_failures"] = tuple(Failure.from_json(f) for f in known["typed_failures"] or ())
        else:                               # a writer without codes: keep what it said, untyped
            known["typed_failures"] = tuple(Failure(FailureCode.UNTYPED, str(m)) for m in data.get("failures") or ())
        for name in ("not_offloaded", "runs_seconds"):
            known[name] = _tuple(known.get(name))
        return cls(**known, extra=extra)


@dataclass(frozen=True)
class RuntimeStats:
    """stats.json: what the runtime measured inside the program's process, written at exit
    (so it survives exit() anywhere in the program). Regions are keyed by id."""

    device: str = ""
    device_kind: str = ""
    timing: str = "measured"
    total_seconds: Optional[float] = None
    device_memory_peak_bytes: Optional[int] = None
    regions: Mapping[int, RegionReport] = field(default_factory=dict)
    schema: int = STATS_SCHEMA
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        out = dict(self.extra)
        out.update(schema=self.schema, device=self.device, device_kind=self.device_kind, timing=self.timing,
                   total_seconds=self.total_seconds, device_memory_peak_bytes=self.device_memory_peak_bytes,
                   regions={str(rid): region.to_json() for rid, region in self.regions.items()})
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RuntimeStats":
        known, extra = split_fields(cls, data, "the runtime's statistics")
        known["schema"] = check_schema(data, STATS_SCHEMA, "the runtime's statistics")
        known["device_kind"] = device_kind(known.get("device_kind"))
        regions = known.get("regions") or {}
        if not isinstance(regions, Mapping):
            raise ContractError("the runtime's statistics: regions must be an object keyed by region id")
        known["regions"] = {int(rid): RegionReport.from_json({**entry, "id": int(rid)})
                            for rid, entry in regions.items()}
        return cls(**known, extra=extra)

    def write(self, path: str) -> None:
        """Replaced whole, so a reader never sees half of it."""
        partial = path + ".partial"
        with open(partial, "w") as handle:
            json.dump(self.to_json(), handle, indent=1)
        os.replace(partial, path)


def read_stats(path: str) -> tuple[Optional[RuntimeStats], str]:
    """(the statistics, "") or (None, why there are none)."""
    try:
        with open(path) as handle:
            return RuntimeStats.from_json(json.load(handle)), ""
    except FileNotFoundError:
        return None, "the program wrote no statistics"
    except (OSError, ValueError, TypeError) as exc:
        return None, f"its statistics cannot be read ({exc})"

"""What a strategy asks of a measurement, and what it gets back.

A measurement never raises for a bad candidate: it returns an `Outcome` with a typed failure,
which the search records with the worst fitness and moves on from (as Kernel Tuner records
CompilationFailedConfig instead of raising).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Mapping, Optional, Protocol

from offloader.tune.space import Config

# not_recorded: a replay asked for a configuration its recording does not hold (nothing ran).
Status = Literal["ok", "compile_error", "launch_error", "timeout", "memory_limit", "crash", "wrong_output",
                 "not_recorded"]
FAILURES = ("compile_error", "launch_error", "timeout", "memory_limit", "crash", "wrong_output", "not_recorded")
Kind = Literal["measured", "modeled", "emulated"]
KINDS = ("measured", "modeled", "emulated")
WORST = math.inf   # the fitness of a failed candidate (times are minimised)


@dataclass(frozen=True)
class RegionProfile:
    """One region's share of a run: its CPU time if it ran on the CPU, else its GPU time.

    `gpu_seconds` includes the transfers this placement causes for the region and the
    runtime's host-side work for it (the dispatcher, the fault handler: measured);
    `transfer_seconds` and `host_seconds` are those parts, when known. Strategies use these
    to judge regions one by one from a single run.
    """

    cpu_seconds: Optional[float] = None
    gpu_seconds: Optional[float] = None
    transfer_seconds: Optional[float] = None
    host_seconds: Optional[float] = None

    def to_dict(self) -> dict:
        return {k: v for k, v in (("cpu_seconds", self.cpu_seconds), ("gpu_seconds", self.gpu_seconds),
                                  ("transfer_seconds", self.transfer_seconds), ("host_seconds", self.host_seconds))
                if v is not None}

    @property
    def kernel_seconds(self) -> Optional[float]:
        """GPU time without the transfers, which depend on where the neighbours run."""
        if self.gpu_seconds is None:
            return None
        return self.gpu_seconds - (self.transfer_seconds or 0.0)


@dataclass(frozen=True)
class Outcome:
    """The result of one configuration. `region` names the region a failure came from, if known."""

    status: Status
    seconds: Optional[float] = None
    kind: Kind = "measured"
    reason: str = ""
    region: Optional[str] = None
    regions: Mapping[str, RegionProfile] = field(default_factory=dict)

    def __post_init__(self):
        if self.status != "ok" and self.status not in FAILURES:
            raise ValueError(f"unknown status {self.status!r}")
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}")
        if self.status == "ok" and (self.seconds is None or not math.isfinite(self.seconds)):
            raise ValueError("an ok outcome needs finite seconds")

    @classmethod
    def failure(cls, status: Status, reason: str, *, kind: Kind = "measured",
                region: Optional[str] = None) -> "Outcome":
        return cls(status=status, reason=reason, kind=kind, region=region)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def fitness(self) -> float:
        return self.seconds if self.ok else WORST

    def to_dict(self) -> dict:
        out = {"status": self.status, "seconds": self.seconds, "kind": self.kind}
        if self.reason:
            out["reason"] = self.reason
        if self.region is not None:
            out["region"] = self.region
        if self.regions:
            out["regions"] = {rid: p.to_dict() for rid, p in self.regions.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> "Outcome":
        return cls(status=data["status"], seconds=data.get("seconds"), kind=data.get("kind", "measured"),
                   reason=data.get("reason", ""), region=data.get("region"),
                   regions={rid: RegionProfile(**p) for rid, p in data.get("regions", {}).items()})


class Objective(Protocol):
    """Measures one configuration (verification included) and says how it went."""

    def evaluate(self, config: Config) -> Outcome: ...

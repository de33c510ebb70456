"""Record measurements, replay them, and add measurement noise: strategies can then be
developed and compared on real GPU figures without the GPU.

A recording is a JSON file: `schema`, what was measured (`kind`, `device`, free fields), the
`space`, and `measurements` (config key -> outcome as `Outcome.to_dict` writes it). A file may
instead carry several, each with a `name`, in a list under `recordings`: the GPU check's
results (results/gpu/*.json) hold one per sample, of the few configurations it measured. A
configuration a recording lacks replays as `not_recorded`, never as a crash of the candidate.

The GPU check's results also carry, under `runs`, each sample's measured `offload run` (its
report and plans: what the GPU model needs to model the same run again); a sample whose run
was not recorded (its step overran, or failed) is listed with `status` not_recorded and why.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional

from offloader.tune.objective import Objective, Outcome, RegionProfile
from offloader.tune.space import Config, Space

SCHEMA = "offload.tune.recording/1"


@dataclass(frozen=True)
class Recording:
    space: Space
    outcomes: Mapping[str, Outcome]
    about: Mapping[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every config of the space was recorded, so the exhaustive best is known."""
        return len(self.outcomes) == self.space.size

    def evaluate(self, config: Config) -> Outcome:
        recorded = self.outcomes.get(config.key)
        if recorded is None:
            return Outcome.failure("not_recorded", "this configuration is not in the recording",
                                   kind=self.about.get("kind", "measured"))
        return recorded


def recording_dict(space: Space, outcomes: Mapping[str, Outcome], **about) -> dict:
    """A recording as JSON data (what save_recording writes, and the GPU check embeds)."""
    return {"schema": SCHEMA, **about, "space": space.to_dict(),
            "measurements": {key: outcome.to_dict() for key, outcome in outcomes.items()}}


def save_recording(path: str | os.PathLike, space: Space, outcomes: Mapping[str, Outcome], **about) -> None:
    with open(path, "w") as handle:
        json.dump(recording_dict(space, outcomes, **about), handle, indent=1, sort_keys=True)


def recording_from_dict(data: Mapping, where: str = "recording") -> Recording:
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{where}: not a tune recording (schema {data.get('schema')!r})")
    space = Space.from_dict(data["space"])
    outcomes = {space.parse(key).key: Outcome.from_dict(o) for key, o in data["measurements"].items()}
    about = {k: v for k, v in data.items() if k not in ("schema", "space", "measurements")}
    return Recording(space, outcomes, about)


def load_recording(path: str | os.PathLike) -> Recording:
    with open(path) as handle:
        return recording_from_dict(json.load(handle), str(path))


def load_recordings(path: str | os.PathLike) -> dict[str, Recording]:
    """Every recording in a file, by name: the file's own stem for a single recording,
    `stem:name` for each of a file's `recordings`. ValueError (or KeyError, JSONDecodeError)
    when the file is neither."""
    with open(path) as handle:
        data = json.load(handle)
    stem = os.path.splitext(os.path.basename(path))[0]
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a tune recording")
    if "recordings" not in data:
        return {stem: recording_from_dict(data, str(path))}
    found = {}
    for k, entry in enumerate(data["recordings"] or ()):
        name = f"{stem}:{entry.get('name', k)}"
        found[name] = recording_from_dict(entry, f"{path} ({name})")
    return found


@dataclass(frozen=True)
class RecordedRun:
    """One sample's `offload run` as a GPU check recorded it; `report` and `plans` are None
    when it was not recorded (`reason` says why)."""

    name: str
    sample: str                       # the source, relative to the checkout
    defines: tuple[str, ...]
    report: Optional[Mapping[str, Any]]
    plans: Optional[Mapping[str, Any]]
    reason: Optional[str] = None

    @property
    def recorded(self) -> bool:
        return self.report is not None


def load_recorded_runs(path: str | os.PathLike) -> list[RecordedRun]:
    """The runs a GPU check result holds ([] for a file without any)."""
    with open(path) as handle:
        data = json.load(handle)
    runs = []
    for entry in (data.get("runs") or []) if isinstance(data, dict) else []:
        recorded = entry.get("status") == "recorded" and entry.get("report") and entry.get("plans")
        runs.append(RecordedRun(entry["name"], entry["sample"], tuple(entry.get("defines") or ()),
                                entry["report"] if recorded else None, entry["plans"] if recorded else None,
                                None if recorded else entry.get("reason") or "not recorded"))
    return runs


class Noisy:
    """Another objective's times, each scaled by its own log-normal factor. The factor is fixed
    by (seed, config, what is timed), so a replay is repeatable and the same config reads the
    same in every strategy."""

    def __init__(self, inner: Objective, sigma: float = 0.02, seed: int = 0):
        self.inner, self.sigma, self.seed = inner, sigma, seed

    def _factor(self, *parts: str) -> float:
        digest = hashlib.sha256("\0".join((str(self.seed), *parts)).encode()).digest()
        return math.exp(self.sigma * random.Random(digest).gauss(0.0, 1.0))

    def evaluate(self, config: Config) -> Outcome:
        outcome = self.inner.evaluate(config)
        if not outcome.ok:
            return outcome
        key = config.key
        regions = {}
        for rid, p in outcome.regions.items():
            scale = self._factor(key, rid)
            regions[rid] = RegionProfile(*(None if v is None else v * scale
                                           for v in (p.cpu_seconds, p.gpu_seconds, p.transfer_seconds)))
        return replace(outcome, seconds=outcome.seconds * self._factor(key), regions=regions)

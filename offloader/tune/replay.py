"""Record measurements, replay them, and add measurement noise: strategies can then be
developed and compared on real GPU figures without the GPU.

A recording is a JSON file: `schema`, what was measured (`kind`, `device`, free fields), the
`space`, and `measurements` (config key -> outcome as `Outcome.to_dict` writes it).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

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
            return Outcome.failure("crash", "this configuration is not in the recording")
        return recorded


def save_recording(path: str | os.PathLike, space: Space, outcomes: Mapping[str, Outcome], **about) -> None:
    data = {"schema": SCHEMA, **about, "space": space.to_dict(),
            "measurements": {key: outcome.to_dict() for key, outcome in outcomes.items()}}
    with open(path, "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)


def load_recording(path: str | os.PathLike) -> Recording:
    with open(path) as handle:
        data = json.load(handle)
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a tune recording (schema {data.get('schema')!r})")
    space = Space.from_dict(data["space"])
    outcomes = {space.parse(key).key: Outcome.from_dict(o) for key, o in data["measurements"].items()}
    about = {k: v for k, v in data.items() if k not in ("schema", "space", "measurements")}
    return Recording(space, outcomes, about)


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

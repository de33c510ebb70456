"""What can be chosen: per region CPU or GPU, and for a GPU region its launch settings.

Immutable descriptions, so that a search is a search over values: a `Config` is a canonical
value whose `key` names it in the cache, in the study and in recordings. Settings of a region
on the CPU are not part of a config, since they change nothing that runs.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Optional, Sequence

# Names and values appear in config keys and Optuna parameter names; these characters separate them.
_NAME = re.compile(r"[^\s=;,()/]+")

Settings = tuple[tuple[str, str], ...]   # (option, value) in the region's option order


def _check_name(text: str, what: str) -> str:
    if not isinstance(text, str) or not _NAME.fullmatch(text):
        raise ValueError(f"{what} {text!r} must be non-empty and contain none of: space = ; , ( ) /")
    return text


@dataclass(frozen=True)
class Region:
    """A region the generator can put on the GPU, with its launch-setting options.

    `options` maps an option name to its choices; the first choice is the default (what the
    generator does when nobody tunes it).
    """

    id: str
    options: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __init__(self, id: str, options: Mapping[str, Sequence[str]] | Iterable = ()):
        items = options.items() if isinstance(options, Mapping) else options
        normal = tuple((_check_name(name, "option"), tuple(_check_name(v, "value") for v in values))
                       for name, values in items)
        for name, values in normal:
            if not values or len(set(values)) != len(values):
                raise ValueError(f"region {id}: option {name} needs distinct choices, got {values}")
        if len({name for name, _ in normal}) != len(normal):
            raise ValueError(f"region {id}: an option is named twice")
        object.__setattr__(self, "id", _check_name(id, "region id"))
        object.__setattr__(self, "options", normal)

    @property
    def default(self) -> Settings:
        return tuple((name, values[0]) for name, values in self.options)

    @property
    def n_settings(self) -> int:
        return math.prod(len(values) for _, values in self.options)

    def choices(self, option: str) -> tuple[str, ...]:
        return dict(self.options)[option]

    def all_settings(self) -> Iterator[Settings]:
        names = [name for name, _ in self.options]
        for values in itertools.product(*(values for _, values in self.options)):
            yield tuple(zip(names, values))

    def settings(self, given: Mapping[str, str] | Iterable = ()) -> Settings:
        """Full settings in option order: `given` over the defaults, each value checked."""
        given = dict(given)
        unknown = set(given) - {name for name, _ in self.options}
        if unknown:
            raise ValueError(f"region {self.id} has no option {sorted(unknown)}")
        out = []
        for name, values in self.options:
            value = given.get(name, values[0])
            if value not in values:
                raise ValueError(f"region {self.id}: {name}={value} is not one of {values}")
            out.append((name, value))
        return tuple(out)


@dataclass(frozen=True)
class Config:
    """Per region, None (CPU) or its full settings (GPU). Build it with `Space.config`."""

    placement: tuple[tuple[str, Optional[Settings]], ...]

    @property
    def key(self) -> str:
        parts = []
        for rid, settings in self.placement:
            if settings is None:
                parts.append(f"{rid}=cpu")
            elif settings:
                parts.append(f"{rid}=gpu(" + ",".join(f"{k}={v}" for k, v in settings) + ")")
            else:
                parts.append(f"{rid}=gpu")
        return ";".join(parts)

    @property
    def gpu_regions(self) -> tuple[str, ...]:
        return tuple(rid for rid, settings in self.placement if settings is not None)

    def on_gpu(self, rid: str) -> bool:
        return dict(self.placement)[rid] is not None

    def settings(self, rid: str) -> Optional[Settings]:
        return dict(self.placement)[rid]

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class Space:
    """The regions of one program, in program order."""

    regions: tuple[Region, ...]

    def __init__(self, regions: Iterable[Region]):
        regions = tuple(regions)
        ids = [r.id for r in regions]
        if len(set(ids)) != len(ids):
            raise ValueError(f"region ids must be unique: {ids}")
        object.__setattr__(self, "regions", regions)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.regions)

    def region(self, rid: str) -> Region:
        for region in self.regions:
            if region.id == rid:
                return region
        raise KeyError(rid)

    @property
    def size(self) -> int:
        """Number of distinct configs: per region, CPU or one of its GPU settings."""
        return math.prod(1 + r.n_settings for r in self.regions)

    def config(self, gpu: Mapping[str, Mapping[str, str] | Iterable] | Iterable[str] = ()) -> Config:
        """The config with `gpu` regions on the GPU (ids, or id -> settings over the defaults)."""
        chosen = dict(gpu) if isinstance(gpu, Mapping) else {rid: () for rid in gpu}
        unknown = set(chosen) - set(self.ids)
        if unknown:
            raise ValueError(f"no region {sorted(unknown)} in this space")
        return Config(tuple((r.id, r.settings(chosen[r.id]) if r.id in chosen else None)
                            for r in self.regions))

    def all_cpu(self) -> Config:
        return self.config(())

    def configs(self) -> Iterator[Config]:
        """Every config once, all-CPU first, in a fixed order."""
        per_region = [[None, *r.all_settings()] for r in self.regions]
        for choice in itertools.product(*per_region):
            yield Config(tuple(zip(self.ids, choice)))

    def parse(self, key: str) -> Config:
        """The config a `Config.key` names (checked against this space)."""
        gpu = {}
        seen = []
        for part in key.split(";") if key else ():      # "" is the one config of a space without regions
            rid, _, where = part.partition("=")
            seen.append(rid)
            if where == "cpu":
                continue
            if where == "gpu":
                gpu[rid] = ()
            elif where.startswith("gpu(") and where.endswith(")"):
                gpu[rid] = [item.split("=", 1) for item in where[4:-1].split(",")]
            else:
                raise ValueError(f"bad config key part {part!r}")
        if tuple(seen) != self.ids:
            raise ValueError(f"config key regions {seen} differ from the space's {list(self.ids)}")
        config = self.config(gpu)
        if config.key != key:
            raise ValueError(f"config key {key!r} is not canonical (expected {config.key!r})")
        return config

    def to_dict(self) -> dict:
        # Options as [name, choices] pairs: their order is part of the config keys.
        return {"regions": [{"id": r.id, "options": [[n, list(v)] for n, v in r.options]}
                            for r in self.regions]}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Space":
        return cls(Region(r["id"], r.get("options", ())) for r in data["regions"])

"""How a config is written as Optuna parameters, so every strategy's trials read the same way.

Placement of region R is the parameter `R` ("cpu" or "gpu"); its launch option O is `R/O`.
Settings are suggested only for GPU regions (conditional parameters, which TPE with
`group=True` models), unless `conditional=False`, which the genetic sampler needs to keep
settings genes across generations.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from offloader.tune.space import Config, Settings, Space

PLACES = ("cpu", "gpu")


def param_name(rid: str, option: str | None = None) -> str:
    return rid if option is None else f"{rid}/{option}"


def params(config: Config) -> dict[str, str]:
    """The parameters that `suggest` records for `config` when every part of it is free."""
    out = {}
    for rid, settings in config.placement:
        out[param_name(rid)] = "cpu" if settings is None else "gpu"
        for option, value in settings or ():
            out[param_name(rid, option)] = value
    return out


def suggest(trial, space: Space, base: Config, *, free: Iterable[str] = (), tuned: Iterable[str] = (),
            settings: Mapping[str, Settings] | None = None, conditional: bool = True) -> Config:
    """A config drawn through `trial`: placement of `free` regions and settings of `tuned` ones
    are suggested; the rest comes from `base`, then `settings`, then the region's defaults."""
    free, tuned, settings = set(free), set(tuned), dict(settings or {})
    chosen = {}
    for region in space.regions:
        rid = region.id
        if rid in free:
            gpu = trial.suggest_categorical(param_name(rid), PLACES) == "gpu"
        else:
            gpu = base.on_gpu(rid)
        if rid in tuned and (gpu or not conditional):
            picked = tuple((name, trial.suggest_categorical(param_name(rid, name), values))
                           for name, values in region.options)
        else:
            picked = base.settings(rid) or settings.get(rid) or region.default
        if gpu:
            chosen[rid] = picked
    return space.config(chosen)

"""One run of a strategy: the budget, the time limit, Ctrl-C, progress, and the cache in front
of the objective.

Strategies only say which configuration to try next (`measure`) or let the sampler say
(`propose`); the session decides whether that costs a measurement, and stops the strategy
by raising `Stop` when the budget or the time is spent or the user pressed Ctrl-C.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Optional

import optuna

from offloader.tune.encoding import params, suggest
from offloader.tune.objective import Objective, Outcome
from offloader.tune.space import Config, Space
from offloader.tune.study import Opened, TuneStudy

if TYPE_CHECKING:
    from offloader.tune.strategies import Strategy


class Stop(Exception):
    """The run ends here; `reason` is "budget", "time_limit", "interrupted", or "done" when
    every configuration of the space is measured."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Progress:
    """What a progress bar shows after each trial."""

    phase: str
    trials: int                    # trials completed in this run, cached ones included
    measured: int                  # unique measurements of this study, all runs
    budget: Optional[int]
    best_seconds: Optional[float]
    best_key: Optional[str]
    elapsed: float
    eta_seconds: Optional[float]   # None when nothing bounds the run yet


@dataclass(frozen=True)
class Result:
    best: Optional[Config]
    best_outcome: Optional[Outcome]
    stopped: str                   # "done", "budget", "time_limit" or "interrupted"
    measured: int                  # unique measurements of this study, all runs
    measured_now: int              # ... of which in this run
    trials: int                    # complete trials of this study, cached ones included
    opened: Opened


@dataclass(frozen=True)
class Proposal:
    config: Config
    outcome: Outcome
    fresh: bool                    # measured now, not taken from the cache


class _Pinning(optuna.samplers.BaseSampler):
    """Wraps the strategy's sampler so a trial can be given fixed values: a config the strategy
    chose is recorded with the same parameters and distributions as a sampled one."""

    def __init__(self, base):
        self.base, self.pinned = base, None

    def infer_relative_search_space(self, study, trial):
        return {} if self.pinned is not None else self.base.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return {} if self.pinned is not None else self.base.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, name, distribution):
        if self.pinned is not None:
            return self.pinned[name]
        return self.base.sample_independent(study, trial, name, distribution)

    def before_trial(self, study, trial):
        self.base.before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self):
        self.base.reseed_rng()


class Session:
    def __init__(self, study: TuneStudy, objective: Objective, *, budget: Optional[int] = None,
                 time_limit: Optional[float] = None, planned: Optional[int] = None,
                 on_progress: Optional[Callable[[Progress], None]] = None):
        self.study, self.objective = study, objective
        self.budget, self.time_limit, self.planned = budget, time_limit, planned
        self.on_progress = on_progress
        self.phase = ""
        self.started = time.monotonic()
        self.measured_now = 0
        self.trials_now = 0
        self._measure_seconds = 0.0
        self._pinning = _Pinning(optuna.samplers.RandomSampler())
        self.study.optuna.sampler = self._pinning
        self.in_flight = None

    @property
    def space(self) -> Space:
        return self.study.space

    @property
    def best(self) -> Optional[tuple[Config, Outcome]]:
        return self.study.best

    def use_sampler(self, sampler) -> None:
        self._pinning.base = sampler

    def known(self, config: Config) -> Optional[Outcome]:
        """The outcome of `config` if it was measured already (for this identity), else None."""
        return self.study.cache.get(config.key)

    def measure(self, config: Config) -> Outcome:
        """The outcome of a config the strategy chose; measured only if nobody has yet."""
        if config.key in self.study.done:
            return self.study.done[config.key]
        self._pinning.pinned = params(config)
        try:
            return self._trial(lambda trial: suggest(trial, self.space, config, free=self.space.ids,
                                                     tuned=self.space.ids)).outcome
        finally:
            self._pinning.pinned = None

    def propose(self, draw: Callable[[object], Config]) -> Proposal:
        """A config the sampler draws (`draw` turns the trial into a config), then its outcome."""
        return self._trial(draw)

    def _trial(self, draw) -> Proposal:
        self._check()
        trial = self.in_flight = self.study.optuna.ask()
        try:
            config = draw(trial)
            outcome = self.known(config)
            fresh = outcome is None
            if fresh:
                start = time.monotonic()
                outcome = self._evaluate(config)
                self._measure_seconds += time.monotonic() - start
                self.measured_now += 1
        except KeyboardInterrupt:
            self.study.fail(trial, "interrupted")
            self.in_flight = None
            raise Stop("interrupted") from None
        self.study.record(trial, config, outcome, measured=fresh, phase=self.phase)
        self.in_flight = None
        self.trials_now += 1
        self._report()
        return Proposal(config, outcome, fresh)

    def _evaluate(self, config: Config) -> Outcome:
        try:
            return self.objective.evaluate(config)
        except Exception as error:   # a broken candidate must not stop the search
            return Outcome.failure("crash", f"{type(error).__name__}: {error}")

    def _check(self) -> None:
        if self.budget is not None and self.study.measured >= self.budget:
            raise Stop("budget")
        if len(self.study.cache) >= self.space.size:
            raise Stop("done")           # every configuration is measured: nothing is left to learn
        if self.time_limit is not None and time.monotonic() - self.started >= self.time_limit:
            raise Stop("time_limit")

    def _report(self) -> None:
        if self.on_progress is None:
            return
        elapsed = time.monotonic() - self.started
        left = [n - self.study.measured for n in (self.budget, self.planned) if n is not None]
        eta = None
        if left and self.measured_now:
            eta = max(0, min(left)) * self._measure_seconds / self.measured_now
        if self.time_limit is not None:
            rest = max(0.0, self.time_limit - elapsed)
            eta = rest if eta is None else min(eta, rest)
        best = self.best
        self.on_progress(Progress(
            phase=self.phase, trials=self.trials_now, measured=self.study.measured, budget=self.budget,
            best_seconds=best[1].seconds if best else None, best_key=best[0].key if best else None,
            elapsed=elapsed, eta_seconds=eta))


def tune(space: Space, objective: Objective, strategy: "Strategy", *, identity: Mapping,
         storage=None, budget: Optional[int] = None, time_limit: Optional[float] = None,
         on_progress: Optional[Callable[[Progress], None]] = None, fail_running: bool = True) -> Result:
    """Run `strategy` over `space`, resuming the study for `identity` in `storage` (a SQLite
    path, an Optuna storage URL or object, or None for memory). Ctrl-C ends the run cleanly:
    the trial in flight is marked failed and everything measured stays in the study."""
    study, opened = TuneStudy.open(storage, identity, strategy.name, space, fail_running=fail_running)
    session = Session(study, objective, budget=budget, time_limit=time_limit,
                      planned=strategy.planned(space, budget), on_progress=on_progress)
    stopped = "done"
    if not study.finished:
        try:
            strategy.search(session)
            study.mark_finished("done")
        except Stop as stop:
            stopped = stop.reason
            if stopped == "done":
                study.mark_finished("done")
        except KeyboardInterrupt:
            if session.in_flight is not None:
                study.fail(session.in_flight, "interrupted")
            stopped = "interrupted"
    best = study.best
    return Result(best=best[0] if best else None, best_outcome=best[1] if best else None,
                  stopped=stopped, measured=study.measured, measured_now=session.measured_now,
                  trials=study.trials, opened=opened)

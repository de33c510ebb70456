"""Search strategies behind one small interface: a strategy decides what to try next; the
session measures, caches, counts the budget and stops it.

- `exhaustive`: every config, for small spaces and to judge the others.
- `ga`: the seed paper's baseline, a genetic algorithm over the region bits (NSGA-II, one objective).
- `default`: this project's strategy. It reads the per-region profile of each run, so one
  run tells it about every region at once: it tunes the launch settings of all regions in
  parallel, then decides placement from what each region costs on each side, and spends what
  is left of the budget on TPE over the few choices that are still open.
"""

from __future__ import annotations

import itertools
import statistics
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Optional

import optuna

from offloader.tune.encoding import suggest
from offloader.tune.objective import Outcome
from offloader.tune.session import Session
from offloader.tune.space import Config, Settings, Space


class Strategy(ABC):
    name: ClassVar[str]

    @abstractmethod
    def search(self, session: Session) -> None:
        """Try configs through `session` until the strategy has nothing left to try."""

    def planned(self, space: Space, budget: Optional[int]) -> Optional[int]:
        """How many unique measurements the run should take, for the ETA; None if unknown."""
        return budget


class Exhaustive(Strategy):
    name = "exhaustive"

    def search(self, session: Session) -> None:
        session.phase = "exhaustive"
        for config in session.space.configs():
            session.measure(config)

    def planned(self, space: Space, budget: Optional[int]) -> Optional[int]:
        return space.size if budget is None else min(space.size, budget)


@dataclass
class Genetic(Strategy):
    """NSGA-II with one objective over the region bits, launch settings at their defaults;
    `settings=True` makes the settings genes too.

    Like every strategy it spends the budget on measurements: it breeds generations until the
    session stops it at the budget, until every configuration its genes can name is measured,
    or until `stall` generations in a row propose nothing new (the population has converged).
    The population is at most the budget, so a small budget still measures a first generation;
    a budget of 1 is one random individual (NSGA-II needs two parents)."""

    name: ClassVar[str] = "ga"
    population: int = 20
    crossover_prob: float = 0.9
    mutation_prob: float = 0.05
    seed: Optional[int] = None
    settings: bool = False
    stall: int = 5

    def search(self, session: Session) -> None:
        if session.budget is None:
            raise ValueError("ga needs a budget: the number of configurations it may measure")
        population = min(self.population, session.budget)
        session.use_sampler(optuna.samplers.NSGAIISampler(
            population_size=population, crossover_prob=self.crossover_prob,
            mutation_prob=self.mutation_prob, seed=self.seed) if population >= 2
            else optuna.samplers.RandomSampler(seed=self.seed))
        space, ids = session.space, session.space.ids
        tuned = ids if self.settings else ()
        reachable = None if self.settings else _placements(space)
        session.phase = "ga"
        stale = 0
        while stale < self.stall * population:
            if reachable is not None and all(session.known(c) is not None for c in reachable):
                return
            proposal = session.propose(lambda trial: suggest(trial, space, space.all_cpu(), free=ids, tuned=tuned,
                                                             conditional=False))
            stale = 0 if proposal.fresh else stale + 1


def _placements(space: Space) -> Optional[list[Config]]:
    """Every placement at default settings, or None when there are too many to list."""
    if len(space.ids) > 12:
        return None
    return [space.config([rid for rid, on in zip(space.ids, bits) if on])
            for bits in itertools.product((False, True), repeat=len(space.ids))]


@dataclass
class Default(Strategy):
    """Profile, place, tune settings in parallel, place again, then refine with TPE.

    1. profile: all regions on the CPU, then all on the GPU at default settings. The per-region
       profile gives each region's CPU time and GPU time from these two runs.
    2. place: from all on the GPU, try the flip the profiles promise most (a region whose GPU
       time, transfers included, exceeds its CPU time goes back) and keep it if the run is
       faster; repeat while that helps.
    3. settings: coordinate descent over the launch options with every region on the GPU. One
       run tries the next value of an option in every region at once, since each region's
       kernel time is read from the profile; a failure blamed on a region marks only that
       region's value bad.
    4. place again with the tuned settings, from step 2's placement; a region whose tuned
       kernel now beats its CPU time may also come back to the GPU.
    5. refine: TPE (multivariate, grouped, conditional settings) over the choices still open:
       placement of regions that neither clearly win nor clearly lose, and settings that move
       the total by at least `matter`. It stops after `patience` new measurements without a
       gain of 0.5%.
    Without per-region profiles it climbs instead of steps 2-4: from the faster of all-CPU and
    all-GPU, single changes (placement, then one option) are kept while the total improves;
    then step 5 over the whole space.
    """

    name: ClassVar[str] = "default"
    seed: Optional[int] = None
    patience: int = 8
    matter: float = 0.01

    def planned(self, space: Space, budget: Optional[int]) -> Optional[int]:
        """About: two profiles, a few flips per region, a sweep per option, the refine's patience."""
        choices: dict[str, int] = {}
        for region in space.regions:
            for name, values in region.options:
                choices[name] = max(choices.get(name, 1), len(values))
        estimate = 2 + len(space.regions) + sum(n - 1 for n in choices.values()) + self.patience
        return estimate if budget is None else min(budget, estimate)

    def search(self, session: Session) -> None:
        space = session.space
        session.phase = "profile"
        base = session.measure(space.all_cpu())
        cpu = {rid: p.cpu_seconds for rid, p in base.regions.items() if p.cpu_seconds is not None}
        if not base.ok or set(cpu) != set(space.ids):
            session.phase = "climb"
            self._climb(session, min((space.all_cpu(), space.config(space.ids)),
                                     key=lambda c: session.measure(c).fitness))
            self._refine(session, space.ids, space.ids, {})
            return
        tuner = _SettingsTuner(session, self._offloadable(session))
        if tuner.regions:
            session.phase = "place"
            placed = self._place(session, tuner.regions, dict(tuner.settings), cpu, {})
            session.phase = "settings"
            tuner.run()
            session.phase = "place"
            kernels = {rid: tuner.kernel(rid, tuner.settings[rid]) for rid in tuner.regions}
            self._place(session, placed, tuner.settings, cpu,
                        {rid: k for rid, k in kernels.items() if k is not None and rid not in placed})
        self._refine(session, *self._open_choices(session, tuner, cpu), tuner.settings)

    def _offloadable(self, session: Session) -> list[str]:
        """Regions that run on the GPU at all: all on the GPU, less those a failure is blamed on.
        A failure nobody is blamed for is sorted out by running each region alone."""
        space = session.space
        on = list(space.ids)
        while on:
            outcome = session.measure(space.config(on))
            if outcome.ok:
                return on
            if outcome.region not in on:
                return [rid for rid in on if session.measure(space.config([rid])).ok]
            on.remove(outcome.region)
        return on

    def _place(self, session: Session, gpu: list[str], settings: dict[str, Settings],
               cpu: dict[str, float], kernels: dict[str, float]) -> list[str]:
        """Local search over placement from `gpu`: flips are tried in the order of the gain the
        profiles promise (a GPU region's GPU time over its CPU time; a CPU region's CPU time
        over its `kernels` estimate), and the first that makes the run faster is kept."""
        space = session.space

        def run(regions):
            return session.measure(space.config({rid: settings[rid] for rid in regions}))

        current = run(gpu)
        while current.ok:
            flips = [(p.gpu_seconds - cpu[rid], rid) for rid in gpu
                     if (p := current.regions.get(rid)) and p.gpu_seconds is not None and p.gpu_seconds > cpu[rid]]
            flips += [(cpu[rid] - kernel, rid) for rid, kernel in kernels.items()
                      if rid not in gpu and kernel < cpu[rid]]
            for _, rid in sorted(flips, reverse=True):
                regions = [r for r in gpu if r != rid] if rid in gpu else [r for r in space.ids if r in gpu or r == rid]
                outcome = run(regions)
                if outcome.fitness < current.fitness:
                    gpu, current = regions, outcome
                    break
            else:
                break
        return gpu

    def _climb(self, session: Session, config: Config) -> None:
        """Without region profiles: hill climbing on the total time. Single changes are tried
        in turn, each kept if the run is faster, until a whole round of them gains nothing."""
        space = session.space
        moves = _moves(space)
        current = session.measure(config)
        idle = turn = 0
        while idle < len(moves):
            neighbour = _apply(space, config, moves[turn % len(moves)])
            turn += 1
            outcome = session.measure(neighbour) if neighbour is not None else None
            if outcome is not None and outcome.fitness < current.fitness:
                config, current, idle = neighbour, outcome, 0
            else:
                idle += 1

    def _open_choices(self, session: Session, tuner: "_SettingsTuner",
                      cpu: dict[str, float]) -> tuple[list[str], list[str]]:
        """Regions whose placement, and regions whose settings, are still worth searching."""
        best_config, best = session.best
        total = best.seconds
        free, tuned = [], []
        for rid in tuner.regions:
            kernel = tuner.kernel(rid, tuner.settings[rid])
            if kernel is None:
                continue
            profile = best.regions.get(rid)
            if best_config.on_gpu(rid) and profile and profile.gpu_seconds is not None:
                clear = cpu[rid] - profile.gpu_seconds > 0.1 * total           # clearly wins
            else:
                clear = kernel - cpu[rid] > 0.1 * total                         # clearly loses
            small = max(cpu[rid], kernel) < self.matter * total
            if not clear and not small:
                free.append(rid)
            if tuner.spread(rid) >= self.matter * total:
                tuned.append(rid)
        return free, tuned

    def _refine(self, session: Session, free, tuned, settings: dict[str, Settings]) -> None:
        if not free and not tuned:
            return
        session.phase = "refine"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            session.use_sampler(optuna.samplers.TPESampler(multivariate=True, group=True, seed=self.seed))
        known = session.best
        base = known[0] if known else session.space.all_cpu()
        best = known[1].seconds if known else float("inf")
        stale = repeats = 0
        while stale < self.patience and repeats < 4 * self.patience:
            proposal = session.propose(lambda trial: suggest(trial, session.space, base, free=free,
                                                             tuned=tuned, settings=settings))
            if not proposal.fresh:
                repeats += 1
                continue
            repeats = 0
            if proposal.outcome.fitness < best * 0.995:
                best, stale = proposal.outcome.fitness, 0
            else:
                stale += 1


def _moves(space: Space) -> list[tuple[str, tuple[str, ...]]]:
    """The single changes a climb tries: flip a region's placement, flip two neighbouring
    regions together (they may share transfers), set one launch option of a region."""
    moves = [("place", (r.id,)) for r in space.regions]
    moves += [("place", (a.id, b.id)) for a, b in zip(space.regions, space.regions[1:])]
    moves += [("set", (r.id, name, value)) for r in space.regions for name, values in r.options for value in values]
    return moves


def _apply(space: Space, config: Config, move) -> Optional[Config]:
    """`config` changed by `move`, or None where the move changes nothing or does not apply."""
    kind, what = move
    gpu = {rid: settings for rid, settings in config.placement if settings is not None}
    if kind == "place":
        if len({rid in gpu for rid in what}) > 1:
            return None
        for rid in what:
            if rid in gpu:
                del gpu[rid]
            else:
                gpu[rid] = space.region(rid).default
    else:
        rid, name, value = what
        if rid not in gpu or dict(gpu[rid])[name] == value:
            return None
        gpu[rid] = {**dict(gpu[rid]), name: value}
    return space.config(gpu)


class _SettingsTuner:
    """Coordinate descent over launch options, every offloadable region on the GPU, all regions
    tuned by the same runs. Kernel times (GPU time less transfers) are compared, so they do not
    depend on where neighbours run."""

    def __init__(self, session: Session, regions: list[str]):
        self.session, self.regions = session, regions
        space = session.space
        self.settings: dict[str, Settings] = {rid: space.region(rid).default for rid in regions}
        self.seen: dict[tuple[str, Settings], list[float]] = {}
        self.bad: set[tuple[str, Settings]] = set()

    def kernel(self, rid: str, settings: Settings) -> Optional[float]:
        times = self.seen.get((rid, settings))
        return statistics.fmean(times) if times else None

    def spread(self, rid: str) -> float:
        times = [statistics.fmean(t) for (r, _), t in self.seen.items() if r == rid]
        return max(times) - min(times) if times else 0.0

    def run(self, passes: int = 3) -> None:
        space = self.session.space
        start = space.config({rid: self.settings[rid] for rid in self.regions})
        self._observe(start, self.session.measure(start))
        options = list(dict.fromkeys(name for rid in self.regions for name, _ in space.region(rid).options))
        for _ in range(passes):
            changed = False
            for option in options:
                changed |= self._sweep(option)
            if not changed:
                return

    def _sweep(self, option: str) -> bool:
        space = self.session.space
        queue = {rid: [s for s in self._variants(rid, option) if (rid, s) not in self.seen and (rid, s) not in self.bad]
                 for rid in self.regions if option in dict(space.region(rid).options)}
        while any(queue.values()):
            trying = {rid: (queue[rid][0] if queue.get(rid) else self.settings[rid]) for rid in self.regions}
            config = space.config(trying)
            outcome = self.session.measure(config)
            self._observe(config, outcome)
            culprit = outcome.region if not outcome.ok else None
            for rid, pending in queue.items():
                # A failure blamed on one region leaves the others' values to try again.
                if pending and (culprit is None or culprit == rid or not queue.get(culprit)):
                    pending.pop(0)
        changed = False
        for rid in queue:
            timed = [(self.kernel(rid, s), s) for s in self._variants(rid, option) if self.kernel(rid, s) is not None]
            if timed:
                best = min(timed)[1]
                changed |= best != self.settings[rid]
                self.settings[rid] = best
        return changed

    def _variants(self, rid: str, option: str) -> list[Settings]:
        region = self.session.space.region(rid)
        return [tuple((n, value if n == option else v) for n, v in self.settings[rid])
                for value in region.choices(option)]

    def _observe(self, config: Config, outcome: Outcome) -> None:
        if outcome.ok:
            for rid in config.gpu_regions:
                profile = outcome.regions.get(rid)
                if profile is not None and profile.kernel_seconds is not None:
                    self.seen.setdefault((rid, config.settings(rid)), []).append(profile.kernel_seconds)
        elif outcome.region is not None:
            self.bad.add((outcome.region, config.settings(outcome.region)))
        else:
            for rid in config.gpu_regions:
                if (rid, config.settings(rid)) not in self.seen:
                    self.bad.add((rid, config.settings(rid)))


STRATEGIES = {cls.name: cls for cls in (Default, Genetic, Exhaustive)}


def make(name: str, **options) -> Strategy:
    """The strategy called `name`, with its options (e.g. seed, population)."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}") from None
    return cls(**options)

"""How many unique measurements each tuning strategy needs to find a configuration within 5%
of the exhaustive best.

Cases: the synthetic cost model of four samples at GPU-sized inputs and of programs drawn
from realistic ranges (offloader/tune/synthetic.py; times are modeled), and every complete
recording (offloader/tune/replay.py format) of real measurements in results/gpu/*.json and
of real samples with modeled GPU times in results/bench/recordings/*.json
(benchmarks/record_sample_spaces.py), when there are some. Every case has at least 256
configurations. The GPU check's results (results/gpu/) hold a partial recording per sample
(two configurations): they are listed as skipped, with how much of the space they hold.

A strategy sees each time with log-normal noise (NOISE), fixed per seed and config, like a
median of repeats; it is judged on the noise-free times, which are the truth of the model or
the recorded medians. For each case and seed, `need` is the number of unique measurements
after which the best configuration the strategy has measured so far (by its noisy reading)
is within 5% of the true best; None when that never happens within its run. The result
is the median over SEEDS (None counts as worse than any number). `ga` is the seed paper's
baseline (region bits, settings at defaults); `ga+settings` also evolves the settings;
`default(totals only)` is the default strategy fed only total times, as a replay of a
recording without per-region profiles would be.

`exhaustive` measures `Space.configs()` in order (tests/test_tune_search.py checks that), so
its count is taken from that order directly; it needs the whole space to know it is done.
Writes results/bench/tune_strategies.json.
"""

from __future__ import annotations

import glob
import json
import math
import os
import statistics
import sys
import time
from dataclasses import replace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from machine import machine  # noqa: E402
from offloader.tune import synthetic  # noqa: E402
from offloader.tune.replay import Noisy, load_recordings  # noqa: E402
from offloader.tune.session import tune  # noqa: E402
from offloader.tune.strategies import Default, Genetic  # noqa: E402

RECORDINGS = os.path.join(ROOT, "results", "bench", "recordings")   # benchmarks/record_sample_spaces.py
SEEDS = range(10)
NOISE = 0.02
WITHIN = 1.05
RANDOM_APPS = range(1, 9)
GA = {"population": 16, "crossover_prob": 0.9, "mutation_prob": 0.05}
GA_BUDGET = 320                 # a cap on measurements; ga stops on its own once it has converged
DEFAULT_BUDGET = 200            # a cap; the default strategy stops on its own well before
# name: (strategy for a seed, budget, whether the objective reports per-region profiles)
STRATEGIES = {
    "default": (lambda seed: Default(seed=seed), DEFAULT_BUDGET, True),
    "default(totals only)": (lambda seed: Default(seed=seed), DEFAULT_BUDGET, False),
    "ga": (lambda seed: Genetic(seed=seed, **GA), GA_BUDGET, True),
    "ga+settings": (lambda seed: Genetic(seed=seed, settings=True, **GA), GA_BUDGET, True),
}


class Case:
    """A space, its true times (`truth`), and where they come from."""

    def __init__(self, name, space, truth, kind, source):
        self.name, self.space, self.truth, self.kind, self.source = name, space, truth, kind, source
        self._times = {}

    def time(self, config) -> float:
        if config.key not in self._times:
            self._times[config.key] = self.truth.evaluate(config).fitness
        return self._times[config.key]

    def best(self) -> float:
        return min(self.time(config) for config in self.space.configs())


def synthetic_cases() -> list[Case]:
    apps = [make() for make in synthetic.SAMPLES.values()] + [synthetic.random_app(s) for s in RANDOM_APPS]
    return [Case(app.name, app.space(), app, "modeled", "offloader/tune/synthetic.py") for app in apps]


def recorded_cases(*folders: str) -> tuple[list[Case], list[str]]:
    """Complete recordings in `folders` (a file may hold several: the GPU check's results
    hold one per sample); the others are listed as skipped, with why."""
    cases, skipped = [], []
    for path in sorted(p for folder in folders for p in glob.glob(os.path.join(folder, "*.json"))):
        where = os.path.relpath(path, ROOT)
        try:
            recordings = load_recordings(path)
        except (ValueError, KeyError, TypeError, json.JSONDecodeError) as error:
            skipped.append(f"{where}: {error}")
            continue
        for name, recording in recordings.items():
            if not recording.complete or recording.space.size < 256:
                skipped.append(f"{where} ({name}): {len(recording.outcomes)} of {recording.space.size} "
                               "configurations recorded (needs all, and >= 256; the rest replay as not_recorded)")
                continue
            cases.append(Case(f"recorded:{name}", recording.space, recording,
                              recording.about.get("kind", "measured"), where))
    return cases, skipped


def need(case: Case, trace, best: float):
    """Unique measurements until the incumbent (best noisy reading so far) is truly within WITHIN."""
    incumbent = None
    for count, (config, reading) in enumerate(trace, start=1):
        if incumbent is None or reading < incumbent[1]:
            incumbent = (config, reading)
        if case.time(incumbent[0]) <= WITHIN * best:
            return count
    return None


def exhaustive_need(case: Case, seed: int, best: float):
    noisy = Noisy(case.truth, NOISE, seed)
    return need(case, ((c, noisy.evaluate(c).fitness) for c in case.space.configs()), best)


def run(case: Case, strategy: str, seed: int, best: float):
    make, budget, profiles = STRATEGIES[strategy]
    noisy = Noisy(case.truth, NOISE, seed)
    trace = []

    class Recorded:
        def evaluate(self, config):
            outcome = noisy.evaluate(config)
            trace.append((config, outcome.fitness))
            return outcome if profiles else replace(outcome, regions={})

    result = tune(case.space, Recorded(), make(seed), identity={"case": case.name, "seed": seed},
                  budget=budget)
    keys = [config.key for config, _ in trace]
    assert len(keys) == len(set(keys)), f"{strategy} measured a configuration twice"
    return {"need": need(case, trace, best), "measured": len(trace),
            "found_vs_best": round(case.time(result.best) / best, 4) if result.best else None}


def median(values):
    ordered = sorted(math.inf if v is None else v for v in values)
    middle = statistics.median(ordered)
    return None if math.isinf(middle) else middle


def main() -> None:
    started = time.monotonic()
    cases = synthetic_cases()
    recorded, skipped = recorded_cases(os.path.join(ROOT, "results", "gpu"), RECORDINGS)
    cases += recorded
    rows = []
    pooled = {name: [] for name in ("exhaustive", *STRATEGIES)}
    hard = {name: [] for name in pooled}     # cases where all on the GPU at defaults is not enough
    for case in cases:
        best = case.best()
        row = {"case": case.name, "kind": case.kind, "source": case.source, "regions": len(case.space.regions),
               "configurations": case.space.size, "best_seconds": round(best, 6),
               "all_cpu_seconds": round(case.time(case.space.all_cpu()), 6),
               # How good the first guess of the default strategy already is: every region on
               # the GPU at default settings. Cases where it is within 5% are easy for it.
               "all_gpu_defaults_vs_best": round(case.time(case.space.config(case.space.ids)) / best, 4)}
        needs = {"exhaustive": [exhaustive_need(case, seed, best) for seed in SEEDS]}
        for strategy in STRATEGIES:
            runs = [run(case, strategy, seed, best) for seed in SEEDS]
            needs[strategy] = [r["need"] for r in runs]
            row[strategy] = {"median_need": median(needs[strategy]), "need": needs[strategy],
                             "reached": sum(n is not None for n in needs[strategy]),
                             "median_measured": median([r["measured"] for r in runs]),
                             "worst_found_vs_best": max(r["found_vs_best"] or math.inf for r in runs)}
        row["exhaustive"] = {"median_need": median(needs["exhaustive"]), "need": needs["exhaustive"],
                             "measured": case.space.size}
        for name, values in needs.items():
            pooled[name] += values
            if row["all_gpu_defaults_vs_best"] > WITHIN:
                hard[name] += values
        rows.append(row)
        print(f"{case.name:14s} {case.space.size:7d} configs  need (median of {len(SEEDS)} seeds): "
              + "  ".join(f"{name} {row[name]['median_need']}" for name in pooled))
    record = {
        "kind": sorted({case.kind for case in cases}),
        "what": "unique measurements each tuning strategy needs before the best configuration it "
                f"has measured is within {round((WITHIN - 1) * 100)}% of the exhaustive best",
        "seeds": len(SEEDS), "noise_sigma": NOISE, "ga": {**GA, "budget": GA_BUDGET},
        "default_budget_cap": DEFAULT_BUDGET,
        "median_need_all_cases": {name: median(values) for name, values in pooled.items()},
        "median_need_cases_where_all_gpu_at_defaults_is_over_5pct": {
            name: median(values) if values else None for name, values in hard.items()},
        "worst_case_median_need": {name: max((r[name]["median_need"] for r in rows),
                                             key=lambda v: math.inf if v is None else v) for name in pooled},
        "cases": rows,
        "recordings_skipped": skipped or None,
        "note": "synthetic cases are modeled by offloader/tune/synthetic.py; recorded cases replay, "
                "with noise, whole-space recordings: results/gpu/*.json (measured on a GPU; "
                f"{sum(c.source.startswith('results/gpu') for c in recorded)} present) and "
                "results/bench/recordings/*.json (real samples run on the emulated device, GPU times "
                "modeled by offloader/tune/gpumodel.py; written by benchmarks/record_sample_spaces.py)",
        "wall_seconds": round(time.monotonic() - started, 1),
        **machine(),
    }
    out = os.path.join(ROOT, "results", "bench", "tune_strategies.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as handle:
        json.dump(record, handle, indent=2)
    print("median need over all cases and seeds: "
          + ", ".join(f"{k} {v}" for k, v in record["median_need_all_cases"].items()) + f" -> {out}")


if __name__ == "__main__":
    main()

"""The tune search core: the space, the strategies, the cache, failures, progress and stopping.

Real Optuna throughout (in memory here; SQLite in test_tune_search_study.py), on a synthetic
cost model of a small program.
"""

import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from offloader.tune.objective import Outcome, RegionProfile
from offloader.tune.replay import Noisy, load_recording, load_recordings, save_recording
from offloader.tune.session import tune
from offloader.tune.space import Region, Space
from offloader.tune.strategies import Default, Exhaustive, Genetic, make
from offloader.tune.synthetic import HOST, App, Kernel, Link, _options


def small_app() -> App:
    """Three regions, 315 configurations: a launch setting that fails, a region whose default
    axes are the slow ones, and transfers that neighbours on the GPU share."""
    grid = 2 ** 22 * 8
    return App("small", (
        Kernel("a", 0.004, 0.05e-3, 10, _options(1, False), {"block": {"128x1x1": 1.3, "64x1x1": 1.5}}),
        Kernel("b", 0.006, 0.08e-3, 10, _options(2, False), {"block": {"32x8x1": 1.2}, "axes": {"default": 2.5}},
               fails={"block=32x4x1": "launch_error"}),
        Kernel("c", 0.0005, 0.4e-3, 1, _options(1, True), {"reduction": {"tree": 1.5}}),
    ), (Link(HOST, "a", grid), Link("a", "b", grid, 10), Link("b", "a", grid, 9), Link("b", "c", grid),
        Link("c", HOST, 8)))


class Counting:
    """Wraps an objective and keeps the keys of the configs it measured, in order."""

    def __init__(self, inner):
        self.inner, self.keys = inner, []

    def evaluate(self, config):
        self.keys.append(config.key)
        return self.inner.evaluate(config)


def tune_in_memory(space, objective, strategy, **options):
    """`tune` on a fresh in-memory study; returns the result and the study's trials."""
    storage = optuna.storages.InMemoryStorage()
    result = tune(space, objective, strategy, identity={}, storage=storage, **options)
    return result, optuna.load_study(study_name=result.opened.name, storage=storage).trials


def optimum(app: App) -> float:
    return min(app.evaluate(c).fitness for c in app.space().configs())


# --- the space ---------------------------------------------------------------------------

def test_space_counts_distinct_configs_and_keys_ignore_cpu_settings():
    space = Space([Region("r0", {"block": ["128x1x1", "256x1x1"], "axes": ["default", "swapped"]}),
                   Region("r1", {"block": ["32x1x1", "128x1x1", "256x1x1"]}),
                   Region("r2")])
    assert space.size == (1 + 4) * (1 + 3) * (1 + 1)
    configs = list(space.configs())
    assert len(configs) == len({c.key for c in configs}) == space.size
    assert configs[0] == space.all_cpu()
    assert space.config({"r1": {"block": "256x1x1"}}).key == "r0=cpu;r1=gpu(block=256x1x1);r2=cpu"
    assert space.config(["r0", "r2"]).key == "r0=gpu(block=128x1x1,axes=default);r1=cpu;r2=gpu"
    for config in configs:
        assert space.parse(config.key) == config
        assert hash(space.parse(config.key)) == hash(config)


def test_space_rejects_bad_names_and_values():
    with pytest.raises(ValueError):
        Region("r;0")
    with pytest.raises(ValueError):
        Region("r0", {"block": []})
    space = Space([Region("r0", {"block": ["128x1x1"]})])
    with pytest.raises(ValueError):
        space.config({"r0": {"block": "999x1x1"}})
    with pytest.raises(ValueError):
        space.config(["r9"])
    with pytest.raises(ValueError):
        space.parse("r0=gpu(block=128x1x1);r1=cpu")
    assert Space.from_dict(space.to_dict()) == space


def test_ga_with_settings_genes_finds_the_optimum_and_cpu_genes_collapse():
    """The GA with settings genes draws settings for CPU regions too; they name the same config.
    It converges before it spends the budget of measurements, and then stops."""
    app = small_app()
    counting = Counting(app)
    result = tune(app.space(), counting, Genetic(seed=1, population=8, settings=True), identity={}, budget=160)
    assert len(counting.keys) == len(set(counting.keys)) == result.measured
    assert result.stopped == "done" and result.measured < min(160, result.trials)
    assert result.best_outcome.seconds == pytest.approx(optimum(app))


# --- strategies --------------------------------------------------------------------------

def test_exhaustive_measures_every_config_once_in_space_order():
    app = small_app()
    counting = Counting(app)
    result = tune(app.space(), counting, Exhaustive(), identity={})
    assert counting.keys == [c.key for c in app.space().configs()]
    assert result.best_outcome.seconds == pytest.approx(optimum(app))
    assert result.stopped == "done"


def test_default_finds_the_optimum_in_few_measurements_and_is_deterministic():
    app = small_app()
    runs = []
    for _ in range(2):
        counting = Counting(Noisy(app, 0.02, seed=3))
        result = tune(app.space(), counting, Default(seed=3), identity={})
        runs.append(counting.keys)
        assert app.evaluate(result.best).fitness == pytest.approx(optimum(app))
        assert len(counting.keys) <= 30 and result.stopped == "done"
    assert runs[0] == runs[1]


def test_ga_finds_the_best_placement_at_default_settings():
    app = small_app()
    space = app.space()
    defaults = min((space.config(regions) for regions in
                    ([], ["a"], ["b"], ["c"], ["a", "b"], ["a", "c"], ["b", "c"], ["a", "b", "c"])),
                   key=lambda c: app.evaluate(c).fitness)
    result = tune(space, app, Genetic(seed=0, population=8), identity={}, budget=80)
    assert result.best == defaults
    assert result.stopped == "done" and result.measured <= 8 < result.trials


def test_ga_needs_a_budget_and_make_knows_the_strategies():
    with pytest.raises(ValueError):
        tune(small_app().space(), small_app(), Genetic(), identity={})
    assert isinstance(make("default", seed=1), Default)
    assert make("ga", population=4).population == 4
    with pytest.raises(ValueError):
        make("annealing")


def test_default_without_region_profiles_still_searches():
    app = small_app()

    class TotalsOnly:
        def evaluate(self, config):
            outcome = app.evaluate(config)
            return Outcome(outcome.status, outcome.seconds, "modeled", outcome.reason)

    counting = Counting(TotalsOnly())
    result = tune(app.space(), counting, Default(seed=0, patience=15), identity={}, budget=60)
    assert result.best is not None and len(set(counting.keys)) == len(counting.keys)
    assert app.evaluate(result.best).fitness < app.evaluate(app.space().all_cpu()).fitness


# --- failures, cache, progress, stopping -------------------------------------------------

def test_failures_get_the_worst_fitness_and_the_search_goes_on():
    app = small_app()

    class Flaky:
        def evaluate(self, config):
            if config.key.count("gpu") == 2:
                raise RuntimeError("driver fell over")
            return app.evaluate(config)

    result, trials = tune_in_memory(app.space(), Flaky(), Exhaustive())
    assert result.stopped == "done" and result.measured == app.space().size
    crashed = [t for t in trials if t.user_attrs["outcome"]["status"] == "crash"]
    failed = [t for t in trials if t.user_attrs["outcome"]["status"] == "launch_error"]
    assert crashed and failed
    assert all(t.value == float("inf") for t in crashed + failed)
    assert "RuntimeError: driver fell over" in crashed[0].user_attrs["outcome"]["reason"]
    assert failed[0].user_attrs["outcome"]["region"] == "b"
    assert result.best_outcome.ok


def test_a_config_is_measured_once_and_cached_trials_complete():
    app = small_app()
    counting = Counting(app)
    result, trials = tune_in_memory(app.space(), counting, Genetic(seed=0, population=8), budget=64)
    assert len(counting.keys) == len(set(counting.keys)) == result.measured
    cached = [t for t in trials if not t.user_attrs["measured"]]
    assert cached and all(t.state.name == "COMPLETE" for t in cached)
    first = {t.user_attrs["config"]: t.value for t in trials if t.user_attrs["measured"]}
    assert all(t.value == first[t.user_attrs["config"]] for t in cached)


def test_progress_reports_trials_best_and_eta():
    app = small_app()
    seen = []
    tune(app.space(), app, Default(seed=0), identity={}, budget=12, on_progress=seen.append)
    assert [p.trials for p in seen] == list(range(1, len(seen) + 1))
    assert seen[-1].measured == 12 and seen[-1].budget == 12
    bests = [p.best_seconds for p in seen]
    assert all(b1 >= b2 for b1, b2 in zip(bests, bests[1:]))
    assert seen[-1].eta_seconds == 0 and seen[0].phase == "profile"
    assert {p.phase for p in seen} >= {"profile", "settings"}


def test_time_limit_stops_the_run():
    app = small_app()

    class Slow:
        def evaluate(self, config):
            time.sleep(0.05)
            return app.evaluate(config)

    started = time.monotonic()
    result = tune(app.space(), Slow(), Exhaustive(), identity={}, time_limit=0.3)
    assert result.stopped == "time_limit" and 2 <= result.measured <= 8
    assert time.monotonic() - started < 2


def test_ctrl_c_stops_cleanly_and_keeps_what_was_found():
    app = small_app()

    class Interrupted:
        def __init__(self):
            self.calls = 0

        def evaluate(self, config):
            self.calls += 1
            if self.calls == 4:
                raise KeyboardInterrupt
            return app.evaluate(config)

    result, trials = tune_in_memory(app.space(), Interrupted(), Default(seed=0))
    assert result.stopped == "interrupted" and result.measured == 3 and result.best is not None
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE"] * 3 + ["FAIL"]


# --- replay ------------------------------------------------------------------------------

def test_a_recording_replays_with_repeatable_noise(tmp_path):
    app = small_app()
    space = app.space()
    outcomes = {c.key: app.evaluate(c) for c in space.configs()}
    save_recording(tmp_path / "small.json", space, outcomes, app="small", kind="modeled", device="none")
    recording = load_recording(tmp_path / "small.json")
    assert recording.complete and recording.about["app"] == "small" and recording.space == space
    config = space.config({"a": {}, "b": {"axes": "swapped"}})
    assert recording.evaluate(config) == outcomes[config.key]
    noisy = Noisy(recording, 0.05, seed=7)
    once, again = noisy.evaluate(config), Noisy(recording, 0.05, seed=7).evaluate(config)
    assert once == again and once.seconds != outcomes[config.key].seconds
    assert once.seconds == pytest.approx(outcomes[config.key].seconds, rel=0.3)
    assert recording.evaluate(space.config({"a": {}, "b": {"block": "32x4x1"}})).status == "launch_error"


def test_outcomes_round_trip_and_check_their_fields():
    outcome = Outcome("ok", 1.5, "emulated", regions={"r0": RegionProfile(gpu_seconds=1.0, transfer_seconds=0.25)})
    assert Outcome.from_dict(outcome.to_dict()) == outcome
    assert outcome.regions["r0"].kernel_seconds == 0.75
    assert Outcome.failure("timeout", "over 60 s").fitness == float("inf")
    with pytest.raises(ValueError):
        Outcome("ok", None)
    with pytest.raises(ValueError):
        Outcome("segfault", 1.0)


def test_the_model_parts_of_tune_do_not_import_optuna():
    code = ("import sys, offloader.tune.space, offloader.tune.objective, offloader.tune.synthetic, "
            "offloader.tune.replay\nprint('optuna' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


PARTIAL = Path(__file__).parent / "fixtures" / "gpu" / "partial-check.json"


def test_a_partial_gpu_recording_replays_what_it_lacks_as_not_recorded():
    """The GPU check records two configurations of each sample (all on the CPU, all on the GPU
    at the defaults): every other one replays as not_recorded, and a strategy still runs."""
    (name, recording), = load_recordings(PARTIAL).items()
    assert name == "partial-check:saxpy" and not recording.complete and len(recording.outcomes) == 2
    space = recording.space
    assert recording.evaluate(space.all_cpu()).ok and recording.evaluate(space.config(space.ids)).ok
    missing = recording.evaluate(space.config([space.ids[0]]))
    assert missing.status == "not_recorded" and missing.fitness == float("inf")
    assert "not in the recording" in missing.reason
    assert Noisy(recording, 0.05, seed=1).evaluate(space.config([space.ids[0]])).status == "not_recorded"
    result = tune(space, recording, Default(seed=0), identity={"case": "partial"}, budget=20)
    assert result.best is not None and result.best.key in recording.outcomes


def test_the_strategy_benchmark_lists_partial_recordings_as_skipped():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from bench_tune_strategies import recorded_cases

    cases, skipped = recorded_cases(str(PARTIAL.parent))
    (recording,) = load_recordings(PARTIAL).values()
    assert cases == [] and len(skipped) == 1
    assert f"2 of {recording.space.size} configurations recorded" in skipped[0] and "not_recorded" in skipped[0]

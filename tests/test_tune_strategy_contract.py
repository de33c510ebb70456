"""One contract, every strategy (as Optuna runs one suite against every storage): a strategy
registered in STRATEGIES is checked here without being named.

- the budget counts completed measurements and is never exceeded, in one run or across resumes;
- a budget of at least 1 measures at least one configuration;
- a space smaller than the budget ends the search once every suggestion is measured;
- under a seed the search is repeatable (on a synthetic objective with replayable noise);
- a resumed search repeats no completed measurement, and a trial a kill left running is
  marked failed and does not count.

Real Optuna, in memory or in SQLite; the objective is the synthetic cost model of test_tune_search.
"""

import inspect

import optuna
import pytest

from offloader.tune.objective import Outcome
from offloader.tune.replay import Noisy
from offloader.tune.session import tune
from offloader.tune.space import Region, Space
from offloader.tune.strategies import STRATEGIES, Genetic, make
from offloader.tune.synthetic import reductions
from test_tune_search import Counting, small_app

NAMES = sorted(STRATEGIES)
IDENTITY = {"source_hash": "contract", "args": [], "device": "emu", "gpu_model": "t4"}


def strategy(name: str, seed: int = 0, **options):
    accepted = inspect.signature(STRATEGIES[name]).parameters
    return make(name, **({"seed": seed} if "seed" in accepted else {}), **options)


def measured_keys(storage, result) -> list[str]:
    study = optuna.load_study(study_name=result.opened.name, storage=storage)
    return [t.user_attrs["config"] for t in study.trials if t.state.name == "COMPLETE" and t.user_attrs["measured"]]


@pytest.mark.parametrize("budget", [1, 3, 8, 10, 30])
@pytest.mark.parametrize("name", NAMES)
def test_the_budget_counts_completed_measurements_and_is_never_exceeded(name, budget):
    app, storage = small_app(), optuna.storages.InMemoryStorage()
    counting = Counting(app)
    result = tune(app.space(), counting, strategy(name), identity=IDENTITY, storage=storage, budget=budget)
    assert 1 <= result.measured == result.measured_now == len(counting.keys) <= budget
    assert len(set(counting.keys)) == len(counting.keys) and measured_keys(storage, result) == counting.keys
    assert result.stopped in ("budget", "done") and result.best is not None
    if result.stopped == "budget":
        assert result.measured == budget


@pytest.mark.parametrize("name", NAMES)
def test_the_budget_holds_across_resumes_and_nothing_is_measured_twice(name, tmp_path):
    app, db = small_app(), f"sqlite:///{tmp_path / 'study.db'}"
    first = Counting(app)
    tune(app.space(), first, strategy(name), identity=IDENTITY, storage=db, budget=4)
    again = Counting(app)
    same = tune(app.space(), again, strategy(name), identity=IDENTITY, storage=db, budget=4)
    assert (same.opened.state, again.keys) == ("resumed", [])
    more = Counting(app)
    bigger = tune(app.space(), more, strategy(name), identity=IDENTITY, storage=db, budget=11)
    assert bigger.measured == len(first.keys) + len(more.keys) <= 11
    assert not set(first.keys) & set(more.keys)
    assert sorted(measured_keys(db, bigger)) == sorted(first.keys + more.keys)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("space", [Space([]), Space([Region("a"), Region("b")]),
                                   Space([Region("a", {"block": ("64x1x1", "128x1x1")})])],
                         ids=["no-regions", "two-placements", "one-option"])
def test_a_space_smaller_than_the_budget_ends_when_every_suggestion_is_measured(name, space):
    counting = Counting(_Flat())
    result = tune(space, counting, strategy(name), identity=IDENTITY, budget=50)
    assert result.stopped == "done" and 1 <= result.measured <= space.size
    assert len(set(counting.keys)) == len(counting.keys)
    assert result.trials <= 50 * space.size        # ended by its rule, not by running out of trials


@pytest.mark.parametrize("name", NAMES)
def test_a_seeded_search_is_repeatable(name):
    runs = []
    for _ in range(2):
        app = small_app()
        counting = Counting(Noisy(app, 0.03, seed=11))
        result = tune(app.space(), counting, strategy(name, seed=5), identity=IDENTITY, budget=25)
        runs.append((counting.keys, result.best, result.stopped))
    assert runs[0] == runs[1] and runs[0][0]


class _Killed(BaseException):
    """Stands for SIGKILL in the middle of a measurement: nothing in the session catches it,
    so the trial in flight stays RUNNING in the storage, as a killed process leaves it."""


@pytest.mark.parametrize("name", NAMES)
def test_a_resume_after_a_kill_marks_the_running_trial_failed_and_repeats_nothing(name, tmp_path):
    app, db = small_app(), f"sqlite:///{tmp_path / 'study.db'}"

    class KilledOnTheFourth(Counting):
        def evaluate(self, config):
            if len(self.keys) == 3:
                raise _Killed
            return super().evaluate(config)

    with pytest.raises(_Killed):
        tune(app.space(), KilledOnTheFourth(app), strategy(name), identity=IDENTITY, storage=db, budget=9)
    study = optuna.load_study(study_name=optuna.get_all_study_names(db)[0], storage=db)
    finished = [t.user_attrs["config"] for t in study.trials if t.state.name == "COMPLETE" and t.user_attrs["measured"]]
    assert len(finished) == 3 and study.trials[-1].state.name == "RUNNING"

    resumed = Counting(app)
    result = tune(app.space(), resumed, strategy(name), identity=IDENTITY, storage=db, budget=9)
    assert (result.opened.state, result.opened.failed_running) == ("resumed", 1)
    assert not set(finished) & set(resumed.keys)
    assert result.measured == 3 + len(resumed.keys) <= 9
    states = [t.state.name for t in optuna.load_study(study_name=result.opened.name, storage=db).trials]
    assert states.count("RUNNING") == 0 and states.count("FAIL") == 1


@pytest.mark.parametrize("budget", [2, 5, 8])
def test_the_ga_population_is_at_most_the_budget(budget):
    app, storage = small_app(), optuna.storages.InMemoryStorage()
    result = tune(app.space(), app, Genetic(seed=0, population=20), identity=IDENTITY, storage=storage,
                  budget=budget)
    trials = optuna.load_study(study_name=result.opened.name, storage=storage).trials
    first_generation = [t for t in trials if t.system_attrs.get("NSGAIISampler:generation") == 0]
    assert len(first_generation) == budget and 1 <= result.measured <= budget


class _Flat:
    """Every configuration takes 1 s, less 0.1 s per region on the GPU."""

    def evaluate(self, config):
        return Outcome("ok", 1.0 - 0.1 * len(config.gpu_regions), kind="modeled")


@pytest.mark.parametrize("budget", [1, 8, 10, 30])
def test_the_ga_spends_its_budget_or_stops_because_it_converged(budget):
    """Ending before the budget is spent means the last `stall` generations proposed only
    configurations already measured (or every placement is measured). Seven regions: 128
    placements, more than any of these budgets."""
    app, storage = reductions(), optuna.storages.InMemoryStorage()
    ga = Genetic(seed=3)
    result = tune(app.space(), app, ga, identity=IDENTITY, storage=storage, budget=budget)
    assert 1 <= result.measured <= budget
    if result.measured < budget:
        trials = optuna.load_study(study_name=result.opened.name, storage=storage).trials
        population = min(ga.population, budget)
        placements = 2 ** len(app.space().ids)
        assert result.measured == placements or not any(
            t.user_attrs["measured"] for t in trials[-ga.stall * population:])

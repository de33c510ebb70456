"""Persistence of a tune search in SQLite: resume, identity, budget across runs, the cache
shared by strategies, and a run killed with SIGKILL mid-measurement."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna

from offloader.tune.session import tune
from offloader.tune.space import Space
from offloader.tune.strategies import Default, Genetic
from offloader.tune.study import TuneStudy
from test_tune_search import Counting, small_app

TESTS = Path(__file__).resolve().parent
IDENTITY = {"source_hash": "1f2e", "build": ["-O2"], "args": [], "device": "emu", "gpu_model": "h100"}


def trials(db, result):
    return optuna.load_study(study_name=result.opened.name, storage=f"sqlite:///{db}").trials


def test_budget_counts_unique_measurements_across_resumes(tmp_path):
    app, db = small_app(), tmp_path / "study.db"
    first = tune(app.space(), app, Default(seed=0), identity=IDENTITY, storage=db, budget=5)
    assert (first.opened.state, first.stopped, first.measured, first.measured_now) == ("new", "budget", 5, 5)
    again = Counting(app)
    second = tune(app.space(), again, Default(seed=0), identity=IDENTITY, storage=db, budget=5)
    assert (second.opened.state, second.stopped, second.measured_now, again.keys) == ("resumed", "budget", 0, [])
    more = Counting(app)
    third = tune(app.space(), more, Default(seed=0), identity=IDENTITY, storage=db, budget=9)
    assert (third.measured, third.measured_now, len(more.keys)) == (9, 4, 4)
    measured = [t.user_attrs["config"] for t in trials(db, third) if t.user_attrs["measured"]]
    assert len(measured) == len(set(measured)) == 9


def test_a_finished_study_resumes_without_measuring(tmp_path):
    app, db = small_app(), f"sqlite:///{tmp_path / 'study.db'}"
    done = tune(app.space(), app, Default(seed=0), identity=IDENTITY, storage=db)
    assert done.stopped == "done"
    again = Counting(app)
    resumed = tune(app.space(), again, Default(seed=0), identity=IDENTITY, storage=db)
    assert (resumed.opened.state, resumed.stopped, again.keys) == ("resumed", "done", [])
    assert (resumed.trials, resumed.best) == (done.trials, done.best)


def test_a_changed_identity_starts_a_new_study_and_says_what_changed(tmp_path):
    app, db = small_app(), tmp_path / "study.db"
    tune(app.space(), app, Default(seed=0), identity=IDENTITY, storage=db, budget=4)
    edited = {**IDENTITY, "source_hash": "9a9a"}
    counting = Counting(app)
    result = tune(app.space(), counting, Default(seed=0), identity=edited, storage=db, budget=4)
    assert (result.opened.state, result.opened.changed, result.opened.reused) == ("replaced", ("source_hash",), 0)
    assert len(counting.keys) == 4
    back = tune(app.space(), app, Default(seed=0), identity=IDENTITY, storage=db, budget=4)
    assert (back.opened.state, back.measured_now) == ("resumed", 0)
    _, opened = TuneStudy.open(db, IDENTITY, "default", Space(app.space().regions[:2]))
    assert (opened.state, opened.changed) == ("replaced", ("space",))


def test_strategies_share_the_measurements_of_one_identity(tmp_path):
    app, db = small_app(), tmp_path / "study.db"
    default = tune(app.space(), app, Default(seed=0), identity=IDENTITY, storage=db)
    known = {t.user_attrs["config"] for t in trials(db, default) if t.user_attrs["measured"]}
    counting = Counting(app)
    ga = tune(app.space(), counting, Genetic(seed=0, population=8), identity=IDENTITY, storage=db, budget=40)
    assert (ga.opened.state, ga.opened.reused) == ("new", default.measured)
    assert ga.measured == len(counting.keys) <= 40 < ga.trials and not known & set(counting.keys)
    cached = {t.user_attrs["config"] for t in trials(db, ga) if not t.user_attrs["measured"]}
    assert cached & known


CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
from test_tune_search import small_app
from offloader.tune.session import tune
from offloader.tune.space import Space
from offloader.tune.strategies import Default

app = small_app()

class HangsOnTheSixth:
    calls = 0
    def evaluate(self, config):
        self.calls += 1
        if self.calls == 6:
            open({marker!r}, "w").close()
            time.sleep(600)
        return app.evaluate(config)

tune(app.space(), HangsOnTheSixth(), Default(seed=0), identity={identity!r}, storage={db!r})
"""


def test_a_run_killed_mid_measurement_resumes_losing_only_the_trial_in_flight(tmp_path):
    db, marker = str(tmp_path / "study.db"), str(tmp_path / "sixth")
    code = CHILD.format(tests=str(TESTS), marker=marker, identity=IDENTITY, db=db)
    child = subprocess.Popen([sys.executable, "-c", code], cwd=TESTS.parent)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(marker):
            assert child.poll() is None, "the tune run ended before its sixth measurement"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    study = optuna.load_study(study_name=optuna.get_all_study_names(f"sqlite:///{db}")[0], storage=f"sqlite:///{db}")
    before = [t.user_attrs["config"] for t in study.trials if t.state.name == "COMPLETE"]
    assert len(before) == 5 and [t.state.name for t in study.trials][-1] == "RUNNING"

    app = small_app()
    counting = Counting(app)
    result = tune(app.space(), counting, Default(seed=0), identity=IDENTITY, storage=db)
    assert (result.opened.state, result.opened.failed_running, result.opened.reused) == ("resumed", 1, 5)
    assert result.stopped == "done" and not set(before) & set(counting.keys)
    after = trials(db, result)
    assert [t.user_attrs["config"] for t in after[:5]] == before
    assert after[5].state.name == "FAIL" and after[5].user_attrs["failed"] == "left running by a stopped run"
    uninterrupted = tune(app.space(), app, Default(seed=0), identity=IDENTITY, storage=None)
    assert app.evaluate(result.best).fitness == app.evaluate(uninterrupted.best).fitness

"""The search's memory: an Optuna study per (identity, strategy), and the measurement cache.

The study lives in any Optuna storage (a SQLite file by default), so a search survives a
crash and several hosts can share one. Each measured trial keeps its full `Outcome` in its
user attributes; that is the cache, so a configuration is measured once per identity, whichever
strategy asked for it, and `--budget` can count unique measurements across resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Optional

from offloader.tune.objective import Outcome
from offloader.tune.space import Config, Space

PREFIX = "offload-"


def identity_hash(identity: Mapping[str, Any]) -> str:
    text = json.dumps(identity, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def storage_for(where: str | os.PathLike | None):
    """An Optuna storage: None is in memory, a URL is used as given, a path is a SQLite file."""
    from optuna.storages import InMemoryStorage, RDBStorage

    if where is None:
        return InMemoryStorage()
    where = os.fspath(where)
    if "://" not in where:
        os.makedirs(os.path.dirname(os.path.abspath(where)), exist_ok=True)
        where = "sqlite:///" + os.path.abspath(where)
    if not where.startswith("sqlite"):
        return RDBStorage(where)
    # Wait for a writer in another process instead of failing at once; write-ahead logging
    # keeps every committed trial through a kill -9 without an fsync per commit.
    from sqlalchemy import event

    storage = RDBStorage(where, engine_kwargs={"connect_args": {"timeout": 60}})
    event.listen(storage.engine, "connect", _sqlite_pragmas)
    storage.engine.dispose()
    return storage


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@dataclass(frozen=True)
class Opened:
    """How a study was found: `new`, `resumed`, or `replaced` (a study of another identity was
    the latest in this storage; `changed` names the identity fields that differ)."""

    state: Literal["new", "resumed", "replaced"]
    name: str
    changed: tuple[str, ...] = ()
    reused: int = 0            # measurements already known for this identity
    failed_running: int = 0    # trials a killed run left RUNNING, now marked failed


class TuneStudy:
    """One strategy's study over one identity, with the cache of every measurement of that identity."""

    def __init__(self, study, space: Space, cache: dict[str, Outcome], done: dict[str, Outcome],
                 measured: int, trials: int):
        self.optuna = study
        self.space = space
        self.cache = cache          # config key -> outcome, every measurement of this identity
        self.done = done            # config key -> outcome, configs with a complete trial here
        self.measured = measured    # unique measurements this study made (what the budget counts)
        self.trials = trials        # complete trials of this study, cached ones included
        self._best: Optional[tuple[Config, Outcome]] = None
        for key, outcome in done.items():
            self._note(key, outcome)

    @classmethod
    def open(cls, storage, identity: Mapping[str, Any], strategy: str, space: Space, *,
             fail_running: bool = True) -> tuple["TuneStudy", Opened]:
        """Open (or create) the study for `identity` and `strategy` in `storage` (see
        `storage_for`). The space is part of the identity. With `fail_running`, trials left
        RUNNING by a killed run are marked failed; turn it off when other hosts share the study."""
        import optuna
        from optuna.trial import TrialState

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if not isinstance(storage, optuna.storages.BaseStorage):
            storage = storage_for(storage)
        identity = {**identity, "space": space.to_dict()}
        ident = identity_hash(identity)
        name = f"{PREFIX}{ident}-{strategy}"
        summaries = [s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
                     if s.study_name.startswith(PREFIX)]
        ours = [s for s in summaries if s.user_attrs.get("identity_hash") == ident]
        others = [s for s in summaries if s.user_attrs.get("identity_hash") != ident]

        if any(s.study_name == name for s in ours):
            state, changed = "resumed", ()
        elif others and not ours:
            latest = max(others, key=lambda s: s.user_attrs.get("opened_at", 0.0))
            before = latest.user_attrs.get("identity", {})
            state = "replaced"
            changed = tuple(sorted(k for k in set(before) | set(identity) if before.get(k) != identity.get(k)))
        else:
            state, changed = "new", ()
        study = optuna.create_study(storage=storage, study_name=name, direction="minimize",
                                    load_if_exists=True)
        if state != "resumed":
            study.set_user_attr("identity", json.loads(json.dumps(identity, default=str)))
            study.set_user_attr("identity_hash", ident)
            study.set_user_attr("strategy", strategy)
        study.set_user_attr("opened_at", time.time())   # which study a changed identity replaces

        failed = 0
        if fail_running:
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                storage.set_trial_user_attr(trial._trial_id, "failed", "left running by a stopped run")
                storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                failed += 1

        cache, done, measured, trials = {}, {}, 0, 0
        for summary in ours:
            sid = storage.get_study_id_from_name(summary.study_name)
            for trial in storage.get_all_trials(sid, deepcopy=False, states=(TrialState.COMPLETE,)):
                if trial.user_attrs.get("measured"):
                    cache[trial.user_attrs["config"]] = Outcome.from_dict(trial.user_attrs["outcome"])
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            trials += 1
            measured += bool(trial.user_attrs.get("measured"))
            done[trial.user_attrs["config"]] = Outcome.from_dict(trial.user_attrs["outcome"])
        opened = Opened(state=state, name=name, changed=changed, reused=len(cache), failed_running=failed)
        return cls(study, space, cache, done, measured, trials), opened

    @property
    def finished(self) -> Optional[str]:
        """Set once the strategy ran to its end: resuming then measures nothing more."""
        return self.optuna.user_attrs.get("finished")

    def mark_finished(self, how: str) -> None:
        self.optuna.set_user_attr("finished", how)

    @property
    def best(self) -> Optional[tuple[Config, Outcome]]:
        """The fastest verified config this study has a trial for."""
        return self._best

    def record(self, trial, config: Config, outcome: Outcome, *, measured: bool, **attrs) -> None:
        """Complete `trial` with `outcome` (a failure gets the worst fitness)."""
        trial.set_user_attr("config", config.key)
        trial.set_user_attr("measured", measured)
        trial.set_user_attr("outcome", outcome.to_dict())
        if measured:
            self.cache[config.key] = outcome
            self.measured += 1
        for name, value in attrs.items():
            trial.set_user_attr(name, value)
        self.optuna.tell(trial, outcome.fitness)
        self.trials += 1
        self.done[config.key] = outcome
        self._note(config.key, outcome)

    def fail(self, trial, why: str) -> None:
        """End a trial that got no outcome (interrupted): it is not a result."""
        from optuna.trial import TrialState

        trial.set_user_attr("failed", why)
        self.optuna.tell(trial, state=TrialState.FAIL, skip_if_finished=True)

    def _note(self, key: str, outcome: Outcome) -> None:
        if outcome.ok and (self._best is None or outcome.seconds < self._best[1].seconds):
            self._best = (self.space.parse(key), outcome)

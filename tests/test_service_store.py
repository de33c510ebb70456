"""The job store's contract: one suite, run on an SQLite file and on the local PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

from offloader.service import auth
from offloader.service.store import FILES, METADATA, Store
from service_support import postgres_url  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parent.parent
SOURCE = {"app.c": b"int main(void) { return 0; }\n"}


class Clock:
    """Advances one second per reading, so that jobs have distinct, ordered times."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/store/jobs.db"
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    engine = create_engine(url)   # the session's database, emptied for the next test
    METADATA.drop_all(engine)
    engine.dispose()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(url, clock):
    store = Store(url, clock=clock)
    yield store
    store.close()


def test_tokens_are_stored_only_as_digests(store, url):
    token, second = store.create_user_token("alice"), store.create_user_token("alice")
    assert token != second and token.startswith(auth.PREFIX)
    assert store.user_for_token(token) == store.user_for_token(second) == "alice"
    assert store.user_for_token(token[:-1]) is None
    assert store.user_for_token("") is None
    with store.engine.connect() as conn:
        dump = repr([conn.execute(select(table)).all() for table in METADATA.sorted_tables])
    assert auth.digest(token) in dump
    assert token not in dump and token[len(auth.PREFIX):] not in dump
    database = make_url(url).database
    if url.startswith("sqlite"):   # nor anywhere in the file or its write-ahead log
        for path in Path(database).parent.glob("jobs.db*"):
            assert token.encode() not in path.read_bytes(), path


def test_a_submitted_job_is_queued_with_its_files(store, clock):
    job_id = store.submit("alice", "tune", {"strategy": "ga", "budget": 5}, SOURCE)
    view = store.get("alice", job_id)
    assert (view.id, view.user, view.kind, view.state) == (job_id, "alice", "tune", "queued")
    assert view.options == {"strategy": "ga", "budget": 5}
    assert view.files == {"app.c": len(SOURCE["app.c"])} and view.outputs == {}
    assert (view.progress, view.result, view.note, view.attempts) == ({}, None, "", 0)
    assert view.created <= clock.now and view.started is view.finished is view.batch is None
    assert store.list_jobs("alice") == [view]


def test_users_see_only_their_own_jobs(store):
    mine = store.submit("alice", "tune", {}, SOURCE, batch="b")
    other = store.submit("alice", "tune", {}, SOURCE)
    theirs = store.submit("bob", "tune", {}, {"x.c": b"x"}, batch="b")
    assert [j.id for j in store.list_jobs("alice")] == [mine, other]
    assert [j.id for j in store.list_jobs("bob")] == [theirs]
    assert [j.id for j in store.batch_jobs("alice", "b")] == [mine]
    assert [j.id for j in store.batch_jobs("bob", "b")] == [theirs]
    assert store.get("bob", mine) is None
    assert not store.cancel("bob", mine)
    assert store.get("alice", mine).state == "queued"
    while (job := store.claim("w")) is not None:
        store.finish(job.id, "done", {}, outputs={"plan.json": b"{}"})
    assert store.output("alice", mine, "plan.json") == b"{}"
    assert store.output("bob", mine, "plan.json") is None
    assert store.disk_used("bob") == 1 + 2


def test_claim_takes_the_oldest_queued_job_with_its_sources(store):
    first = store.submit("alice", "tune", {"n": 1}, SOURCE)
    second = store.submit("bob", "tune", {"n": 2}, {"a.c": b"a", "b.c": b"bb"})
    job = store.claim("host:1:w0")
    assert (job.id, job.state, job.worker, job.attempts) == (first, "running", "host:1:w0", 1)
    assert job.inputs == SOURCE and job.files == {"app.c": len(SOURCE["app.c"])}
    assert job.started is not None
    job = store.claim("host:1:w1")
    assert (job.id, job.inputs) == (second, {"a.c": b"a", "b.c": b"bb"})
    assert store.claim("host:1:w0") is None
    assert store.get("alice", first).state == "running"


RACER = """
import json, sys, threading, time
from offloader.service.store import Store

store = Store(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()            # all racers start together
claimed = []

def work(n):
    while (job := store.claim(f"{sys.argv[2]}-{n}")) is not None:
        claimed.append(job.id)
        time.sleep(0.005)       # some work, so that every racer gets a share
        store.finish(job.id, "done", {"by": job.worker})

failures = []
threading.excepthook = lambda args: failures.append(repr(args.exc_value))
threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"claimed": claimed, "failures": failures}))
"""


@pytest.mark.slow
def test_claim_is_exclusive_across_threads_and_processes(store, url):
    jobs = {store.submit(f"user{n % 3}", "tune", {"n": n}, SOURCE) for n in range(50)}
    racers = [subprocess.Popen([sys.executable, "-c", RACER, url, f"p{p}"], cwd=ROOT, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE) for p in range(2)]
    for racer in racers:
        assert racer.stdout.readline() == "ready\n"
    for racer in racers:
        racer.stdin.write("go\n")
        racer.stdin.flush()
    reports = [json.loads(racer.communicate(timeout=120)[0]) for racer in racers]
    assert [r["failures"] for r in reports] == [[], []]
    claimed = [r["claimed"] for r in reports]
    assert sorted(claimed[0] + claimed[1]) == sorted(jobs)   # each job claimed exactly once
    assert claimed[0] and claimed[1]
    views = [v for n in range(3) for v in store.list_jobs(f"user{n}")]
    assert {(v.state, v.attempts) for v in views} == {("done", 1)}
    racer_of = {job_id: f"p{p}-" for p, ids in enumerate(claimed) for job_id in ids}
    assert all(v.result["by"].startswith(racer_of[v.id]) for v in views)


def test_cancel_stops_queued_and_running_jobs(store):
    queued = store.submit("alice", "tune", {}, SOURCE)
    assert store.cancel("alice", queued)
    view = store.get("alice", queued)
    assert (view.state, view.note) == ("cancelled", "cancelled by its user")
    assert view.finished is not None
    assert store.claim("w") is None
    assert not store.cancel("alice", queued)

    running = store.submit("alice", "tune", {}, SOURCE)
    assert store.claim("w").id == running and not store.is_cancelled(running)
    assert store.cancel("alice", running)
    assert store.is_cancelled(running)
    assert not store.finish(running, "done", {"late": True}, outputs={"plan.json": b"{}"})
    view = store.get("alice", running)
    assert (view.state, view.result, view.outputs) == ("cancelled", None, {})

    done = store.submit("alice", "tune", {}, SOURCE)
    store.claim("w")
    assert store.finish(done, "done", {"ok": True})
    assert not store.cancel("alice", done)
    assert store.get("alice", done).state == "done"
    assert not store.cancel("alice", "no-such-job")
    assert store.is_cancelled("no-such-job")


def test_progress_is_kept_while_running(store):
    job_id = store.submit("alice", "tune", {}, SOURCE)
    store.progress(job_id, {"trials": 9})           # not running yet: ignored
    assert store.get("alice", job_id).progress == {}
    store.claim("w")
    store.progress(job_id, {"trials": 2, "best_s": 0.5})
    assert store.get("alice", job_id).progress == {"trials": 2, "best_s": 0.5}
    store.progress(job_id, {"trials": 3, "best_s": 0.25})
    assert store.get("alice", job_id).progress == {"trials": 3, "best_s": 0.25}
    store.finish(job_id, "failed", {"error": "compile"}, note="nvcc failed")
    store.progress(job_id, {"trials": 4})           # a late report after the end: ignored
    view = store.get("alice", job_id)
    assert (view.state, view.progress, view.result, view.note) == (
        "failed", {"trials": 3, "best_s": 0.25}, {"error": "compile"}, "nvcc failed")
    with pytest.raises(ValueError):
        store.finish(job_id, "cancelled", {})


def test_recover_requeues_the_running_jobs_of_a_dead_service(url, clock):
    crashed = Store(url, max_attempts=2, clock=clock)
    interrupted = [crashed.submit("alice", "tune", {"n": n}, SOURCE) for n in range(2)]
    waiting = crashed.submit("alice", "tune", {}, SOURCE)
    cancelled = crashed.submit("alice", "tune", {}, SOURCE)
    crashed.cancel("alice", cancelled)
    assert [crashed.claim("w").id for _ in interrupted] == interrupted
    crashed.progress(interrupted[0], {"trials": 1})
    crashed.close()                                  # the service dies: nothing finished

    restarted = Store(url, max_attempts=2, clock=clock)
    assert sorted(restarted.recover()) == sorted(interrupted)
    for job_id in interrupted:
        view = restarted.get("alice", job_id)
        assert (view.state, view.attempts, view.note) == ("queued", 1, "retried after a restart")
        assert view.started is None
    assert restarted.get("alice", waiting).state == "queued"
    assert restarted.get("alice", cancelled).state == "cancelled"
    assert restarted.recover() == []
    assert restarted.claim("w").id == interrupted[0]       # still first in line
    restarted.close()

    again = Store(url, max_attempts=2, clock=clock)        # dies during the second attempt too
    assert again.recover() == [interrupted[0]]
    view = again.get("alice", interrupted[0])
    assert (view.state, view.attempts) == ("failed", 2) and view.finished is not None
    assert "2 attempts were interrupted" in view.note
    assert [again.claim("w").id for _ in range(2)] == [interrupted[1], waiting]
    again.close()


def test_purge_deletes_old_finished_jobs_and_their_files(store, clock):
    def finished(state):
        job_id = store.submit("alice", "tune", {}, SOURCE)
        assert store.claim("w").id == job_id
        if state == "cancelled":
            store.cancel("alice", job_id)
        else:
            store.finish(job_id, state, {}, outputs={"report.txt": b"12345"})
        return job_id

    old = [finished("done"), finished("failed"), finished("cancelled")]
    running = store.submit("alice", "tune", {}, SOURCE)
    store.claim("w")
    clock.now += 1000
    recent = finished("done")
    queued = store.submit("alice", "tune", {}, SOURCE)
    used = store.disk_used("alice")
    assert store.purge(2000) == 0
    assert store.purge(500) == 3
    assert [j.id for j in store.list_jobs("alice")] == [running, recent, queued]
    assert store.disk_used("alice") == used - 3 * len(SOURCE["app.c"]) - 2 * 5
    with store.engine.connect() as conn:
        left = conn.scalar(select(func.count()).select_from(FILES).where(FILES.c.job_id.in_(old)))
    assert left == 0
    assert store.purge(500) == 0


def test_quotas_count_jobs_in_flight_and_bytes_stored(store):
    assert (store.in_flight("alice"), store.disk_used("alice")) == (0, 0)
    first = store.submit("alice", "tune", {}, {"a.c": b"x" * 100, "b.c": b"y" * 20})
    store.submit("alice", "tune", {}, {"a.c": b"x" * 10})
    store.submit("bob", "tune", {}, {"a.c": b"z" * 1000})
    assert (store.in_flight("alice"), store.disk_used("alice")) == (2, 130)
    store.claim("w")
    assert store.in_flight("alice") == 2
    store.finish(first, "done", {}, outputs={"plan.json": b"p" * 7})
    assert (store.in_flight("alice"), store.disk_used("alice")) == (1, 137)
    assert (store.in_flight("bob"), store.disk_used("bob")) == (1, 1000)


def test_the_sqlite_file_is_private_to_the_service(tmp_path):
    Store(f"sqlite:///{tmp_path}/new/jobs.db").close()
    assert os.stat(tmp_path / "new" / "jobs.db").st_mode & 0o077 == 0
    with pytest.raises(ValueError, match="needs a file"):
        Store("sqlite://")

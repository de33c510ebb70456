"""The service's job store: users' tokens, jobs and their files, on SQLAlchemy Core.

SQLite by default (one embedded file): WAL, so readers never wait for the writer; a busy
timeout, so writers queue instead of failing; and write transactions opened with BEGIN
IMMEDIATE, so a read-then-write such as claim() takes the write lock first instead of asking
for an upgrade SQLite may refuse. PostgreSQL by URL: claim() locks the oldest queued row with
FOR UPDATE SKIP LOCKED, so concurrent workers take different jobs without waiting on each other.

Files, uploaded and produced, live in the database rather than in a data directory: a job and
its files are written, and purged, in one transaction, so a crash leaves neither orphan files
nor jobs without their sources, and hosts sharing one PostgreSQL need no shared disk. The API
caps uploads, which keeps those rows small.

All times are Unix seconds from the service's clock.
"""

from __future__ import annotations

import os
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (JSON, Column, Connection, Float, ForeignKey, Index, Integer, LargeBinary,
                        MetaData, String, Table, Text, create_engine, delete, event, func,
                        insert, select, update)
from sqlalchemy.engine import make_url

from offloader.service import auth

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
IN_FLIGHT = (QUEUED, RUNNING)
FINISHED = (DONE, FAILED, CANCELLED)
BUSY_TIMEOUT_S = 30
_WRITE = "offload_write"          # execution option: this transaction will write
_CREATE_LOCK = 0x6f66666c6f6164   # PostgreSQL advisory lock held while creating the tables

METADATA = MetaData()
TOKENS = Table(
    "tokens", METADATA,
    Column("digest", String(64), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("created", Float, nullable=False))
JOBS = Table(
    "jobs", METADATA,
    Column("id", String(16), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("batch", String(200)),
    Column("options", JSON, nullable=False),
    Column("progress", JSON, nullable=False),
    Column("result", JSON),
    Column("note", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("worker", String(200)),
    Column("created", Float, nullable=False),
    Column("started", Float),
    Column("finished", Float),
    Index("jobs_by_owner", "owner", "created"),
    Index("jobs_by_state", "state", "created"))
FILES = Table(
    "files", METADATA,
    Column("job_id", String(16), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(6), primary_key=True),   # input (uploaded) | output (from finish)
    Column("name", String(255), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False))


@dataclass(frozen=True)
class JobView:
    """What a user may see of a job: its files' names and sizes, not their contents."""
    id: str
    user: str
    kind: str
    state: str                 # queued | running | done | failed | cancelled
    options: dict
    progress: dict             # the worker's latest report, replaced whole
    result: dict | None
    note: str
    attempts: int              # how many times a worker has started it
    created: float
    started: float | None
    finished: float | None
    batch: str | None
    files: dict[str, int]      # uploaded name -> bytes
    outputs: dict[str, int]    # name -> bytes of what finish() stored


@dataclass(frozen=True)
class Job(JobView):
    """A claimed job as its worker gets it: with the uploaded files' contents."""
    worker: str
    inputs: dict[str, bytes]


class Store:
    """One per service process; its methods are safe from any number of threads and processes."""

    def __init__(self, url: str, *, max_attempts: int = 3,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_attempts = max_attempts
        self._clock = clock
        parsed = make_url(url)
        self._sqlite = parsed.get_backend_name() == "sqlite"
        if self._sqlite:
            _private_file(parsed.database)
            self.engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        with self._write() as conn:
            if not self._sqlite:   # services starting together must not both create the tables
                conn.execute(select(func.pg_advisory_xact_lock(_CREATE_LOCK)))
            METADATA.create_all(conn)

    def close(self) -> None:
        self.engine.dispose()

    # users and tokens

    def create_user_token(self, name: str) -> str:
        """A new token for `name` (earlier ones stay valid); only its digest is kept."""
        token = auth.new_token()
        with self._write() as conn:
            conn.execute(insert(TOKENS).values(digest=auth.digest(token), owner=name,
                                               created=self._clock()))
        return token

    def user_for_token(self, token: str) -> str | None:
        with self._read() as conn:
            return conn.scalar(select(TOKENS.c.owner).where(TOKENS.c.digest == auth.digest(token)))

    # jobs, as their users see them

    def submit(self, user: str, kind: str, options: dict, files: dict[str, bytes],
               batch: str | None = None) -> str:
        job_id = secrets.token_hex(8)
        with self._write() as conn:
            conn.execute(insert(JOBS).values(
                id=job_id, owner=user, kind=kind, state=QUEUED, batch=batch, options=options,
                progress={}, note="", attempts=0, created=self._clock()))
            if files:
                conn.execute(insert(FILES), [
                    dict(job_id=job_id, role="input", name=name, size=len(data), data=data)
                    for name, data in files.items()])
        return job_id

    def list_jobs(self, user: str) -> list[JobView]:
        """In submission order."""
        return self._views(JOBS.c.owner == user)

    def batch_jobs(self, user: str, batch: str) -> list[JobView]:
        return self._views((JOBS.c.owner == user) & (JOBS.c.batch == batch))

    def get(self, user: str, job_id: str) -> JobView | None:
        """None also when the job is another user's: its existence is not revealed."""
        views = self._views((JOBS.c.owner == user) & (JOBS.c.id == job_id))
        return views[0] if views else None

    def output(self, user: str, job_id: str, name: str) -> bytes | None:
        with self._read() as conn:
            data = conn.scalar(select(FILES.c.data).join_from(FILES, JOBS).where(
                JOBS.c.owner == user, FILES.c.job_id == job_id, FILES.c.role == "output",
                FILES.c.name == name))
        return None if data is None else bytes(data)

    def cancel(self, user: str, job_id: str) -> bool:
        """True if the user's job was queued or running: a queued job never starts, a running
        one's worker learns it from is_cancelled() and stops, and its finish() is ignored."""
        with self._write() as conn:
            changed = conn.execute(update(JOBS).where(
                JOBS.c.id == job_id, JOBS.c.owner == user, JOBS.c.state.in_(IN_FLIGHT),
            ).values(state=CANCELLED, finished=self._clock(), note="cancelled by its user"))
        return changed.rowcount == 1

    # jobs, as workers handle them

    def claim(self, worker: str) -> Job | None:
        """The oldest queued job, now running for `worker`; no other claim gets it."""
        with self._write() as conn:
            job_id = conn.scalar(select(JOBS.c.id).where(JOBS.c.state == QUEUED)
                                 .order_by(JOBS.c.created, JOBS.c.id).limit(1)
                                 .with_for_update(skip_locked=True))
            if job_id is None:
                return None
            conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(
                state=RUNNING, worker=worker, started=self._clock(), attempts=JOBS.c.attempts + 1))
            row = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).one()
            inputs = conn.execute(select(FILES.c.name, FILES.c.data).where(
                FILES.c.job_id == job_id, FILES.c.role == "input")).all()
        return Job(**_fields(row, {(job_id, "input"): {n: len(d) for n, d in inputs}}),
                   worker=worker, inputs={name: bytes(data) for name, data in inputs})

    def progress(self, job_id: str, progress: dict) -> None:
        """Replaces the running job's progress (trials done, best so far...)."""
        with self._write() as conn:
            conn.execute(update(JOBS).where(JOBS.c.id == job_id, JOBS.c.state == RUNNING)
                         .values(progress=progress))

    def finish(self, job_id: str, state: str, result: dict, note: str = "",
               outputs: dict[str, bytes] | None = None) -> bool:
        """Records a running job's end (done | failed) with its result files, in one
        transaction. False, and nothing stored, when the job is no longer running
        (cancelled meanwhile)."""
        if state not in (DONE, FAILED):
            raise ValueError(f"a job finishes as {DONE} or {FAILED}, not {state!r}")
        with self._write() as conn:
            changed = conn.execute(update(JOBS).where(
                JOBS.c.id == job_id, JOBS.c.state == RUNNING,
            ).values(state=state, result=result, note=note, finished=self._clock())).rowcount
            if changed and outputs:
                conn.execute(insert(FILES), [
                    dict(job_id=job_id, role="output", name=name, size=len(data), data=data)
                    for name, data in outputs.items()])
        return changed == 1

    def is_cancelled(self, job_id: str) -> bool:
        """True also for a job that no longer exists: either way its worker should stop."""
        with self._read() as conn:
            state = conn.scalar(select(JOBS.c.state).where(JOBS.c.id == job_id))
        return state in (None, CANCELLED)

    # the service's housekeeping

    def recover(self) -> list[str]:
        """Call at service start, before its workers: every running job was left by a dead
        service. Each goes back to the queue, or fails once max_attempts starts have been
        interrupted. Returns their ids. Assumes one service per database."""
        with self._write() as conn:
            running = conn.execute(select(JOBS.c.id, JOBS.c.attempts)
                                   .where(JOBS.c.state == RUNNING).with_for_update()).all()
            spent = [r.id for r in running if r.attempts >= self.max_attempts]
            retried = [r.id for r in running if r.attempts < self.max_attempts]
            if spent:
                conn.execute(update(JOBS).where(JOBS.c.id.in_(spent)).values(
                    state=FAILED, finished=self._clock(),
                    note=f"failed: {self.max_attempts} attempts were interrupted by restarts"))
            if retried:
                conn.execute(update(JOBS).where(JOBS.c.id.in_(retried)).values(
                    state=QUEUED, worker=None, started=None, note="retried after a restart"))
        return spent + retried

    def purge(self, older_than_seconds: float) -> int:
        """Deletes jobs finished that long ago, their files with them (retention)."""
        with self._write() as conn:
            return conn.execute(delete(JOBS).where(
                JOBS.c.state.in_(FINISHED),
                JOBS.c.finished < self._clock() - older_than_seconds)).rowcount

    def in_flight(self, user: str) -> int:
        with self._read() as conn:
            return conn.scalar(select(func.count()).select_from(JOBS).where(
                JOBS.c.owner == user, JOBS.c.state.in_(IN_FLIGHT)))

    def disk_used(self, user: str) -> int:
        """Bytes of the user's stored files, uploaded and produced, until purged."""
        with self._read() as conn:
            return conn.scalar(select(func.coalesce(func.sum(FILES.c.size), 0))
                               .join_from(FILES, JOBS).where(JOBS.c.owner == user))

    # internals

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _views(self, where) -> list[JobView]:
        with self._read() as conn:
            rows = conn.execute(select(JOBS).where(where).order_by(JOBS.c.created, JOBS.c.id)).all()
            files = conn.execute(select(FILES.c.job_id, FILES.c.role, FILES.c.name, FILES.c.size)
                                 .where(FILES.c.job_id.in_(select(JOBS.c.id).where(where)))).all()
        sizes: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        for job_id, role, name, size in files:
            sizes[job_id, role][name] = size
        return [JobView(**_fields(row, sizes)) for row in rows]


def _fields(row, sizes: dict[tuple[str, str], dict[str, int]]) -> dict:
    return dict(id=row.id, user=row.owner, kind=row.kind, state=row.state, options=row.options,
                progress=row.progress, result=row.result, note=row.note, attempts=row.attempts,
                created=row.created, started=row.started, finished=row.finished, batch=row.batch,
                files=sizes.get((row.id, "input"), {}), outputs=sizes.get((row.id, "output"), {}))


def _private_file(path: str | None) -> None:
    """Creates the database file readable by the service's user only: it holds users' code."""
    if not path or path == ":memory:":
        raise ValueError("the SQLite job store needs a file: sqlite:////path/to/jobs.db")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _sqlite_connect(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None   # no implicit BEGIN from the driver: _sqlite_begin opens
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")   # purge's ON DELETE CASCADE
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

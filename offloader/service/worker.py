"""Workers: threads that claim jobs from the store and run `offload tune`, then `offload size`,
then pack the results, each step inside the sandbox (the user's code is only ever compiled,
preprocessed or run there). Their outputs go into the store; the job folder is scratch, kept
only while the job runs so that a retried job resumes its Optuna study.

A job folder holds src/ (the uploads, written afresh at every attempt), out/ (tune's results
folder), cache/ (the job's own XDG cache: emulator builds, and the measurement locks) and
results.tar.gz. Anything in it may have been replaced by the job, so it is only read through
safefs and only written where the worker has just made a fresh folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional

from sizing.document import recommendation_summary

from ..contracts.plan import summary as plan_summary
from .config import ServiceConfig
from .jobspec import OUT, SRC, JobOptions, size_argv, tune_argv
from .progress import tune_progress
from .safefs import maybe_read
from .sandbox import Limits, SandboxResult
from .store import DONE, FAILED, Job, Store

ARCHIVE = "results.tar.gz"
# Result files kept in the store, each with the most bytes the worker will read of it.
OUTPUTS = {"plan.json": 4 << 20, "profile.json": 4 << 20, "sizing.json": 4 << 20, "sizing.html": 8 << 20,
           "sizing.csv": 1 << 20, "report.html": 16 << 20, "trials.csv": 8 << 20}
ARCHIVE_CAP = 64 << 20
PACKED = (*OUTPUTS, "program")
LOCKED_DEVICES = ("cpu", "cuda0")      # offloader.tune.lock's names


def gpu_present() -> bool:
    return any(Path("/dev").glob("nvidia[0-9]*"))


def readonly_paths() -> list[Path]:
    """What `python -m offloader` needs inside the sandbox besides the system: the checkout
    (or site-packages) holding the package, and the interpreter's prefix."""
    import offloader

    system = ("/usr", "/bin", "/lib")
    paths = [Path(offloader.__file__).resolve().parents[1], Path(sys.prefix)]
    return [p for p in dict.fromkeys(paths) if not str(p).startswith(system)]


class Workers:
    """N threads, each running one job at a time."""

    def __init__(self, config: ServiceConfig, store: Store, log: Callable[[str], None] = lambda m: None):
        self.config, self.store, self.log = config, store, log
        # One step may search for the longest time a job may ask, plus building and verifying.
        self.limits = Limits(wall_seconds=config.max_time_limit + 600,
                             cpu_seconds=4 * (config.max_time_limit + 600), pids=256)
        self.gpu = gpu_present()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.running: set[str] = set()        # ids of the jobs being run here now
        self.jobs_dir = config.data / "jobs"
        self.locks_dir = config.data / "locks"      # until start() finds the host's own
        self.readonly = readonly_paths() + [p for p in [config.data / "catalogs"] if p.is_dir()]

    def start(self) -> None:
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.locks_dir = self._shared_locks()
        host = socket.gethostname()
        for i in range(self.config.workers):
            thread = threading.Thread(target=self._loop, args=(f"{host}:{os.getpid()}:{i}",),
                                      name=f"offload-worker-{i}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def _shared_locks(self) -> Path:
        """The lock files every job's sandbox gets a hard link to, so that its tune and the
        others (and `offload tune` run on the host) time one measurement at a time per device:
        the host's own (offloader.tune.lock), or the data folder's when a hard link cannot
        reach them (another file system)."""
        from offloader.tune.lock import lock_dir

        for folder in (lock_dir(), self.config.data / "locks"):
            folder.mkdir(parents=True, exist_ok=True)
            for device in LOCKED_DEVICES:
                lock = folder / f"measure-{device}.lock"
                lock.touch()
                lock.chmod(0o666)         # opened for writing by the sandbox's uid
            probe = self.jobs_dir / ".link-probe"
            probe.unlink(missing_ok=True)
            try:
                os.link(folder / f"measure-{LOCKED_DEVICES[0]}.lock", probe)
            except OSError:
                self.log(f"the jobs' measurements cannot share {folder} (another file system); "
                         "they take turns among themselves only")
                continue
            probe.unlink()
            return folder
        raise RuntimeError(f"cannot hard-link {self.config.data / 'locks'} into {self.jobs_dir}")

    def stop(self) -> None:
        self.stopping.set()

    def _loop(self, name: str) -> None:
        while not self.stopping.is_set():
            try:
                job = self.store.claim(name)
            except Exception as exc:     # the database may be restarting: try again
                self.log(f"worker {name}: cannot claim a job: {exc}")
                job = None
            if job is None:
                self.stopping.wait(self.config.poll_seconds)
                continue
            self.log(f"job {job.id} ({job.options.get('app')}) started by {name}, attempt {job.attempts}")
            self.running.add(job.id)
            try:
                JobRun(self, job).run()
            except Exception:             # a bug, or the store unreachable: fail the job, not the worker
                self.log(f"job {job.id}: internal error\n{traceback.format_exc()}")
                try:
                    self.store.finish(job.id, FAILED, {}, note="internal error of the service; please report it")
                except Exception as exc:  # still running in the store: the next start retries it
                    self.log(f"job {job.id}: cannot record its failure: {exc}")
            finally:
                self.running.discard(job.id)


class Cancelled(Exception):
    """The job's user cancelled it: its run stops, and nothing of it is stored."""


class JobRun:
    """One attempt at one job."""

    def __init__(self, workers: Workers, job: Job):
        self.workers, self.job, self.store = workers, job, workers.store
        self.config = workers.config
        options = dict(job.options)
        options.pop("app", None)
        self.options = JobOptions.model_validate(options)
        self.dir = workers.jobs_dir / job.id
        self.python = sys.executable
        self.logs: list[str] = []
        self.cancelled = False
        self.phase = "tune"
        self.step: Optional[subprocess.Popen] = None      # the sandboxed step running now

    def run(self) -> None:
        self._lay_out()
        done = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(done,), daemon=True)
        watcher.start()
        try:
            state, result, note = self._steps()
        except Cancelled:
            self.workers.log(f"job {self.job.id}: cancelled")
        else:
            outputs = self._outputs()
            note = "; ".join(filter(None, [self.job.note, note]))       # keeps "retried after a restart"
            finished = self.store.finish(self.job.id, state, result, note=note, outputs=outputs)
            self.workers.log(f"job {self.job.id}: {state}" + (f" ({note})" if note else "")
                             + ("" if finished else " but it was cancelled meanwhile"))
        finally:
            done.set()
            watcher.join()
            shutil.rmtree(self.dir, ignore_errors=True)

    # the steps

    def _steps(self) -> tuple[str, dict, str]:
        device = self.options.device if self.workers.gpu else "emu"
        tune = self._sandboxed("tune", tune_argv(self.python, self.job.inputs, self.options, device,
                                                 self.config.run_timeout), gpu=device != "emu")
        plan = _json(maybe_read(self.dir, f"{OUT}/plan.json", OUTPUTS["plan.json"]))
        result: dict = {"app": self.job.options.get("app"), "attempt": self.job.attempts}
        if plan is not None:
            result.update(plan_summary(plan))
        if tune.returncode not in (0, 1) or plan is None:
            return FAILED, result, "tune failed: " + _why(tune)
        self.phase = "size"
        size = self._sandboxed("size", size_argv(self.python, self.options, self._catalog()))
        sizing = _json(maybe_read(self.dir, f"{OUT}/sizing.json", OUTPUTS["sizing.json"]))
        result["recommendation"] = recommendation_summary(sizing) if size.returncode in (0, 1) else None
        if result["recommendation"] is None:
            result["sizing_note"] = ("no configuration meets the constraints" if size.returncode == 1
                                     else _why(size))
        self.phase = "pack"
        self._sandboxed("pack", ["tar", "-czf", ARCHIVE, "--ignore-failed-read", "-C", OUT, *PACKED])
        if tune.returncode == 1:
            return FAILED, result, "the offloaded program did not verify: see report.html"
        return DONE, result, ""

    def _sandboxed(self, step: str, argv: list[str], gpu: bool = False) -> SandboxResult:
        """One step in the sandbox; Cancelled when the job was cancelled before or during it."""
        if self.cancelled:
            raise Cancelled
        spec = {"argv": argv, "job_dir": str(self.dir), "gpu": gpu, "limits": asdict(self.workers.limits),
                "readonly": [str(p) for p in self.workers.readonly],
                "env": {"XDG_CACHE_HOME": str(self.dir / "cache"), "PYTHONDONTWRITEBYTECODE": "1",
                        "MPLCONFIGDIR": "/tmp/matplotlib"}}
        self.step = subprocess.Popen([self.python, "-m", "offloader.service.step"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, "OFFLOAD_STEP_PARENT": str(os.getpid())})
        stdout, stderr = self.step.communicate(json.dumps(spec).encode())
        if self.cancelled:
            raise Cancelled
        try:
            outcome = SandboxResult(**json.loads(stdout))
        except (ValueError, TypeError):
            outcome = SandboxResult(None, "", stderr.decode(errors="replace")[-4000:], "service_error", 0.0)
        self.logs.append(f"$ {' '.join(argv[1:] if argv[0] == self.python else argv)}\n"
                         f"[{step}: exit {outcome.returncode}{', ' + outcome.failure if outcome.failure else ''}, "
                         f"{outcome.seconds:.1f} s]\n{outcome.stderr}")
        return outcome

    def _catalog(self) -> Optional[str]:
        if self.options.catalog == "default":
            return None
        return str(self.config.data / "catalogs" / f"{self.options.catalog}.toml")

    # the job folder

    def _lay_out(self) -> None:
        """src/ and cache/ made afresh (a previous attempt may have left anything there);
        out/ kept, for tune to resume its study."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for name in (SRC, "cache", ARCHIVE):
            _remove(self.dir / name)
        for name, data in self.job.inputs.items():
            path = self.dir / SRC / name
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        locks = self.dir / "cache" / "offload" / "locks"
        locks.mkdir(parents=True)
        for device in LOCKED_DEVICES:      # one inode per device, shared by every job's sandbox
            os.link(self.workers.locks_dir / f"measure-{device}.lock", locks / f"measure-{device}.lock")

    def _outputs(self) -> dict[str, bytes]:
        files = {name: maybe_read(self.dir, f"{OUT}/{name}", cap) for name, cap in OUTPUTS.items()}
        files[ARCHIVE] = maybe_read(self.dir, ARCHIVE, ARCHIVE_CAP)
        files["log.txt"] = "\n".join(self.logs).encode()
        return {name: data for name, data in files.items() if data is not None}

    # progress and cancellation, beside the steps

    def _watch(self, done: threading.Event) -> None:
        last = None
        while not done.wait(1.0):
            try:
                if self.store.is_cancelled(self.job.id):
                    self.cancelled = True
                    if self.step is not None and self.step.poll() is None:
                        self.step.send_signal(signal.SIGTERM)
                    continue
                progress = {"phase": self.phase, "budget": self.options.budget,
                            **(tune_progress(self.dir) or {"trials": 0, "measured": 0, "best_seconds": None})}
                if progress != last:
                    self.store.progress(self.job.id, progress)
                    last = progress
            except Exception as exc:      # progress is best effort; the job goes on
                self.workers.log(f"job {self.job.id}: progress: {exc}")


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _json(data: Optional[bytes]) -> Optional[dict]:
    try:
        value = json.loads(data) if data else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _why(outcome: SandboxResult) -> str:
    """The step's own last `offload:` line, else what stopped it."""
    lines = [l for l in outcome.stderr.splitlines() if l.startswith("offload:")]
    if lines:
        return lines[-1].removeprefix("offload:").strip()
    if outcome.failure:
        return f"stopped by the sandbox ({outcome.failure})"
    return f"exit status {outcome.returncode}"


def sweep(store: Store, jobs_dir: Path, older_than: float, busy: set[str]) -> int:
    """Removes the job folders no run needs: of jobs purged or cancelled, or untouched for
    longer than the retention time (a service that died after storing their results)."""
    removed = 0
    cutoff = time.time() - older_than
    for path in jobs_dir.glob("*"):
        if path.name in busy or not path.is_dir():
            continue
        if store.is_cancelled(path.name) or path.stat().st_mtime < cutoff:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed

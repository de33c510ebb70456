"""The laptop side: talk to `offload serve` over HTTP(S), wait for jobs while showing their
progress, and lay their results out on disk. Every failure is a UserError (one line)."""

from __future__ import annotations

import io
import json
import ssl
import sys
import tarfile
import time
from pathlib import Path
from typing import Callable

import httpx

from ..errors import UserError
from .config import ClientSettings

FINISHED = ("done", "failed", "cancelled")
ARCHIVE_CAP = 256 << 20


class Client:
    def __init__(self, settings: ClientSettings, timeout: float = 60.0):
        headers = {"Authorization": f"Bearer {settings.token}"} if settings.token else {}
        self.server = settings.server
        self.http = httpx.Client(base_url=settings.server, headers=headers, timeout=timeout,
                                 verify=_tls(settings.ca))

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise UserError(f"cannot reach {self.server}: {exc or type(exc).__name__}") from None
        if response.status_code >= 400:
            raise UserError(f"{self.server}: {_detail(response)}")
        return response

    def json(self, method: str, path: str, **kwargs):
        return self.call(method, path, **kwargs).json()

    def submit(self, uploads: list[tuple[str, bytes]], options: dict) -> dict:
        files = [("files", (name, data, "text/x-c")) for name, data in uploads]
        return self.json("POST", "/jobs", files=files, data={"options": json.dumps(options)})

    def submit_batch(self, uploads: list[tuple[str, bytes]], manifest: dict) -> dict:
        files = [("files", (name, data, "text/x-c")) for name, data in uploads]
        return self.json("POST", "/batches", files=files, data={"manifest": json.dumps(manifest)})

    def status(self, ident: str) -> dict:
        return self.json("GET", f"/batches/{ident}" if is_batch(ident) else f"/jobs/{ident}")

    def wait(self, ident: str, show: Callable[[dict], None], poll: float = 1.0) -> dict:
        """Polls until the job (or every job of the batch) has finished; `show` gets each state."""
        while True:
            state = self.status(ident)
            show(state)
            if state["state"] in FINISHED:
                return state
            time.sleep(poll)

    def fetch(self, ident: str, out: Path) -> list[Path]:
        """A job's results extracted into `out`; a batch's, one folder per app, with the
        combined report beside them."""
        if not is_batch(ident):
            return [self._extract(f"/jobs/{ident}/archive", out)]
        batch = self.status(ident)
        if batch["state"] != "done":
            raise UserError(f"batch {ident} is still running; wait for it (offload status {ident})")
        written = []
        for job in batch["jobs"]:
            if "results.tar.gz" in job["outputs"]:
                written.append(self._extract(f"/jobs/{job['id']}/archive", out / job["app"]))
        out.mkdir(parents=True, exist_ok=True)
        for name in ("batch-sizing.html", "batch-sizing.csv", "batch-sizing.json"):
            (out / name).write_bytes(self.call("GET", f"/batches/{ident}/files/{name}").content)
            written.append(out / name)
        return written

    def _extract(self, path: str, out: Path) -> Path:
        data = self.call("GET", path).content
        if len(data) > ARCHIVE_CAP:
            raise UserError(f"{path}: the archive is over {ARCHIVE_CAP >> 20} MiB")
        out.mkdir(parents=True, exist_ok=True)
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
                archive.extractall(out, filter="data")      # no absolute paths, .., or links out
        except (tarfile.TarError, OSError) as exc:
            raise UserError(f"cannot unpack the results into {out}: {exc}") from None
        return out


def _tls(ca: str | None) -> ssl.SSLContext | bool:
    """The system's CAs, or only `ca` (a self-signed server's certificate)."""
    if ca is None:
        return True
    try:
        return ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"cannot use it as a CA certificate: {exc}", file=ca) from None


def is_batch(ident: str) -> bool:
    return ident.startswith("batch-")


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if not isinstance(detail, str):
        detail = response.text.strip().splitlines()[0] if response.text.strip() else response.reason_phrase
    return f"{detail} (HTTP {response.status_code})"


# ------------------------------------------------------------------------------- showing

def describe(job: dict) -> str:
    """One line about a job: its state, then its progress or result."""
    head = f"{job['id']} {job.get('app') or ''}: {job['state']}"
    progress, result = job.get("progress") or {}, job.get("result") or {}
    if job["state"] == "running" and progress:
        phase = progress.get("phase", "tune")
        best = progress.get("best_seconds")
        budget = f" of {progress['budget']}" if progress.get("budget") else ""
        head += (f", {phase}: {progress.get('trials', 0)} trial(s), {progress.get('measured', 0)} measured{budget}"
                 + (f", best {best:.4g} s" if isinstance(best, (int, float)) else ""))
    elif job["state"] == "done" and result:
        plan = "verified" if result.get("verified") else "NOT verified"
        speed = result.get("speedup")
        head += f", plan {plan}" + (f", speedup {speed:.3g}x ({result.get('timing')})" if speed else "")
        rec = result.get("recommendation")
        head += (f", size {rec['config']} ({rec['vcpus']} vCPU, {rec['vgpu_type']}, "
                 f"{rec['cost_per_run']:.4g}/run)" if rec else f", no sizing: {result.get('sizing_note', '?')}")
    if job.get("note") and job["state"] != "done":
        head += f" ({job['note']})"
    return head


class Progress:
    """Shows a job's or batch's state on stderr when it changes; on a terminal, one line
    rewritten in place."""

    def __init__(self):
        self.last = ""
        self.tty = sys.stderr.isatty()

    def __call__(self, state: dict) -> None:
        if "jobs" in state:
            done = sum(j["state"] in FINISHED for j in state["jobs"])
            running = [describe(j) for j in state["jobs"] if j["state"] == "running"]
            line = f"{state['id']}: {done} of {len(state['jobs'])} finished" + (f"; {running[0]}" if running else "")
        else:
            line = describe(state)
        if line == self.last:
            return
        self.last = line
        if self.tty:
            sys.stderr.write("\r\033[K" + line[:200])
            sys.stderr.flush()
        else:
            print(line, file=sys.stderr, flush=True)

    def end(self) -> None:
        if self.tty and self.last:
            sys.stderr.write("\n")

"""The real `offload serve` in a subprocess on a free port, for the service's end-to-end, restart
and load tests, and the `offload` client verbs run as subprocesses against it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def offload_argv(*args) -> list[str]:
    return [sys.executable, "-m", "offloader", *map(str, args)]


def offload(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(offload_argv(*args), capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env={**os.environ, **(env or {})})


def needs_sandbox() -> None:
    from offloader.service.sandbox import sandbox_available

    available, why = sandbox_available()
    if not available:
        pytest.skip(f"the sandbox is not available: {why}")


def tiny_program(path: Path, n: int = 50000, inner: int = 40) -> Path:
    """A program whose loops the tuner offloads (modeled T4 times beat one CPU core) and whose
    tune takes a few seconds."""
    path.write_text(f"""#include <stdio.h>
#include <math.h>
#define N {n}
float a[N], b[N];
int main(void) {{
    double s = 0;
    for (int i = 0; i < N; i++) b[i] = i * 0.001f;
    for (int i = 0; i < N; i++) {{
        float x = b[i];
        for (int k = 0; k < {inner}; k++) x = sinf(x) * 1.01f + 0.1f;
        a[i] = x;
    }}
    for (int i = 0; i < N; i++) s += a[i];
    printf("%.3f\\n", s);
    return 0;
}}
""")
    return path


class Server:
    """`offload serve` with its data in `data`; started by start(), ended by stop() or kill()."""

    def __init__(self, data: Path, *options: str, workers: int = 2, ca: Path | None = None):
        self.data, self.options, self.workers, self.ca = data, options, workers, ca
        self.port = _free_port()
        self.url = f"{'https' if ca else 'http'}://127.0.0.1:{self.port}"
        self.log_path = data.parent / f"{data.name}-server.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "Server":
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            offload_argv("serve", "--data", self.data, "--port", self.port, "--workers", self.workers,
                         *self.options), stdout=log, stderr=log, cwd=ROOT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"offload serve exited with {self.process.returncode}:\n{self.log}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2, verify=_verify(self.ca)).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"offload serve did not answer within {timeout} s:\n{self.log}")

    def token(self, name: str) -> str:
        done = offload("serve", "--data", self.data, "--create-token", name, *self.options)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def client_env(self, token: str) -> dict[str, str]:
        return {"OFFLOAD_SERVER": self.url, "OFFLOAD_TOKEN": token}

    @property
    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def _verify(ca: Path | None):
    import ssl

    return ssl.create_default_context(cafile=str(ca)) if ca else True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """A started server factory; every server it made is stopped at the end of the test."""
    made: list[Server] = []

    def start(*options: str, workers: int = 2, data: Path | None = None, ca: Path | None = None) -> Server:
        made.append(Server(data or tmp_path / "data", *options, workers=workers, ca=ca).start())
        return made[-1]

    yield start
    for s in made:
        s.stop()

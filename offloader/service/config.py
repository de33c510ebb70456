"""Settings of the service (`offload serve`) and of the laptop client, with their defaults in
one place, and the rules about where a token may travel."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

from ..errors import UserError

DEFAULT_PORT = 8787


@dataclass(frozen=True)
class UploadLimits:
    """What one request may carry: small enough that a job's sources fit in memory and the
    store, large enough for real multi-file programs."""

    max_files: int = 64                 # files in one job
    max_file_bytes: int = 512 << 10     # one source or header
    max_job_bytes: int = 2 << 20        # all files of one job
    max_batch_jobs: int = 100
    max_request_bytes: int = 16 << 20   # the whole body of any request, batches included


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    db: Optional[str] = None             # SQLAlchemy URL; None: SQLite in the data folder
    workers: int = 2
    data: Path = field(default_factory=lambda: default_data_dir())
    tls_cert: Optional[Path] = None
    tls_key: Optional[Path] = None
    retention_days: float = 7.0
    max_jobs_in_flight: int = 20         # per user: queued + running
    max_disk_mib: int = 2048             # per user: everything its jobs keep
    max_budget: int = 200                # unique measurements one job may ask for
    max_time_limit: float = 3600.0       # seconds of search one job may ask for
    run_timeout: float = 120.0           # seconds one run of the user's program may take
    uploads: UploadLimits = field(default_factory=UploadLimits)
    poll_seconds: float = 0.5            # how often an idle worker looks for a job

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{(self.data / 'jobs.db').resolve()}"

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def check_listen(self) -> None:
        """Tokens cross the network in every request: plain HTTP only on the loopback."""
        if (self.tls_cert is None) != (self.tls_key is None):
            raise UserError("give both --tls-cert and --tls-key, or neither")
        for path in (self.tls_cert, self.tls_key):
            if path is not None and not Path(path).is_file():
                raise UserError("no such file", file=str(path))
        if not self.tls and not is_local(self.host):
            raise UserError(f"refusing to listen on {self.host} without TLS: bearer tokens would cross the "
                            "network in clear text; give --tls-cert and --tls-key, or listen on 127.0.0.1")


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "offload" / "service"


def is_local(host: str) -> bool:
    """True for the loopback only (`localhost`, 127.0.0.0/8, ::1): what no other host can reach."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ------------------------------------------------------------------------------------ client

@dataclass(frozen=True)
class ClientSettings:
    server: str
    token: Optional[str]
    ca: Optional[str] = None            # CA bundle for a server with a self-signed certificate


def client_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "offload" / "client.toml"


def client_settings(server: Optional[str], token: Optional[str], ca: Optional[str] = None) -> ClientSettings:
    """The command line wins, then OFFLOAD_SERVER / OFFLOAD_TOKEN / OFFLOAD_CA, then the config file."""
    path = client_config_path()
    stored: dict = {}
    if path.is_file():
        try:
            stored = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise UserError(f"cannot read the client configuration: {exc}", file=str(path)) from None
    server = server or os.environ.get("OFFLOAD_SERVER") or stored.get("server")
    token = token or os.environ.get("OFFLOAD_TOKEN") or stored.get("token")
    ca = ca or os.environ.get("OFFLOAD_CA") or stored.get("ca")
    if not server:
        raise UserError(f"no server: give --server URL, set OFFLOAD_SERVER, or write server = \"URL\" in {path}")
    check_server_url(server, token)
    return ClientSettings(server.rstrip("/"), token, ca)


def check_server_url(server: str, token: Optional[str]) -> None:
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"--server {server}: expected a URL like https://host:{DEFAULT_PORT}")
    if parts.scheme == "http" and token and not is_local(parts.hostname):
        raise UserError(f"refusing to send the token over plain http to {parts.hostname}: use https:// "
                        "(or an SSH tunnel to localhost)")

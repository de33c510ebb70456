"""`offload serve`: the store, recovery after a restart, the workers, retention, and uvicorn."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from ..errors import UserError
from .config import ServiceConfig
from .store import Store

RETENTION_CHECK_SECONDS = 600.0


def open_store(config: ServiceConfig) -> Store:
    config.data.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        return Store(config.db_url)
    except Exception as exc:   # a bad URL, an unreachable server, a missing driver
        raise UserError(f"cannot open the job store {config.db_url}: {type(exc).__name__}: {exc}") from None


def catalogs(config: ServiceConfig) -> dict[str, Path | None]:
    """The catalogs users may name: the shipped one, and DATA/catalogs/NAME.toml."""
    found: dict[str, Path | None] = {"default": None}
    found.update({p.stem: p for p in sorted((config.data / "catalogs").glob("*.toml"))})
    return found


def serve(config: ServiceConfig, say: Callable[[str], None]) -> None:
    import uvicorn

    from .app import Service, create_app
    from .sandbox import sandbox_available
    from .worker import Workers, readonly_paths

    available, why = sandbox_available()
    if not available:
        raise UserError(f"cannot run jobs here: the sandbox is not available ({why})")
    data = config.data.resolve()
    for path in readonly_paths():
        if data.is_relative_to(path.resolve()) or path.resolve().is_relative_to(data):
            raise UserError(f"--data {config.data}: must lie outside {path}, which jobs see read-only")
    store = open_store(config)
    recovered = store.recover()
    if recovered:
        say(f"{len(recovered)} job(s) interrupted by the last stop: queued again (or failed after too many tries)")
    workers = Workers(config, store, say)
    workers.start()
    retention = threading.Thread(target=_retention, args=(config, store, workers, say), daemon=True)
    retention.start()
    service = Service(config, store, catalogs(config), workers.gpu)
    scheme = "https" if config.tls else "http"
    say(f"serving on {scheme}://{config.host}:{config.port} with {config.workers} worker(s); sandbox: {why}; "
        f"data in {config.data}")
    try:
        uvicorn.run(create_app(service), host=config.host, port=config.port, log_level="warning",
                    ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
                    ssl_keyfile=str(config.tls_key) if config.tls_key else None)
    finally:
        workers.stop()


def _retention(config: ServiceConfig, store: Store, workers, say: Callable[[str], None]) -> None:
    """Every few minutes (and at start), one retention pass, until the workers stop."""
    seconds = config.retention_days * 86400
    while True:
        try:
            purged, swept = retention_pass(store, workers.jobs_dir, seconds, set(workers.running))
            if purged or swept:
                say(f"retention: {purged} job(s) older than {config.retention_days:g} days deleted, "
                    f"{swept} job folder(s) removed")
        except Exception as exc:   # the database may be restarting: next time
            say(f"retention: {exc}")
        if workers.stopping.wait(min(RETENTION_CHECK_SECONDS, seconds / 4)):
            return


def retention_pass(store: Store, jobs_dir: Path, seconds: float, busy: set[str]) -> tuple[int, int]:
    """(jobs deleted, job folders removed): jobs finished over `seconds` ago go, with their files;
    so do the folders no run needs any more."""
    from .worker import sweep

    return store.purge(seconds), sweep(store, jobs_dir, seconds, busy)

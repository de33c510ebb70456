"""Shared parts of the service tests.

- `postgres_url`: a fresh, empty PostgreSQL database for this test session, on the local server
  that scripts/setup-postgres.sh installs and starts (the fixture runs it: under a second when
  the server is up). Skipped, with the script's reason, only where it could not provide one
  (not root and no PostgreSQL installed); a failing script as root is an error.
"""

from __future__ import annotations

import shlex
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
SETUP_STATUS = ROOT / ".cache" / "postgres-setup.env"


def _setup_status() -> dict[str, str]:
    done = subprocess.run(["bash", "scripts/setup-postgres.sh"], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0:
        pytest.fail(f"scripts/setup-postgres.sh failed:\n{done.stderr}", pytrace=False)
    status = {}
    for line in SETUP_STATUS.read_text().splitlines():
        key, _, value = line.partition("=")
        status[key] = shlex.split(value)[0] if value else ""
    return status


@pytest.fixture(scope="session")
def postgres_url():
    status = _setup_status()
    if "OFFLOAD_PG_URL" not in status:
        pytest.skip("no local PostgreSQL: "
                    + status.get("OFFLOAD_PG_UNAVAILABLE", "the setup script gave no reason"))
    server = make_url(status["OFFLOAD_PG_URL"])
    name = f"offload_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:   # FORCE: a test's leftover connections must not block it
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()

"""The deployment journal: what one `offload deploy` made, written before it is made.

Each deployment has a directory under the state directory (`deployments/<name>/`) holding
journal.json, the domain XML and the console log. An entry is appended and flushed to disk
*before* its action runs (the mdev UUID before the mdev is created, the domain name before
it is defined), so a command killed at any instant leaves a journal that names everything
that might exist. Undoing an entry whose thing never came to be is a no-op, which is what
makes rollback, `destroy` and `gc` safe to run on any journal, any number of times.

The journal also names its process (pid and start time): `gc` only collects journals of
processes that are gone and never finished.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

from offloader.errors import UserError

STATE_ENV = "OFFLOAD_STATE_DIR"
SCHEMA = 1


def default_state_dir() -> Path:
    """$OFFLOAD_STATE_DIR, else /var/lib/offload for root, else ~/.local/state/offload."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV])
    if os.geteuid() == 0:
        return Path("/var/lib/offload")
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "offload"


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


class Journal:
    def __init__(self, directory: Path, data: dict) -> None:
        self.directory = directory
        self.data = data

    @classmethod
    def begin(cls, state_dir: Path, name: str, uri: str, deployment_id: str) -> "Journal":
        """A new journal, made whole in a hidden directory and then renamed into place, so a
        deployment directory always holds a journal."""
        parent = Path(state_dir) / "deployments"
        parent.mkdir(parents=True, exist_ok=True)
        final = parent / name
        if final.exists():
            raise UserError(f"a deployment named {name!r} is already recorded in {parent}; "
                            f"`offload deploy destroy {name}` removes it, or choose --name")
        staging = parent / f".{name}.{os.getpid()}"
        staging.mkdir(mode=0o755)
        staging.chmod(0o755)    # QEMU, running as another user, opens the files named in it
        journal = cls(staging, {"schema": SCHEMA, "id": deployment_id, "name": name, "uri": uri, "status": "deploying",
                                "pid": os.getpid(), "pid_start": process_start(os.getpid()),
                                "host": socket.gethostname(), "started": time.time(), "entries": []})
        journal._save()
        try:
            os.rename(staging, final)       # fails if another command took the name meanwhile
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            raise UserError(f"a deployment named {name!r} was just recorded by another command") from None
        journal.directory = final
        return journal

    @classmethod
    def load(cls, directory: Path) -> "Journal":
        return cls(Path(directory), json.loads((Path(directory) / "journal.json").read_text()))

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def entries(self) -> list[dict]:
        return self.data["entries"]

    def record(self, kind: str, **fields) -> dict:
        entry = {"kind": kind, **fields}
        self.entries.append(entry)
        self._save()
        return entry

    def update(self, entry: dict, **fields) -> None:
        entry.update(fields)
        self._save()

    def set(self, **fields) -> None:
        self.data.update(fields)
        self._save()

    def owner_alive(self) -> bool:
        start = process_start(self.data["pid"])
        return start is not None and start == self.data.get("pid_start")

    def discard(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def _save(self) -> None:
        tmp = self.directory / "journal.json.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.data, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.directory / "journal.json")


def journals(state_dir: Path) -> list[Journal]:
    """Every journal under the state directory (unreadable ones skipped)."""
    found = []
    for directory in sorted((Path(state_dir) / "deployments").glob("[!.]*")):
        try:
            found.append(Journal.load(directory))
        except (OSError, ValueError):
            continue
    return found


def remove_stale_staging(state_dir: Path) -> list[Path]:
    """Hidden directories of `begin` whose process died before renaming them."""
    removed = []
    for staging in (Path(state_dir) / "deployments").glob(".*.*"):
        pid = staging.name.rsplit(".", 1)[1]
        if pid.isdigit() and process_start(int(pid)) is None:
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(staging)
    return removed

"""One cgroup per sandboxed run: the CPU time, memory and process count of a whole process tree.

Hosts differ, so there is one small class per cgroup version behind one interface: v1 (one
hierarchy per controller, as on this kind of machine) and v2 (one unified hierarchy, Debian 12's
default). The launcher writes its own pid into `procs_files` before it executes anything of the
job, so every process the job forks is counted, limited and can be killed. Creating cgroups needs
root.
"""

from __future__ import annotations

import errno
import os
import signal
import time
import uuid
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

PREFIX = "offload-sandbox-"      # runs' cgroups: PREFIX + service pid + random part
V1_CONTROLLERS = ("memory", "pids", "cpuacct")


class CgroupError(RuntimeError):
    """cgroups cannot be used for a run; the message says why."""


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float        # CPU time of the whole tree so far
    oom_kills: int            # processes the kernel killed at the memory limit
    pids_max_hits: int        # forks refused at the process-count limit


class RunCgroup(ABC):
    """A run's cgroup, made with its limits; `remove` kills what is left in it and deletes it."""

    def __init__(self, dirs: list[Path]):
        self.dirs = dirs
        self.procs_files = tuple(d / "cgroup.procs" for d in dirs)

    @abstractmethod
    def usage(self) -> Usage: ...

    def pids(self) -> set[int]:
        return {int(pid) for f in self.procs_files for pid in _read(f).split()}

    def kill(self, timeout: float = 5.0) -> None:
        """SIGKILL every process in the group until it is empty."""
        deadline = time.monotonic() + timeout
        while pids := self.pids():
            if time.monotonic() > deadline:
                raise CgroupError(f"processes {sorted(pids)} survive SIGKILL in {self.dirs[0]}")
            for pid in pids:
                _kill_member(pid, self.dirs[0].name)
            time.sleep(0.01)

    def remove(self) -> None:
        self.kill()
        for d in self.dirs:
            _rmdir(d)


class V1(RunCgroup):
    """cgroup v1: a folder in each of the memory, pids and cpuacct hierarchies."""

    def __init__(self, parents: dict[str, Path], name: str, memory_bytes: int, pids: int):
        super().__init__([_mkdir(parents[c] / name) for c in V1_CONTROLLERS])
        self.memory, self.pids_dir, self.cpuacct = self.dirs
        _write(self.memory / "memory.limit_in_bytes", memory_bytes)
        if (self.memory / "memory.memsw.limit_in_bytes").exists():       # no swapping either
            _write(self.memory / "memory.memsw.limit_in_bytes", memory_bytes)
        _write(self.pids_dir / "pids.max", pids)

    def usage(self) -> Usage:
        return Usage(int(_read(self.cpuacct / "cpuacct.usage")) / 1e9,
                     _field(self.memory / "memory.oom_control", "oom_kill"),
                     _field(self.pids_dir / "pids.events", "max"))


class V2(RunCgroup):
    """cgroup v2: one folder; the whole group is OOM-killed together."""

    def __init__(self, parent: Path, name: str, memory_bytes: int, pids: int):
        super().__init__([_mkdir(parent / name)])
        d = self.dirs[0]
        _write(d / "memory.max", memory_bytes)
        if (d / "memory.swap.max").exists():
            _write(d / "memory.swap.max", 0)
        _write(d / "memory.oom.group", 1)
        _write(d / "pids.max", pids)

    def usage(self) -> Usage:
        d = self.dirs[0]
        return Usage(_field(d / "cpu.stat", "usage_usec") / 1e6,
                     _field(d / "memory.events", "oom_kill"), _field(d / "pids.events", "max"))

    def kill(self, timeout: float = 5.0) -> None:
        if (self.dirs[0] / "cgroup.kill").exists():     # Linux 5.14: atomic, no pid races
            _write(self.dirs[0] / "cgroup.kill", 1)
        super().kill(timeout)


@contextmanager
def run_cgroup(memory_bytes: int, pids: int) -> Iterator[RunCgroup]:
    """A fresh cgroup with these limits, removed afterwards even when the run failed."""
    version, parents = _detect()
    for parent in parents.values():
        _prepare(parent)
    name = f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
    try:
        group = (V1(parents, name, memory_bytes, pids) if version == 1 else
                 V2(parents["unified"], name, memory_bytes, pids))
    except CgroupError:
        for parent in parents.values():
            _rmdir(parent / name, missing_ok=True)
        raise
    try:
        yield group
    finally:
        group.remove()


def describe() -> str:
    """Which cgroup version runs would use, and where; raises CgroupError when none is usable."""
    version, parents = _detect()
    return f"cgroup v{version} (runs under {', '.join(map(str, parents.values()))})"


def _detect() -> tuple[int, dict[str, Path]]:
    """v2 when the unified hierarchy holds the memory and pids controllers, else v1's hierarchies.

    v1 groups nest under the service's own cgroups, so they stay inside any limit set on the
    service. v2 forbids controllers in a group that holds processes, such as the service's own,
    so v2 groups go under the hierarchy's root.
    """
    if os.geteuid() != 0:
        raise CgroupError("creating cgroups needs root")
    v1: dict[str, Path] = {}
    unified: Path | None = None
    own = _own_cgroups()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        root, mountpoint, fstype, options = fields[3], Path(fields[4]), fields[sep + 1], fields[-1]
        if fstype == "cgroup2":
            unified = mountpoint
        elif fstype == "cgroup":
            for controller in set(options.split(",")) & set(V1_CONTROLLERS):
                v1[controller] = mountpoint / os.path.relpath(own.get(controller, "/"), root)
    if unified is not None:
        controllers = _read(unified / "cgroup.controllers").split()
        if {"memory", "pids"} <= set(controllers):
            return 2, {"unified": unified}
    missing = [c for c in V1_CONTROLLERS if c not in v1]
    if not missing:
        return 1, v1
    raise CgroupError(f"no usable cgroups: the v2 hierarchy lacks the memory or pids controller "
                      f"and v1 lacks {', '.join(missing)}")


def _own_cgroups() -> dict[str, str]:
    """controller -> this process's v1 cgroup path, from /proc/self/cgroup."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            own[controller] = path
    return own


def _prepare(parent: Path) -> None:
    """On v2, switch the controllers on for the children; remove the empty cgroups of runs whose
    service died (their names carry its pid)."""
    if (parent / "cgroup.subtree_control").exists():
        _write(parent / "cgroup.subtree_control", "+memory +pids")
    for stale in parent.glob(PREFIX + "*"):
        owner = stale.name[len(PREFIX):].split("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            try:
                stale.rmdir()
            except OSError:
                pass                    # still busy or already gone: left for a later run


def _kill_member(pid: int, name: str) -> None:
    """SIGKILL pid if it is still in cgroup `name`, through a pidfd so a reused pid is never hit."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if name in _read(Path(f"/proc/{pid}/cgroup")):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
    except (FileNotFoundError, ProcessLookupError):
        pass
    finally:
        os.close(fd)


def _field(path: Path, key: str) -> int:
    for line in _read(path).splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _write(path: Path, value: object) -> None:
    try:
        path.write_text(str(value))
    except OSError as exc:
        raise CgroupError(f"cannot write {value} to {path}: {exc.strerror}") from exc


def _mkdir(path: Path) -> Path:
    try:
        path.mkdir()
    except OSError as exc:
        raise CgroupError(f"cannot create cgroup {path}: {exc.strerror}") from exc
    return path


def _rmdir(path: Path, missing_ok: bool = False) -> None:
    """rmdir, retried for a moment: a killed process leaves its cgroup only once it is reaped."""
    for _ in range(100):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            if missing_ok:
                return
            raise
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise CgroupError(f"cannot remove cgroup {path}: {exc.strerror}") from exc
            time.sleep(0.01)
    raise CgroupError(f"cannot remove cgroup {path}: still busy")

"""A memory limit for the program's child process, through cgroups (v2 or v1).

RLIMIT_AS would also limit the address space a GPU driver reserves at initialisation and
break it, so the limit is on memory actually used, as a cgroup. Creating one needs root;
elsewhere the run goes on without a limit and the report says why.
"""

from __future__ import annotations

import os
import uuid

ROOT = "/sys/fs/cgroup"


class MemoryLimit:
    """`with MemoryLimit(bytes) as limit:` then pass `limit.enter` as the child's preexec_fn."""

    def __init__(self, limit_bytes: int):
        self.limit_bytes = limit_bytes
        self.directory: str | None = None
        self.applied = "not applied"
        self._procs = ""

    def __enter__(self) -> "MemoryLimit":
        name = f"offload-{uuid.uuid4().hex[:12]}"
        try:
            if os.path.exists(os.path.join(ROOT, "cgroup.controllers")):          # v2
                self.directory = os.path.join(ROOT, name)
                os.mkdir(self.directory)
                _write(os.path.join(self.directory, "memory.max"), self.limit_bytes)
                _write(os.path.join(self.directory, "memory.swap.max"), 0, optional=True)
                self._procs, self.applied = os.path.join(self.directory, "cgroup.procs"), "cgroup v2"
            elif os.path.isdir(os.path.join(ROOT, "memory")):                      # v1
                self.directory = os.path.join(ROOT, "memory", name)
                os.mkdir(self.directory)
                _write(os.path.join(self.directory, "memory.limit_in_bytes"), self.limit_bytes)
                self._procs, self.applied = os.path.join(self.directory, "tasks"), "cgroup v1"
            else:
                self.applied = "not applied: no cgroup memory controller is mounted"
        except OSError as exc:
            self.applied = f"not applied: cannot create a cgroup ({exc.strerror})"
            self._remove()
        return self

    def enter(self) -> None:
        """In the child, before exec: join the cgroup (a no-op when none was made)."""
        if self._procs:
            with open(self._procs, "w") as handle:
                handle.write(str(os.getpid()))

    def hit(self) -> bool:
        """Whether the limit stopped the program: the kernel's OOM killer acted in the group, as
        its own counter says (v2 memory.events, v1 memory.oom_control: `oom_kill N`). Said out of
        band, so it holds whatever status the program ended with."""
        if not self.directory:
            return False
        for name in ("memory.events", "memory.oom_control"):
            try:
                with open(os.path.join(self.directory, name)) as handle:
                    lines = handle.read().splitlines()
            except OSError:
                continue
            return any(line.split()[1] != "0" for line in lines if line.split()[:1] == ["oom_kill"])
        return False

    def __exit__(self, *exc) -> None:
        self._remove()

    def _remove(self) -> None:
        if self.directory and os.path.isdir(self.directory):
            try:
                os.rmdir(self.directory)
            except OSError:
                pass                    # a process is still in it; the kernel removes nothing


def _write(path: str, value: int, optional: bool = False) -> None:
    try:
        with open(path, "w") as handle:
            handle.write(str(value))
    except OSError:
        if not optional:
            raise

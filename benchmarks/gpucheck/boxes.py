"""Time boxes for the GPU check's steps.

Each step runs as a child process that leads a process group of its own (setpgid), so that an
overrun kills the step with everything it started (the runner, nvcc, the user's program) and
none of it goes on timing itself against the next step. It is not a new session (no setsid):
every process stays in the session of the command that started the check, so nothing can
outlive that command. A step's leftovers are killed when it exits normally, too. The check
makes itself their subreaper, so that killed orphans are reaped here and not left as zombies
that still count as members of the group."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from dataclasses import dataclass


PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass                                        # not Linux: nothing to do


def become_subreaper() -> None:
    """Orphans of the steps become this process's children."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent() -> None:
    """In a step: should the check itself be killed (the device tool's limit), take the whole
    group along, so that nothing of the step goes on running after the command."""
    def kill_group(signum, frame):
        os.killpg(os.getpgrp(), signal.SIGKILL)

    signal.signal(signal.SIGTERM, kill_group)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:                           # the parent died before the line above
        kill_group(None, None)


class Interrupted(Exception):
    """The check was asked to stop (SIGTERM, SIGHUP, SIGINT): the step in flight is killed
    with its group, and what was measured is written."""


def stop_on_signals() -> None:
    def stop(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, stop)


@dataclass(frozen=True)
class Boxed:
    status: str                 # "exited" | "overran"
    returncode: int | None      # None when it overran
    seconds: float


def run_boxed(command: list[str], seconds: float, log_path: str, env: dict | None = None,
              cwd: str | None = None) -> Boxed:
    """Run `command` with stdout and stderr appended to `log_path`, for at most `seconds`."""
    started = time.monotonic()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, cwd=cwd, process_group=0)
        try:
            returncode = process.wait(timeout=max(seconds, 0.1))
            status = "exited"
        except subprocess.TimeoutExpired:
            returncode, status = None, "overran"
        finally:
            _signal_group(process.pid)
            process.wait()                    # the leader, reaped, so only others can keep the group
            _wait_group_gone(process.pid)
    return Boxed(status, returncode, time.monotonic() - started)


def _signal_group(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_group_gone(group: int, seconds: float = 5.0) -> None:
    """Until no process of the group is left (a GPU context is released only when its process
    is gone), signalling again any that appeared meanwhile."""
    give_up = time.monotonic() + seconds
    while time.monotonic() < give_up:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        try:
            while os.waitpid(-group, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
        time.sleep(0.01)

"""Running gcc (and binutils) for host builds: many jobs at once, failures as typed errors
that speak of the user's files rather than of the instrumented copies the compiler saw."""

from __future__ import annotations

import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..errors import SourceLocation, UserError
from ..frontend.preprocess import compiler

TIMEOUT_S = 300
_ERROR = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:(?P<col>\d+):)?\s*(?:fatal )?error:\s*(?P<what>.*)$", re.M)
_MAX_OUTPUT_LINES = 30


@dataclass(frozen=True)
class Job:
    """Commands run in order until one fails; `renames` maps paths in their messages back to
    the user's own."""

    what: str                             # for messages, e.g. "compiling saxpy.c"
    commands: tuple[tuple[str, ...], ...]
    product: str                          # the file the job makes
    renames: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    job: Job
    ok: bool
    output: str                           # the tools' messages, renamed
    command: tuple[str, ...]              # the last command run


class BuildError(UserError):
    """gcc rejected a host or reference build. `output` holds all it said, `command` the
    command line; the message names the first error at its place in the user's source."""

    def __init__(self, outcome: Outcome):
        match = _ERROR.search(outcome.output)
        location = (SourceLocation(match["file"], int(match["line"]), int(match["col"] or 1))
                    if match else None)
        lines = outcome.output.strip().splitlines()
        shown = "\n".join(lines[:_MAX_OUTPUT_LINES] + (["..."] if len(lines) > _MAX_OUTPUT_LINES else []))
        what = match["what"].strip() if match else (shown or "the compiler failed without a message")
        super().__init__(f"{outcome.job.what}: {what}" + (f"\n{shown}" if match else ""), location)
        self.output = outcome.output
        self.command = list(outcome.command)


def cc(*args: str) -> tuple[str, ...]:
    """A command line of the C compiler ($CC, cc or gcc)."""
    return (compiler(), *args)


def run(jobs: list[Job]) -> list[Outcome]:
    """Run the jobs concurrently; outcomes in the jobs' order."""
    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        return list(pool.map(_run_one, jobs))


def _run_one(job: Job) -> Outcome:
    output, ok = "", True
    for command in job.commands:
        try:
            done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=TIMEOUT_S)
            output, ok = output + done.stderr + done.stdout, done.returncode == 0
        except subprocess.TimeoutExpired:
            output, ok = output + f"{command[0]} ran for over {TIMEOUT_S} s", False
        except OSError as exc:
            output, ok = output + f"cannot run {command[0]}: {exc.strerror}", False
        if not ok:
            break
    for built, original in job.renames.items():
        output = output.replace(built, original)
    return Outcome(job, ok, output, command)


def check(outcome: Outcome) -> None:
    if not outcome.ok:
        raise BuildError(outcome)

"""The CPU baseline: the user's program built as a plain executable, unmodified.

It is what `offload run` and `offload tune` verify against and time as "the CPU original",
what `offload profile` pins to 1, 2, 4 cores, and part of what makes two tunings the same
study. All of them take it from `cpu_baseline` (one compiler, one set of flags, the user's
sources and defines); the host library (build.py) is compiled with the same flags, so the
offloaded program's CPU parts are compiled exactly as the baseline is.

peak_rss.c is linked in: at exit it writes the program's peak resident set to the file
$OFFLOAD_PEAK_RSS_FILE names, and does nothing when that is unset.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from ..buildopts import BuildOptions
from . import compiler as tools

BASE_FLAGS = ("-O2", "-std=gnu11")


@dataclass(frozen=True)
class CpuBaseline:
    compiler: str
    flags: tuple[str, ...]
    options: BuildOptions

    def command(self, executable: str) -> list[str]:
        return [self.compiler, *self.flags, *self.options.preprocessor_flags(), *self.options.sources,
                str(resources.files("offloader.hostprog").joinpath("peak_rss.c")), "-o", executable, "-lm"]

    def describe(self) -> str:
        """The build as a person would type it (offload's peak_rss.c left out)."""
        return shlex.join([self.compiler, *self.flags, *self.options.preprocessor_flags(), *self.options.sources,
                           "-o", "cpu_baseline", "-lm"])

    def identity(self) -> dict:
        """What of the build, beyond the user's options, makes its times what they are."""
        return {"compiler": self.compiler, "compiler_version": compiler_version(self.compiler),
                "flags": list(self.flags)}

    def fingerprint(self) -> str:
        """The same program built the same way: the sources' text (not their paths), the flags,
        the user's options and the compiler's version."""
        digest = hashlib.sha256()
        for source in self.options.sources:
            digest.update(hashlib.sha256(Path(source).read_bytes()).digest())
        words = [compiler_version(self.compiler), *self.flags, *self.options.preprocessor_flags()]
        digest.update("\0".join(words).encode())
        return digest.hexdigest()[:24]


def cpu_baseline(options: BuildOptions) -> CpuBaseline:
    return CpuBaseline(tools.cc()[0], BASE_FLAGS, options)


def build_cpu_baseline(options: BuildOptions, workdir: str) -> str:
    """Compile the baseline into workdir; its path. BuildError (at the user's line) if gcc refuses."""
    os.makedirs(workdir, exist_ok=True)
    executable = os.path.join(os.path.abspath(workdir), "cpu_baseline")
    outcome, = tools.run([tools.Job("building the CPU baseline",
                                    (tuple(cpu_baseline(options).command(executable)),), executable)])
    tools.check(outcome)
    return executable


@cache
def compiler_version(compiler: str) -> str:
    try:
        done = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30)
        return done.stdout.splitlines()[0] if done.stdout else done.stderr.strip()
    except (OSError, subprocess.SubprocessError, IndexError) as exc:
        return f"unknown ({exc})"

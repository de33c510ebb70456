"""One sandboxed step of a job, in a process of its own:

    python -m offloader.service.step  < {"argv", "job_dir", "gpu", "env", "readonly", "limits"}
                                      > the SandboxResult, as JSON

Why a process per step rather than run_sandboxed in the worker thread:
- run_sandboxed blocks, polling the run's limits every 50 ms; out here that work stays off the
  interpreter that answers the API;
- cancelling is a SIGTERM to this process, which kills its one child (the sandbox's launcher)
  and lets run_sandboxed clean up (cgroup, mounts, ownership) and return;
- it dies with the worker (PR_SET_PDEATHSIG), so a killed service leaves no job running.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path

PR_SET_PDEATHSIG = 1


def main() -> None:
    parent = int(os.environ.get("OFFLOAD_STEP_PARENT", "0"))
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if parent and os.getppid() != parent:          # the worker died before the prctl
        sys.exit(1)
    signal.signal(signal.SIGTERM, _stop)
    spec = json.load(sys.stdin)

    from .sandbox import Limits, SandboxResult, run_sandboxed

    if _stopping:
        result = SandboxResult(None, "", "cancelled before it started", "cancelled", 0.0)
    else:
        result = run_sandboxed(spec["argv"], Path(spec["job_dir"]), Limits(**spec["limits"]), gpu=spec["gpu"],
                               env=spec["env"], readonly=[Path(p) for p in spec["readonly"]])
    json.dump(asdict(result), sys.stdout)


_stopping = False


def _stop(_signum, _frame) -> None:
    """Kill the sandbox's launcher, this process's only child; run_sandboxed then returns."""
    global _stopping
    _stopping = True
    try:
        children = Path(f"/proc/self/task/{os.getpid()}/children").read_text().split()
    except OSError:
        return
    for pid in map(int, children):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


if __name__ == "__main__":
    main()

"""Step `launch`: the host-side cost of one region call on the device
(benchmarks/bench_launch.py, run as it is for results/bench/launch.json, on the GPU here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .stepio import Context, StepOutput


def run(context: Context, out: StepOutput) -> int:
    target = Path(context.work) / "launch.json"
    calls, repeats = (200, 1) if context.dry and context.smoke else (500, 2) if context.smoke else (2000, 3)
    command = [sys.executable, str(Path(context.root) / "benchmarks" / "bench_launch.py"), "--device",
               context.device, "--calls", str(calls), "--repeats", str(repeats), "--out", str(target)]
    done = subprocess.run(command, cwd=context.root)
    if done.returncode or not target.exists():
        return out.finish("failed", f"bench_launch.py exited with {done.returncode}")
    out.set(**json.loads(target.read_text()), timing=context.timing)
    return out.finish("ok")

"""Shared helpers: run the real `offload` command line in a subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_offload(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "offloader", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or ROOT, timeout=120)


@pytest.fixture
def offload():
    return run_offload


@pytest.fixture
def analyze_json():
    def run(*args):
        done = run_offload("analyze", "--json", *args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
    return run

"""`import offloader` (and running the analyzer) must not load optional GPU or libvirt modules."""

import subprocess
import sys

HEAVY = ("pycuda", "pynvml", "libvirt", "optuna", "pandas")


def test_importing_offloader_loads_no_optional_dependency():
    code = ("import sys, offloader, offloader.cli, offloader.analysis, sizing, vgpu, deployer\n"
            f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\n"
            "print(','.join(loaded))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""

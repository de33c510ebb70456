"""The device package and the emulator load no optional GPU module (pycuda); choosing
a device says which and why."""

import subprocess
import sys

import pytest


def test_device_modules_and_auto_choice_without_a_gpu_load_no_pycuda():
    code = ("import sys\n"
            "import offloader.device, offloader.device.base, offloader.device.emulated\n"
            "import offloader.device.emu_compiler, offloader.device.nvcc, offloader.device.checks\n"
            "offloader.device.open_device('emu')\n"
            "print(','.join(m for m in sys.modules if m.split('.')[0] == 'pycuda'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_auto_says_which_device_it_chose_and_why():
    from offloader.device import choose_kind, gpu_library, open_device

    kind, why = choose_kind("auto")
    assert kind == ("cuda" if gpu_library()[0] else "emu") and why
    assert open_device("emu").kind == "emulated"
    with pytest.raises(ValueError):
        choose_kind("opencl")

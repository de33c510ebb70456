"""The NVML reader: names, memory, MIG mode (read only) and vGPU types, or why there are none.

No GPU here: NVML itself is replaced by tests/fixtures/nvml/fake_pynvml.py, which answers as
NVML does on a T4 vGPU host and on an H200 without the vGPU Manager.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

from vgpu.nvml import read_nvml

FAKE = Path(__file__).resolve().parent / "fixtures" / "nvml" / "fake_pynvml.py"


@pytest.fixture
def nvml(monkeypatch):
    def install(host):
        spec = importlib.util.spec_from_file_location("pynvml", FAKE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.HOST = host
        monkeypatch.setitem(sys.modules, "pynvml", module)
        return module
    return install


def test_a_t4_vgpu_host(nvml):
    nvml("t4-vgpu")
    report = read_nvml()
    assert report.unavailable is None and report.driver_version == "535.161.05"
    free, busy = report.gpus
    assert (free.name, free.pci_bus_id, free.memory_mib, free.mig) == ("Tesla T4", "00000000:3B:00.0", 15360, "not supported")
    t4_4c = next(t for t in free.vgpu_types if t.id == 319)
    assert (t4_4c.name, t4_4c.framebuffer_mib, t4_4c.max_instances, t4_4c.creatable) == ("GRID T4-4C", 4096, 4, True)
    assert t4_4c.profile.short == "T4-4C"
    assert [t.name for t in busy.vgpu_types if t.creatable] == ["GRID T4-8Q"]


def test_mig_mode_is_read_and_a_missing_vgpu_manager_explained(nvml):
    nvml("h200-no-vgpu")
    (gpu,) = read_nvml().gpus
    assert (gpu.name, gpu.mig, gpu.mig_pending, gpu.vgpu_types) == ("NVIDIA H200", "enabled", "disabled", ())
    assert gpu.vgpu_note.startswith("no vGPU types: Not Supported (not a vGPU host driver")


def test_without_a_driver_the_report_says_so(nvml):
    nvml("no-driver")
    report = read_nvml()
    assert (report.gpus, report.unavailable) == ((), "no NVIDIA driver: Driver Not Loaded")


def test_without_nvidia_ml_py_the_report_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert read_nvml().unavailable == "nvidia-ml-py is not installed (pip install nvidia-ml-py)"


def test_json_shape(nvml):
    nvml("t4-vgpu")
    data = read_nvml().to_json()
    assert set(data) == {"driver_version", "gpus", "unavailable"}
    assert set(data["gpus"][0]) == {"index", "name", "pci_bus_id", "memory_mib", "mig", "mig_pending",
                                    "vgpu_types", "vgpu_note"}

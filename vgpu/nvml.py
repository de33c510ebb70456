"""What the NVIDIA driver reports through NVML (nvidia-ml-py), where a driver is present.

Read only: GPU names, memory, MIG mode (never changed here: switching it needs an idle
GPU and is an administrator's decision), and the vGPU types the vGPU Manager offers with
their framebuffer and per-GPU limit. On a host without the driver or without nvidia-ml-py
the report says why instead of failing, so `offload vgpu list` works everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from .profiles import Profile, parse_profile


@dataclass(frozen=True)
class NvmlVgpuType:
    id: int
    name: str
    framebuffer_mib: int
    max_instances: int
    creatable: bool             # the GPU could make one now
    profile: Profile | None

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "framebuffer_mib": self.framebuffer_mib,
                "max_instances": self.max_instances, "creatable": self.creatable,
                "profile": self.profile.to_json() if self.profile else None}


@dataclass(frozen=True)
class NvmlGpu:
    index: int
    name: str
    pci_bus_id: str
    memory_mib: int
    mig: str                    # "enabled", "disabled" or "not supported"
    mig_pending: str | None     # the mode after the next GPU reset, when it differs
    vgpu_types: tuple[NvmlVgpuType, ...]
    vgpu_note: str | None       # why no vGPU types are listed, when none are

    def to_json(self) -> dict:
        return {"index": self.index, "name": self.name, "pci_bus_id": self.pci_bus_id,
                "memory_mib": self.memory_mib, "mig": self.mig, "mig_pending": self.mig_pending,
                "vgpu_types": [t.to_json() for t in self.vgpu_types], "vgpu_note": self.vgpu_note}


@dataclass(frozen=True)
class NvmlReport:
    driver_version: str | None
    gpus: tuple[NvmlGpu, ...]
    unavailable: str | None     # why NVML could not be read; None when it was

    def to_json(self) -> dict:
        return {"driver_version": self.driver_version, "gpus": [g.to_json() for g in self.gpus],
                "unavailable": self.unavailable}


def read_nvml() -> NvmlReport:
    try:
        import pynvml
    except ImportError:
        return NvmlReport(None, (), "nvidia-ml-py is not installed (pip install nvidia-ml-py)")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return NvmlReport(None, (), f"no NVIDIA driver: {_text(exc)}")
    try:
        return NvmlReport(_text(pynvml.nvmlSystemGetDriverVersion()),
                          tuple(_gpu(pynvml, i) for i in range(pynvml.nvmlDeviceGetCount())), None)
    finally:
        pynvml.nvmlShutdown()


def _gpu(nv, index: int) -> NvmlGpu:
    handle = nv.nvmlDeviceGetHandleByIndex(index)
    try:
        current, pending = nv.nvmlDeviceGetMigMode(handle)
        mig = _mig_word(nv, current)
        mig_pending = _mig_word(nv, pending) if pending != current else None
    except nv.NVMLError:
        mig, mig_pending = "not supported", None
    types, note = (), None
    try:
        creatable = set(nv.nvmlDeviceGetCreatableVgpus(handle))
        types = tuple(_vgpu_type(nv, handle, t, t in creatable) for t in nv.nvmlDeviceGetSupportedVgpus(handle))
        note = None if types else "the driver offers no vGPU types on this GPU"
    except nv.NVMLError as exc:
        note = f"no vGPU types: {_text(exc)} (not a vGPU host driver, or not a vGPU-capable GPU)"
    return NvmlGpu(index, _text(nv.nvmlDeviceGetName(handle)), _text(nv.nvmlDeviceGetPciInfo(handle).busId),
                   nv.nvmlDeviceGetMemoryInfo(handle).total // 2**20, mig, mig_pending, types, note)


def _vgpu_type(nv, handle, type_id: int, creatable: bool) -> NvmlVgpuType:
    name = _text(nv.nvmlVgpuTypeGetName(type_id))
    return NvmlVgpuType(int(type_id), name, nv.nvmlVgpuTypeGetFramebufferSize(type_id) // 2**20,
                        nv.nvmlVgpuTypeGetMaxInstances(handle, type_id), creatable, parse_profile(name))


def _mig_word(nv, mode: int) -> str:
    return "enabled" if mode == nv.NVML_DEVICE_MIG_ENABLE else "disabled"


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

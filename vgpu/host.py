"""What a host offers: boards that can be cut into vGPUs, their types, and the vGPUs that exist.

Two sources fill the same objects (sysfs.py, nodedev.py), so that placement, the CLI and
the deployer never care where the facts came from. Two driver layouts fit in them:

- `mdev`: the board is an mdev parent; a vGPU is a mediated device named by a UUID, made by
  writing the UUID to the type's `create` file (NVIDIA up to Turing/Ampere, e.g. the T4).
- `sriov`: the board is an SR-IOV physical function; a vGPU is a virtual function whose
  `nvidia/current_vgpu_type` is set to a type ID (NVIDIA's vendor-specific VFIO, vGPU 17+).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .profiles import Profile


@dataclass(frozen=True)
class VgpuType:
    id: str                     # "nvidia-319" (mdev) or "1414" (SR-IOV type ID)
    name: str                   # "GRID T4-4C", as the driver reports it
    description: str            # "" where the source gives none (libvirt, SR-IOV)
    device_api: str             # "vfio-pci"
    available: int              # instances that can still be made on this board
    profile: Profile | None     # None for types that are not NVIDIA vGPUs

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "description": self.description,
                "device_api": self.device_api, "available": self.available,
                "profile": self.profile.to_json() if self.profile else None}


@dataclass(frozen=True)
class Vgpu:
    """A vGPU that exists."""

    kind: str                   # "mdev" or "vf"
    id: str                     # the mdev's UUID, or the VF's PCI address
    parent: str                 # the board's PCI address
    type_id: str
    type_name: str

    def to_json(self) -> dict:
        return {"kind": self.kind, "id": self.id, "parent": self.parent,
                "type_id": self.type_id, "type_name": self.type_name}


@dataclass(frozen=True)
class VirtualFunction:
    """An SR-IOV VF of a board (sriov layout only)."""

    address: str
    current_type: str | None    # type ID set on it, None when free
    creatable: tuple[str, ...]  # type IDs it could take now


@dataclass(frozen=True)
class Board:
    address: str                # PCI address: the mdev parent or the SR-IOV physical function
    layout: str                 # "mdev" or "sriov"
    types: tuple[VgpuType, ...]
    vgpus: tuple[Vgpu, ...]
    vfs: tuple[VirtualFunction, ...] = field(default=())

    def type(self, type_id: str) -> VgpuType | None:
        return next((t for t in self.types if t.id == type_id), None)

    def to_json(self) -> dict:
        return {"address": self.address, "layout": self.layout,
                "types": [t.to_json() for t in self.types],
                "vgpus": [v.to_json() for v in self.vgpus]}


@dataclass(frozen=True)
class Host:
    source: str                 # "sysfs:/sys" or "libvirt:qemu:///system"
    boards: tuple[Board, ...]

    def board(self, address: str) -> Board | None:
        return next((b for b in self.boards if b.address == address), None)

    def vgpu(self, ident: str) -> Vgpu | None:
        return next((v for b in self.boards for v in b.vgpus if v.id == ident), None)

    def to_json(self) -> dict:
        return {"source": self.source, "boards": [b.to_json() for b in self.boards]}

"""The host's vGPU facts as the kernel shows them in sysfs, under a root that is a parameter.

On a host the root is /sys; tests point it at a fixture tree shaped like a real T4 host's,
where a small stand-in for the kernel reacts to writes (tests/sysfs_kernel.py). Every sysfs
path offload uses is spelled in this module and nowhere else:

    class/mdev_bus/<board>                      -> the board's device directory (mdev layout)
      mdev_supported_types/<type>/{name,description,device_api,available_instances}
      mdev_supported_types/<type>/create        write a UUID: the kernel makes the mdev
      mdev_supported_types/<type>/devices/<uuid>  the mdevs of that type
    bus/mdev/devices/<uuid>/{mdev_type,remove}  write 1 to remove: the kernel removes it
    bus/pci/devices/<vf>/physfn                 -> its physical function (sriov layout)
    bus/pci/devices/<vf>/nvidia/creatable_vgpu_types   "1414 : NVIDIA L4-4C" lines
    bus/pci/devices/<vf>/nvidia/current_vgpu_type      type ID, 0 when free; write to set
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .host import Board, Host, VgpuType, VirtualFunction, Vgpu
from .profiles import parse_profile

MDEV_BUS = "class/mdev_bus"
MDEV_DEVICES = "bus/mdev/devices"
PCI_DEVICES = "bus/pci/devices"
_CREATABLE_LINE = re.compile(r"^\s*(\d+)\s*:\s*(.+?)\s*$")


class SysfsTree:
    """Reads and writes attributes under one sysfs root."""

    def __init__(self, root: str | Path = "/sys") -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"SysfsTree({str(self.root)!r})"

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def read(self, *parts: str) -> str:
        return self.path(*parts).read_text(encoding="utf-8", errors="replace").strip()

    def write(self, value: str, *parts: str) -> None:
        """One write(2) of the whole value, as `echo value > attribute` does."""
        fd = os.open(self.path(*parts), os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    def names(self, *parts: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(*parts)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def exists(self, *parts: str) -> bool:
        return os.path.lexists(self.path(*parts))

    # --- paths of the mdev layout -----------------------------------------------------------

    def type_dir(self, board: str, type_id: str) -> tuple[str, ...]:
        return (MDEV_BUS, board, "mdev_supported_types", type_id)

    def mdev_dir(self, uuid: str) -> tuple[str, ...]:
        return (MDEV_DEVICES, uuid)

    def vf_dir(self, vf: str) -> tuple[str, ...]:
        return (PCI_DEVICES, vf, "nvidia")


def read_host(tree: SysfsTree) -> Host:
    """Every board with vGPU types under this root, in either layout, sorted by address."""
    boards = [_mdev_board(tree, b) for b in tree.names(MDEV_BUS)]
    boards += _sriov_boards(tree)
    return Host(f"sysfs:{tree.root}", tuple(sorted(boards, key=lambda b: b.address)))


def read_mdev(tree: SysfsTree, uuid: str) -> Vgpu | None:
    """The mdev with this UUID, or None if the kernel has none."""
    if not tree.exists(*tree.mdev_dir(uuid)):
        return None
    device = Path(os.path.realpath(tree.path(*tree.mdev_dir(uuid))))
    type_id = Path(os.path.realpath(device / "mdev_type")).name
    board = device.parent.name
    name_file = tree.path(*tree.type_dir(board, type_id), "name")
    name = name_file.read_text().strip() if name_file.exists() else type_id
    return Vgpu("mdev", uuid, board, type_id, name)


def _mdev_board(tree: SysfsTree, board: str) -> Board:
    types, vgpus = [], []
    for type_id in tree.names(MDEV_BUS, board, "mdev_supported_types"):
        where = tree.type_dir(board, type_id)
        name = _read_or(tree, type_id, *where, "name")
        description = _read_or(tree, "", *where, "description")
        available = int(_read_or(tree, "0", *where, "available_instances") or 0)
        types.append(VgpuType(type_id, name, description, _read_or(tree, "", *where, "device_api"),
                              available, parse_profile(name, description)))
        vgpus += [Vgpu("mdev", uuid, board, type_id, name) for uuid in tree.names(*where, "devices")]
    return Board(board, "mdev", tuple(types), tuple(vgpus))


def _sriov_boards(tree: SysfsTree) -> list[Board]:
    by_pf: dict[str, list[VirtualFunction]] = {}
    names: dict[str, str] = {}
    for vf in tree.names(PCI_DEVICES):
        if not tree.exists(*tree.vf_dir(vf), "creatable_vgpu_types"):
            continue
        creatable = []
        for line in tree.read(*tree.vf_dir(vf), "creatable_vgpu_types").splitlines():
            match = _CREATABLE_LINE.match(line)
            if match:
                creatable.append(match[1])
                names[match[1]] = match[2]
        current = _read_or(tree, "0", *tree.vf_dir(vf), "current_vgpu_type")
        pf = Path(os.path.realpath(tree.path(PCI_DEVICES, vf, "physfn"))).name
        by_pf.setdefault(pf, []).append(
            VirtualFunction(vf, None if current in ("", "0") else current, tuple(creatable)))
    boards = []
    for pf, vfs in by_pf.items():
        type_ids = sorted({t for vf in vfs for t in vf.creatable}, key=int)
        types = tuple(VgpuType(t, names[t], "", "vfio-pci",
                               sum(1 for vf in vfs if vf.current_type is None and t in vf.creatable),
                               parse_profile(names[t]))
                      for t in type_ids)
        vgpus = tuple(Vgpu("vf", vf.address, pf, vf.current_type,
                           names.get(vf.current_type, f"vGPU type {vf.current_type}"))
                      for vf in vfs if vf.current_type is not None)
        boards.append(Board(pf, "sriov", types, vgpus, tuple(vfs)))
    return boards


def _read_or(tree: SysfsTree, default: str, *parts: str) -> str:
    try:
        return tree.read(*parts)
    except OSError:
        return default

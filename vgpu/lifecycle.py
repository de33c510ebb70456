"""Making and removing one vGPU: idempotent, and never past a board's free instances.

An mdev is made through libvirt's node-device API when the connection sees the board as an
mdev parent and can define mdevs (persistent, via mdevctl); otherwise, or when libvirt says
it cannot, by writing its UUID to the type's `create` file. On the SR-IOV layout a free VF
gets the type ID written to `current_vgpu_type`. Both are keyed by an identity chosen before
the call (a UUID; a VF address), so running the same creation twice makes one vGPU and a
caller can journal the identity before anything exists. Removal of something already gone
is not an error. The kernel acts synchronously; waiting for the device to appear (or go)
keeps the same code correct where another process does the kernel's part (tests).
"""

from __future__ import annotations

import time

from offloader.errors import UserError

from . import nodedev
from .host import Vgpu
from .placement import Placement
from .sysfs import SysfsTree, read_host, read_mdev

POLL_SECONDS = 0.01


def create_vgpu(tree: SysfsTree, placement: Placement, ident: str, conn=None,
                timeout: float = 5.0) -> tuple[Vgpu, str]:
    """Make the vGPU `ident` (mdev UUID or VF address) as placed; returns it and the backend used."""
    board, vgpu_type = placement.board, placement.type
    if board.layout == "sriov":
        return _set_vf_type(tree, board.address, ident, vgpu_type.id, vgpu_type.name, timeout), "sysfs"
    existing = read_mdev(tree, ident)
    if existing is not None:
        if (existing.parent, existing.type_id) != (board.address, vgpu_type.id):
            raise UserError(f"mdev {ident} already exists as {existing.type_name} on {existing.parent}, "
                            f"not {vgpu_type.name} on {board.address}")
        return existing, _backend_of(conn, ident)
    if conn is not None:
        parent = nodedev.parent_name(conn, board.address)
        if parent is not None and _define_through_libvirt(conn, parent, vgpu_type.id, ident):
            return _wait_for_mdev(tree, ident, timeout), "libvirt"
    fresh = read_host(tree).board(board.address)
    fresh_type = fresh.type(vgpu_type.id) if fresh else None
    if fresh_type is None or fresh_type.available <= 0:
        raise UserError(f"no free {vgpu_type.name} instance left on {board.address} "
                        "(another vGPU took it meanwhile); run `offload vgpu list` to see what is free")
    try:
        tree.write(ident, *tree.type_dir(board.address, vgpu_type.id), "create")
    except OSError as exc:
        raise UserError(f"the kernel refused to create a {vgpu_type.name} mdev on {board.address}: "
                        f"{exc.strerror or exc}") from None
    return _wait_for_mdev(tree, ident, timeout), "sysfs"


def remove_vgpu(tree: SysfsTree, kind: str, ident: str, conn=None, timeout: float = 5.0) -> bool:
    """Remove the vGPU; False when there was nothing to remove.

    With `conn`, libvirt's persistent definition of the mdev goes too, if it has one.
    """
    if kind == "vf":
        if not tree.exists(*tree.vf_dir(ident)) or _vf_type(tree, ident) is None:
            return False
        tree.write("0", *tree.vf_dir(ident), "current_vgpu_type")
        _wait(lambda: _vf_type(tree, ident) is None, timeout, f"VF {ident} still has a vGPU type")
        return True
    removed = nodedev.stop_and_undefine(conn, ident) if conn is not None else False
    if tree.exists(*tree.mdev_dir(ident)):
        tree.write("1", *tree.mdev_dir(ident), "remove")
        removed = True
    _wait(lambda: not tree.exists(*tree.mdev_dir(ident)), timeout, f"mdev {ident} is still there")
    return removed


def _define_through_libvirt(conn, parent: str, type_id: str, uuid: str) -> bool:
    import libvirt

    try:
        nodedev.define_and_start(conn, parent, type_id, uuid)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
            return False
        raise UserError(f"libvirt could not create mdev {uuid} on {parent}: {exc}") from None
    return True


def _backend_of(conn, uuid: str) -> str:
    """Who made an mdev that already exists: libvirt if it holds a definition of it."""
    if conn is None:
        return "sysfs"
    import libvirt

    try:
        known = any(m["uuid"] == uuid for m in nodedev.list_mdevs(conn))
    except libvirt.libvirtError:
        known = False
    return "libvirt" if known else "sysfs"


def _wait_for_mdev(tree: SysfsTree, uuid: str, timeout: float) -> Vgpu:
    _wait(lambda: read_mdev(tree, uuid) is not None, timeout,
          f"the kernel did not create mdev {uuid} (no free instance, or the driver refused)")
    return read_mdev(tree, uuid)


def _vf_type(tree: SysfsTree, vf: str) -> str | None:
    value = tree.read(*tree.vf_dir(vf), "current_vgpu_type")
    return None if value in ("", "0") else value


def _set_vf_type(tree: SysfsTree, board: str, vf: str, type_id: str, type_name: str,
                 timeout: float) -> Vgpu:
    current = _vf_type(tree, vf)
    if current == type_id:
        return Vgpu("vf", vf, board, type_id, type_name)
    if current is not None:
        raise UserError(f"VF {vf} already carries vGPU type {current}, not {type_name}")
    creatable = tree.read(*tree.vf_dir(vf), "creatable_vgpu_types")
    if not any(line.split(":")[0].strip() == type_id for line in creatable.splitlines()):
        raise UserError(f"VF {vf} of {board} can no longer take a {type_name} (no free instance)")
    try:
        tree.write(type_id, *tree.vf_dir(vf), "current_vgpu_type")
    except OSError as exc:
        raise UserError(f"the driver refused {type_name} on VF {vf}: {exc.strerror or exc}") from None
    _wait(lambda: _vf_type(tree, vf) == type_id, timeout, f"VF {vf} did not take vGPU type {type_id}")
    return Vgpu("vf", vf, board, type_id, type_name)


def free_vf(placement: Placement) -> str:
    """A free VF of the placed SR-IOV board that can take the type: the vGPU's identity."""
    for vf in placement.board.vfs:
        if vf.current_type is None and placement.type.id in vf.creatable:
            return vf.address
    raise UserError(f"no free VF of {placement.board.address} can take a {placement.type.name}")


def _wait(done, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise UserError(message)
        time.sleep(POLL_SECONDS)

"""The same facts and the mdev lifecycle through libvirt's node-device API, as OpenStack Nova does.

Boards are the node devices with the `mdev_types` capability; existing vGPUs are the devices
with the `mdev` capability. libvirt's XML has each type's name, device API and free instances
but not the description, so profiles come from names. Persistent mdevs are defined and
started through libvirt, which hands them to mdevctl; a connection whose driver cannot
(the test driver, a host without mdevctl) answers VIR_ERR_NO_SUPPORT and the caller falls
back to sysfs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .host import Board, Host, VgpuType, Vgpu
from .profiles import parse_profile


def read_host(conn) -> Host:
    import libvirt

    names: dict[str, str] = {}      # node-device name -> PCI address
    boards = []
    for dev in conn.listAllDevices(libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV_TYPES):
        xml = ET.fromstring(dev.XMLDesc(0))
        pci = xml.find("capability[@type='pci']")
        if pci is None:
            continue
        address = _pci_address(pci)
        names[dev.name()] = address
        types = []
        for t in pci.findall("capability[@type='mdev_types']/type"):
            name = t.findtext("name") or t.get("id")
            types.append(VgpuType(t.get("id"), name, "", t.findtext("deviceAPI") or "",
                                  int(t.findtext("availableInstances") or 0), parse_profile(name)))
        boards.append((address, tuple(types)))
    vgpus: dict[str, list[Vgpu]] = {}
    for mdev in list_mdevs(conn):
        board = names.get(mdev["parent"])
        if board is not None:
            type_name = next((t.name for a, ts in boards if a == board for t in ts
                              if t.id == mdev["type_id"]), mdev["type_id"])
            vgpus.setdefault(board, []).append(Vgpu("mdev", mdev["uuid"], board, mdev["type_id"], type_name))
    return Host(f"libvirt:{conn.getURI()}",
                tuple(Board(a, "mdev", ts, tuple(vgpus.get(a, ()))) for a, ts in sorted(boards)))


def list_mdevs(conn) -> list[dict]:
    """Node devices with the mdev capability: name, parent node device, type ID, UUID."""
    import libvirt

    flags = libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV
    try:    # defined-but-stopped mdevs too; drivers without persistent devices refuse the flags
        devices = conn.listAllDevices(flags | libvirt.VIR_CONNECT_LIST_NODE_DEVICES_INACTIVE
                                      | libvirt.VIR_CONNECT_LIST_NODE_DEVICES_ACTIVE)
    except libvirt.libvirtError:
        devices = conn.listAllDevices(flags)
    out = []
    for dev in devices:
        xml = ET.fromstring(dev.XMLDesc(0))
        cap = xml.find("capability[@type='mdev']")
        if cap is None:
            continue
        uuid = cap.findtext("uuid") or dev.name().removeprefix("mdev_")[:36].replace("_", "-")
        out.append({"name": dev.name(), "parent": xml.findtext("parent"), "uuid": uuid,
                    "type_id": cap.find("type").get("id")})
    return out


def parent_name(conn, board: str) -> str | None:
    """libvirt's node-device name of the board at a PCI address, if libvirt sees it as a parent."""
    import libvirt

    for dev in conn.listAllDevices(libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV_TYPES):
        pci = ET.fromstring(dev.XMLDesc(0)).find("capability[@type='pci']")
        if pci is not None and _pci_address(pci) == board:
            return dev.name()
    return None


def _pci_address(pci: ET.Element) -> str:
    return "%04x:%02x:%02x.%x" % tuple(int(pci.findtext(k), 0) for k in ("domain", "bus", "slot", "function"))


def define_and_start(conn, parent: str, type_id: str, uuid: str) -> None:
    """A persistent mdev (libvirt -> mdevctl), started. Raises libvirtError, NO_SUPPORT included."""
    device = ET.Element("device")
    ET.SubElement(device, "parent").text = parent
    cap = ET.SubElement(device, "capability", type="mdev")
    ET.SubElement(cap, "type", id=type_id)
    ET.SubElement(cap, "uuid").text = uuid
    dev = conn.nodeDeviceDefineXML(ET.tostring(device, encoding="unicode"), 0)
    try:
        if not dev.isActive():
            dev.create(0)
    except Exception:
        dev.undefine(0)
        raise


def stop_and_undefine(conn, uuid: str) -> bool:
    """Remove the persistent mdev with this UUID; False when libvirt knows none."""
    for mdev in list_mdevs(conn):
        if mdev["uuid"] == uuid:
            dev = conn.nodeDeviceLookupByName(mdev["name"])
            if dev.isActive():
                dev.destroy()
            if dev.isPersistent():
                dev.undefine(0)
            return True
    return False

"""vGPU discovery, placement and the mdev lifecycle against sysfs fixtures that act like the kernel,
and the same discovery through libvirt's node-device API (test driver)."""

import os
import uuid
import xml.etree.ElementTree as ET

import pytest

from deploy_support import T4_EXISTING_MDEV, l4_host, libvirt_or_skip, t4_host  # noqa: F401 - fixtures
from offloader.errors import UserError
from sysfs_kernel import FIXTURES, capture, materialize
from vgpu import nodedev
from vgpu.lifecycle import create_vgpu, free_vf, remove_vgpu
from vgpu.placement import PlacementError, place, profile_of_slice
from vgpu.sysfs import SysfsTree, read_host, read_mdev

FREE, BUSY = "0000:3b:00.0", "0000:d8:00.0"


def available(host, board, short):
    return next(t.available for t in host.board(board).types if t.profile.short == short)


# --- discovery -------------------------------------------------------------------------------

def test_a_t4_host_reads_as_two_boards_with_their_types_and_the_running_vgpu(t4_host):
    host = read_host(SysfsTree(t4_host.root))
    assert [b.address for b in host.boards] == [FREE, BUSY]
    free = host.board(FREE)
    assert len(free.types) == 17 and free.layout == "mdev" and free.vgpus == ()
    t4_4c = free.type("nvidia-319")
    assert (t4_4c.name, t4_4c.device_api, t4_4c.available) == ("GRID T4-4C", "vfio-pci", 4)
    assert (t4_4c.profile.framebuffer_mib, t4_4c.profile.max_instances, t4_4c.profile.series) == (4096, 4, "C")
    busy = host.board(BUSY)
    assert [(v.id, v.type_name) for v in busy.vgpus] == [(T4_EXISTING_MDEV, "GRID T4-8Q")]
    assert {t.profile.short: t.available for t in busy.types if t.available} == {"T4-8Q": 1}


def test_an_sriov_host_reads_as_a_board_of_virtual_functions(l4_host):
    host = read_host(SysfsTree(l4_host.root))
    (board,) = host.boards
    assert (board.address, board.layout, len(board.vfs)) == ("0000:41:00.0", "sriov", 4)
    assert {t.profile.short: t.available for t in board.types}["L4-6C"] == 4


def test_an_empty_tree_has_no_boards(tmp_path):
    assert read_host(SysfsTree(tmp_path)).boards == ()


def test_capture_of_a_host_rebuilds_the_same_tree(tmp_path):
    """A real host's sysfs can be captured into a manifest that rebuilds it exactly."""
    def snapshot(root):
        out = {}
        for directory, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(directory, name)
                out[os.path.relpath(path, root)] = (os.readlink(path) if os.path.islink(path) else
                                                    None if os.path.isdir(path) else open(path).read().rstrip("\n"))
        return out

    for manifest in ("t4-host.tree", "l4-sriov-host.tree"):
        original = materialize(FIXTURES / manifest, tmp_path / manifest / "a")
        (tmp_path / manifest / "captured.tree").write_text(capture(original))
        rebuilt = materialize(tmp_path / manifest / "captured.tree", tmp_path / manifest / "b")
        assert snapshot(rebuilt) == snapshot(original)


# --- the fixture behaves like the kernel -------------------------------------------------------

def test_writing_create_makes_the_mdev_and_lowers_the_counts_and_remove_undoes_both(t4_host):
    tree = SysfsTree(t4_host.root)
    before = t4_host.counts()
    new = str(uuid.uuid4())
    tree.write(new, *tree.type_dir(FREE, "nvidia-319"), "create")
    t4_host.kernel.settle()
    assert read_mdev(tree, new).type_name == "GRID T4-4C"
    assert os.path.islink(tree.path(*tree.type_dir(FREE, "nvidia-319"), "devices", new))
    host = read_host(tree)
    assert available(host, FREE, "T4-4C") == 3
    assert all(t.available == 0 for t in host.board(FREE).types if t.id != "nvidia-319")   # one type per board
    tree.write("1", *tree.mdev_dir(new), "remove")
    t4_host.kernel.settle()
    assert read_mdev(tree, new) is None and t4_host.counts() == before


def test_the_fixture_refuses_what_the_driver_refuses(t4_host):
    tree = SysfsTree(t4_host.root)
    for request in ("not-a-uuid", T4_EXISTING_MDEV):
        tree.write(request, *tree.type_dir(BUSY, "nvidia-233"), "create")
    blocked = str(uuid.uuid4())
    tree.write(blocked, *tree.type_dir(BUSY, "nvidia-319"), "create")     # another type on a busy T4
    t4_host.kernel.settle()
    assert t4_host.mdevs() == {T4_EXISTING_MDEV}


# --- placement ---------------------------------------------------------------------------------

def test_a_quarter_t4_goes_to_the_free_board(t4_host):
    host = read_host(SysfsTree(t4_host.root))
    profile = profile_of_slice(host, "T4", 0.25, "C")
    placed = place(host, profile.short)
    assert (profile.short, placed.board.address, placed.type.id) == ("T4-4C", FREE, "nvidia-319")


def test_a_board_already_running_the_type_is_filled_first(t4_host):
    assert place(read_host(SysfsTree(t4_host.root)), "T4-8Q").board.address == BUSY


def test_the_first_instance_blocks_other_types_on_its_board(t4_host):
    tree = SysfsTree(t4_host.root)
    create_vgpu(tree, place(read_host(tree), "T4-4C"), str(uuid.uuid4()))
    t4_host.kernel.settle()
    with pytest.raises(PlacementError) as refused:
        place(read_host(tree), "T4-8C")
    assert str(refused.value) == (
        f"no free T4-8C instance: {FREE} runs GRID T4-4C (a time-sliced board runs one type at a time); "
        f"{BUSY} runs GRID T4-8Q (a time-sliced board runs one type at a time)")


def test_a_full_board_is_refused_with_its_count(t4_host):
    tree = SysfsTree(t4_host.root)
    for _ in range(4):
        create_vgpu(tree, place(read_host(tree), "T4-4C"), str(uuid.uuid4()))
    with pytest.raises(PlacementError, match=rf"no free T4-4C instance: {FREE} has no free GRID T4-4C "
                                             r"instance \(4 of 4 in use\); 0000:d8:00.0 runs GRID T4-8Q"):
        place(read_host(tree), "T4-4C")


def test_unknown_types_and_models_are_refused(t4_host):
    host = read_host(SysfsTree(t4_host.root))
    with pytest.raises(PlacementError, match="no board on sysfs:.* offers vGPU type 'A100-4C'"):
        place(host, "A100-4C")
    with pytest.raises(PlacementError, match=r"this host has no L4 vGPU types \(it has: T4\)"):
        profile_of_slice(host, "L4", 0.25, "C")


# --- lifecycle ---------------------------------------------------------------------------------

def test_create_and_remove_are_idempotent(t4_host):
    tree = SysfsTree(t4_host.root)
    placed = place(read_host(tree), "T4-4C")
    ident = str(uuid.uuid4())
    first, backend = create_vgpu(tree, placed, ident)
    again, _ = create_vgpu(tree, placed, ident)
    assert first == again and backend == "sysfs" and t4_host.mdevs() == {T4_EXISTING_MDEV, ident}
    assert remove_vgpu(tree, "mdev", ident) is True
    assert remove_vgpu(tree, "mdev", ident) is False
    assert t4_host.mdevs() == {T4_EXISTING_MDEV}


def test_the_same_uuid_cannot_become_another_type(t4_host):
    tree = SysfsTree(t4_host.root)
    with pytest.raises(UserError, match=f"mdev {T4_EXISTING_MDEV} already exists as GRID T4-8Q on {BUSY}"):
        create_vgpu(tree, place(read_host(tree), "T4-4C"), T4_EXISTING_MDEV)


def test_creation_is_refused_when_the_last_instance_went_meanwhile(t4_host):
    tree = SysfsTree(t4_host.root)
    stale = place(read_host(tree), "T4-8Q")            # one free on the busy board, as listed
    create_vgpu(tree, stale, str(uuid.uuid4()))          # another command takes it
    with pytest.raises(UserError, match=f"no free GRID T4-8Q instance left on {BUSY} "
                                        r"\(another vGPU took it meanwhile\)"):
        create_vgpu(tree, stale, str(uuid.uuid4()))


def test_sriov_vgpus_are_made_by_setting_a_free_vfs_type(l4_host):
    tree = SysfsTree(l4_host.root)
    before = l4_host.counts()
    placed = place(read_host(tree), "L4-12C")
    vf = free_vf(placed)
    vgpu, _ = create_vgpu(tree, placed, vf)
    assert (vgpu.kind, vgpu.id, vgpu.type_name) == ("vf", "0000:41:00.4", "NVIDIA L4-12C")
    assert create_vgpu(tree, placed, vf)[0] == vgpu                              # idempotent
    l4_host.kernel.settle()
    board = read_host(tree).boards[0]
    assert {t.profile.short: t.available for t in board.types} == {"L4-12C": 3}  # same type only
    assert remove_vgpu(tree, "vf", vf) and not remove_vgpu(tree, "vf", vf)
    assert l4_host.counts() == before


# --- libvirt's node-device API (test driver) ----------------------------------------------------

def node_xml(tree: SysfsTree) -> str:
    """The test driver's node devices for a sysfs host, as libvirt's nodedev XML describes them."""
    host = read_host(tree)
    node = ET.Element("node")
    for board in host.boards:
        name = "pci_" + board.address.replace(":", "_").replace(".", "_")
        dev = ET.SubElement(node, "device")
        ET.SubElement(dev, "name").text = name
        ET.SubElement(dev, "parent").text = "computer"
        pci = ET.SubElement(dev, "capability", type="pci")
        domain, bus, slot_function = board.address.split(":")
        slot, function = slot_function.split(".")
        for key, value in (("domain", domain), ("bus", bus), ("slot", slot), ("function", function)):
            ET.SubElement(pci, key).text = str(int(value, 16))
        ET.SubElement(pci, "product", id=tree.read("class/mdev_bus", board.address, "device"))
        ET.SubElement(pci, "vendor", id=tree.read("class/mdev_bus", board.address, "vendor"))
        types = ET.SubElement(pci, "capability", type="mdev_types")
        for t in board.types:
            entry = ET.SubElement(types, "type", id=t.id)
            ET.SubElement(entry, "name").text = t.name
            ET.SubElement(entry, "deviceAPI").text = t.device_api
            ET.SubElement(entry, "availableInstances").text = str(t.available)
        for v in board.vgpus:
            mdev = ET.SubElement(node, "device")
            ET.SubElement(mdev, "name").text = f"mdev_{v.id.replace('-', '_')}_{name[4:]}"
            ET.SubElement(mdev, "parent").text = name
            cap = ET.SubElement(mdev, "capability", type="mdev")
            ET.SubElement(cap, "type", id=v.type_id)
            ET.SubElement(cap, "uuid").text = v.id
    return ET.tostring(node, encoding="unicode")


@pytest.fixture
def nodedev_conn(t4_host, tmp_path):
    libvirt = libvirt_or_skip()
    (tmp_path / "node.xml").write_text(node_xml(SysfsTree(t4_host.root)))
    conn = libvirt.open(f"test://{tmp_path / 'node.xml'}")
    yield conn
    conn.close()


def test_libvirt_and_sysfs_describe_the_same_host(t4_host, nodedev_conn):
    """Nova's way (node devices with mdev_types) and sysfs agree, except for descriptions."""
    from_sysfs = read_host(SysfsTree(t4_host.root))
    from_libvirt = nodedev.read_host(nodedev_conn)

    def summary(host):
        return [(b.address, [(t.id, t.name, t.available, t.profile.short, t.profile.framebuffer_mib)
                             for t in b.types], b.vgpus) for b in host.boards]
    assert summary(from_libvirt) == summary(from_sysfs)
    assert from_libvirt.source.startswith("libvirt:test://")


def test_where_libvirt_cannot_define_mdevs_sysfs_makes_them(t4_host, nodedev_conn):
    """The test driver sees the board but has no mdevctl (VIR_ERR_NO_SUPPORT): fall back."""
    tree = SysfsTree(t4_host.root)
    assert nodedev.parent_name(nodedev_conn, FREE) == "pci_0000_3b_00_0"
    ident = str(uuid.uuid4())
    vgpu, backend = create_vgpu(tree, place(read_host(tree), "T4-4C"), ident, conn=nodedev_conn)
    assert backend == "sysfs" and vgpu.id == ident
    assert remove_vgpu(tree, "mdev", ident, conn=nodedev_conn)

"""Domain XML: libvirt's schema (virt-xml-validate), the test driver, and `offload deploy --dry-run`."""

import json
import shutil
import uuid
import xml.etree.ElementTree as ET

import pytest

from deploy_support import offload_cli, t4_host, test_conn, write_plan  # noqa: F401 - fixtures
from deployer.domain_xml import NAMESPACE, DiskBoot, DomainSpec, KernelBoot, build_domain_xml, read_tag, validate
from offloader.errors import UserError
from vgpu.lifecycle import create_vgpu
from vgpu.placement import place
from vgpu.sysfs import SysfsTree, read_host

needs_validator = pytest.mark.skipif(shutil.which("virt-xml-validate") is None,
                                     reason="virt-xml-validate missing (scripts/setup-libvirt.sh installs libvirt-clients)")
MDEV = "b1ae8bf6-38b0-4c81-9d44-78ce3f520496"


def spec(**changes) -> DomainSpec:
    base = dict(name="offload-saxpy", virt_type="kvm", vcpus=2, memory_mib=16384,
                boot=KernelBoot("/var/lib/offload/vmlinuz", "/var/lib/offload/initrd.img"),
                console_log="/var/lib/offload/deployments/offload-saxpy/console.log",
                hostdev=("mdev", MDEV), metadata={"id": "0123456789ab", "app": "saxpy", "plan": {"schema": 1}})
    base.update(changes)
    return DomainSpec(**base)


@needs_validator
@pytest.mark.parametrize("variant", [
    {},
    {"boot": DiskBoot("/var/lib/images/guest.qcow2", "qcow2"), "hostdev": ("vf", "0000:41:00.4")},
    {"virt_type": "qemu", "hostdev": None},
])
def test_the_xml_passes_libvirts_schema(variant):
    assert validate(build_domain_xml(spec(**variant))) is None


@needs_validator
def test_invalid_xml_is_refused_with_the_validators_words():
    broken = build_domain_xml(spec()).replace("<vcpu placement=\"static\">2</vcpu>", "<vcpu>two</vcpu>")
    with pytest.raises(UserError, match="the domain XML does not pass libvirt's schema: .*domain.xml"):
        validate(broken)


def test_the_xml_has_the_size_the_vgpu_and_the_console():
    domain = ET.fromstring(build_domain_xml(spec()))
    assert (domain.get("type"), domain.findtext("vcpu"), domain.find("memory").attrib, domain.findtext("memory")) == \
        ("kvm", "2", {"unit": "MiB"}, "16384")
    hostdev = domain.find("devices/hostdev")
    assert hostdev.attrib == {"mode": "subsystem", "type": "mdev", "model": "vfio-pci", "managed": "no"}
    assert hostdev.find("source/address").get("uuid") == MDEV
    serial = domain.find("devices/serial")
    assert serial.get("type") == "file" and serial.find("source").get("path").endswith("console.log")
    assert domain.find("os/kernel").text == "/var/lib/offload/vmlinuz"


def test_the_metadata_tags_the_domain_and_carries_the_plan():
    facts = read_tag(build_domain_xml(spec()))
    assert facts == {"id": "0123456789ab", "app": "saxpy", "plan": {"schema": 1}}
    assert read_tag("<domain><name>other</name></domain>") is None


def test_the_test_driver_accepts_the_xml_with_its_mdev_and_metadata(test_conn):
    dom = test_conn.defineXML(build_domain_xml(spec(virt_type="test", boot=None)))
    dom.create()
    live = ET.fromstring(dom.XMLDesc(0))
    assert live.find("devices/hostdev/source/address").get("uuid") == MDEV
    assert read_tag(dom.XMLDesc(0))["app"] == "saxpy"
    import libvirt
    assert "<app>saxpy</app>" in dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NAMESPACE)
    dom.destroy()
    dom.undefine()


@needs_validator
def test_dry_run_on_a_plan_and_sizing_gives_valid_xml_with_the_right_mdev(t4_host, tmp_path):
    plan = write_plan(tmp_path / "results" / "saxpy")
    before = t4_host.counts()
    done = offload_cli("deploy", plan, "--dry-run", "--json", "--connect", "test:///default",
                       "--sysfs-root", t4_host.root, "--state-dir", tmp_path / "state")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    vgpu = result["vgpu"]
    assert (vgpu["kind"], vgpu["board"], vgpu["type_id"], vgpu["type_name"]) == \
        ("mdev", "0000:3b:00.0", "nvidia-319", "GRID T4-4C")          # the board with free instances
    assert result["schema_valid"] is True and validate(result["xml"]) is None
    domain = ET.fromstring(result["xml"])
    assert domain.find("devices/hostdev/source/address").get("uuid") == vgpu["id"] == str(uuid.UUID(vgpu["id"]))
    assert (domain.findtext("vcpu"), domain.findtext("memory")) == ("2", "256")
    assert t4_host.counts() == before and t4_host.mdevs() == {"5d3e4b7e-8f2a-4c1b-9e6d-2a7f0c9b1e34"}
    assert not (tmp_path / "state").exists()                          # a dry run changes nothing


def test_dry_run_text_prints_the_xml_and_the_mdev(t4_host, tmp_path):
    plan = write_plan(tmp_path / "results" / "saxpy")
    done = offload_cli("deploy", plan, "--dry-run", "--connect", "test:///default", "--sysfs-root", t4_host.root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("<domain ") and ET.fromstring(done.stdout).findtext("name") == "offload-saxpy"
    assert "vGPU: would make mdev " in done.stderr and "(GRID T4-4C, nvidia-319) on 0000:3b:00.0; attached" in done.stderr


def test_dry_run_refuses_when_no_board_has_a_free_instance(t4_host, tmp_path):
    tree = SysfsTree(t4_host.root)
    create_vgpu(tree, place(read_host(tree), "T4-4C"), str(uuid.uuid4()))   # the free board now runs T4-4C
    plan = write_plan(tmp_path / "results" / "saxpy", fraction=0.5, vgpu_type="T4-8C")
    done = offload_cli("deploy", plan, "--dry-run", "--connect", "test:///default", "--sysfs-root", t4_host.root)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("offload: no free T4-8C instance: 0000:3b:00.0 runs GRID T4-4C (a time-sliced board "
                           "runs one type at a time); 0000:d8:00.0 runs GRID T4-8Q (a time-sliced board runs one "
                           "type at a time)\n")


@needs_validator
def test_dry_run_with_a_disk_image_boots_it_as_qcow2_or_raw(t4_host, tmp_path):
    plan = write_plan(tmp_path / "results" / "saxpy")
    for name, head, fmt in (("guest.qcow2", b"QFI\xfb\x00\x00\x00\x03", "qcow2"), ("guest.img", b"\x00" * 8, "raw")):
        (tmp_path / name).write_bytes(head + b"\x00" * 504)
        done = offload_cli("deploy", plan, "--dry-run", "--json", "--image", tmp_path / name,
                           "--sysfs-root", t4_host.root, "--connect", "test:///default")
        assert done.returncode == 0, done.stderr
        disk = ET.fromstring(json.loads(done.stdout)["xml"]).find("devices/disk")
        assert (disk.find("driver").get("type"), disk.find("source").get("file")) == (fmt, str(tmp_path / name))

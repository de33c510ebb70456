"""libvirt domain XML for the production VM, and its check against libvirt's own schema.

The domain gets the size's vCPUs and memory, boots a disk image or a kernel directly, logs
its first serial port (the guest's facts come over it) to a file, and carries the vGPU as
`<hostdev mode='subsystem' type='mdev' model='vfio-pci'>` naming the mdev's UUID (or, on
the SR-IOV layout, the VF as a PCI hostdev). Its metadata, in offload's own namespace, tags
it as made by offload and records the plan, the request and the vGPU, which is what
`offload deploy list`, `destroy` and `gc` go by.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from offloader.errors import UserError

NAMESPACE = "urn:x-offload:deployment:1"
PREFIX = "offload"
AGENT_CHANNEL = "org.qemu.guest_agent.0"


@dataclass(frozen=True)
class KernelBoot:
    kernel: str
    initrd: str | None
    cmdline: str = "console=ttyS0 quiet panic=-1"


@dataclass(frozen=True)
class DiskBoot:
    image: str
    format: str                 # "qcow2" or "raw"


@dataclass(frozen=True)
class DomainSpec:
    name: str
    virt_type: str              # "kvm", "qemu" (emulation) or "test" (libvirt's test driver)
    vcpus: int
    memory_mib: int
    boot: KernelBoot | DiskBoot | None   # None: nothing to boot (libvirt's test driver)
    console_log: str
    hostdev: tuple[str, str] | None     # ("mdev", uuid) or ("vf", "0000:41:00.4"); None: no vGPU
    metadata: dict = field(default_factory=dict)   # deployment facts, see `tag`


def build_domain_xml(spec: DomainSpec) -> str:
    domain = ET.Element("domain", type=spec.virt_type)
    ET.SubElement(domain, "name").text = spec.name
    ET.SubElement(domain, "metadata").append(tag(spec.metadata))
    ET.SubElement(domain, "memory", unit="MiB").text = str(spec.memory_mib)
    ET.SubElement(domain, "currentMemory", unit="MiB").text = str(spec.memory_mib)
    ET.SubElement(domain, "vcpu", placement="static").text = str(spec.vcpus)
    os_ = ET.SubElement(domain, "os")
    ET.SubElement(os_, "type", arch="x86_64").text = "hvm"
    if isinstance(spec.boot, KernelBoot):
        ET.SubElement(os_, "kernel").text = spec.boot.kernel
        if spec.boot.initrd:
            ET.SubElement(os_, "initrd").text = spec.boot.initrd
        ET.SubElement(os_, "cmdline").text = spec.boot.cmdline
    else:
        ET.SubElement(os_, "boot", dev="hd")
    features = ET.SubElement(domain, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    if spec.virt_type == "kvm":
        ET.SubElement(domain, "cpu", mode="host-passthrough")
    for event, action in (("on_poweroff", "destroy"), ("on_reboot", "restart"), ("on_crash", "destroy")):
        ET.SubElement(domain, event).text = action
    devices = ET.SubElement(domain, "devices")
    if isinstance(spec.boot, DiskBoot):
        disk = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type=spec.boot.format)
        ET.SubElement(disk, "source", file=spec.boot.image)
        ET.SubElement(disk, "target", dev="vda", bus="virtio")
    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=spec.console_log, append="off")
    ET.SubElement(serial, "target", port="0")
    if spec.virt_type != "test":
        channel = ET.SubElement(devices, "channel", type="unix")
        ET.SubElement(channel, "target", type="virtio", name=AGENT_CHANNEL)
    if spec.hostdev is not None:
        devices.append(_hostdev(*spec.hostdev))
    if spec.virt_type != "test":
        ET.SubElement(devices, "memballoon", model="none")
    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode") + "\n"


def _hostdev(kind: str, ident: str) -> ET.Element:
    if kind == "mdev":
        hostdev = ET.Element("hostdev", mode="subsystem", type="mdev", model="vfio-pci", managed="no")
        ET.SubElement(ET.SubElement(hostdev, "source"), "address", uuid=ident)
        return hostdev
    domain, bus, slot_function = ident.split(":")
    slot, function = slot_function.split(".")
    hostdev = ET.Element("hostdev", mode="subsystem", type="pci", managed="no")
    ET.SubElement(ET.SubElement(hostdev, "source"), "address", domain=f"0x{domain}", bus=f"0x{bus}",
                  slot=f"0x{slot}", function=f"0x{function}")
    return hostdev


def tag(facts: dict, in_domain: bool = True) -> ET.Element:
    """<offload:deployment> with one child per fact; dicts and lists become JSON text.

    In a domain's XML the prefix and its xmlns are written literally: libvirt wants the
    namespace declared on the metadata element itself, where ElementTree would move it to
    the document's root. For virDomainSetMetadata (`in_domain=False`) they are left out:
    libvirt adds them.
    """
    prefix = f"{PREFIX}:" if in_domain else ""
    root = ET.Element(f"{prefix}deployment", {f"xmlns:{PREFIX}": NAMESPACE} if in_domain else {})
    for key, value in facts.items():
        child = ET.SubElement(root, f"{prefix}{key}")
        child.text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return root


def read_tag(domain_xml: str) -> dict | None:
    """The facts `tag` wrote, from a domain's XML; None when offload did not make the domain."""
    node = ET.fromstring(domain_xml).find(f"metadata/{{{NAMESPACE}}}deployment")
    if node is None:
        return None
    facts = {}
    for child in node:
        text = child.text or ""
        try:
            facts[child.tag.split("}", 1)[1]] = json.loads(text) if text[:1] in "{[" else text
        except json.JSONDecodeError:
            facts[child.tag.split("}", 1)[1]] = text
    return facts


def validate(xml: str) -> str | None:
    """Check the XML against libvirt's schema with virt-xml-validate.

    Returns None when valid, a note when the validator is not installed; raises UserError
    with the validator's complaint when the XML is invalid.
    """
    tool = shutil.which("virt-xml-validate")
    if tool is None:
        return "not checked against libvirt's schema: virt-xml-validate is missing (apt-get install libvirt-clients)"
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as handle:
        handle.write(xml)
    try:
        done = subprocess.run([tool, handle.name, "domain"], capture_output=True, text=True, timeout=60)
    finally:
        Path(handle.name).unlink()
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).replace(handle.name, "domain.xml").splitlines()
        complaint = "; ".join(line.strip() for line in lines if line.strip())
        raise UserError(f"the domain XML does not pass libvirt's schema: {complaint}")
    return None

"""`deploy()`: from a request to a running, verified VM, in steps that roll back on any failure.

    vgpu    create the mdev (or set the VF's type) for the profile, on a board with room
    files   write the domain XML and the console log into the deployment's directory
    define  define the domain in libvirt
    start   start it
    ready   wait until the guest reports what it sees
    verify  compare that with the request

Each step journals what it is about to make before making it (journal.py). If any step
fails, or the command is interrupted, everything made so far is undone, newest first; if
the command is killed outright, `offload deploy gc` undoes it later from the journal.
A deployment that passed verification is marked `deployed`, in its journal and in the
domain's metadata, and only `offload deploy destroy` removes it.

Faults can be injected for tests, by step name: `fault="define"` (or the environment
variable OFFLOAD_DEPLOY_FAULT=define) fails right after that step did its work;
`define:stall` hangs there instead, so a test can kill the command at that point.
"""

from __future__ import annotations

import os
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from offloader.errors import UserError
from vgpu.lifecycle import create_vgpu, free_vf
from vgpu.placement import Placement, PlacementError, place, profile_of_slice
from vgpu.profiles import SliceError
from vgpu.sysfs import SysfsTree, read_host

from .connection import DEFAULT_URI, is_test_driver, libvirt_module
from .domain_xml import NAMESPACE, PREFIX, DiskBoot, DomainSpec, KernelBoot, build_domain_xml, read_tag, tag, validate
from .guest_report import agent_command, wait_for_report
from .journal import Journal, default_state_dir, process_start
from .request import Request
from .rollback import undo
from .verify import GpuExpectation, failed, verify

STEPS = ("vgpu", "files", "define", "start", "ready", "verify")
FAULT_ENV = "OFFLOAD_DEPLOY_FAULT"
SCHEMA = 1


@dataclass(frozen=True)
class Options:
    uri: str = DEFAULT_URI
    sysfs_root: str = "/sys"
    boot: KernelBoot | DiskBoot | None = None
    name: str | None = None
    virt_type: str = "kvm"              # or "qemu" (emulation); the test driver always gets "test"
    state_dir: Path | None = None
    ready_timeout: float = 300.0
    expected_output: str | None = None
    teardown: bool = False              # after verifying, stop and undefine, remove the vGPU
    fault: str | None = None            # for tests; see the module docstring


@dataclass(frozen=True)
class Draft:
    """Everything a deployment will make, decided before anything is made."""

    id: str
    name: str
    state_dir: Path
    placement: Placement | None
    vgpu_id: str | None                 # mdev UUID or VF address
    gpu: GpuExpectation
    spec: DomainSpec
    xml: str
    schema_note: str | None             # why the XML could not be checked, if it could not

    @property
    def directory(self) -> Path:
        return self.state_dir / "deployments" / self.name

    def vgpu_json(self) -> dict | None:
        if self.placement is None:
            return None
        p = self.placement
        return {"kind": "vf" if p.board.layout == "sriov" else "mdev", "id": self.vgpu_id,
                "board": p.board.address, "type_id": p.type.id, "type_name": p.type.name,
                "profile": self.gpu.profile, "attached": self.gpu.attached, "not_attached_because": self.gpu.reason}


class InjectedFault(UserError):
    """A failure asked for by a test (OFFLOAD_DEPLOY_FAULT), never by a real problem."""


def draft(request: Request, options: Options, conn) -> Draft:
    """Place the vGPU, pick the identities, build and validate the XML; change nothing."""
    test = is_test_driver(conn)
    if options.boot is None and not test:
        raise UserError("say what the VM boots: --image DISK, or --kernel VMLINUZ [--initrd INITRD]")
    name = options.name or f"offload-{request.app}"
    _check_free_name(conn, name)
    deployment_id = uuidlib.uuid4().hex[:12]
    state_dir = Path(options.state_dir or default_state_dir()).absolute()
    tree = SysfsTree(options.sysfs_root)
    placement, vgpu_id, gpu = None, None, GpuExpectation(None, None, False, None)
    if request.gpu_fraction:
        placement, profile = _place(request, tree)
        vgpu_id = free_vf(placement) if placement.board.layout == "sriov" else str(uuidlib.uuid4())
        attached, reason = (True, None) if test else _can_attach(conn.getURI(), options.sysfs_root)
        gpu = GpuExpectation(profile, placement.type.profile.framebuffer_mib if placement.type.profile else None,
                             attached, reason)
    facts = {"id": deployment_id, "app": request.app, "state-dir": str(state_dir), "status": "deploying",
             "created-by": {"pid": os.getpid(), "start": process_start(os.getpid()), "host": os.uname().nodename,
                            "time": int(time.time())},
             "request": request.to_json(), "plan": request.plan}
    if placement is not None:
        facts["vgpu"] = {"kind": "vf" if placement.board.layout == "sriov" else "mdev", "id": vgpu_id,
                         "board": placement.board.address, "type": placement.type.id,
                         "name": placement.type.name, "sysfs-root": str(Path(options.sysfs_root).absolute()),
                         "attached": gpu.attached}
    spec = DomainSpec(name, "test" if test else options.virt_type, request.vcpus, request.memory_mib,
                      options.boot, str(state_dir / "deployments" / name / "console.log"),
                      (facts["vgpu"]["kind"], vgpu_id) if placement is not None and gpu.attached else None, facts)
    xml = build_domain_xml(spec)
    return Draft(deployment_id, name, state_dir, placement, vgpu_id, gpu, spec, xml, validate(xml))


def deploy(request: Request, options: Options, conn) -> dict:
    """Make the VM, wait for its report, verify it; roll everything back on any failure."""
    fault = options.fault if options.fault is not None else os.environ.get(FAULT_ENV)
    d = draft(request, options, conn)
    libvirt = libvirt_module()
    journal = Journal.begin(d.state_dir, d.name, conn.getURI(), d.id)
    timings: dict[str, float] = {}
    try:
        report = checks = None
        for step in STEPS:
            started = time.monotonic()
            try:
                report, checks = _step(step, d, request, options, conn, journal, report, checks)
            except libvirt.libvirtError as exc:
                raise UserError(f"{step}: libvirt says: {exc}") from None
            timings[step] = round(time.monotonic() - started, 3)
            _inject(fault, step)
        try:
            _mark_deployed(conn, d, journal)
        except libvirt.libvirtError as exc:
            raise UserError(f"tagging the domain as deployed: libvirt says: {exc}") from None
    except BaseException as exc:
        problems = undo(journal, conn)
        if problems:
            raise UserError(f"{getattr(exc, 'message', None) or exc or type(exc).__name__}; rolling back "
                            f"left: {'; '.join(problems)} (kept in {journal.directory}; `offload deploy gc` "
                            "retries)") from None
        raise
    result = {"schema": SCHEMA, "name": d.name, "id": d.id, "uri": conn.getURI(), "status": "deployed",
              "virt_type": d.spec.virt_type, "request": request.to_json(), "vgpu": d.vgpu_json(),
              "gpu": _gpu_words(checks), "checks": [c.to_json() for c in checks],
              "guest": report.to_json(), "directory": str(d.directory), "timings": timings}
    journal.set(result=result)
    if options.teardown:
        problems = undo(journal, conn)
        if problems:
            raise UserError(f"verified, but tearing down left: {'; '.join(problems)}")
        result["status"] = "verified and torn down"
    return result


def _step(step: str, d: Draft, request: Request, options: Options, conn, journal: Journal, report, checks):
    """Run one step; returns the guest's report and the checks, once there are any."""
    if step == "vgpu" and d.placement is not None:
        _make_vgpu(d, options, conn, journal)
    elif step == "files":
        _write_files(d, journal)
    elif step == "define":
        journal.record("domain", name=d.name, uri=conn.getURI())
        conn.defineXML(d.xml)
    elif step == "start":
        conn.lookupByName(d.name).create()
    elif step == "ready":
        dom = conn.lookupByName(d.name)
        agent = agent_command(dom) if d.spec.virt_type != "test" else None
        report = wait_for_report(Path(d.spec.console_log), dom, options.ready_timeout, agent)
    elif step == "verify":
        checks = verify(report, request.vcpus, request.memory_mib, d.gpu, options.expected_output)
        wrong = failed(checks)
        if wrong:
            raise UserError("the guest contradicts the request: " + "; ".join(
                f"{c.name}: asked {c.expected}, guest has {c.seen}" + (f" ({c.note})" if c.note else "")
                for c in wrong))
    return report, checks


def dry_run(request: Request, options: Options, conn) -> dict:
    d = draft(request, options, conn)
    return {"schema": SCHEMA, "dry_run": True, "name": d.name, "uri": conn.getURI(),
            "virt_type": d.spec.virt_type, "request": request.to_json(), "vgpu": d.vgpu_json(),
            "schema_valid": None if d.schema_note else True, "schema_note": d.schema_note,
            "directory": str(d.directory), "xml": d.xml}


def _place(request: Request, tree: SysfsTree) -> tuple[Placement, str]:
    host = read_host(tree)
    if not host.boards:
        raise UserError(f"no vGPU-capable board under {tree.root} (no mdev_bus parents, no NVIDIA "
                        "SR-IOV VFs); is the NVIDIA vGPU Manager driver loaded?")
    try:
        profile = request.vgpu_profile or profile_of_slice(host, request.gpu_model or "", request.gpu_fraction,
                                                           request.series).short
        return place(host, profile), profile
    except (PlacementError, SliceError) as exc:
        raise UserError(str(exc)) from None


def _can_attach(uri: str, sysfs_root: str) -> tuple[bool, str | None]:
    """Whether QEMU could be given the vGPU, and why not. A remote libvirt checks for itself."""
    if urlparse(uri).hostname:
        return True, None
    if not os.path.exists("/dev/vfio/vfio") or not any(Path("/sys/kernel/iommu_groups").glob("*")):
        return False, "this host has no VFIO (/dev/vfio/vfio or IOMMU groups missing)"
    if Path(sysfs_root).resolve() != Path("/sys"):
        return False, f"the vGPU exists only in the sysfs tree {sysfs_root}, not in this host's /sys"
    return True, None


def _check_free_name(conn, name: str) -> None:
    import libvirt

    try:
        conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return
        raise
    raise UserError(f"libvirt already has a domain named {name!r}; choose --name, or "
                    f"`offload deploy destroy {name}` if offload made it")


def _make_vgpu(d: Draft, options: Options, conn, journal: Journal) -> None:
    p = d.placement
    root = str(Path(options.sysfs_root).absolute())
    entry = journal.record("vgpu", vgpu_kind="vf" if p.board.layout == "sriov" else "mdev", id=d.vgpu_id,
                           board=p.board.address, type_id=p.type.id, sysfs_root=root, uri=conn.getURI(),
                           backend=None)
    # libvirt's node devices describe the real host: only offer it the vGPU when sysfs is /sys.
    on_host = Path(root).resolve() == Path("/sys") and not is_test_driver(conn)
    _, backend = create_vgpu(SysfsTree(root), p, d.vgpu_id, conn if on_host else None)
    journal.update(entry, backend=backend)


def _write_files(d: Draft, journal: Journal) -> None:
    xml_path = d.directory / "domain.xml"
    journal.record("file", path=str(xml_path))
    xml_path.write_text(d.xml)
    console = Path(d.spec.console_log)
    journal.record("file", path=str(console))
    console.touch(mode=0o644)


def _mark_deployed(conn, d: Draft, journal: Journal) -> None:
    """Tag the domain `deployed` so that `gc` leaves it alone even without its journal."""
    import libvirt

    dom = conn.lookupByName(d.name)
    facts = dict(read_tag(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)) or {}, status="deployed")
    text = ET.tostring(tag(facts, in_domain=False), encoding="unicode")
    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
    try:
        dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, text, PREFIX, NAMESPACE, flags)
    except libvirt.libvirtError:
        if dom.isActive():
            raise
        dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, text, PREFIX, NAMESPACE,
                        libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    journal.set(status="deployed")


def _inject(fault: str | None, step: str) -> None:
    if not fault:
        return
    at, _, how = fault.partition(":")
    if at not in STEPS:
        raise UserError(f"{FAULT_ENV}={fault!r}: the steps are {', '.join(STEPS)}")
    if at != step:
        return
    if how == "stall":
        while True:
            time.sleep(3600)
    raise InjectedFault(f"injected fault after step {step!r}")


def _gpu_words(checks) -> str:
    gpu = next(c for c in checks if c.name == "gpu")
    if gpu.expected == "no vGPU":
        return "none requested"
    return gpu.status + (f" ({gpu.note})" if gpu.status != "verified" and gpu.note else "")

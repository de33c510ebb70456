"""Real deployments through the libvirtd that scripts/setup-libvirt.sh started, booting the probe
guest (Debian's cloud kernel and a busybox initramfs built here) under QEMU.

KVM is used when it really works, plain emulation otherwise, decided by booting the probe
guest under KVM once per host boot (cached in .cache/guest/virt-type.json): a paravirtual
/dev/kvm that stock guests cannot run under looks fine to libvirt's capabilities.
The vGPU lives in a sysfs fixture (no vGPU here), so it is made and removed but never
attached: the GPU check must say `not verified`, and everything else is checked from inside.
"""

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from deploy_support import (ROOT, SMALL_CATALOG, guest_parts, leftovers, offload_cli,  # noqa: F401 - fixtures
                            offload_command, system_uri, t4_host, write_plan)
from deployer.domain_xml import DomainSpec, KernelBoot, build_domain_xml
from deployer.guest_report import parse_report
from deployer.probe_guest import build_initramfs

pytestmark = [pytest.mark.libvirtd, pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="session")
def conn(system_uri):
    import libvirt
    connection = libvirt.open(system_uri)
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def virt_type(conn, guest_parts):
    """'kvm' if the probe guest boots and reports under KVM within 15 s, else 'qemu'."""
    import libvirt
    kernel, busybox = guest_parts
    cache = kernel.parent / "virt-type.json"        # where QEMU can read, beside the kernel
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    if cache.exists() and json.loads(cache.read_text()).get("boot_id") == boot_id:
        return json.loads(cache.read_text())["virt_type"]
    initrd = build_initramfs(busybox, kernel.parent / "probe-smoke.cpio.gz")
    log = kernel.parent / "smoke-console.log"
    log.unlink(missing_ok=True)
    xml = build_domain_xml(DomainSpec(f"offload-smoke-{uuid.uuid4().hex[:8]}", "kvm", 1, 256,
                                      KernelBoot(str(kernel), str(initrd)), str(log), None))
    report = None
    try:
        dom = conn.createXML(xml)
    except libvirt.libvirtError:            # e.g. QEMU cannot set the host CPU's MSRs under KVM
        dom = None
    deadline = time.monotonic() + 15
    while dom is not None and report is None and time.monotonic() < deadline and dom.isActive():
        time.sleep(0.2)
        report = parse_report(log.read_text(errors="replace") if log.exists() else "", "serial console")
    if dom is not None and dom.isActive():
        dom.destroy()
    choice = "kvm" if report is not None else "qemu"
    cache.write_text(json.dumps({"boot_id": boot_id, "virt_type": choice}))
    return choice


@pytest.fixture
def probe_with_app(guest_parts, tmp_path):
    """The probe initramfs with saxpy (static) inside, and saxpy's output on this host."""
    kernel, busybox = guest_parts
    app = tmp_path / "saxpy"
    subprocess.run(["gcc", "-O2", "-static", "-o", app, ROOT / "samples" / "saxpy.c", "-lm"], check=True)
    expected = tmp_path / "expected-output.txt"
    expected.write_text(subprocess.run([app], capture_output=True, text=True, check=True).stdout)
    initrd = build_initramfs(busybox, kernel.parent / f"probe-saxpy-{os.getpid()}.cpio.gz", app)
    yield initrd, expected
    initrd.unlink()


@pytest.fixture
def probe(guest_parts):
    kernel, busybox = guest_parts
    return build_initramfs(busybox, kernel.parent / "probe.cpio.gz")


def deploy_args(t4_host, tmp_path, kernel, initrd, virt_type, *more):
    plan = write_plan(tmp_path / "results" / "saxpy")
    return ["deploy", plan, "--size", "small", "--gpu", "1/4", "--catalog", SMALL_CATALOG,
            "--connect", "qemu:///system", "--kernel", kernel, "--initrd", initrd, "--virt-type", virt_type,
            "--sysfs-root", t4_host.root, "--state-dir", tmp_path / "state", "--ready-timeout", "60", *more]


def test_a_real_vm_has_the_sizes_vcpus_and_memory_seen_from_inside(conn, virt_type, guest_parts, probe_with_app,
                                                                    t4_host, tmp_path):
    kernel, _ = guest_parts
    initrd, expected = probe_with_app
    before = t4_host.counts()
    done = offload_cli(*deploy_args(t4_host, tmp_path, kernel, initrd, virt_type,
                                    "--expect-output", expected, "--json"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    guest = result["guest"]
    assert (result["status"], result["virt_type"], guest["channel"]) == ("deployed", virt_type, "serial console")
    assert guest["vcpus"] == 2                                         # "small": 2 vCPUs, 512 MiB
    assert abs(guest["mem_firmware_kib"] - 512 * 1024) <= 0.05 * 512 * 1024
    checks = {c["name"]: c["status"] for c in result["checks"]}
    assert checks == {"vcpus": "ok", "memory": "ok", "gpu": "not verified", "app": "ok"}
    assert guest["app_output"].strip() == expected.read_text().strip()
    assert result["gpu"].startswith("not verified (not attached: this host has no VFIO")
    assert result["vgpu"]["id"] in t4_host.mdevs()                   # made, though not attached

    listed = offload_cli("deploy", "list", "--connect", "qemu:///system", "--state-dir", tmp_path / "state", "--json")
    (row,) = [r for r in json.loads(listed.stdout)["deployments"] if r["name"] == "offload-saxpy"]
    assert row["status"] == "deployed" and row["domain"] in ("running", "shut off")
    gone = offload_cli("deploy", "destroy", "offload-saxpy", "--connect", "qemu:///system",
                       "--state-dir", tmp_path / "state")
    assert gone.returncode == 0, gone.stderr
    assert leftovers(conn, t4_host, tmp_path / "state", before) == {}


def test_a_guest_that_sees_fewer_vcpus_fails_the_deployment_and_rolls_back(conn, virt_type, guest_parts, probe,
                                                                            t4_host, tmp_path):
    kernel, _ = guest_parts
    before = t4_host.counts()
    done = offload_cli(*deploy_args(t4_host, tmp_path, kernel, probe, virt_type,
                                    "--cmdline", "console=ttyS0 quiet panic=-1 maxcpus=1"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("offload: the guest contradicts the request: vcpus: asked 2, guest has 1")
    assert done.stderr.count("\n") == 1
    assert leftovers(conn, t4_host, tmp_path / "state", before) == {}


@pytest.mark.parametrize("step", ["define", "start"])
def test_a_killed_command_leaves_what_gc_removes(conn, virt_type, guest_parts, probe, t4_host, tmp_path, step):
    kernel, _ = guest_parts
    before = t4_host.counts()
    child = stalled_deploy(conn, deploy_args(t4_host, tmp_path, kernel, probe, virt_type), step)
    child.send_signal(signal.SIGKILL)
    child.wait()
    left = leftovers(conn, t4_host, tmp_path / "state", before)
    assert left["domains"] == ["offload-saxpy"] and len(left["mdevs"]) == 1 and left["files"]
    done = offload_cli("deploy", "gc", "--connect", "qemu:///system", "--state-dir", tmp_path / "state")
    assert done.returncode == 0, done.stderr
    assert "removed offload-saxpy: domain offload-saxpy" in done.stdout
    assert f"removed offload-saxpy: vgpu {left['mdevs'][0]}" in done.stdout
    assert leftovers(conn, t4_host, tmp_path / "state", before) == {}


def test_a_terminated_command_rolls_back_by_itself(conn, virt_type, guest_parts, probe, t4_host, tmp_path):
    kernel, _ = guest_parts
    before = t4_host.counts()
    child = stalled_deploy(conn, deploy_args(t4_host, tmp_path, kernel, probe, virt_type), "define")
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert (child.returncode, err) == (130, "offload: interrupted\n")
    assert leftovers(conn, t4_host, tmp_path / "state", before) == {}


def test_dry_run_against_libvirtd_says_the_vgpu_cannot_be_attached_here(system_uri, guest_parts, probe, t4_host,
                                                                          tmp_path):
    kernel, _ = guest_parts
    done = offload_cli(*deploy_args(t4_host, tmp_path, kernel, probe, "qemu", "--dry-run", "--json"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["schema_valid"] is True and "<hostdev" not in result["xml"]
    assert result["vgpu"]["attached"] is False and "no VFIO" in result["vgpu"]["not_attached_because"]


def stalled_deploy(conn, args, step: str) -> subprocess.Popen:
    """`offload deploy` in a subprocess, stopped for good right after `step` (define or start)."""
    import libvirt
    child = subprocess.Popen(offload_command(*args), env={**os.environ, "OFFLOAD_DEPLOY_FAULT": f"{step}:stall"},
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while True:
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        try:
            dom = conn.lookupByName("offload-saxpy")
            if step == "define" or dom.isActive():
                break
        except libvirt.libvirtError:
            pass
        time.sleep(0.05)
    time.sleep(0.3)                                     # past the step: in the stall
    return child

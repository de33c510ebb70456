"""The deployment lifecycle on libvirt's test driver and a fixture T4 host: success, teardown,
a fault injected after every step, a guest that is silent or contradicts, destroy and gc.
After every failure nothing may be left: no tagged domain, no new mdev, no changed count, no file.

The test driver runs no guest, so GuestStandIn writes what the guest would print into the
console log; the real guest is booted in test_deploy_libvirtd.py.
"""

import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

from deploy_support import GuestStandIn, leftovers, t4_host, test_conn, write_plan  # noqa: F401 - fixtures
from deployer.deploy import STEPS, InjectedFault, Options, deploy, draft
from deployer.guest_report import GuestError
from deployer.domain_xml import NAMESPACE, PREFIX, read_tag, tag
from deployer.journal import Journal, journals, process_start
from deployer.manage import destroy, gc, list_deployments, tagged_domains
from deployer.request import request_from_sizing
from offloader.errors import UserError
from vgpu.lifecycle import create_vgpu
from vgpu.sysfs import SysfsTree


@pytest.fixture
def setup(t4_host, test_conn, tmp_path):
    plan = write_plan(tmp_path / "results" / "saxpy")
    request = request_from_sizing(plan, plan.with_name("sizing.json"), None)
    options = Options(uri="test:///default", sysfs_root=str(t4_host.root), state_dir=tmp_path / "state",
                      ready_timeout=5)
    return request, options, t4_host.counts()


def test_a_deployment_is_made_verified_listed_and_destroyed(setup, t4_host, test_conn, tmp_path):
    request, options, before = setup
    with GuestStandIn(options.state_dir):
        result = deploy(request, options, test_conn)
    assert result["status"] == "deployed" and result["gpu"] == "verified"
    assert [(c["name"], c["status"]) for c in result["checks"]] == [("vcpus", "ok"), ("memory", "ok"), ("gpu", "verified")]
    mdev = result["vgpu"]["id"]
    assert t4_host.mdevs() == {"5d3e4b7e-8f2a-4c1b-9e6d-2a7f0c9b1e34", mdev}
    (dom, facts), = [(d, f) for d, f in tagged_domains(test_conn) if d.name() == "offload-saxpy"]
    assert dom.isActive() and facts["status"] == "deployed" and facts["vgpu"]["id"] == mdev
    assert [j.data["status"] for j in journals(options.state_dir)] == ["deployed"]
    (row,) = list_deployments(options.state_dir, test_conn)
    assert (row["name"], row["status"], row["domain"], row["vgpu"]) == ("offload-saxpy", "deployed", "running", mdev)
    assert gc(options.state_dir, test_conn) == []                   # a finished deployment is not garbage
    removed = destroy("offload-saxpy", options.state_dir, test_conn)
    assert removed[0] == "domain offload-saxpy" and removed[-1] == f"vgpu {mdev}"
    assert leftovers(test_conn, t4_host, options.state_dir, before) == {}


def test_teardown_after_verifying_leaves_nothing(setup, t4_host, test_conn):
    request, options, before = setup
    with GuestStandIn(options.state_dir):
        result = deploy(request, Options(**{**options.__dict__, "teardown": True}), test_conn)
    assert result["status"] == "verified and torn down"
    assert leftovers(test_conn, t4_host, options.state_dir, before) == {}


@pytest.mark.parametrize("step", STEPS)
def test_a_failure_after_any_step_rolls_everything_back(setup, t4_host, test_conn, step):
    request, options, before = setup
    with GuestStandIn(options.state_dir), pytest.raises(InjectedFault, match=f"after step '{step}'"):
        deploy(request, Options(**{**options.__dict__, "fault": step}), test_conn)
    assert leftovers(test_conn, t4_host, options.state_dir, before) == {}


def test_a_silent_guest_times_out_and_rolls_back(setup, t4_host, test_conn):
    request, options, before = setup
    with pytest.raises(GuestError, match=r"the guest did not report within 0.5 s .* console: \(nothing\)"):
        deploy(request, Options(**{**options.__dict__, "ready_timeout": 0.5}), test_conn)
    assert leftovers(test_conn, t4_host, options.state_dir, before) == {}


def test_a_guest_that_contradicts_the_request_fails_the_deployment(setup, t4_host, test_conn):
    request, options, before = setup
    with GuestStandIn(options.state_dir, vcpus=1, memory_mib=200), pytest.raises(UserError) as failure:
        deploy(request, options, test_conn)
    assert str(failure.value).startswith("the guest contradicts the request: vcpus: asked 2, guest has 1; "
                                         "memory: asked 256 MiB (within 5%), guest has 199 MiB")
    assert leftovers(test_conn, t4_host, options.state_dir, before) == {}


def test_an_attached_vgpu_the_guest_does_not_see_fails(setup, t4_host, test_conn):
    request, options, before = setup
    with GuestStandIn(options.state_dir, gpu=False), pytest.raises(
            UserError, match="gpu: asked T4-4C, guest has no NVIDIA device .*attached but the guest does not see it"):
        deploy(request, options, test_conn)
    assert leftovers(test_conn, t4_host, options.state_dir, before) == {}


def test_a_domain_offload_did_not_make_is_never_touched(setup, t4_host, test_conn):
    request, options, before = setup
    foreign = test_conn.defineXML("<domain type='test'><name>offload-saxpy</name><memory>65536</memory>"
                                  "<os><type>hvm</type></os></domain>")
    with pytest.raises(UserError, match="libvirt already has a domain named 'offload-saxpy'"):
        deploy(request, options, test_conn)
    with pytest.raises(UserError, match="no deployment named 'offload-saxpy'"):
        destroy("offload-saxpy", options.state_dir, test_conn)
    assert gc(options.state_dir, test_conn) == [] and foreign.name() == "offload-saxpy"
    assert leftovers(test_conn, t4_host, options.state_dir, before) == {}


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def left_behind(request, options, conn) -> Journal:
    """What a command killed right after `define` leaves: a journal naming a vGPU, two files
    and a defined domain, of a process that no longer exists."""
    d = draft(request, options, conn)
    journal = Journal.begin(d.state_dir, d.name, conn.getURI(), d.id)
    journal.set(pid=dead_pid(), pid_start=None)
    journal.record("vgpu", vgpu_kind="mdev", id=d.vgpu_id, board=d.placement.board.address,
                   type_id=d.placement.type.id, sysfs_root=options.sysfs_root, uri=conn.getURI(), backend=None)
    create_vgpu(SysfsTree(options.sysfs_root), d.placement, d.vgpu_id)
    for name in ("domain.xml", "console.log"):
        journal.record("file", path=str(d.directory / name))
        (d.directory / name).write_text(d.xml)
    journal.record("domain", name=d.name, uri=conn.getURI())
    conn.defineXML(d.xml)
    return journal


def test_gc_undoes_what_a_killed_command_left(setup, t4_host, test_conn):
    request, options, before = setup
    journal = left_behind(request, options, test_conn)
    assert leftovers(test_conn, t4_host, options.state_dir, before) != {}
    (row,) = list_deployments(options.state_dir, test_conn)
    assert row["status"] == "left behind (run `offload deploy gc`)"
    removed = gc(options.state_dir, test_conn)
    assert removed == ["offload-saxpy: domain offload-saxpy", f"offload-saxpy: file {journal.directory}/console.log",
                       f"offload-saxpy: file {journal.directory}/domain.xml",
                       f"offload-saxpy: vgpu {journal.entries[0]['id']}"]
    assert leftovers(test_conn, t4_host, options.state_dir, before) == {}


def test_gc_leaves_a_deployment_in_progress_alone(setup, t4_host, test_conn):
    request, options, before = setup
    journal = left_behind(request, options, test_conn)
    journal.set(pid=os.getpid(), pid_start=process_start(os.getpid()))   # its command still runs
    assert gc(options.state_dir, test_conn) == []
    with pytest.raises(UserError, match="offload-saxpy is still being deployed by process"):
        destroy("offload-saxpy", options.state_dir, test_conn)
    journal.set(pid=dead_pid(), pid_start=None)
    assert len(gc(options.state_dir, test_conn)) == 4
    assert leftovers(test_conn, t4_host, options.state_dir, before) == {}


def test_gc_removes_a_tagged_domain_whose_journal_is_gone(setup, t4_host, test_conn):
    request, options, before = setup
    journal = left_behind(request, options, test_conn)
    mdev = journal.entries[0]["id"]
    journal.discard()
    import libvirt
    dom = test_conn.lookupByName("offload-saxpy")
    facts = dict(read_tag(dom.XMLDesc(0)), **{"created-by": {"pid": dead_pid(), "start": None,
                                                             "host": os.uname().nodename}})
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, ET.tostring(tag(facts, in_domain=False), encoding="unicode"),
                    PREFIX, NAMESPACE, libvirt.VIR_DOMAIN_AFFECT_CONFIG)          # its creator is gone
    assert gc(options.state_dir, test_conn) == ["offload-saxpy: domain offload-saxpy", f"offload-saxpy: vgpu {mdev}"]
    assert leftovers(test_conn, t4_host, options.state_dir, before) == {}


def test_destroy_of_an_unknown_name_is_one_clear_error(setup, test_conn):
    _, options, _ = setup
    with pytest.raises(UserError, match=r"no deployment named 'nothing' in .*/state/deployments or on test:///default"):
        destroy("nothing", options.state_dir, test_conn)


def test_a_fault_name_must_be_a_step(setup, t4_host, test_conn):
    request, options, before = setup
    with pytest.raises(UserError, match="OFFLOAD_DEPLOY_FAULT='boot': the steps are vgpu, files, define"):
        deploy(request, Options(**{**options.__dict__, "fault": "boot"}), test_conn)
    assert leftovers(test_conn, t4_host, options.state_dir, before) == {}

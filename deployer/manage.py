"""`offload deploy list`, `destroy NAME` and `gc`: deployments after the command that made them.

A deployment is known two ways: its journal in the state directory, and the metadata of
its libvirt domain (which records the journal's directory and the vGPU). `gc` collects what
a killed command left behind:
- journals not marked `deployed` whose process is gone: everything they record is undone;
- tagged domains whose journal is gone, that were never marked `deployed` and whose
  creating process is gone: the domain and the vGPU its metadata names are removed;
- hidden half-made journal directories of dead processes.
It never touches a deployment still being made (its process is alive) or one that finished.
"""

from __future__ import annotations

import os
from pathlib import Path

from offloader.errors import UserError
from vgpu.lifecycle import remove_vgpu
from vgpu.sysfs import SysfsTree

from .domain_xml import read_tag
from .journal import Journal, journals, process_start, remove_stale_staging
from .rollback import remove_domain, undo


def tagged_domains(conn) -> list[tuple[object, dict]]:
    """Every domain on the connection that offload made, with its metadata."""
    import libvirt

    found = []
    for dom in conn.listAllDomains(0):
        try:
            facts = read_tag(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        except libvirt.libvirtError:
            continue                    # vanished while listing
        if facts is not None:
            found.append((dom, facts))
    return found


def list_deployments(state_dir: Path, conn) -> list[dict]:
    rows: dict[str, dict] = {}
    for journal in journals(state_dir):
        status = journal.data["status"]
        if status == "deploying" and not journal.owner_alive():
            status = "left behind (run `offload deploy gc`)"
        rows[journal.name] = {"name": journal.name, "status": status, "domain": "not defined",
                              "uri": journal.data["uri"], "vgpu": _vgpu_of(journal), "app": None}
    for dom, facts in tagged_domains(conn):
        row = rows.setdefault(dom.name(), {"name": dom.name(), "uri": conn.getURI(),
                                           "status": f"{facts.get('status')} (no journal)",
                                           "vgpu": (facts.get("vgpu") or {}).get("id")})
        row.update(domain=_state(dom), app=facts.get("app"))
    return sorted(rows.values(), key=lambda r: r["name"])


def destroy(name: str, state_dir: Path, conn) -> list[str]:
    """Stop and undefine the deployment's domain, remove its vGPU and files. Returns what went."""
    directory = Path(state_dir) / "deployments" / name
    if (directory / "journal.json").exists():
        journal = Journal.load(directory)
        if journal.data["status"] == "deploying" and journal.owner_alive():
            raise UserError(f"{name} is still being deployed by process {journal.data['pid']}")
        problems = undo(journal, conn)
        if problems:
            raise UserError(f"could not remove all of {name}: {'; '.join(problems)}")
        return [f"{e['kind']} {e.get('id') or e.get('name') or e.get('path')}" for e in reversed(journal.entries)]
    for dom, facts in tagged_domains(conn):
        if dom.name() == name:
            return _remove_orphan(dom, facts)
    raise UserError(f"no deployment named {name!r} in {directory.parent} or on {conn.getURI()}")


def gc(state_dir: Path, conn) -> list[str]:
    """Undo what killed commands left behind; returns what was removed."""
    removed = [f"half-made journal {p}" for p in remove_stale_staging(state_dir)]
    problems = []
    known = set()
    for journal in journals(state_dir):
        known.add(journal.data.get("id"))
        if journal.data["status"] == "deployed" or journal.owner_alive():
            continue
        trouble = undo(journal, conn)
        problems += trouble
        if not trouble:
            removed += [f"{journal.name}: {e['kind']} {e.get('id') or e.get('name') or e.get('path')}"
                        for e in reversed(journal.entries)]
    for dom, facts in tagged_domains(conn):
        creator = facts.get("created-by") or {}
        if facts.get("status") == "deployed" or facts.get("id") in known or _alive(creator):
            continue
        if (Path(facts.get("state-dir", "")) / "deployments" / dom.name() / "journal.json").exists():
            continue                    # its journal is in another state directory: not ours to judge
        removed += [f"{dom.name()}: {what}" for what in _remove_orphan(dom, facts)]
    if problems:
        raise UserError("gc could not undo everything: " + "; ".join(problems))
    return removed


def _remove_orphan(dom, facts: dict) -> list[str]:
    """A tagged domain without a journal: remove it and the vGPU its metadata names."""
    name = dom.name()
    removed = [f"domain {name}"] if remove_domain(dom, facts.get("id")) else []
    vgpu = facts.get("vgpu") or {}
    if vgpu.get("id") and remove_vgpu(SysfsTree(vgpu["sysfs-root"]), vgpu["kind"], vgpu["id"]):
        removed.append(f"vgpu {vgpu['id']}")
    return removed


def _alive(creator: dict) -> bool:
    """Whether the command that made the domain still runs (on this host; elsewhere, assume so)."""
    if creator.get("host") != os.uname().nodename:
        return True
    pid = creator.get("pid")
    start = process_start(pid) if isinstance(pid, int) else None
    return start is not None and start == creator.get("start")


def _vgpu_of(journal: Journal) -> str | None:
    return next((e["id"] for e in journal.entries if e["kind"] == "vgpu"), None)


def _state(dom) -> str:
    import libvirt

    state = dom.state()[0]
    return {libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
            libvirt.VIR_DOMAIN_PAUSED: "paused", libvirt.VIR_DOMAIN_CRASHED: "crashed"}.get(state, str(state))

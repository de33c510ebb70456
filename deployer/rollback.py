"""Undoing what a journal records, newest first; shared by rollback, `destroy` and `gc`.

Every undo is idempotent (a thing already gone is fine) and careful: a domain is only
destroyed if its metadata carries this deployment's id, so a name reused by someone else
is never touched. A problem with one entry does not stop the others; the journal is kept,
for another try, only while something could not be undone.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from vgpu.lifecycle import remove_vgpu
from vgpu.sysfs import SysfsTree

from .connection import open_connection
from .domain_xml import read_tag
from .journal import Journal


def undo(journal: Journal, conn=None) -> list[str]:
    """Undo the journal's entries; returns the problems (empty: all undone, journal removed).

    `conn` is used for entries on its URI; others get their own connection (libvirt's test
    driver keeps domains per connection, so tests must pass theirs).
    """
    problems = []
    with ExitStack() as stack:
        connections = {conn.getURI(): conn} if conn is not None else {}

        def connection(uri: str):
            if uri not in connections:
                connections[uri] = stack.enter_context(open_connection(uri))
            return connections[uri]

        for entry in reversed(journal.entries):
            try:
                _UNDO[entry["kind"]](entry, journal, connection)
            except Exception as exc:  # noqa: BLE001 - keep undoing the rest, report each
                problems.append(f"{entry['kind']} {entry.get('id') or entry.get('name') or entry.get('path')}: "
                                f"{getattr(exc, 'message', None) or exc}")
    if not problems:
        journal.discard()
    else:
        journal.set(status="rollback incomplete", problems=problems)
    return problems


def remove_domain(dom, deployment_id: str) -> bool:
    """Stop and undefine a domain offload made; False if it is not this deployment's."""
    import libvirt

    facts = read_tag(dom.XMLDesc(0))
    if facts is None or facts.get("id") != deployment_id:
        return False
    if dom.isActive():
        try:
            dom.destroy()
        except libvirt.libvirtError:
            if dom.isActive():
                raise
    if dom.isPersistent():
        dom.undefine()
    return True


def _undo_domain(entry: dict, journal: Journal, connection) -> None:
    import libvirt

    conn = connection(entry["uri"])
    try:
        dom = conn.lookupByName(entry["name"])
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return
        raise
    remove_domain(dom, journal.data["id"])


def _undo_vgpu(entry: dict, journal: Journal, connection) -> None:
    # Until creation returns, the backend is unknown: libvirt may hold a definition too.
    conn = connection(entry["uri"]) if entry.get("backend") != "sysfs" else None
    remove_vgpu(SysfsTree(entry["sysfs_root"]), entry["vgpu_kind"], entry["id"], conn)


def _undo_file(entry: dict, journal: Journal, connection) -> None:
    Path(entry["path"]).unlink(missing_ok=True)


_UNDO = {"domain": _undo_domain, "vgpu": _undo_vgpu, "file": _undo_file}

"""`offload vgpu list`: the boards, vGPU types, profiles and free instances of this host.

    offload vgpu list [--sysfs-root DIR | --connect URI] [--json]

The facts come from sysfs (default /sys; a fixture tree in tests) or, with --connect, from
libvirt's node-device API; NVML adds what the driver says where one is installed.
"""

from __future__ import annotations

import json

import click

from offloader.cliutil import user_errors
from offloader.errors import UserError

SCHEMA = 1


def register(group: click.Group) -> None:
    group.add_command(vgpu_group)


def read_host_from(sysfs_root: str | None, connect: str | None):
    """The host as sysfs or libvirt shows it (not both: they would disagree on a fixture)."""
    if sysfs_root and connect:
        raise UserError("give --sysfs-root or --connect, not both")
    if connect:
        from deployer.connection import open_connection
        from .nodedev import read_host
        with open_connection(connect) as conn:
            return read_host(conn)
    from .sysfs import SysfsTree, read_host
    return read_host(SysfsTree(sysfs_root or "/sys"))


@click.group("vgpu")
def vgpu_group():
    """vGPU boards, types and instances of this host."""


@vgpu_group.command("list")
@click.option("--sysfs-root", metavar="DIR", help="Read this sysfs tree instead of /sys.")
@click.option("--connect", metavar="URI", help="Read libvirt's node devices instead of sysfs.")
@click.option("--json", "as_json", is_flag=True, help="Write the machine-readable listing to stdout.")
@user_errors
def list_command(sysfs_root, connect, as_json):
    """Show boards, vGPU types, profiles and free instances."""
    from .nvml import read_nvml

    host = read_host_from(sysfs_root, connect)
    nvml = read_nvml()
    if as_json:
        click.echo(json.dumps({"schema": SCHEMA, **host.to_json(), "nvml": nvml.to_json()}, indent=2))
        return
    click.echo(f"{host.source}: {len(host.boards)} board(s) with vGPU types")
    for board in host.boards:
        running = ", ".join(f"{v.type_name} {v.id}" for v in board.vgpus) or "none"
        click.echo(f"\n{board.address}  ({board.layout} layout)  running: {running}")
        click.echo(f"  {'TYPE':<12}{'NAME':<16}{'SERIES':<8}{'FRAMEBUFFER':>12}{'FREE':>6}{'MAX':>5}")
        for t in board.types:
            p = t.profile
            click.echo(f"  {t.id:<12}{t.name:<16}{(p.series if p else '-'):<8}"
                       f"{(f'{p.framebuffer_mib} MiB' if p else '-'):>12}{t.available:>6}"
                       f"{(p.max_instances or '-') if p else '-':>5}")
    if nvml.unavailable:
        click.echo(f"\nNVML: {nvml.unavailable}")
    else:
        click.echo(f"\nNVML: driver {nvml.driver_version}")
        for gpu in nvml.gpus:
            pending = f" (after reset: {gpu.mig_pending})" if gpu.mig_pending else ""
            click.echo(f"  GPU {gpu.index} {gpu.name} {gpu.pci_bus_id}: {gpu.memory_mib} MiB, "
                       f"MIG {gpu.mig}{pending}, {len(gpu.vgpu_types)} vGPU types"
                       + (f" ({gpu.vgpu_note})" if gpu.vgpu_note else ""))

"""The `offload deploy` verbs; `register(group)` adds them to the `offload` click group.

    offload deploy PLAN.json [--from-sizing SIZING.json | --size NAME --gpu FRACTION [--catalog F]]
                   [--series C|Q|B|A] [--connect URI] [--image DISK | --kernel VMLINUZ [--initrd F]
                   [--cmdline TEXT]] [--sysfs-root DIR] [--virt-type kvm|qemu] [--name NAME]
                   [--state-dir DIR] [--ready-timeout S] [--expect-output FILE] [--teardown]
                   [--dry-run] [--json]
    offload deploy list | destroy NAME | gc     [--connect URI] [--state-dir DIR] [--json]
    offload deploy probe-initrd OUT.cpio.gz --busybox STATIC_BUSYBOX [--app STATIC_EXE]

`offload deploy PLAN` is short for `offload deploy create PLAN`. Bad input is one line on
stderr and exit status 2; a guest that contradicts the request fails the command (status 2)
after everything it made is rolled back.
"""

from __future__ import annotations

import json
import signal
import struct
from pathlib import Path

import click

from offloader.errors import UserError
from offloader.cliutil import user_errors

from .connection import DEFAULT_URI


def register(group: click.Group) -> None:
    group.add_command(deploy_group)


class _DefaultToCreate(click.Group):
    """`offload deploy PLAN ...` runs `create`; the other verbs are named."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["create", *args]
        return super().parse_args(ctx, args)


@click.group("deploy", cls=_DefaultToCreate)
def deploy_group():
    """Deploy the sized VM with its vGPU on KVM through libvirt, and verify it from inside.

    offload deploy PLAN.json [options] is short for offload deploy create PLAN.json.
    """


def _common(func):
    func = click.option("--state-dir", metavar="DIR",
                        help="Where deployments are journaled (default $OFFLOAD_STATE_DIR, "
                             "/var/lib/offload as root, else ~/.local/state/offload).")(func)
    func = click.option("--connect", "uri", default=DEFAULT_URI, show_default=True, metavar="URI",
                        help="libvirt connection URI.")(func)
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(func)


@deploy_group.command("create")
@click.argument("plan", metavar="PLAN.json")
@click.option("--from-sizing", metavar="SIZING.json", help="Take the size sizing recommended "
              "(default: sizing.json beside the plan).")
@click.option("--size", metavar="NAME", help="A CPU size of the catalog, instead of sizing's choice.")
@click.option("--gpu", metavar="FRACTION", help="With --size: the share of a GPU (0.25, 1/2, 1; 0 for none).")
@click.option("--catalog", metavar="FILE.toml", help="With --size: the catalog (default: the shipped one).")
@click.option("--series", metavar="C|Q|B|A", help="vGPU series (default C, compute; or the one sizing names).")
@click.option("--image", metavar="DISK", help="Boot this disk image (qcow2 or raw).")
@click.option("--kernel", metavar="VMLINUZ", help="Boot this kernel directly.")
@click.option("--initrd", metavar="FILE", help="With --kernel: its initramfs.")
@click.option("--cmdline", default="console=ttyS0 quiet panic=-1", show_default=True,
              help="With --kernel: the kernel command line.")
@click.option("--sysfs-root", default="/sys", show_default=True, metavar="DIR",
              help="Where to find and make vGPUs (a fixture tree in tests).")
@click.option("--virt-type", type=click.Choice(["kvm", "qemu"]), default="kvm", show_default=True,
              help="KVM, or plain QEMU emulation where KVM does not work.")
@click.option("--name", metavar="NAME", help="Domain name (default offload-APP).")
@click.option("--ready-timeout", type=click.FloatRange(0, min_open=True), default=300, show_default=True,
              metavar="S", help="Seconds to wait for the guest's report.")
@click.option("--expect-output", metavar="FILE",
              help="The app's output on the verification host; the guest's run must match it.")
@click.option("--teardown", is_flag=True, help="After verifying, stop and undefine the VM, remove its vGPU.")
@click.option("--dry-run", is_flag=True, help="Print the domain XML and the vGPU it would make; change nothing.")
@_common
@user_errors
def create_command(plan, from_sizing, size, gpu, catalog, series, image, kernel, initrd, cmdline, sysfs_root,
                   virt_type, name, ready_timeout, expect_output, teardown, dry_run, uri, state_dir, as_json):
    """Deploy PLAN's app on a VM of the chosen size with its vGPU, and verify it."""
    from .connection import open_connection
    from .deploy import Options, deploy, dry_run as make_draft
    from .domain_xml import DiskBoot, KernelBoot
    from .request import check_series, request_from_size, request_from_sizing

    series = check_series(series)
    if size or gpu is not None:
        if from_sizing or not (size and gpu is not None):
            raise UserError("--size and --gpu go together, instead of --from-sizing")
        request = request_from_size(plan, size, gpu, catalog, series)
    else:
        sizing = from_sizing or Path(plan).with_name("sizing.json")
        if not from_sizing and not Path(sizing).exists():
            raise UserError(f"no {sizing}: give --from-sizing SIZING.json, or --size NAME --gpu FRACTION")
        request = request_from_sizing(plan, sizing, series)
    if image and kernel:
        raise UserError("give --image or --kernel, not both")
    if initrd and not kernel:
        raise UserError("--initrd goes with --kernel")
    boot = None
    if image:
        path = _existing(image, "--image")
        with open(path, "rb") as handle:
            boot = DiskBoot(path, "qcow2" if handle.read(4) == b"QFI\xfb" else "raw")
    elif kernel:
        boot = KernelBoot(_existing(kernel, "--kernel"), _existing(initrd, "--initrd") if initrd else None, cmdline)
    expected = Path(_existing(expect_output, "--expect-output")).read_text() if expect_output else None
    options = Options(uri=uri, sysfs_root=sysfs_root, boot=boot, name=name, virt_type=virt_type,
                      state_dir=Path(state_dir) if state_dir else None, ready_timeout=ready_timeout,
                      expected_output=expected, teardown=teardown)
    with open_connection(uri) as conn:
        if dry_run:
            result = make_draft(request, options, conn)
            if as_json:
                click.echo(json.dumps(result, indent=2))
            else:
                click.echo(result["xml"], nl=False)
                click.echo(_describe_vgpu(result["vgpu"], "would make"), err=True)
                click.echo(f"schema: {result['schema_note'] or 'valid (virt-xml-validate)'}", err=True)
            return
        signal.signal(signal.SIGTERM, _interrupt)     # roll back on `kill`, as on Ctrl-C
        result = deploy(request, options, conn)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    r = result["request"]
    click.echo(f"{result['status']}: {result['name']} on {result['uri']} ({result['virt_type']}), "
               f"{r['vcpus']} vCPUs, {r['memory_mib']} MiB")
    click.echo(_describe_vgpu(result["vgpu"], "made"))
    for check in result["checks"]:
        click.echo(f"  {check['name']:<7} {check['status']:<13} asked {check['expected']}, guest has {check['seen']}"
                   + (f"  ({check['note']})" if check["note"] else ""))
    if result["gpu"].startswith("not verified"):
        click.echo(f"offload: warning: GPU {result['gpu']}", err=True)


def _state_dir(option: str | None) -> Path:
    from .journal import default_state_dir

    return Path(option) if option else default_state_dir()


@deploy_group.command("list")
@_common
@user_errors
def list_command(uri, state_dir, as_json):
    """Deployments offload made: journaled, or tagged in libvirt."""
    from .connection import open_connection
    from .manage import list_deployments

    with open_connection(uri) as conn:
        rows = list_deployments(_state_dir(state_dir), conn)
    if as_json:
        click.echo(json.dumps({"schema": 1, "deployments": rows}, indent=2))
        return
    if not rows:
        click.echo("no deployments")
    for row in rows:
        click.echo(f"{row['name']:<24} {row['status']:<40} domain {row['domain']:<12} vgpu {row['vgpu'] or '-'}")


@deploy_group.command("destroy")
@click.argument("name")
@_common
@user_errors
def destroy_command(name, uri, state_dir, as_json):
    """Stop and undefine a deployment's VM, remove its vGPU and files."""
    from .connection import open_connection
    from .manage import destroy

    with open_connection(uri) as conn:
        removed = destroy(name, _state_dir(state_dir), conn)
    _report_removed(removed, as_json)


@deploy_group.command("gc")
@_common
@user_errors
def gc_command(uri, state_dir, as_json):
    """Remove the domains, vGPUs and files that killed commands left behind."""
    from .connection import open_connection
    from .manage import gc

    with open_connection(uri) as conn:
        removed = gc(_state_dir(state_dir), conn)
    _report_removed(removed, as_json)


@deploy_group.command("probe-initrd")
@click.argument("out", metavar="OUT.cpio.gz")
@click.option("--busybox", required=True, metavar="FILE", help="A statically linked busybox (busybox-static).")
@click.option("--app", metavar="FILE", help="A statically linked app for the guest to run and report.")
@user_errors
def probe_initrd_command(out, busybox, app):
    """Build the probe guest: an initramfs that reports what the VM sees, then powers off."""
    from .probe_guest import build_initramfs

    for path, what in ((busybox, "--busybox"), (app, "--app")):
        if path and not _is_static(Path(_existing(path, what))):
            raise UserError(f"{what} must be statically linked: the probe guest has no C library", file=path)
    click.echo(build_initramfs(Path(busybox), Path(out), Path(app) if app else None))


def _report_removed(removed: list[str], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"schema": 1, "removed": removed}, indent=2))
    else:
        click.echo("\n".join(f"removed {what}" for what in removed) or "nothing to remove")


def _describe_vgpu(vgpu: dict | None, verb: str) -> str:
    if vgpu is None:
        return "vGPU: none requested"
    attach = "attached" if vgpu["attached"] else f"not attached: {vgpu['not_attached_because']}"
    return f"vGPU: {verb} {vgpu['kind']} {vgpu['id']} ({vgpu['type_name']}, {vgpu['type_id']}) on {vgpu['board']}; {attach}"


def _existing(path: str, option: str) -> str:
    if not Path(path).is_file():
        raise UserError(f"{option}: no such file", file=path)
    return str(Path(path).absolute())


def _is_static(path: Path) -> bool:
    """An ELF executable without a program interpreter (PT_INTERP) needs no C library."""
    with path.open("rb") as handle:
        header = handle.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt

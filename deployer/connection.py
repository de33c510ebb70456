"""Opening a libvirt connection: the one place that imports libvirt for the deployer.

libvirt-python prints every error to stderr through its default handler before raising it;
that handler is silenced here, so errors reach the user once, as one line.
"""

from __future__ import annotations

from contextlib import contextmanager

from offloader.errors import UserError

DEFAULT_URI = "qemu:///system"


def libvirt_module():
    """The libvirt module, or a UserError saying how to get it."""
    try:
        import libvirt
    except ImportError:
        raise UserError("libvirt-python is not installed: pip install 'offload[deploy]' "
                        "(needs libvirt-dev and pkg-config; scripts/setup-libvirt.sh does it all)") from None
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


@contextmanager
def open_connection(uri: str = DEFAULT_URI):
    libvirt = libvirt_module()
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        hint = (" (is libvirtd running? scripts/setup-libvirt.sh starts one)"
                if uri.startswith("qemu") else "")
        raise UserError(f"cannot connect to {uri}: {exc}{hint}") from None
    try:
        yield conn
    finally:
        conn.close()


def is_test_driver(conn) -> bool:
    return conn.getType().upper() == "TEST"

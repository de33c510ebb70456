"""The probe guest: a busybox initramfs whose init reports what the VM sees, then powers off.

It lets a host be checked end to end without a guest image: boot it on any Linux kernel
(`--kernel vmlinuz --initrd probe.cpio.gz`) and the verification reads vCPUs, memory and GPUs
from the serial console, exactly as it would from a production image running
guest/offload-facts.sh. With an app bundle, the initramfs also carries the offloaded app and
the guest runs it, so its output can be compared with the verification host's.

The cpio archive (newc format, what the kernel unpacks) is written here rather than with
cpio(1), which a Debian host may lack; it also lets /dev/console exist without mknod rights.
"""

from __future__ import annotations

import gzip
import io
import stat
from pathlib import Path

FACTS_SCRIPT = Path(__file__).with_name("guest") / "offload-facts.sh"
FACTS_PATH = "usr/local/sbin/offload-facts"
APP_DIR = "opt/offload/app"

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
/usr/local/sbin/offload-facts
poweroff -f
"""


class _Cpio:
    """Just enough of the newc format for an initramfs: directories, files, device nodes."""

    def __init__(self) -> None:
        self._out = io.BytesIO()
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        encoded = name.encode() + b"\0"
        fields = (self._ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data),
                  0, 0, rdev[0], rdev[1], len(encoded), 0)
        self._ino += 1
        self._out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + encoded)
        self._pad()
        self._out.write(data)
        self._pad()

    def _pad(self) -> None:
        self._out.write(b"\0" * (-self._out.tell() % 4))

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, executable: bool = False) -> None:
        self._entry(name, stat.S_IFREG | (0o755 if executable else 0o644), data)

    def char_device(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self._out.getvalue()


def build_initramfs(busybox: Path, out: Path, app: Path | None = None) -> Path:
    """Write a gzip'd initramfs to `out`: busybox, the facts script, and optionally an app.

    `app` is a statically linked executable (the guest has no C library); it runs as
    /opt/offload/app/run, in that directory.
    """
    archive = _Cpio()
    for d in ("bin", "dev", "proc", "sys", "tmp", "usr", "usr/local", "usr/local/sbin"):
        archive.directory(d)
    archive.char_device("dev/console", 5, 1)
    archive.file("bin/busybox", Path(busybox).read_bytes(), executable=True)
    archive.file("init", INIT.encode(), executable=True)
    archive.file(FACTS_PATH, FACTS_SCRIPT.read_bytes(), executable=True)
    if app is not None:
        for d in ("opt", "opt/offload", APP_DIR):
            archive.directory(d)
        archive.file(f"{APP_DIR}/run", Path(app).read_bytes(), executable=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(gzip.compress(archive.finish(), compresslevel=6, mtime=0))
    tmp.chmod(0o644)
    tmp.replace(out)
    return out

"""The probe guest's initramfs, read back entry by entry (the boot itself is in test_deploy_libvirtd.py)."""

import gzip
import stat
import subprocess
import sys

import pytest

from deploy_support import offload_cli
from deployer.probe_guest import FACTS_SCRIPT, build_initramfs


def entries(archive: bytes) -> dict[str, tuple[int, int, bytes]]:
    """name -> (mode, rdev major, data) of a newc cpio archive."""
    out, offset = {}, 0
    while True:
        header = archive[offset:offset + 110]
        assert header[:6] == b"070701"
        fields = [int(header[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, rdev_major, name_size = fields[1], fields[6], fields[9], fields[11]
        name_at = offset + 110
        name = archive[name_at:name_at + name_size - 1].decode()
        data_at = name_at + name_size + (-(110 + name_size) % 4)
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, rdev_major, archive[data_at:data_at + size])
        offset = data_at + size + (-size % 4)


@pytest.fixture
def static_exe(tmp_path):
    source = tmp_path / "hello.c"
    source.write_text('#include <stdio.h>\nint main(void) { puts("hello from the guest"); return 0; }\n')
    exe = tmp_path / "hello"
    subprocess.run(["gcc", "-static", "-O2", "-o", exe, source], check=True)
    return exe


def test_the_initramfs_has_init_busybox_the_facts_script_a_console_and_the_app(tmp_path, static_exe):
    out = build_initramfs(static_exe, tmp_path / "probe.cpio.gz", app=static_exe)   # any static ELF as busybox
    found = entries(gzip.decompress(out.read_bytes()))
    assert found["init"][2].startswith(b"#!/bin/busybox sh\n") and found["init"][0] & 0o111
    assert found["usr/local/sbin/offload-facts"][2] == FACTS_SCRIPT.read_bytes()
    mode, major, _ = found["dev/console"]
    assert stat.S_ISCHR(mode) and major == 5
    assert found["opt/offload/app/run"][2] == static_exe.read_bytes()
    assert found["bin/busybox"][0] & 0o111


def test_probe_initrd_refuses_a_dynamically_linked_app(tmp_path, static_exe):
    done = offload_cli("deploy", "probe-initrd", tmp_path / "p.cpio.gz", "--busybox", static_exe,
                       "--app", sys.executable)
    assert done.returncode == 2
    assert done.stderr == (f"offload: {sys.executable}: --app must be statically linked: "
                           "the probe guest has no C library\n")
    done = offload_cli("deploy", "probe-initrd", tmp_path / "p.cpio.gz", "--busybox", static_exe)
    assert done.returncode == 0 and done.stdout.strip() == str(tmp_path / "p.cpio.gz")


def test_the_facts_script_reports_this_host_as_a_guest_would(tmp_path):
    """The script is POSIX sh over /proc and /sys: run here, it reports this machine."""
    from deployer.guest_report import parse_report
    done = subprocess.run(["sh", FACTS_SCRIPT], capture_output=True, text=True, check=True)
    report = parse_report(done.stdout, "serial console")
    assert report.vcpus == len([line for line in open("/proc/cpuinfo") if line.startswith("processor")])
    assert report.mem_total_kib > 0 and report.app_output is None

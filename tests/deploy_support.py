"""Shared parts of the vgpu and deploy tests: fixture hosts, plans, libvirt, leftovers.

- `t4_host` / `l4_host`: a sysfs fixture tree materialised in tmp_path with the kernel
  stand-in running (tests/sysfs_kernel.py).
- `test_conn`: libvirt's test:///default driver. Each new connection to it starts empty, so
  a test defines, starts and checks in this one connection.
- `system_uri`: the real libvirtd that scripts/setup-libvirt.sh started; the test is
  skipped, with the script's reason, only where the script could not provide it.
- `GuestStandIn`: the guest's side for the test driver, which runs no guest: it writes the
  facts a guest would print into the console log.
- `leftovers`: what a deployment could leave behind, counted.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sysfs_kernel import FIXTURES, Kernel, materialize

ROOT = Path(__file__).resolve().parent.parent
SETUP_STATUS = ROOT / ".cache" / "libvirt-setup.env"
SMALL_CATALOG = Path(__file__).resolve().parent / "fixtures" / "deploy" / "catalog-small.toml"
T4_EXISTING_MDEV = "5d3e4b7e-8f2a-4c1b-9e6d-2a7f0c9b1e34"


class FixtureHost:
    def __init__(self, root: Path, kernel: Kernel) -> None:
        self.root = root
        self.kernel = kernel

    def mdevs(self) -> set[str]:
        return set(os.listdir(self.root / "bus/mdev/devices"))

    def counts(self) -> dict[str, str]:
        """Every type's available_instances (VFs: creatable lists), to compare before/after."""
        self.kernel.settle()
        out = {str(p.relative_to(self.root)): p.read_text().strip()
               for p in self.root.glob("devices/**/available_instances")}
        out.update({str(p.relative_to(self.root)): p.read_text().strip()
                    for p in self.root.glob("devices/**/nvidia/*_vgpu_type*")})
        return out


def _host(tmp_path: Path, manifest: str):
    root = materialize(FIXTURES / manifest, tmp_path / "sys")
    with Kernel(root) as kernel:
        yield FixtureHost(root, kernel)


@pytest.fixture
def t4_host(tmp_path):
    yield from _host(tmp_path, "t4-host.tree")


@pytest.fixture
def l4_host(tmp_path):
    yield from _host(tmp_path, "l4-sriov-host.tree")


def setup_status() -> dict[str, str]:
    """What scripts/setup-libvirt.sh recorded it provided (or why it could not)."""
    if not SETUP_STATUS.exists():
        return {"OFFLOAD_LIBVIRT_UNAVAILABLE": "scripts/setup-libvirt.sh has not run (make test runs it)"}
    status = {}
    for line in SETUP_STATUS.read_text().splitlines():
        key, _, value = line.partition("=")
        status[key] = shlex.split(value)[0] if value else ""
    return status


def libvirt_or_skip():
    try:
        import libvirt
    except ImportError:
        pytest.skip("libvirt-python is not installed: " + setup_status().get(
            "OFFLOAD_LIBVIRT_UNAVAILABLE", "run scripts/setup-libvirt.sh"))
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


@pytest.fixture
def test_conn():
    libvirt = libvirt_or_skip()
    conn = libvirt.open("test:///default")
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def system_uri():
    status = setup_status()
    if "OFFLOAD_LIBVIRT_UNAVAILABLE" in status:
        pytest.skip(f"no libvirtd: {status['OFFLOAD_LIBVIRT_UNAVAILABLE']}")
    libvirt = libvirt_or_skip()
    uri = status["OFFLOAD_LIBVIRT_URI"]
    try:
        libvirt.open(uri).close()
    except libvirt.libvirtError as exc:
        pytest.fail(f"scripts/setup-libvirt.sh reported libvirtd at {uri}, but: {exc}")
    return uri


@pytest.fixture(scope="session")
def guest_parts():
    """The Debian cloud kernel and static busybox the setup script unpacked."""
    status = setup_status()
    if "OFFLOAD_GUEST_KERNEL" not in status:
        pytest.skip(f"no guest kernel: {status.get('OFFLOAD_LIBVIRT_UNAVAILABLE')}")
    return Path(status["OFFLOAD_GUEST_KERNEL"]), Path(status["OFFLOAD_GUEST_BUSYBOX"])


def write_plan(directory: Path, app: str = "saxpy", vcpus: int = 2, memory_gib: float = 0.25,
               fraction: float = 0.25, vgpu_type: str | None = "T4-4C") -> Path:
    """plan.json and, beside it, sizing.json shaped like `offload size` writes it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "plan.json").write_text(json.dumps({"schema": 1, "app": app, "regions": []}))
    recommendation = {"config": "small+quarter-T4", "cpu": "small", "gpu": "quarter-T4", "vcpus": vcpus,
                      "memory_gib": memory_gib, "fraction": fraction, "vgpu_type": vgpu_type,
                      "price_per_hour": 0.25, "predicted_seconds": 1.0, "cost_per_run": 0.0001}
    (directory / "sizing.json").write_text(json.dumps(
        {"schema": 1, "generator": "offload size", "app": app, "gpu_model": "T4",
         "recommendation": recommendation}))
    return directory / "plan.json"


class GuestStandIn:
    """Writes a guest's facts into every new console log under the state directory."""

    def __init__(self, state_dir: Path, vcpus: int = 2, memory_mib: int = 256, gpu: bool = True) -> None:
        self.state_dir = state_dir
        lines = [f"offload-fact: vcpus={vcpus}", f"offload-fact: mem_total_kib={memory_mib * 1024 * 87 // 100}",
                 f"offload-fact: mem_firmware_kib={memory_mib * 1024 - 1000}"]
        if gpu:
            lines += ["offload-fact: gpu_pci=0000:00:05.0 0x10de:0x1eb8 class=0x030000",
                      "offload-fact: gpu_nvidia_smi=GRID T4-4C, 4096"]
        self.text = "\n".join(lines + ["offload-ready", ""])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "GuestStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        written = set()
        while not self._stop.is_set():
            for log in self.state_dir.glob("deployments/*/console.log"):
                if log not in written:
                    log.write_text(self.text)
                    written.add(log)
            time.sleep(0.01)


def leftovers(conn, host: FixtureHost | None, state_dir: Path, counts_before: dict | None = None) -> dict:
    """Everything a deployment could leave: tagged domains, new vGPUs, changed counts, files."""
    from deployer.manage import tagged_domains

    found = {"domains": sorted(dom.name() for dom, _ in tagged_domains(conn)),
             "files": sorted(str(p) for p in state_dir.rglob("*") if p.is_file()) if state_dir.exists() else []}
    if host is not None:
        found["mdevs"] = sorted(host.mdevs() - {T4_EXISTING_MDEV})
        if counts_before is not None:
            now = host.counts()
            found["changed_counts"] = sorted(k for k in now if now[k] != counts_before.get(k))
    return {k: v for k, v in found.items() if v}


def offload_command(*args) -> list[str]:
    """The real `offload` command line."""
    return [sys.executable, "-m", "offloader", *map(str, args)]


def offload_cli(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    """Run `offload` in a subprocess, as the user would."""
    return subprocess.run(offload_command(*args), capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env={**os.environ, **(env or {})})

"""A sysfs fixture tree that behaves like the kernel and the NVIDIA vGPU driver behind it.

Writing a file in a plain directory triggers nothing, so `Kernel` watches a materialised
fixture tree from a thread and does the kernel's part, for this process and any child
(the CLI in a subprocess, a command killed midway, `offload deploy gc`):

- a UUID written to `mdev_supported_types/<type>/create` becomes the mdev: its device
  directory, `mdev_type` and `remove`, the link in the type's `devices/` and in
  `bus/mdev/devices/`; the board's `available_instances` drop as the NVIDIA driver's do on
  a time-sliced board (that type one less, every other type zero);
- `1` written to an mdev's `remove` undoes all of it;
- a type ID written to a VF's `nvidia/current_vgpu_type` (SR-IOV layout) sets it if it is
  creatable there, and narrows the sibling VFs' `creatable_vgpu_types` the same way; `0` frees it.
A refused write is undone (the file goes back), as the kernel's write(2) would fail.

Fixture trees are stored as manifests (tests/fixtures/sysfs/*.tree): git cannot keep the
empty directories sysfs has, and a manifest can be captured from a real host:
    python tests/sysfs_kernel.py capture /sys > my-host.tree
Each line is `dir PATH`, `link PATH -> TARGET` or `file PATH = CONTENT` (\\n for newlines).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vgpu.profiles import parse_profile  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sysfs"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_CREATABLE = re.compile(r"^\s*(\d+)\s*:\s*(.+?)\s*$")


def materialize(manifest: str | Path, dest: str | Path) -> Path:
    """Build the tree a manifest describes under `dest` (a fresh directory)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for number, line in enumerate(Path(manifest).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        kind, rest = line.split(" ", 1)
        if kind == "dir":
            (dest / rest).mkdir(parents=True, exist_ok=True)
        elif kind == "link":
            path, target = rest.split(" -> ", 1)
            (dest / path).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, dest / path)
        elif kind == "file":
            path, _, content = rest.partition(" =")
            (dest / path).parent.mkdir(parents=True, exist_ok=True)
            text = _unescape(content.removeprefix(" "))
            (dest / path).write_text(text + "\n" if text and not text.endswith("\n") else text)
        else:
            raise ValueError(f"{manifest}:{number}: unknown entry {kind!r}")
    return dest


# What `capture` keeps of a device directory: the attributes offload and the fixture kernel
# read; config space, BARs and power state are left out (some cannot even be read).
_KEEP = re.compile(r"^(vendor|device|subsystem_vendor|subsystem_device|class|numa_node|sriov_numvfs|"
                   r"driver|physfn|virtfn\d+|mdev_supported_types|nvidia|mdev_type|remove|subsystem|"
                   r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")


def capture(root: str | Path) -> str:
    """A manifest of the vGPU part of a real sysfs: mdev parents, their mdevs, NVIDIA VFs."""
    root = Path(root)
    lines: list[str] = []
    seen: set[Path] = set()

    def walk(path: Path, device_dir: bool) -> None:
        rel = path.relative_to(root)
        if rel in seen:
            return
        seen.add(rel)
        if path.is_symlink():
            lines.append(f"link {rel} -> {os.readlink(path)}")
        elif path.is_dir():
            lines.append(f"dir {rel}")
            for child in sorted(path.iterdir()):
                if not device_dir or _KEEP.match(child.name):
                    walk(child, _UUID.match(child.name) is not None)
        else:
            try:
                content = path.read_text().rstrip("\n")
            except (OSError, UnicodeDecodeError):
                content = ""                                # write-only, like create
            lines.append(f"file {rel} =" + (f" {_escape(content)}" if content else ""))

    devices = [p for top in ("class/mdev_bus", "bus/mdev/devices") for p in sorted((root / top).glob("*"))]
    devices += [root / "bus/pci/devices" / p.name for p in sorted((root / "class/mdev_bus").glob("*"))]
    vfs = [p for p in sorted((root / "bus/pci/devices").glob("*"))
           if (p / "nvidia" / "creatable_vgpu_types").exists()]
    devices += vfs + sorted({root / "bus/pci/devices" / os.path.realpath(vf / "physfn").rsplit("/", 1)[1]
                             for vf in vfs})
    for top in ("class/mdev_bus", "bus/mdev/devices", "bus/pci/devices"):
        if (root / top).is_dir():
            lines.append(f"dir {top}")
    for link in devices:
        walk(link, True)
        real = Path(os.path.realpath(link))
        walk(real, True)
    for link in [line.split(" ", 1)[1].split(" -> ")[0] for line in lines if line.startswith("link ")]:
        target = Path(os.path.realpath(root / link))        # drivers and buses linked to: kept empty
        if target.is_dir() and target.is_relative_to(root) and target.relative_to(root) not in seen:
            seen.add(target.relative_to(root))
            lines.append(f"dir {target.relative_to(root)}")
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], text)


class Kernel:
    """Does the kernel's part of mdev and VF writes in a fixture tree, until stopped."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sysfs-kernel", daemon=True)
        self._supported = {vf: self._creatable(vf) for vf in self._vfs()}   # every type, as booted
        self._accepted = {vf: self._current(vf) for vf in self._vfs()}      # the driver's state

    def __enter__(self) -> "Kernel":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.settle()
            time.sleep(0.005)

    def settle(self) -> None:
        """Act on every write made so far. The kernel acts within write(2); this stand-in acts
        on its next poll, so a test reading back right after a VF write calls this first."""
        with self._lock:
            self._step()

    def _step(self) -> None:
        for create in self.root.glob("class/mdev_bus/*/mdev_supported_types/*/create"):
            request = create.read_text().strip()
            if request:
                create.write_text("")
                self._create(create.parent, request)
        for remove in self.root.glob("bus/mdev/devices/*/remove"):
            if remove.read_text().strip() == "1":
                self._remove(remove.parent)
        for vf in self._vfs():
            self._vf_write(vf)

    # --- mdev layout -----------------------------------------------------------------------

    def _create(self, type_dir: Path, uuid: str) -> None:
        board = Path(os.path.realpath(type_dir.parent.parent))
        if not _UUID.match(uuid) or (self.root / "bus/mdev/devices" / uuid).exists():
            return                                          # EINVAL / EEXIST
        if int((type_dir / "available_instances").read_text()) <= 0:
            return                                          # the driver refuses: no instance
        device = board / uuid
        device.mkdir()
        os.symlink(f"../mdev_supported_types/{type_dir.name}", device / "mdev_type")
        (device / "remove").write_text("")
        os.symlink(os.path.relpath(self.root / "bus/mdev", device), device / "subsystem")
        os.symlink(os.path.relpath(self.root / "bus/mdev/drivers/nvidia-vgpu-vfio", device), device / "driver")
        (device / "nvidia").mkdir()
        (device / "nvidia" / "vm_name").write_text("")
        os.symlink(f"../../../{uuid}", type_dir / "devices" / uuid)
        self._recount(board)
        os.symlink(os.path.relpath(device, self.root / "bus/mdev/devices"),   # last: now it exists
                   self.root / "bus/mdev/devices" / uuid)

    def _remove(self, link_dir: Path) -> None:
        device = Path(os.path.realpath(link_dir))
        type_id = Path(os.path.realpath(device / "mdev_type")).name
        board = device.parent
        (board / "mdev_supported_types" / type_id / "devices" / device.name).unlink()
        shutil.rmtree(device)
        self._recount(board)
        (self.root / "bus/mdev/devices" / device.name).unlink()             # last: now it is gone

    @staticmethod
    def _recount(board: Path) -> None:
        types = board / "mdev_supported_types"
        used = {t.name: len(list((t / "devices").iterdir())) for t in types.iterdir()}
        running = {t for t, n in used.items() if n}
        for t in types.iterdir():
            limit = parse_profile((t / "name").read_text().strip(), (t / "description").read_text())
            free = 0 if running - {t.name} else limit.max_instances - used[t.name]
            (t / "available_instances").write_text(f"{free}\n")

    # --- SR-IOV layout ---------------------------------------------------------------------

    def _vfs(self) -> list[Path]:
        return sorted(p.parent.parent for p in self.root.glob("bus/pci/devices/*/nvidia/current_vgpu_type"))

    def _creatable(self, vf: Path) -> dict[str, str]:
        text = (vf / "nvidia" / "creatable_vgpu_types").read_text()
        return {m[1]: m[2] for m in map(_CREATABLE.match, text.splitlines()) if m}

    @staticmethod
    def _current(vf: Path) -> str:
        return (vf / "nvidia" / "current_vgpu_type").read_text().strip() or "0"

    def _vf_write(self, vf: Path) -> None:
        current, accepted = self._current(vf), self._accepted[vf]
        if current == accepted:
            return
        if current != "0" and (accepted != "0" or current not in self._creatable(vf)):
            (vf / "nvidia" / "current_vgpu_type").write_text(accepted + "\n")   # refused
            return
        self._accepted[vf] = current
        self._narrow(Path(os.path.realpath(vf / "physfn")))

    def _narrow(self, pf: Path) -> None:
        siblings = [vf for vf in self._vfs() if Path(os.path.realpath(vf / "physfn")) == pf]
        taken = {vf: self._accepted[vf] for vf in siblings if self._accepted[vf] != "0"}
        supported = self._supported[siblings[0]]
        sizes = {t: parse_profile(n).framebuffer_mib for t, n in supported.items()}
        board = max(sizes.values())
        running = set(taken.values())
        for vf in siblings:
            if vf in taken:
                offer = {}
            elif not running:
                offer = supported
            else:
                (only,) = running
                fits = len(taken) < board // sizes[only]
                offer = {only: supported[only]} if fits else {}
            lines = "".join(f"{t} : {n}\n" for t, n in offer.items())
            (vf / "nvidia" / "creatable_vgpu_types").write_text(lines)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "capture":
        sys.exit("usage: python tests/sysfs_kernel.py capture SYSFS_ROOT > host.tree")
    sys.stdout.write(capture(sys.argv[2]))

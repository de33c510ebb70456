"""`offload vgpu list` on a fixture T4 host, as the user runs it."""

import json
import subprocess
import sys

from deploy_support import offload_cli, t4_host  # noqa: F401 - fixture


def test_list_json_shows_boards_types_profiles_and_free_instances(t4_host):
    done = offload_cli("vgpu", "list", "--sysfs-root", t4_host.root, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["schema"] == 1 and data["source"] == f"sysfs:{t4_host.root}"
    free, busy = data["boards"]
    t4_4c = next(t for t in free["types"] if t["id"] == "nvidia-319")
    assert t4_4c["available"] == 4 and t4_4c["profile"]["short"] == "T4-4C"
    assert t4_4c["profile"]["framebuffer_mib"] == 4096 and t4_4c["profile"]["max_instances"] == 4
    assert busy["vgpus"][0]["type_name"] == "GRID T4-8Q"
    assert data["nvml"]["unavailable"]          # no NVIDIA driver on a test host


def test_list_text(t4_host):
    done = offload_cli("vgpu", "list", "--sysfs-root", t4_host.root)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"sysfs:{t4_host.root}: 2 board(s) with vGPU types"
    assert "0000:d8:00.0  (mdev layout)  running: GRID T4-8Q 5d3e4b7e-8f2a-4c1b-9e6d-2a7f0c9b1e34" in lines
    assert any(line.split() == ["nvidia-319", "GRID", "T4-4C", "C", "4096", "MiB", "4", "4"] for line in lines)
    assert lines[-1].startswith("NVML: ")


def test_bad_input_is_one_line(tmp_path):
    done = offload_cli("vgpu", "list", "--sysfs-root", tmp_path, "--connect", "test:///default")
    assert (done.returncode, done.stderr) == (2, "offload: give --sysfs-root or --connect, not both\n")


def test_no_vgpu_or_deployer_module_loads_libvirt_or_nvml_when_imported():
    modules = ["vgpu." + m for m in ("cli", "host", "lifecycle", "nodedev", "nvml", "placement", "profiles", "sysfs")]
    modules += ["deployer." + m for m in ("cli", "connection", "deploy", "domain_xml", "guest_report", "journal",
                                          "manage", "probe_guest", "request", "rollback", "verify")]
    code = (f"import sys, importlib\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print(','.join(m for m in ('libvirt', 'libvirt_qemu', 'pynvml') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""

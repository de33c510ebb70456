"""What the guest reports, through its console or qemu-guest-agent, and how it is judged."""

import base64

from deployer.guest_report import agent_report, parse_report
from deployer.verify import GpuExpectation, verify

CONSOLE = ("[    0.000000] Linux version 6.1.0-57-cloud-amd64\r\n"
           "offload-fact: vcpus=2\r\n"
           "offload-fact: mem_total_kib=223388\r\n"
           "offload-fact: mem_firmware_kib=261631\r\n"
           "offload-fact: gpu_pci=0000:00:05.0 0x10de:0x1eb8 class=0x030000\r\n"
           "offload-fact: gpu_nvidia_smi=GRID T4-4C, 4096\r\n"
           "offload-app-begin\r\nsaxpy: n=1048576 checksum=3145728.000000\r\noffload-app-end\r\n"
           "offload-fact: app_exit_status=0\r\n"
           "offload-ready\r\n[    2.5] reboot: Power down\r\n")
T4_4C = GpuExpectation("T4-4C", 4096, attached=True, reason=None)
NO_VFIO = GpuExpectation("T4-4C", 4096, attached=False, reason="this host has no VFIO")


def statuses(checks):
    return {c.name: c.status for c in checks}


def test_the_console_report_is_parsed_through_kernel_noise_and_crlf():
    report = parse_report(CONSOLE, "serial console")
    assert (report.vcpus, report.mem_total_kib, report.mem_firmware_kib) == (2, 223388, 261631)
    assert report.gpus == ("0000:00:05.0 0x10de:0x1eb8 class=0x030000",)
    assert report.gpu_names == ("GRID T4-4C, 4096",)
    assert (report.app_output, report.app_exit_status) == ("saxpy: n=1048576 checksum=3145728.000000", 0)


def test_no_report_until_the_ready_line():
    assert parse_report(CONSOLE.split("offload-ready")[0], "serial console") is None


def test_everything_as_asked_is_verified():
    checks = verify(parse_report(CONSOLE, "serial console"), 2, 256, T4_4C,
                    "saxpy: n=1048576 checksum=3145728.000000\n")
    assert statuses(checks) == {"vcpus": "ok", "memory": "ok", "gpu": "verified", "app": "ok"}
    memory = next(c for c in checks if c.name == "memory")
    assert memory.note == "firmware memory map: 99.8% of configured; MemTotal 218 MiB"


def test_vcpus_must_match_exactly():
    assert statuses(verify(parse_report(CONSOLE, "serial console"), 4, 256, T4_4C))["vcpus"] == "failed"


def test_memory_within_five_percent_and_memtotal_is_only_the_fallback():
    report = parse_report(CONSOLE, "serial console")
    assert statuses(verify(report, 2, 265, T4_4C))["memory"] == "ok"        # 261631 KiB is 96.4%
    assert statuses(verify(report, 2, 248, T4_4C))["memory"] == "ok"        # 103%
    assert statuses(verify(report, 2, 280, T4_4C))["memory"] == "failed"    # 91%
    memtotal_only = parse_report(CONSOLE.replace("offload-fact: mem_firmware_kib=261631\r\n", ""), "serial console")
    assert statuses(verify(memtotal_only, 2, 256, T4_4C))["memory"] == "failed"   # 85% of 256 MiB
    assert statuses(verify(memtotal_only, 2, 224, T4_4C))["memory"] == "ok"


def test_a_vgpu_that_could_not_be_attached_is_not_verified_never_claimed():
    no_gpu = parse_report(CONSOLE.replace("gpu_pci", "x").replace("gpu_nvidia_smi", "y"), "serial console")
    (gpu,) = [c for c in verify(no_gpu, 2, 256, NO_VFIO) if c.name == "gpu"]
    assert (gpu.status, gpu.note) == ("not verified", "not attached: this host has no VFIO")
    assert statuses(verify(no_gpu, 2, 256, T4_4C))["gpu"] == "failed"


def test_a_guest_driver_reporting_another_framebuffer_fails():
    report = parse_report(CONSOLE.replace("GRID T4-4C, 4096", "GRID T4-8C, 8192"), "serial console")
    assert statuses(verify(report, 2, 256, T4_4C))["gpu"] == "failed"


def test_the_apps_output_must_match_the_verification_hosts():
    report = parse_report(CONSOLE, "serial console")
    assert statuses(verify(report, 2, 256, T4_4C, "saxpy: n=1048576 checksum=0.0\n"))["app"] == "failed"
    assert statuses(verify(report, 2, 256, T4_4C))["app"] == "not verified"
    silent = parse_report(CONSOLE.replace("offload-app-begin", "").replace("offload-app-end", ""), "serial console")
    assert statuses(verify(silent, 2, 256, T4_4C, "anything"))["app"] == "failed"


def test_the_same_report_through_qemu_guest_agent():
    """guest-exec runs offload-facts; its output, base64 in guest-exec-status, is parsed alike.
    The replies are shaped as the QEMU guest agent protocol documents them."""
    output = base64.b64encode(CONSOLE.replace("\r", "").encode()).decode()
    replies = iter([{"return": {}}, {"return": {"pid": 812}}, {"return": {"exited": False}},
                    {"return": {"exited": True, "exitcode": 0, "out-data": output}}])
    sent = []

    def send(command):
        sent.append(command["execute"])
        return next(replies)
    report = agent_report(send)
    assert sent == ["guest-ping", "guest-exec", "guest-exec-status", "guest-exec-status"]
    assert (report.channel, report.vcpus, report.mem_firmware_kib) == ("guest agent", 2, 261631)


def test_no_agent_no_report():
    assert agent_report(lambda command: None) is None

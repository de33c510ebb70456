"""Does what the guest sees match what was asked? Each check is `ok`, `failed` or `not verified`.

- vCPUs must match exactly.
- Memory must be within 5% of what was configured. The guest's firmware memory map (E820
  System RAM) is compared when the guest reports it: it is what the VM was given, less the
  legacy holes. MemTotal is the fallback; it is smaller by the kernel's own reservations,
  which on a small VM can exceed 5% (a 256 MiB guest shows about 87%).
- The GPU is `verified` only when the guest sees an NVIDIA PCI function; when the vGPU
  could not be attached (no VFIO on the host, or it exists only in a sysfs fixture) it is
  `not verified`, with the reason, and never claimed. With the NVIDIA driver in the guest,
  nvidia-smi's memory figure must agree with the profile's framebuffer.
- With an expected output, the app the guest ran must have printed exactly that.
Any `failed` check fails the deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

from .guest_report import GuestReport

MEMORY_TOLERANCE = 0.05


@dataclass(frozen=True)
class Check:
    name: str
    status: str                 # "ok", "failed" or "not verified"
    expected: str
    seen: str
    note: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "status": self.status, "expected": self.expected,
                "seen": self.seen, "note": self.note}


@dataclass(frozen=True)
class GpuExpectation:
    profile: str | None         # "T4-4C"; None when no vGPU was asked for
    framebuffer_mib: int | None
    attached: bool
    reason: str | None          # why it is not attached


def verify(report: GuestReport, vcpus: int, memory_mib: int, gpu: GpuExpectation,
           expected_output: str | None = None) -> list[Check]:
    checks = [_vcpus(report, vcpus), _memory(report, memory_mib), _gpu(report, gpu)]
    if expected_output is not None or report.app_output is not None:
        checks.append(_app(report, expected_output))
    return checks


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == "failed"]


def _vcpus(report: GuestReport, vcpus: int) -> Check:
    seen = report.vcpus
    return Check("vcpus", "ok" if seen == vcpus else "failed", str(vcpus), "nothing" if seen is None else str(seen))


def _memory(report: GuestReport, memory_mib: int) -> Check:
    configured = memory_mib * 1024
    if report.mem_firmware_kib is not None:
        seen, how = report.mem_firmware_kib, "firmware memory map"
    else:
        seen, how = report.mem_total_kib, "MemTotal"
    if seen is None:
        return Check("memory", "failed", f"{memory_mib} MiB", "nothing", "the guest reported no memory")
    share = seen / configured
    note = f"{how}: {share:.1%} of configured" + (
        f"; MemTotal {report.mem_total_kib // 1024} MiB" if report.mem_total_kib and how != "MemTotal" else "")
    ok = abs(1 - share) <= MEMORY_TOLERANCE
    return Check("memory", "ok" if ok else "failed", f"{memory_mib} MiB (within 5%)", f"{seen // 1024} MiB", note)


def _gpu(report: GuestReport, gpu: GpuExpectation) -> Check:
    seen = "; ".join(report.gpus) or "no NVIDIA device"
    if gpu.profile is None:
        return Check("gpu", "ok" if not report.gpus else "failed", "no vGPU", seen)
    if not gpu.attached:
        return Check("gpu", "not verified", gpu.profile, seen, f"not attached: {gpu.reason}")
    if not report.gpus:
        return Check("gpu", "failed", gpu.profile, seen, "the vGPU was attached but the guest does not see it")
    for line in report.gpu_names:
        name, _, memory = (part.strip() for part in line.partition(","))
        if memory.isdigit() and gpu.framebuffer_mib and abs(int(memory) - gpu.framebuffer_mib) > 0.1 * gpu.framebuffer_mib:
            return Check("gpu", "failed", f"{gpu.profile} ({gpu.framebuffer_mib} MiB)", f"{name}, {memory} MiB",
                         "nvidia-smi in the guest reports another framebuffer")
    note = "nvidia-smi: " + "; ".join(report.gpu_names) if report.gpu_names else "no NVIDIA driver in the guest to ask"
    return Check("gpu", "verified", gpu.profile, seen, note)


def _app(report: GuestReport, expected: str | None) -> Check:
    if report.app_output is None:
        return Check("app", "failed", "the app's output", "the guest ran no app",
                     "an expected output was given but the guest has no /opt/offload/app/run")
    status = f" (exit status {report.app_exit_status})" if report.app_exit_status else ""
    if expected is None:
        return Check("app", "not verified", "-", report.app_output[-200:] + status, "no expected output to compare")
    same = report.app_output.strip() == expected.strip() and not report.app_exit_status
    return Check("app", "ok" if same else "failed", expected.strip()[-200:], report.app_output.strip()[-200:] + status,
                 "same output as the verification host" if same else "differs from the verification host's output")

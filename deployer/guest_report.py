"""What the guest says it sees, over its serial console or through qemu-guest-agent.

The guest runs guest/offload-facts.sh (the probe guest's init does; a production image runs
it once at boot). Its lines, `offload-fact: key=value` and finally `offload-ready`, reach the
host through the console log file or, when the image has qemu-guest-agent, as the output
of the same script run with `guest-exec`. Both channels give one parser the same text.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from offloader.errors import UserError

READY = "offload-ready"
FACT = "offload-fact: "
APP_BEGIN, APP_END = "offload-app-begin", "offload-app-end"
FACTS_SCRIPT = "/usr/local/sbin/offload-facts"


@dataclass(frozen=True)
class GuestReport:
    channel: str                            # "serial console" or "guest agent"
    vcpus: int | None
    mem_total_kib: int | None               # MemTotal: what the kernel left for everyone else
    mem_firmware_kib: int | None            # E820 System RAM: what the VM was given
    gpus: tuple[str, ...] = ()              # NVIDIA PCI functions: "00:05.0 0x10de:0x1eb8 class=..."
    gpu_names: tuple[str, ...] = ()         # nvidia-smi's "name, memory" lines, when the driver runs
    app_output: str | None = None
    app_exit_status: int | None = None
    facts: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"channel": self.channel, "vcpus": self.vcpus, "mem_total_kib": self.mem_total_kib,
                "mem_firmware_kib": self.mem_firmware_kib, "gpus": list(self.gpus),
                "gpu_names": list(self.gpu_names), "app_output": self.app_output,
                "app_exit_status": self.app_exit_status}


class GuestError(UserError):
    """The guest stopped, or never reported, before saying what it sees."""


def parse_report(text: str, channel: str) -> GuestReport | None:
    """The report in a console transcript; None until its `offload-ready` line has arrived."""
    lines = text.replace("\r", "").split("\n")
    if READY not in (line.strip() for line in lines):
        return None
    facts: dict[str, list[str]] = {}
    app: list[str] | None = None
    for line in lines:
        if line.strip() == APP_BEGIN:
            app = []
        elif line.strip() == APP_END:
            facts.setdefault("app_output", []).append("\n".join(app or []))
            app = None
        elif app is not None:
            app.append(line)
        elif line.startswith(FACT) and "=" in line:
            key, value = line[len(FACT):].split("=", 1)
            facts.setdefault(key.strip(), []).append(value.strip())

    def number(key: str) -> int | None:
        values = facts.get(key)
        return int(values[-1]) if values and values[-1].lstrip("-").isdigit() else None

    return GuestReport(channel, number("vcpus"), number("mem_total_kib"), number("mem_firmware_kib"),
                       tuple(facts.get("gpu_pci", ())), tuple(facts.get("gpu_nvidia_smi", ())),
                       facts["app_output"][-1] if "app_output" in facts else None,
                       number("app_exit_status"), {k: v[-1] for k, v in facts.items()})


def wait_for_report(console_log: Path, domain, timeout: float, agent=None, poll: float = 0.2) -> GuestReport:
    """Poll the console log (and the agent, if given) until the guest reports or stops.

    `agent` sends one guest-agent command and returns the reply text (see `agent_command`).
    """
    import libvirt

    deadline = time.monotonic() + timeout
    while True:
        state, reason = domain.state()
        report = parse_report(_read(console_log), "serial console")
        if report is None and agent is not None and state == libvirt.VIR_DOMAIN_RUNNING:
            report = agent_report(agent)
        if report is not None:
            return report
        if state != libvirt.VIR_DOMAIN_RUNNING:
            raise GuestError(f"the guest {_state_words(libvirt, state, reason)} before reporting what it "
                             f"sees; its console ended with: {_tail(console_log)}")
        if time.monotonic() > deadline:
            raise GuestError(f"the guest did not report within {timeout:g} s (does the image run "
                             f"offload-facts at boot? see deployer/README.md); console: {_tail(console_log)}")
        time.sleep(poll)


def agent_command(domain, timeout: int = 5):
    """A function that sends one command to the domain's qemu-guest-agent and returns the
    reply, or None while no agent answers."""
    import libvirt
    import libvirt_qemu

    def send(command: dict) -> dict:
        return json.loads(libvirt_qemu.qemuAgentCommand(domain, json.dumps(command), timeout, 0))

    def guarded(command: dict) -> dict | None:
        try:
            return send(command)
        except libvirt.libvirtError:
            return None
    return guarded


def agent_report(send, script: str = FACTS_SCRIPT, timeout: float = 30) -> GuestReport | None:
    """Run the facts script through the agent (guest-exec) and parse what it printed.

    `send(command) -> reply or None`; None while the agent is not up, or lacks guest-exec.
    """
    if send({"execute": "guest-ping"}) is None:
        return None
    started = send({"execute": "guest-exec", "arguments": {"path": script, "capture-output": True}})
    if not started or "return" not in started:
        return None
    pid = started["return"]["pid"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = send({"execute": "guest-exec-status", "arguments": {"pid": pid}})
        if status and status.get("return", {}).get("exited"):
            out = base64.b64decode(status["return"].get("out-data", "")).decode(errors="replace")
            return parse_report(out, "guest agent")
        time.sleep(0.2)
    return None


def _read(path: Path) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _tail(path: Path, lines: int = 3) -> str:
    text = [line for line in _read(path).replace("\r", "").splitlines() if line.strip()]
    return " | ".join(text[-lines:]) or "(nothing)"


def _state_words(libvirt, state: int, reason: int) -> str:
    words = {libvirt.VIR_DOMAIN_SHUTOFF: "shut off", libvirt.VIR_DOMAIN_CRASHED: "crashed",
             libvirt.VIR_DOMAIN_PAUSED: "was paused (by an emulation or I/O error?)",
             libvirt.VIR_DOMAIN_SHUTDOWN: "is shutting down"}
    return f"{words.get(state, f'left the running state ({state})')} (reason {reason})"

"""The readable `offload run` report: per region where it ran, times (labelled), bytes moved."""

from __future__ import annotations

import os

from rich.console import Console
from rich.table import Table

from ..contracts.run_report import RunReport


def render_run(report: RunReport) -> None:
    console = Console(highlight=False, width=None if Console().is_terminal else 140)
    label = report.timing
    table = Table(title=f"{report.file} on {report.device}; times are {label}")
    for column in ("region", "loop", "calls", "on device", "CPU fallbacks", f"kernel s ({label})",
                   "transfer s", "to device", "to host"):
        table.add_column(column, justify="right" if column not in ("loop",) else "left")
    for region in report.regions:
        table.add_row(str(region.id), ":".join(os.path.basename(region.location).split(":")[:2]), str(region.calls),
                      str(region.device_runs), str(region.cpu_fallbacks), f"{region.kernel_seconds:.4f}",
                      f"{region.transfer_seconds:.4f}", _bytes(region.h2d_bytes), _bytes(region.d2h_bytes))
    console.print(table)
    verify_bytes = sum(region.verify_d2h_bytes for region in report.regions)
    if verify_bytes:
        console.print(f"region verification also copied {_bytes(verify_bytes)} back to compare with the CPU "
                      "loops (not counted above; `--verify program` leaves them out)")
    console.print(f"device: {report.device} ({report.device_choice}); memory limit "
                  f"{report.memory_limit['bytes'] >> 20} MiB, {report.memory_limit['applied']}")
    for note in report.not_offloaded:
        console.print(f"not offloaded: {note['loop']}: {note['reason']}")
    for region in report.regions:
        for reason in region.fallback_reasons[:3]:
            console.print(f"region {region.id} ran on the CPU: {reason}")
    total = report.total_seconds
    console.print(f"program: {total:.3f} s with regions {report.gpu_regions} ({label}); "
                  f"CPU original {report.cpu_seconds:.3f} s (measured)" if total is not None else "")
    if report.verified:
        console.print("[bold green]verified[/]: every checked region and the program output match the CPU original")
    else:
        console.print("[bold red]NOT verified[/]: "
                      + "; ".join(f"{f.message} [{f.code.value}]" for f in report.typed_failures))


def _bytes(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024

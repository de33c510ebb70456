"""The `offload tune` verb; `register(group)` adds it to the command line.

    offload tune FILE.c [MORE.c ...] [-I DIR] [-D NAME[=VAL]] [--cflags F]
                 [--strategy default|ga|exhaustive] [--budget N] [--time-limit S]
                 [--device auto|cuda|emu] [--gpu-model t4|a100|h100|h200] [--out DIR]
                 [--args "ARGS" ...] [--storage URL] [--json]

Exit status 0 when the plan written is verified, 1 when it is not, 2 for bad input.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import click

from offloader.cli import build_options


def register(group: click.Group) -> None:
    group.add_command(tune_command)


@click.command("tune")
@build_options
@click.option("--strategy", type=click.Choice(["default", "ga", "exhaustive"]), default="default",
              show_default=True, help="How to search the offload patterns and launch settings.")
@click.option("--budget", type=click.IntRange(min=1), default=None,
              help="Unique measurements allowed, in total across resumes (default: the strategy's own).")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), default=None, metavar="S",
              help="Stop searching after S seconds, keeping what was found.")
@click.option("--device", type=click.Choice(["auto", "cuda", "emu"]), default="auto", show_default=True,
              help="Where candidates run: a GPU (pycuda or CuPy) or the emulated device.")
@click.option("--gpu-model", default=None, metavar="NAME",
              help="GPU whose modeled times are the objective on the emulated device (t4, a100, h100, h200; "
                   "default t4).")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Results folder (default results/<app>).")
@click.option("--args", "program_args", multiple=True, metavar="'ARGS'",
              help="Arguments for the program, quoted; repeat for several input sets (all must verify).")
@click.option("--storage", default=None, metavar="URL",
              help="Optuna storage for the study (default: SQLite in the results folder).")
@click.option("--seed", default=0, show_default=True, help="Seed of the search.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds each run of the program may take.")
@click.option("--memory-limit", default=8192, show_default=True, metavar="MIB", help="Memory each run may use.")
@click.option("--json", "as_json", is_flag=True, help="Write the plan as JSON to stdout.")
def tune_command(options, strategy, budget, time_limit, device, gpu_model, out, program_args, storage, seed,
                 timeout, memory_limit, as_json):
    """Find the fastest verified offload pattern, resumably, and write results/<app>/."""
    from .command import TuneRequest, tune_program

    args_sets = [tuple(shlex.split(text)) for text in program_args] or [()]
    request = TuneRequest(options, strategy, budget, time_limit, device, gpu_model, Path(out) if out else None,
                          args_sets, storage, seed, timeout, memory_limit << 20)
    say = (lambda message: None) if as_json else (lambda message: click.echo(f"offload: {message}", err=True))
    with _ProgressBar(enabled=not as_json and sys.stderr.isatty()) as bar:
        summary = tune_program(request, say, bar.update)
    if as_json:
        click.echo(json.dumps(summary["plan"], indent=2))
    else:
        _print_summary(summary)
    if not summary["plan"]["verified"]:
        raise SystemExit(1)


class _ProgressBar:
    """Trials done, best so far and an ETA, on stderr while the search runs (a line per trial
    when stderr is not a terminal would be noise: then it stays quiet)."""

    def __init__(self, enabled: bool):
        self.enabled, self.progress, self.task = enabled, None, None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                                     TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self.progress.start()
            self.task = self.progress.add_task("tuning", total=None, info="")
        return self

    def update(self, state) -> None:
        if self.progress is None:
            return
        best = f"best {state.best_seconds:.4g} s" if state.best_seconds is not None else "no verified pattern yet"
        eta = f", ETA {time.strftime('%M:%S', time.gmtime(state.eta_seconds))}" if state.eta_seconds else ""
        self.progress.update(self.task, description=f"{state.phase}: {state.trials} trials, {state.measured} measured",
                             total=state.budget, completed=state.measured, info=best + eta)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False


def _print_summary(summary: dict) -> None:
    plan = summary["plan"]
    timing = plan["timing"]
    gpu = plan["gpu_regions"]
    click.echo(f"{plan['app']}: {summary['measured']} unique measurement(s) ({summary['measured_now']} now, "
               f"study {summary['study']}, search {summary['stopped']})")
    if gpu:
        where = ", ".join(f"region {r['id']} ({r['location']}, {_settings(r['settings'])})"
                          for r in plan["regions"] if r["device"] == "gpu")
        click.echo(f"best pattern: {where}")
        click.echo(f"speedup {plan['speedup']:.2f}x: {plan['offloaded_seconds']:.4g} s ({timing}) against "
                   f"{plan['cpu_seconds']:.4g} s on one CPU core (measured)"
                   + (f"; GPU times modeled for {plan['gpu_model']}" if timing == "modeled" else ""))
    else:
        click.echo(f"no region is worth offloading: {plan['reason_none']}")
    state = "verified" if plan["verified"] else "NOT verified"
    click.echo(f"the offloaded program is {state} ({plan['verified_on']}): {summary['ship_note']}")
    click.echo(f"results in {summary['out']}: plan.json, profile.json, trials.csv, program/; report {summary['report']}")


def _settings(settings) -> str:
    return " ".join(f"{k}={v}" for k, v in (settings or {}).items()) or "defaults"

"""The `offload size` and `offload profile` verbs; `register(group)` adds them to a click group.

    offload profile DIR --program app.c [--program more.c] [-I DIR] [-D NAME[=VAL]] [--cflags F]
                    [--args "ARGS"] [--cores 1,2,4] [--repeat 3] [--timeout 600] [--json]
    offload size DIR/profile.json [--catalog F] [--max-price P] [--deadline S]
                 [--policy cost-perf|ratio] [--board-occupancy N] [--assume-idle] [--json] [--out DIR]
    offload size --batch jobs.csv [same options]

Bad input is one line on stderr and exit status 2; "nothing is feasible" is exit status 1 with
the constraint that ruled out each configuration.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

from offloader.buildopts import BuildOptions
from offloader.cliutil import user_errors
from offloader.errors import UserError

from .document import GENERATOR
from .policies import POLICY_NAMES

NOTHING_FEASIBLE = 1
NOISY_SPREAD = 0.10     # (max - min) / median of repeated runs above which `offload profile` warns


def register(group: click.Group) -> None:
    group.add_command(size_command)
    group.add_command(profile_command)


def _console():
    from rich.console import Console
    return Console(highlight=False, width=None if sys.stdout.isatty() else 140)


# ---------------------------------------------------------------------------------------- size

@click.command("size")
@click.argument("profile", required=False, metavar="[PROFILE.json]")
@click.option("--batch", metavar="JOBS.csv", help="Size every app listed (columns app,profile,max_price,deadline).")
@click.option("--catalog", metavar="FILE.toml", help="CPU sizes and vGPU slices (default: the shipped T4 catalog).")
@click.option("--max-price", type=click.FloatRange(0, min_open=True), metavar="P", help="Price cap per hour.")
@click.option("--deadline", type=click.FloatRange(0, min_open=True), metavar="S", help="Seconds per run at most.")
@click.option("--policy", type=click.Choice(POLICY_NAMES), default="cost-perf", show_default=True)
@click.option("--board-occupancy", type=click.IntRange(1), metavar="N",
              help="vGPUs running on the board (equal-share, best-effort busy end), capped at each "
                   "type's max_instances; default: full.")
@click.option("--assume-idle", is_flag=True, help="best-effort: size with the idle-board end.")
@click.option("--json", "as_json", is_flag=True, help="Write the sizing document to stdout.")
@click.option("--out", metavar="DIR", help="Where reports go (default: beside the profile; for --batch, "
                                           "JOBS-sizing/ beside the jobs file).")
@user_errors
def size_command(profile, batch, catalog, max_price, deadline, policy, board_occupancy, assume_idle,
                 as_json, out):
    """Choose the VM's CPU size and vGPU slice with the best cost-performance."""
    from .catalog import load_catalog
    from .sizer import Options

    if (profile is None) == (batch is None):
        raise UserError("give either a PROFILE.json or --batch JOBS.csv (one of the two)")
    cat = load_catalog(catalog)
    options = Options(policy, max_price, deadline, board_occupancy, assume_idle)
    if batch:
        _size_batch(Path(batch), cat, options, out, as_json)
    else:
        _size_one(Path(profile), cat, options, out, as_json)


def _size_one(profile_path: Path, catalog, options, out: str | None, as_json: bool) -> None:
    from .profile import load_profile
    from .report import write_app
    from .sizer import size

    if profile_path.is_dir():
        profile_path = profile_path / "profile.json"
    doc = size(load_profile(profile_path), catalog, options)
    written = write_app(doc, Path(out) if out else profile_path.parent)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        _print_doc(doc, written)
    if doc["recommendation"] is None:
        click.echo("offload: no configuration meets the constraints:", err=True)
        for c in doc["candidates"]:
            click.echo(f"  {c['config']}: {c['reason']}", err=True)
        sys.exit(NOTHING_FEASIBLE)


def _print_doc(doc: dict, written: list[Path]) -> None:
    from rich.table import Table

    console = _console()
    console.print(f"[bold]Sizing {doc['app']}[/bold] for {doc['gpu_model']} vGPU slices "
                  f"(scheduler {doc['scheduler']}, catalog {doc['catalog']})")
    table = Table(show_lines=False)
    for column in ("configuration", "vCPU", "vGPU", "price/h", "seconds", "cost/run", "feasible"):
        table.add_column(column, justify="left" if column in ("configuration", "vGPU", "feasible") else "right")
    rec = doc["recommendation"]
    for c in doc["candidates"]:
        seconds = f"{c['predicted_seconds']:.3g}"
        if "predicted_seconds_idle" in c:
            seconds += f" (idle {c['predicted_seconds_idle']:.3g})"
        mark = " ★" if rec and c["config"] == rec["config"] else (" ·" if c["pareto"] else "")
        table.add_row(c["config"] + mark, str(c["vcpus"]), c["vgpu_type"], f"{c['price_per_hour']:.2f}",
                      seconds, f"{c['cost_per_run']:.4g}", "yes" if c["feasible"] else f"no: {c['reason']}")
    console.print(table)
    console.print("★ recommended   · on the Pareto front of time vs cost")
    if rec:
        console.print(f"[bold]Recommendation ({doc['policy']}): {rec['config']}[/bold]: {rec['vcpus']} vCPU, "
                      f"{rec['vgpu_type']} ({rec['fraction']:g} {doc['gpu_model']}), {rec['price_per_hour']:.2f}/h, "
                      f"{rec['predicted_seconds']:.3g} s and {rec['cost_per_run']:.4g} per run "
                      f"(CPU {rec['cpu_kind']}, GPU {rec['gpu_kind']}, transfers {rec['transfer_kind']})")
        console.print(doc["comparison"]["explanation"])
    for note in doc["notes"]:
        console.print(f"note: {note}")
    console.print("reports: " + ", ".join(map(str, written)))


def _size_batch(jobs_path: Path, catalog, options, out: str | None, as_json: bool) -> None:
    from .batch import read_jobs, size_batch
    from .report import write_batch

    jobs = read_jobs(jobs_path)
    out_dir = Path(out) if out else jobs_path.parent / f"{jobs_path.stem}-sizing"
    rows = size_batch(jobs, catalog, options, out_dir)
    written = write_batch(rows, out_dir)
    if as_json:
        click.echo(json.dumps({"schema": 1, "generator": GENERATOR, "batch": str(jobs_path),
                               "apps": rows}, indent=2))
    else:
        from rich.table import Table

        console = _console()
        table = Table()
        for column in ("app", "recommendation", "seconds", "cost/run", f"vs {rows[0]['compared_policy']}"):
            table.add_column(column)
        for r in rows:
            if r["feasible"]:
                diff = r.get("cost_difference")
                table.add_row(r["app"], f"{r['config']} ({r['vcpus']} vCPU, {r['vgpu_type']})",
                              f"{r['predicted_seconds']:.3g}", f"{r['cost_per_run']:.4g}",
                              "none" if diff is None else "same choice" if r["compared_config"] == r["config"]
                              else f"{r['compared_config']}: {diff:+.4g} per run")
            else:
                table.add_row(r["app"], "nothing feasible", "", "", "")
        console.print(table)
        console.print("reports: " + ", ".join(map(str, written)))
    infeasible = [r["app"] for r in rows if not r["feasible"]]
    if infeasible:
        click.echo(f"offload: no configuration meets the constraints for {', '.join(infeasible)} "
                   f"(reasons in {out_dir}/<app>/sizing.html)", err=True)
        sys.exit(NOTHING_FEASIBLE)


# ------------------------------------------------------------------------------------- profile

@click.command("profile")
@click.argument("directory", metavar="DIR")
@click.option("--program", "sources", multiple=True, required=True, metavar="FILE.c",
              help="The program's C sources (repeat for more files; the first is the main one).")
@click.option("-I", "include_dirs", multiple=True, metavar="DIR", help="Add an include directory.")
@click.option("-D", "defines", multiple=True, metavar="NAME[=VAL]", help="Define a macro.")
@click.option("--cflags", default="", metavar="FLAGS", help="Extra compiler flags, quoted (e.g. -fopenmp).")
@click.option("--args", "program_args", default="", metavar="ARGS", help="The program's arguments, quoted.")
@click.option("--cores", default="1,2,4", show_default=True, metavar="LIST",
              help="Core counts to measure (those the host has) or extrapolate.")
@click.option("--repeat", type=click.IntRange(1, 50), default=3, show_default=True, help="Runs per core count.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), default=600, show_default=True,
              help="Seconds one run may take.")
@click.option("--json", "as_json", is_flag=True, help="Write the scaling record to stdout.")
@user_errors
def profile_command(directory, sources, include_dirs, defines, cflags, program_args, cores, repeat, timeout,
                    as_json):
    """Measure how the program's CPU part scales with cores; record it in DIR/profile.json."""
    from .measure import profile_cpu
    from .profile import write_cpu_scaling

    bad = [s for s in sources if not s.endswith(".c")]
    if bad:
        raise UserError(f"expected C source files ending in .c, got `{bad[0]}`")
    core_counts = _core_list(cores)
    try:
        shlex.split(program_args)
        shlex.split(cflags)
    except ValueError as exc:
        raise UserError(f"cannot split --args or --cflags: {exc}") from None
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise UserError("is not a directory", file=directory)
    options = BuildOptions(tuple(sources), tuple(include_dirs), tuple(defines), cflags)
    points, fit = profile_cpu(options, program_args, core_counts, repeat, timeout)
    path = target / "profile.json"
    write_cpu_scaling(path, target.resolve().name, points, fit)
    if as_json:
        click.echo(json.dumps({"profile": str(path),
                               "cpu_scaling": {str(n): {"seconds": p.seconds, "kind": p.kind}
                                               for n, p in points.items()},
                               "cpu_scaling_fit": fit}, indent=2))
        return
    for n, spread in fit["spread"].items():
        if spread > NOISY_SPREAD:
            click.echo(f"offload: warning: the runs on {n} core(s) varied by {spread:.0%}; the host may be "
                       "busy (measure on a quiet host, or raise --repeat)", err=True)
    console = _console()
    for n, p in points.items():
        spread = fit["spread"].get(str(n))
        extra = f" (spread {spread:.1%} over {repeat} runs)" if spread is not None else ""
        console.print(f"{n:>3} core(s): {p.seconds:.4g} s  {p.kind}{extra}")
    console.print(f"Amdahl fit: serial fraction {fit['serial_fraction']:.3g}"
                  + (f" (from CPU time: {fit['serial_fraction_from_cpu_time']:.3g})"
                     if fit["serial_fraction_from_cpu_time"] is not None else "")
                  + f"; measured on {fit['host_cores']} available core(s): {fit['measured_cores']}")
    if 1 in points and points[1].kind == "measured":
        for n, check in fit["cpu_time_check"].items():
            console.print(f"check: the {n}-core runs' CPU time predicts {check['predicted_1_core_seconds']:.4g} s "
                          f"on 1 core (measured {points[1].seconds:.4g} s)")
    console.print(f"wrote {path}")


def _core_list(text: str) -> list[int]:
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        counts = []
    if not counts or counts[0] < 1:
        raise UserError(f"--cores must be a comma-separated list of positive core counts, got {text!r}")
    return counts

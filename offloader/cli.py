"""The `offload` command line."""

from __future__ import annotations

import json
from functools import wraps

import click

from . import __version__
from .buildopts import BuildOptions
from .cliutil import user_errors
from .errors import UserError


def build_options(func):
    """Options shared by every verb that compiles the user's program."""
    @click.argument("sources", nargs=-1, required=True, metavar="FILE.c [MORE.c ...]")
    @click.option("-I", "include_dirs", multiple=True, metavar="DIR", help="Add an include directory.")
    @click.option("-D", "defines", multiple=True, metavar="NAME[=VAL]", help="Define a macro.")
    @click.option("--cflags", default="", metavar="FLAGS", help="Extra compiler flags, quoted.")
    @wraps(func)
    @user_errors
    def wrapper(sources, include_dirs, defines, cflags, **kwargs):
        bad = [s for s in sources if not s.endswith(".c")]
        if bad:
            raise UserError(f"expected C source files ending in .c, got `{bad[0]}`")
        options = BuildOptions(tuple(sources), tuple(include_dirs), tuple(defines), cflags)
        return func(options, **kwargs)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="offload")
def main():
    """Offload the parallel loops of a C program to a GPU, and size the VM that runs it."""


@main.command()
@build_options
@click.option("--json", "as_json", is_flag=True, help="Write the machine-readable report to stdout.")
@click.option("--only", multiple=True, metavar="FILE:LINE", help="Offload only these loops (if parallel).")
@click.option("--never", multiple=True, metavar="FILE:LINE", help="Never offload these loops.")
def analyze(options: BuildOptions, as_json: bool, only: tuple[str, ...], never: tuple[str, ...]):
    """Decide, loop by loop, which for-loops may run in parallel."""
    from .analysis import analyze_program
    from .selection import apply_selection

    result = analyze_program(options)
    for warning in apply_selection(result, only, never):
        click.echo(f"offload: warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        from rich.console import Console
        from .report import render
        render(result, Console(highlight=False, soft_wrap=True))


@main.command()
@build_options
@click.option("--gpu-regions", default="all", metavar="all|none|1,3", help="Regions to run on the device.")
@click.option("--device", type=click.Choice(["auto", "cuda", "emu"]), default="auto",
              help="A GPU through pycuda, or the emulator (auto: the GPU when there is one).")
@click.option("--order", type=click.Choice(["forward", "reverse", "shuffle"]), default="forward",
              help="Emulator: order of blocks and threads (reverse/shuffle expose order-dependent kernels).")
@click.option("--gpu-model", default="t4", show_default=True, metavar="NAME",
              help="Emulator: the GPU whose launch shapes (grid sizes) to run: t4, a100, h100 or h200.")
@click.option("--verify", type=click.Choice(["region", "program", "both", "none"]), default="both",
              help="Check each region against its CPU loop, the whole output against the CPU original, or both.")
@click.option("--args", "program_args", default="", metavar="'ARGS'", help="Arguments for the program, quoted.")
@click.option("--rtol", default=1e-6, show_default=True, help="Relative tolerance for numbers in the output.")
@click.option("--ignore", multiple=True, metavar="PATTERN", help="Regex of output text to leave out of the comparison.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds each run of the program may take.")
@click.option("--memory-limit", default=8192, show_default=True, metavar="MIB",
              help="Memory each run of the program may use (a cgroup; GPU initialisation is not affected).")
@click.option("--keep", "workdir", default=None, metavar="DIR", help="Build and run in DIR and keep it.")
@click.option("--json", "as_json", is_flag=True, help="Write the machine-readable report to stdout.")
def run(options: BuildOptions, gpu_regions, device, order, gpu_model, verify, program_args, rtol, ignore, timeout,
        memory_limit, workdir, as_json):
    """Build once, run with the chosen regions on a GPU or the emulator, and verify."""
    import shlex

    from .runtime.report import render_run
    from .runtime.run import RunOptions, run_program

    if gpu_regions not in ("all", "none") and not all(p.strip().isdigit() for p in gpu_regions.split(",")):
        raise UserError(f"--gpu-regions takes all, none or region numbers like 1,3; got `{gpu_regions}`")
    progress = None if as_json else (lambda message: click.echo(f"offload: {message}", err=True))
    from .tune.gpumodel import gpu_specs

    if gpu_model.lower() not in gpu_specs():
        raise UserError(f"--gpu-model {gpu_model}: unknown; choose from {', '.join(sorted(gpu_specs()))}")
    report = run_program(options, RunOptions(gpu_regions, device, order, verify, tuple(shlex.split(program_args)),
                                             rtol, tuple(ignore), timeout, memory_limit << 20, workdir, progress,
                                             gpu_model.lower()))
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        render_run(report)
    if not report.verified:
        raise SystemExit(1)


def _register_stage_verbs() -> None:
    """The later stages live in their own packages and add their verbs here."""
    from deployer.cli import register as register_deploy
    from sizing.cli import register as register_sizing
    from vgpu.cli import register as register_vgpu

    from .service.cli import register as register_service
    from .tune.cli import register as register_tune

    register_tune(main)
    register_service(main)
    register_sizing(main)
    register_vgpu(main)
    register_deploy(main)


_register_stage_verbs()

"""The service's verbs: `offload serve` on the verification host, and on the laptop
`offload submit`, `batch`, `jobs`, `status`, `fetch` and `cancel`. `register(group)` adds them.

Client verbs take --server/--token/--ca, else OFFLOAD_SERVER/OFFLOAD_TOKEN/OFFLOAD_CA, else
~/.config/offload/client.toml. Exit status: 0 done, 1 a job failed or was cancelled, 2 bad input.
"""

from __future__ import annotations

import json
import sys
from functools import wraps
from pathlib import Path

import click

from ..cliutil import user_errors
from ..errors import UserError
from .config import DEFAULT_PORT, ServiceConfig, client_settings


def register(group: click.Group) -> None:
    for command in (serve_command, submit_command, batch_command, jobs_command, status_command,
                    fetch_command, cancel_command):
        group.add_command(command)


# ------------------------------------------------------------------------------------ serve

@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (non-local needs TLS).")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--db", metavar="URL", help="Job store: a SQLAlchemy URL (default: SQLite in the data folder).")
@click.option("--workers", type=click.IntRange(1, 256), default=2, show_default=True, help="Jobs run at once.")
@click.option("--data", type=click.Path(file_okay=False), help="Data folder (default ~/.local/share/offload/service).")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="PEM certificate: serve HTTPS.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key of the certificate.")
@click.option("--create-token", metavar="NAME", help="Print a new token for user NAME and exit.")
@click.option("--retention-days", type=click.FloatRange(0, min_open=True), default=7.0, show_default=True,
              help="Days a finished job's results are kept.")
@click.option("--max-jobs-in-flight", type=click.IntRange(1), default=20, show_default=True,
              help="Queued and running jobs per user.")
@click.option("--max-disk-mib", type=click.IntRange(1), default=2048, show_default=True,
              help="MiB of sources and results kept per user.")
@user_errors
def serve_command(host, port, db, workers, data, tls_cert, tls_key, create_token, retention_days,
                  max_jobs_in_flight, max_disk_mib):
    """Run the verification service: the HTTP API and its workers."""
    config = ServiceConfig(host=host, port=port, db=db, workers=workers,
                           tls_cert=Path(tls_cert) if tls_cert else None, tls_key=Path(tls_key) if tls_key else None,
                           retention_days=retention_days, max_jobs_in_flight=max_jobs_in_flight,
                           max_disk_mib=max_disk_mib, **({"data": Path(data)} if data else {}))
    from .server import open_store, serve

    if create_token is not None:
        if not create_token.strip() or len(create_token) > 200:
            raise UserError("--create-token NAME: give a user name of 1 to 200 characters")
        click.echo(open_store(config).create_user_token(create_token.strip()))
        return
    config.check_listen()
    serve(config, lambda message: click.echo(f"offload: {message}", err=True))


# ----------------------------------------------------------------------------------- client

def client_options(func):
    """--server, --token and --ca, resolved into a connected Client passed as `client`."""
    @click.option("--server", metavar="URL", help="The service, e.g. https://gpuhost:8787 (or OFFLOAD_SERVER).")
    @click.option("--token", metavar="T", help="Your token (or OFFLOAD_TOKEN, or the client.toml file).")
    @click.option("--ca", metavar="FILE", help="CA certificate of a self-signed server (or OFFLOAD_CA).")
    @wraps(func)
    @user_errors
    def wrapper(server, token, ca, **kwargs):
        from .client import Client

        client = Client(client_settings(server, token, ca))
        try:
            return func(client, **kwargs)
        finally:
            client.close()
    return wrapper


def job_options(func):
    """What the job asks for: build options, inputs, search, sizing constraints."""
    options = [
        click.option("-I", "include_dirs", multiple=True, metavar="DIR",
                     help="Include folder (its .h files are sent)."),
        click.option("-D", "defines", multiple=True, metavar="NAME[=VAL]", help="Define a macro."),
        click.option("--cflags", metavar="FLAGS", help="Extra compiler flags, quoted."),
        click.option("--args", "args", multiple=True, metavar="'ARGS'",
                     help="Program arguments, quoted; repeat for more sets."),
        click.option("--strategy", type=click.Choice(["default", "ga", "exhaustive"])),
        click.option("--budget", type=click.IntRange(1), help="Unique measurements allowed."),
        click.option("--time-limit", type=click.FloatRange(0, min_open=True), metavar="S", help="Seconds of search."),
        click.option("--device", type=click.Choice(["auto", "cuda", "emu"]), help="Where candidates run."),
        click.option("--gpu-model", metavar="NAME", help="Modeled GPU on the emulated device (t4, a100...)."),
        click.option("--catalog", metavar="NAME", help="A catalog the server offers (default: default)."),
        click.option("--max-price", type=click.FloatRange(0, min_open=True), metavar="P", help="Price cap per hour."),
        click.option("--deadline", type=click.FloatRange(0, min_open=True), metavar="S",
                     help="Seconds per run at most."),
        click.option("--wait", is_flag=True, help="Wait for the result, showing progress."),
        click.option("--json", "as_json", is_flag=True, help="Print the job (or batch) as JSON."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _options(include_dirs: list[str], kwargs: dict) -> dict:
    """The JSON options the server takes, with only what was given (the server has defaults)."""
    options = {k: v for k, v in kwargs.items() if v not in (None, ())}
    for key in ("defines", "args"):
        if key in options:
            options[key] = list(options[key])
    if include_dirs:
        options["include_dirs"] = include_dirs
    return options


@click.command("submit")
@click.argument("sources", nargs=-1, required=True, metavar="FILE.c [MORE.c ...]")
@job_options
@client_options
def submit_command(client, sources, include_dirs, wait, as_json, **kwargs):
    """Send a C program to the service to be tuned and sized."""
    from .uploads import job_files

    uploads, includes = job_files([Path(s) for s in sources], [Path(d) for d in include_dirs])
    job = client.submit(uploads, _options(includes, kwargs))
    _report(client, job, wait, as_json)


@click.command("batch")
@click.argument("source", metavar="DIR-or-CSV")
@job_options
@click.option("--out", type=click.Path(file_okay=False), help="With --wait: fetch every result into this folder.")
@client_options
def batch_command(client, source, include_dirs, wait, as_json, out, **kwargs):
    """Send many programs at once: every .c in DIR is an app, or a CSV with the columns
    app,sources[,args,max_price,deadline] (sources space-separated, relative to the CSV)."""
    from .uploads import batch_files

    uploads, jobs = batch_files(Path(source), [Path(d) for d in include_dirs])
    batch = client.submit_batch(uploads, {"options": _options([], kwargs), "jobs": jobs})
    if out and not wait:
        raise UserError("--out needs --wait: results can be fetched once the batch has finished")
    _report(client, batch, wait, as_json, out)


@click.command("jobs")
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON.")
@client_options
def jobs_command(client, as_json):
    """List my jobs, oldest first."""
    from .client import describe

    jobs = client.json("GET", "/jobs")
    if as_json:
        click.echo(json.dumps(jobs, indent=2))
    for job in [] if as_json else jobs:
        click.echo(describe(job) + (f" [{job['batch']}]" if job.get("batch") else ""))


@click.command("status")
@click.argument("ident", metavar="ID")
@click.option("--wait", is_flag=True, help="Wait until it has finished, showing progress.")
@click.option("--json", "as_json", is_flag=True, help="Print the job (or batch) as JSON.")
@client_options
def status_command(client, ident, wait, as_json):
    """A job's (or a batch's) state, progress and result."""
    _report(client, client.status(ident), wait, as_json)


@click.command("fetch")
@click.argument("ident", metavar="ID")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder to unpack the results into.")
@client_options
def fetch_command(client, ident, out):
    """Download a job's results (plan, profile, sizing, reports, offloaded program), or a whole batch's."""
    for path in client.fetch(ident, Path(out)):
        click.echo(f"wrote {path}")


@click.command("cancel")
@click.argument("ident", metavar="ID")
@client_options
def cancel_command(client, ident):
    """Cancel a queued or running job."""
    from .client import describe

    click.echo(describe(client.json("POST", f"/jobs/{ident}/cancel")))


def _report(client, state: dict, wait: bool, as_json: bool, out: str | None = None) -> None:
    if wait:
        state = _wait(client, state["id"])
    if out:
        for path in client.fetch(state["id"], Path(out)):
            click.echo(f"offload: wrote {path}", err=True)
    _print(state, as_json)
    if wait:
        _exit_for(state)


def _wait(client, ident: str) -> dict:
    """Progress goes to stderr, so it never mixes with --json's document on stdout."""
    from .client import Progress

    progress = Progress()
    try:
        return client.wait(ident, progress)
    finally:
        progress.end()


def _print(state: dict, as_json: bool) -> None:
    from .client import describe

    if as_json:
        click.echo(json.dumps(state, indent=2))
    elif "jobs" in state:
        click.echo(f"batch {state['id']}: {state['state']}")
        for job in state["jobs"]:
            click.echo("  " + describe(job))
        for row in (state.get("report") or {}).get("apps", []):
            click.echo(f"  {row['app']}: " + (f"{row['config']} ({row['vcpus']} vCPU, {row['vgpu_type']}), "
                                              f"{row['cost_per_run']:.4g} per run" if row.get("feasible")
                                              else f"nothing to size: {row.get('note', '')}"))
    else:
        click.echo(describe(state))


def _exit_for(state: dict) -> None:
    jobs = state.get("jobs", [state])
    if any(j["state"] != "done" for j in jobs):
        sys.exit(1)

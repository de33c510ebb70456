"""What every `offload` verb shares: user errors become one line and an exit status."""

from __future__ import annotations

import sys
from functools import wraps

import click

from .errors import UserError


def user_errors(func):
    """UserError: one line on stderr and exit status 2. A bug: one line and status 3.
    Never a traceback."""
    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            click.echo(f"offload: {exc}", err=True)
            sys.exit(exc.exit_status)
        except BrokenPipeError:          # `offload ... | head`: the reader has gone, say nothing
            sys.stderr.close()
            sys.exit(141)
        except KeyboardInterrupt:
            click.echo("offload: interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001 - a bug must still reach the user as one line
            click.echo(f"offload: internal error ({type(exc).__name__}: {exc}); please report it "
                       "with the input that caused it", err=True)
            sys.exit(3)
    return wrapper

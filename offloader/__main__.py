"""`python -m offloader` is the `offload` command."""

from .cli import main

main(prog_name="offload")

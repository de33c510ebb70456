"""Run the program of a host library in this (child) process, as its own executable would run.

    python -m offloader.hostprog.runner LIB [--dispatcher none|cpu|record|device] [--stats FILE]
                                            [--status FILE] [--manifest JSON] [--argv0 NAME] [-- ARG...]

The runner loads LIB, registers a dispatcher, and calls the user's main (renamed
__offload_user_main) with argv; when main returns it calls C's exit() with main's status,
exactly as the C startup code does, so atexit handlers, the exit hook and stdio flushing run
in the same order whether the program returns or calls exit() itself. The program's stdin,
stdout and stderr are this process's own descriptors, used only by the program's C stdio.

Dispatchers: none (regions always take the CPU loop, no callback), cpu (a Python callback
that says CPU every time), record (recorder.py: statistics to --stats or $OFFLOAD_HOSTPROG_STATS),
device (offloader/runtime: regions run on a GPU or the emulator, statistics to --stats).

How the run ended is said out of band, in the --status file (status.py): the runner's own
failures and the kernels' compile failures are written there, and the exit status is left
to the program (RUNNER_FAILED is only what a person sees when the runner fails).

Before main, the runner undoes what the Python interpreter changed in the process: default
handlers for SIGINT, SIGPIPE and SIGXFSZ (so Ctrl-C and closed pipes end the program as they
would end the executable), the C locale, and the environment variables runner_env added.
"""

from __future__ import annotations

import argparse
import ctypes
import locale
import os
import signal
import sys

from ..contracts.run_report import FailureCode
from ..device.errors import CompileError
from .abi import USER_MAIN, read_manifest
from .recorder import DISPATCHER, Recorder
from .status import FAILED, LOADING, PROGRAM, write_status

STATS_ENV = "OFFLOAD_HOSTPROG_STATS"
_ADDED_ENV = "OFFLOAD_HOSTPROG_ADDED_ENV"
_PYTHON_ENV = {"PYTHONCOERCECLOCALE": "0"}      # keep Python from setting LC_CTYPE in the environment
RUNNER_FAILED = 125         # the runner itself could not start the program (read the status file, not this)


def runner_command(library: str, args: list[str] = (), dispatcher: str = "none", stats: str | None = None,
                   argv0: str | None = None, status: str | None = None) -> list[str]:
    """The command line that runs `library`'s program in a child process."""
    command = [sys.executable, "-m", "offloader.hostprog.runner", library, "--dispatcher", dispatcher]
    if stats:
        command += ["--stats", stats]
    if status:
        command += ["--status", status]
    if argv0:
        command += ["--argv0", argv0]
    return command + ["--", *args]


def runner_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for runner_command: `base` (default: ours), plus what keeps the Python
    interpreter from changing it; the runner removes those again before main."""
    env = dict(os.environ if base is None else base)
    added = [name for name in _PYTHON_ENV if name not in env]
    env.update({name: _PYTHON_ENV[name] for name in added})
    env[_ADDED_ENV] = ",".join(added)
    return env


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    options = _parser().parse_args(argv[:split])
    program_args = argv[split + 1:]
    write_status(options.status, LOADING)
    try:
        library = ctypes.CDLL(os.path.abspath(options.library))
        user_main = getattr(library, USER_MAIN)
    except (OSError, AttributeError) as exc:
        fail(options, f"cannot load the program from {options.library}: {exc}")
    try:
        callbacks = _install(library, options)      # referenced until exit: C holds pointers to them
    except CompileError as exc:
        first = next((line for line in exc.log.splitlines() if "error" in line), "")
        fail(options, f"the generated kernels did not compile: {exc} {first}".rstrip(), FailureCode.COMPILE_ERROR,
             exc.code.value)
    except Exception as exc:  # noqa: BLE001 - any other failure to set up is the runner's, reported as such
        fail(options, f"cannot set up the {options.dispatcher} dispatcher: {type(exc).__name__}: {exc}")
    user_main.restype = ctypes.c_int
    user_main.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p), ctypes.c_void_p]
    words = [os.fsencode(options.argv0 or options.library), *map(os.fsencode, program_args)]
    buffers = [ctypes.create_string_buffer(word) for word in words]     # argv strings are writable in C
    c_argv = (ctypes.c_char_p * (len(words) + 1))(*[ctypes.cast(b, ctypes.c_char_p) for b in buffers], None)
    _restore_process_state()
    libc = ctypes.CDLL(None)
    write_status(options.status, PROGRAM)
    status = user_main(len(words), c_argv, ctypes.c_void_p.in_dll(libc, "environ"))
    sys.stderr.flush()
    libc.exit(status)


def fail(options, message: str, failure: FailureCode = FailureCode.RUNNER_ERROR, detail: str | None = None):
    """End the runner before the program runs, saying why in the status file and to a person."""
    write_status(options.status, FAILED, failure, detail, message)
    print(f"offload runner: {message}", file=sys.stderr)
    sys.exit(RUNNER_FAILED)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m offloader.hostprog.runner",
                                     description="Run a host library's program (arguments after --).")
    parser.add_argument("library")
    parser.add_argument("--dispatcher", choices=("none", "cpu", "record", "device"), default="none")
    parser.add_argument("--stats", default=os.environ.get(STATS_ENV), help="statistics file (record)")
    parser.add_argument("--status", help="where the runner says how it ended (status.py)")
    parser.add_argument("--manifest", help="default: hostprog.json next to the library")
    parser.add_argument("--argv0", help="argv[0] of the program (default: the library path)")
    parser.add_argument("--plans", help="device: the kernel plans (offloader.runtime.plan)")
    parser.add_argument("--kernels", help="device: the CUDA source of the regions' kernels")
    parser.add_argument("--device", default="emu", help="device: auto, cuda or emu")
    parser.add_argument("--order", default="forward", help="device: emulator order forward|reverse|shuffle")
    parser.add_argument("--capacity", help="device: the emulator's launch shapes are a GPU's with these "
                                           "multiprocessors,threads,blocks per multiprocessor")
    parser.add_argument("--skip-kernels", action="store_true",
                        help="device: the emulator runs no kernel (timing the runtime's own work; never verified)")
    parser.add_argument("--regions", default="all", help="device: regions to run there: all, none or 1,3")
    parser.add_argument("--verify-regions", action="store_true", help="device: check each region against its twin")
    parser.add_argument("--rtol", type=float, default=None, help="device: relative tolerance of region checks")
    return parser


def _install(library: ctypes.CDLL, options):
    if options.dispatcher == "cpu":
        always_cpu = DISPATCHER(lambda region, addrs, sizes: 0)
        library.__offload_set_dispatcher(always_cpu)
        return always_cpu
    if options.dispatcher in ("record", "device") and not options.stats:
        fail(options, f"--dispatcher {options.dispatcher} needs --stats or ${STATS_ENV}")
    if options.dispatcher == "record":
        manifest = options.manifest or os.path.join(os.path.dirname(os.path.abspath(options.library)),
                                                    "hostprog.json")
        return Recorder(library, read_manifest(manifest)["regions"], options.stats)
    if options.dispatcher == "device":
        from ..runtime.child import install_device_dispatcher

        manifest = options.manifest or os.path.join(os.path.dirname(os.path.abspath(options.library)),
                                                    "hostprog.json")
        return install_device_dispatcher(library, read_manifest(manifest)["regions"], options)
    return None


def _restore_process_state() -> None:
    for name in ("SIGINT", "SIGPIPE", "SIGXFSZ"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    locale.setlocale(locale.LC_ALL, "C")
    for name in filter(None, os.environ.pop(_ADDED_ENV, "").split(",")):
        os.environ.pop(name, None)


if __name__ == "__main__":
    main()

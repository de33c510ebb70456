"""The offloaded program as users deploy it: the plan `offload tune` verified, in a folder that
builds with `make` and runs with `./run.sh ARGS`.

What is shipped must be what was verified. So the host part is the tuning build's own
instrumented sources, runtime files and CPU twins, and the Makefile compiles them with the
commands hostprog/build.py runs, rebuilt here from the constants it exports (PIC_FLAGS,
LINK_FLAGS, RUNTIME_SOURCES) and the CPU baseline's BASE_FLAGS. The kernels and plans are
those of the chosen variants. Because the Makefile is a second copy of build.py's commands,
`verify_shipped` builds the folder with make, runs it (the runner says out of band whether it
started the program) and compares its output with the CPU original's before a plan may be
called verified.

Layout: src/<k>/<name>.c, rt/, gen/twin_<id>.c, hostprog.json, kernels.cu, plans.json,
Makefile, run.sh, README.txt; `make` adds obj/ and libhost.so.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..codegen.kernel import Variant
from ..contracts.run_report import RuntimeStats, read_stats
from ..hostprog.abi import USER_MAIN
from ..hostprog.baseline import BASE_FLAGS
from ..hostprog.build import LINK_FLAGS, PIC_FLAGS, RUNTIME_FILES, RUNTIME_SOURCES
from ..hostprog.compiler import cc
from ..hostprog.runner import runner_env
from ..hostprog.status import read_status
from ..runtime.compare import compare_outputs
from ..runtime.run import PreparedProgram, RunOptions

# Options whose argument is a directory: relative ones are made absolute, since make runs in
# the shipped folder and build.py ran in the caller's working directory.
_DIRECTORY_OPTIONS = ("-I", "-iquote", "-isystem", "-idirafter", "-L")


def ship_program(prepared: PreparedProgram, variants: dict[int, Variant], gpu_regions: list[int],
                 out_dir: Path) -> Path:
    """Write the program, with `gpu_regions` on the GPU using `variants`, into out_dir.

    Relative paths in the build options are taken from the current working directory, as
    the build that `prepared` made took them."""
    out_dir = Path(out_dir).resolve()
    build = prepared.build
    unknown = sorted(set(gpu_regions) - set(build.regions))
    if unknown:
        raise ValueError(f"regions {unknown} are not in the host build (it has {sorted(build.regions)})")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / "obj", ignore_errors=True)     # a fresh shipment is built from scratch
    (out_dir / "libhost.so").unlink(missing_ok=True)

    def copy(built: str) -> str:
        relative = os.path.relpath(built, build.workdir)
        (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, out_dir / relative)
        return relative

    for name in RUNTIME_FILES:
        copy(os.path.join(build.workdir, "rt", name))
    sources = {original: copy(built) for original, built in build.sources.items()}
    twins = [copy(os.path.join(build.workdir, "gen", f"twin_{rid}.c"))
             for rid, region in sorted(build.regions.items()) if region.twin]

    with open(build.manifest) as handle:
        manifest = json.load(handle)
    manifest.update(library="libhost.so", sources=sources)
    (out_dir / "hostprog.json").write_text(json.dumps(manifest, indent=1))
    module, plans = prepared.kernels(variants)
    (out_dir / "kernels.cu").write_text(module)
    (out_dir / "plans.json").write_text(json.dumps({str(rid): plan.to_json() for rid, plan in plans.items()}))

    (out_dir / "Makefile").write_text(_makefile(prepared, sources, twins))
    run_sh = out_dir / "run.sh"
    run_sh.write_text(_run_script(prepared, sorted(gpu_regions)))
    run_sh.chmod(0o755)
    (out_dir / "README.txt").write_text(_readme(prepared, sorted(gpu_regions)))
    return out_dir


def verify_shipped(out_dir: Path, prepared: PreparedProgram, args, *, device: str = "emu", rtol: float = 1e-6,
                   ignore: tuple[str, ...] = (), timeout: float = 600.0) -> tuple[bool, str]:
    """Build the shipped folder with make, run it with `args` on `device`, and compare its
    exit status, stdout and stderr with the CPU original's. (verified, what was found)."""
    out_dir = Path(out_dir)
    first, second = prepared.reference_runs(RunOptions(args=tuple(args), timeout=timeout))
    with tempfile.TemporaryDirectory(prefix="offload-ship-") as scratch:
        env = {**os.environ, "OFFLOAD_DEVICE": device, "OFFLOAD_ARGV0": prepared.reference,
               "OFFLOAD_STATS": os.path.join(scratch, "stats.json"),
               "OFFLOAD_STATUS": os.path.join(scratch, "status.json")}
        try:
            made = subprocess.run(["make", "-s", "-C", str(out_dir)], capture_output=True, text=True,
                                  timeout=timeout, errors="replace")
            if made.returncode != 0:
                return False, "the shipped Makefile failed: " + (made.stderr + made.stdout).strip()[-800:]
            done = subprocess.run([str(out_dir / "run.sh"), *args], capture_output=True, text=True, env=env,
                                  timeout=timeout, errors="replace")
        except subprocess.TimeoutExpired as exc:
            return False, f"{exc.cmd[0]} ran for over {timeout:g} s"
        stats = read_stats(env["OFFLOAD_STATS"])[0] or RuntimeStats()     # none: every region stayed on the CPU
        runner = read_status(env["OFFLOAD_STATUS"])
    if runner is None or runner.failure is not None:
        return False, ("the shipped program's runner failed: "
                       + (runner.message if runner is not None else done.stderr.strip()[-400:]))
    for rid, entry in stats.regions.items():
        if entry.errors:
            return False, f"region {rid} failed on the {device} device: {entry.errors[0]}"
    if done.returncode != first.returncode:
        return False, (f"the shipped program exited with status {done.returncode}, the CPU original with "
                       f"{first.returncode}: {done.stderr.strip()[-400:]}")
    for name, a, b, c in (("stdout", first.stdout, second.stdout, done.stdout),
                          ("stderr", first.stderr, second.stderr, done.stderr)):
        comparison = compare_outputs(name, a, b, c, rtol, ignore)
        if not comparison.same:
            return False, f"the shipped program's {comparison.mismatch}"
    runs = sum(entry.device_runs for entry in stats.regions.values())
    return True, (f"the shipped build printed what the CPU original prints, with {runs} region run(s) on "
                  f"{'the emulated device' if device == 'emu' else stats.device or device}")


def _make_words(words, assignment: bool = True) -> str:
    """Shell-quoted words, with make's `$` escaped (and `#`, which starts a comment outside recipes)."""
    text = " ".join(shlex.quote(w).replace("$", "$$") for w in words)
    return text.replace("#", "\\#") if assignment else text


def _absolute(flags: list[str]) -> list[str]:
    out, pending = [], False
    for flag in flags:
        if pending:
            out.append(os.path.abspath(flag))
        elif flag.startswith(("-I", "-L")) and len(flag) > 2:
            out.append(flag[:2] + os.path.abspath(flag[2:]))
        else:
            out.append(flag)
        pending = not pending and flag in _DIRECTORY_OPTIONS
    return out


def _makefile(prepared: PreparedProgram, sources: dict[str, str], twins: list[str]) -> str:
    """build.py's commands, with the shipped folder's relative paths for the build folder's."""
    runtime_headers = " ".join(f"rt/{name}" for name in RUNTIME_FILES if name.endswith(".h"))
    rules, objects = [], []
    for k, (original, copy) in enumerate(sources.items()):
        folder = os.path.dirname(original)
        obj = f"obj/user_{k}.o"
        flags = ["-iquote", os.path.abspath(folder or "."),
                 f"-fmacro-prefix-map={os.path.dirname(copy)}/={folder + '/' if folder else ''}",
                 "-include", "rt/alloc_track.h", "-c", copy, "-o", obj]
        rules.append(f"{obj}: {copy} {runtime_headers} Makefile\n\t@mkdir -p obj\n"
                     f"\t$(CC) $(BASE_FLAGS) $(PIC_FLAGS) $(PPFLAGS) {_make_words(flags, assignment=False)}\n"
                     f"\t$(OBJCOPY) --redefine-sym main={USER_MAIN} {obj}\n")
        objects.append(obj)
    for source in [f"rt/{name}" for name in RUNTIME_SOURCES] + twins:
        obj = "obj/" + os.path.basename(source).replace(".c", ".o")
        rules.append(f"{obj}: {source} {runtime_headers} Makefile\n\t@mkdir -p obj\n"
                     f"\t$(CC) $(BASE_FLAGS) $(PIC_FLAGS) $(PPFLAGS) -w -c {source} -o {obj}\n")
        objects.append(obj)
    return (f"# Builds libhost.so, the host part of the offloaded program, with the commands offload used\n"
            f"# when it verified it. `make CC=...` changes the compiler; then verify again.\n"
            f"CC = {_make_words(cc()[:1])}\nOBJCOPY = objcopy\n"
            f"BASE_FLAGS = {_make_words(BASE_FLAGS)}\nPIC_FLAGS = {_make_words(PIC_FLAGS)}\n"
            f"LINK_FLAGS = {_make_words(LINK_FLAGS)}\n"
            f"PPFLAGS = {_make_words(_absolute(prepared.options.preprocessor_flags()))}\n"
            f"OBJECTS = {' '.join(objects)}\n\n"
            f"libhost.so: $(OBJECTS)\n\t$(CC) $(LINK_FLAGS) $(OBJECTS) -o $@ $(PPFLAGS) -lm\n\n"
            + "\n".join(rules)
            + "\nclean:\n\trm -rf obj libhost.so\n\n.PHONY: clean\n")


def _run_script(prepared: PreparedProgram, gpu_regions: list[int]) -> str:
    if gpu_regions:
        dispatch = ('--dispatcher device --plans "$here/plans.json" --kernels "$here/kernels.cu" '
                    f'--device "${{OFFLOAD_DEVICE:-cuda}}" --regions {",".join(map(str, gpu_regions))} '
                    '--stats "${OFFLOAD_STATS:-$here/stats.json}"')
        what = f"with regions {', '.join(map(str, gpu_regions))} on the GPU"
    else:
        dispatch, what = "--dispatcher none", "with every region on the CPU (none won on the GPU)"
    return (f"#!/bin/sh\n"
            f"# Runs {os.path.basename(prepared.options.sources[0])} {what}, as offload verified it;\n"
            f"# arguments go to the program. Build it first with make. Environment:\n"
            f"#   OFFLOAD_DEVICE=emu   run the regions on the emulated device (no GPU; slow)\n"
            f"#   OFFLOAD_PYTHON       a Python with offload installed (with pycuda for a GPU)\n"
            f"#   OFFLOAD_STATS        where per-region times go (default: stats.json here)\n"
            f"#   OFFLOAD_ARGV0        the program's argv[0]\n"
            f"#   OFFLOAD_STATUS       a file where the runner says how it ended (its own failures)\n"
            f'here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)\n'
            f"exec env {shlex.join(f'{k}={v}' for k, v in runner_env({}).items())} \\\n"
            f'  "${{OFFLOAD_PYTHON:-{sys.executable}}}" -m offloader.hostprog.runner "$here/libhost.so" \\\n'
            f'  {dispatch} ${{OFFLOAD_STATUS:+--status "$OFFLOAD_STATUS"}} \\\n'
            f'  --argv0 "${{OFFLOAD_ARGV0:-$0}}" -- "$@"\n')


def _readme(prepared: PreparedProgram, gpu_regions: list[int]) -> str:
    located = {r.id: str(r.top.loop.location) for r in prepared.regions}
    on_gpu = "\n".join(f"  region {rid} at {located.get(rid, '?')}" for rid in gpu_regions) or "  none"
    return (f"The offloaded build of {', '.join(prepared.options.sources)}, as `offload tune` verified it.\n\n"
            f"Regions on the GPU:\n{on_gpu}\n\n"
            "  make            builds libhost.so: your sources with each region's loop wrapped in a\n"
            "                  dispatch test (src/), offload's C runtime (rt/) and CPU twins (gen/)\n"
            "  ./run.sh ARGS   runs the program; the regions run on the GPU from kernels.cu and\n"
            "                  plans.json, through offload's Python runtime (pycuda or cupy)\n\n"
            "Quoted #includes are found in the source's original folder, which must still exist.\n"
            "hostprog.json describes each region's dispatch slots for the runtime.\n")

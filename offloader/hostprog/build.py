"""One build of the user's program that can run any set of its regions: `libhost.so`.

    build = build_host_library(result, regions, options, workdir)
    python -m offloader.hostprog.runner build.library -- ARGS...

The library holds the user's sources with every region's loop wrapped in a dispatch test
(rewrite.py), allocation functions redirected to tracked ones (alloc_track.h), the C runtime
(runtime.c), and the CPU twin of each region for region-level verification, compiled with the
CPU baseline's flags (baseline.py). `main` becomes
__offload_user_main so a runner can call it: the symbol is renamed in the compiled objects
(objcopy) rather than by `-Dmain=`, so the code is compiled exactly as written (`__func__`
still says main; a struct member or label called main is untouched). Which regions run where is decided while
the program runs, by the dispatcher the runner registers, so one build serves every offload
pattern. `hostprog.json` next to the library records what each dispatch slot holds.

Layout of workdir: src/<k>/<name>.c (instrumented copies, so quoted includes still find the
user's headers through -iquote), rt/ (runtime files), gen/ (twins), obj/, libhost.so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from importlib import resources

from ..analysis import AnalysisResult
from ..buildopts import BuildOptions
from ..codegen.cpu_twin import generate_twin, twin_name
from ..codegen.regions import Region, top_level_types
from . import compiler
from .abi import MANIFEST_SCHEMA, USER_MAIN, HostRegion
from .baseline import BASE_FLAGS
from .compiler import Job, cc
from .rewrite import instrument
from .slots import SlotError, region_slots

RUNTIME_FILES = ("runtime.h", "alloc_track.h", "runtime.c", "residency.c")
RUNTIME_SOURCES = ("runtime.c", "residency.c")
PIC_FLAGS = ("-fPIC", "-fno-semantic-interposition")
# -Bsymbolic: the user's functions bind to each other, never to a same-named symbol that the
# Python process already has (libc's `error` or `optind`), as they do in an executable.
# -z defs: an undefined symbol fails the link, as it would for an executable.
LINK_FLAGS = ("-shared", "-Wl,-Bsymbolic", "-Wl,-z,defs")
_TWIN_OBJECT = re.compile(r"twin_(\d+)\.o")


@dataclass(frozen=True)
class HostBuild:
    workdir: str
    library: str
    manifest: str
    sources: dict[str, str]          # original path -> instrumented copy
    regions: dict[int, HostRegion]   # the wrapped regions, by region id
    skipped: dict[int, str]          # region id -> why its loop is not wrapped (runs on the CPU)


def runtime_file(name: str) -> str:
    """Path of one of the runtime's C files shipped with this package."""
    return str(resources.files("offloader.hostprog").joinpath(name))


def build_host_library(result: AnalysisResult, regions: list[Region], options: BuildOptions,
                       workdir: str) -> HostBuild:
    """Instrument, compile and link the program with all `regions` wrapped."""
    workdir = os.path.abspath(workdir)
    for sub in ("src", "rt", "gen", "obj"):
        os.makedirs(os.path.join(workdir, sub), exist_ok=True)
    for name in RUNTIME_FILES:
        shutil.copyfile(runtime_file(name), os.path.join(workdir, "rt", name))

    units = {unit.source.path: unit for unit in result.program.units}
    by_file: dict[str, list] = {path: [] for path in options.sources}
    skipped: dict[int, str] = {}
    for region in regions:
        try:
            by_file[region.top.loop.location.file].append((region, region_slots(region)))
        except SlotError as exc:
            skipped[region.id] = str(exc)
    jobs, sources, wrapped = [], {}, {}
    for k, path in enumerate(options.sources):
        done = instrument(units[path], by_file[path])
        skipped.update(done.skipped)
        wrapped.update(done.wrapped)
        copy = os.path.join(workdir, "src", str(k), os.path.basename(path))
        os.makedirs(os.path.dirname(copy), exist_ok=True)
        with open(copy, "w") as handle:
            handle.write(done.text)
        sources[path] = copy
        jobs.append(_user_source_job(path, copy, workdir, os.path.join(workdir, "obj", f"user_{k}.o"), options))
    for name in RUNTIME_SOURCES:
        runtime_object = os.path.join(workdir, "obj", name.replace(".c", ".o"))
        jobs.append(Job(f"compiling the offload runtime ({name})",
                        (cc(*BASE_FLAGS, *PIC_FLAGS, *options.preprocessor_flags(), "-w", "-c",
                            os.path.join(workdir, "rt", name), "-o", runtime_object),), runtime_object))
    twins = [region for region in regions if region.id in wrapped]
    jobs += [_twin_job(region, result, workdir, options) for region in twins]

    outcomes = compiler.run(jobs)
    fixed = len(options.sources) + len(RUNTIME_SOURCES)
    for outcome in outcomes[:fixed]:
        compiler.check(outcome)
    twin_errors = {region.id: outcome.output.strip()
                   for region, outcome in zip(twins, outcomes[fixed:]) if not outcome.ok}
    library = os.path.join(workdir, "libhost.so")
    objects = [job.product for job, outcome in zip(jobs, outcomes) if outcome.ok]
    twin_errors.update(_link(objects, library, options))

    host_regions = {
        region.id: HostRegion(region.id, region.name, str(region.top.loop.location), region.function.name,
                              wrapped[region.id],
                              twin="" if region.id in twin_errors else twin_name(region),
                              twin_error=twin_errors.get(region.id, ""))
        for region in regions if region.id in wrapped}
    build = HostBuild(workdir, library, os.path.join(workdir, "hostprog.json"), sources, host_regions, skipped)
    _write_manifest(build, regions)
    return build


def _user_source_job(original: str, copy: str, workdir: str, obj: str, options: BuildOptions) -> Job:
    """Compile an instrumented copy as if it were the original (quoted includes search the
    original's directory, __FILE__ spells the original's path), then rename main."""
    folder = os.path.dirname(original)
    prefix_map = f"-fmacro-prefix-map={os.path.dirname(copy)}/={folder + '/' if folder else ''}"
    compile_ = cc(*BASE_FLAGS, *PIC_FLAGS, *options.preprocessor_flags(), "-iquote", folder or ".", prefix_map,
                  "-include", os.path.join(workdir, "rt", "alloc_track.h"), "-c", copy, "-o", obj)
    rename = ("objcopy", "--redefine-sym", f"main={USER_MAIN}", obj)
    return Job(f"compiling {original}", (compile_, rename), obj, {copy: original})


def _twin_job(region: Region, result: AnalysisResult, workdir: str, options: BuildOptions) -> Job:
    source = os.path.join(workdir, "gen", f"twin_{region.id}.c")
    with open(source, "w") as handle:
        handle.write(generate_twin(region, _unit_types(result, region.top.loop.location.file)))
    obj = os.path.join(workdir, "obj", f"twin_{region.id}.o")
    return Job(f"compiling the CPU twin of region {region.id}",
               (cc(*BASE_FLAGS, *PIC_FLAGS, *options.preprocessor_flags(), "-w", "-c", source, "-o", obj),), obj)


def _unit_types(result: AnalysisResult, path: str) -> list:
    """The type definitions of one file (another file's may clash with them)."""
    return [node for node in top_level_types(result) if node.coord.file == path]


def _link(objects: list[str], library: str, options: BuildOptions) -> dict[int, str]:
    """Link the library. Twins the linker cannot resolve are left out, with its message;
    any other failure is the user's program's own and raises BuildError."""
    dropped: dict[int, str] = {}
    while True:
        outcome, = compiler.run([Job("linking the host library",
                                     (cc(*LINK_FLAGS, *objects, "-o", library, *options.preprocessor_flags(),
                                         "-lm"),), library)])
        if outcome.ok:
            return dropped
        culprits = {int(m.group(1)) for m in _TWIN_OBJECT.finditer(outcome.output)} - set(dropped)
        if not culprits:
            compiler.check(outcome)
        for region_id in culprits:
            dropped[region_id] = outcome.output.strip()
            objects = [o for o in objects if os.path.basename(o) != f"twin_{region_id}.o"]


def _write_manifest(build: HostBuild, regions: list[Region]) -> None:
    locations = {region.id: str(region.top.loop.location) for region in regions}
    data = {
        "schema": MANIFEST_SCHEMA,
        "library": build.library,
        "sources": build.sources,
        "regions": [region.to_json() for region in build.regions.values()],
        "skipped": [{"region": k, "location": locations[k], "reason": why}
                    for k, why in sorted(build.skipped.items())],
    }
    with open(build.manifest, "w") as handle:
        json.dump(data, handle, indent=1)

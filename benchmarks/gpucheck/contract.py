"""Step `contract`: the device contract suite (tests/test_device_contract.py) and the CuPy
device's own GPU tests, through pycuda and through CuPy; which library the later steps use.

pycuda if it passes its contract, else CuPy if that passes (the file says pycuda failed and
how), else whichever failed less, said so. The smoke mode runs a subset (SMOKE). In the dry run
the suite runs on the emulator and the GPU cases skip, with pytest's reasons."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from .stepio import Context, StepOutput

TESTS = ("tests/test_device_contract.py", "tests/test_device_cupy.py")
SMOKE = "vector_add or copies or reduction or current_context or fault"      # the smoke mode's subset
LIBRARIES = ("pycuda", "cupy", "emu")      # emu: the emulator's cases, and (dry run) tests that need no GPU


def run(context: Context, out: StepOutput) -> int:
    junit = Path(context.work) / "logs" / "contract.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", f"--junitxml={junit}",
               *(() if context.dry else ("-m", "gpu")), *(("-k", SMOKE) if context.smoke else ()), *TESTS]
    done = subprocess.run(command, cwd=context.root)
    results = read_junit(junit, context.dry)
    library, why = choose(results, context.dry)
    out.set(pytest_exit=done.returncode, by_library=results, library=library, library_why=why)
    failed = any(results[name]["failed"] for name in LIBRARIES if name != "emu" or context.dry)
    if context.dry and results["emu"]["passed"] == 0:
        return out.finish("failed", "no emulator contract test ran")
    return out.finish("failed" if failed or done.returncode not in (0, 5) else "ok",
                      why if failed else None)


def read_junit(path: Path, dry: bool) -> dict:
    """Per library: passed, failed, skipped, and the first failures' names and messages."""
    results = {name: {"passed": 0, "failed": 0, "skipped": 0, "failures": [], "skip_reasons": []}
               for name in LIBRARIES}
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return results
    for case in root.iter("testcase"):
        name = case.get("name", "")
        entry = results[library_of(case.get("classname", ""), name, dry)]
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        skipped = case.find("skipped")
        if problem is not None:
            entry["failed"] += 1
            if len(entry["failures"]) < 5:
                entry["failures"].append(f"{name}: {(problem.get('message') or '')[:300]}")
        elif skipped is not None:
            entry["skipped"] += 1
            reason = (skipped.get("message") or "")[:200]
            if reason not in entry["skip_reasons"] and len(entry["skip_reasons"]) < 3:
                entry["skip_reasons"].append(reason)
        else:
            entry["passed"] += 1
    return results


def library_of(classname: str, name: str, dry: bool) -> str:
    """The device a test case ran on: its parameter; else, on a GPU, the CuPy file's GPU tests
    run through CuPy; in a dry run the tests without a parameter need no GPU."""
    found = re.search(r"\[(?:[^\]]*-)?(pycuda|cupy|emu)(?:-[^\]]*)?\]", name)
    if found:
        return found.group(1)
    return "cupy" if classname.endswith("test_device_cupy") and not dry else "emu"


def choose(results: dict, dry: bool) -> tuple[str | None, str]:
    if dry:
        return None, "dry run: the emulated device"
    pycuda, cupy = results["pycuda"], results["cupy"]
    if pycuda["passed"] and not pycuda["failed"]:
        return "pycuda", f"pycuda passed its contract ({pycuda['passed']} tests)"
    said = (f"pycuda failed {pycuda['failed']} of its contract tests ({'; '.join(pycuda['failures'][:2])})"
            if pycuda["failed"] else f"no pycuda contract test passed ({'; '.join(pycuda['skip_reasons'][:1])})")
    if cupy["passed"] and not cupy["failed"]:
        return "cupy", f"{said}: the rest runs through CuPy, which passed ({cupy['passed']} tests)"
    best = min(("pycuda", "cupy"), key=lambda name: (results[name]["failed"], -results[name]["passed"]))
    return best, f"{said}; CuPy failed {cupy['failed']}: the rest runs through {best}, which failed fewer"

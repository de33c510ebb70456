"""The GPU check: a few minutes of GPU time spent on measuring, every step boxed in time and its
results kept as they come. scripts/gpu-check.sh prepares the GPU host and runs this; read that
script first. Here: which steps run, in which box, and the result file.

Steps, in order: preflight, contract, ceilings, fault, sample:NAME (one per sample), launch,
and in a dry run compile. Each runs as a child process of its own (`--step NAME`), in its own
process group, in a box of min(its cap, what is left less the minimum every later step needs),
so an overrun costs that step and no other. After every step the result is rewritten
atomically: RESULT.json, RESULT.log (this console) and RESULT.logs.tar.gz (each step's log),
three files in all.

Environment:
  GPU_CHECK_SECONDS   the whole check, default 420 (smoke mode 90); at most 480 on the GPU host
  GPU_CHECK_STEPS     only these steps (comma-separated names or prefixes, e.g. ceilings,sample:saxpy;
                      preflight always runs)
  GPU_CHECK_SMOKE=1   about a minute: fewer sizes and repeats, one sample
  GPU_CHECK_DRY=1     no GPU: the emulated device at the samples' default sizes, every sample
                      built at its GPU sizes; results to results/gpu-dry/
  GPU_CHECK_BOXES     per-step caps, e.g. "contract=60,sample:matmul=30" (seconds)
  GPU_CHECK_OUT       where the result goes (default $OUT when set, else results/gpu/)
  GPU_CHECK_WITHOUT_PYCUDA=1  go on through CuPy when pycuda does not import
  GPU_CHECK_COMMIT    the commit measured, where the checkout has no git history
  GPU_CHECK_WORK      the work folder (builds, step outputs, logs), kept; default a temporary one
Exit status: 0 every step ok, 1 some step failed or overran, 3 preflight stopped the check.
`python benchmarks/gpu_check.py --table RESULT.json` prints the figures as README table rows.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpucheck import figures, record  # noqa: E402
from gpucheck.boxes import Interrupted, become_subreaper, die_with_parent, run_boxed, stop_on_signals  # noqa: E402
from gpucheck.sizes import SAMPLE_ORDER, SMOKE_SAMPLES  # noqa: E402
from gpucheck.stepio import STOP, Context, StepOutput  # noqa: E402

MARGIN = 5.0                    # seconds kept for the last write
MAX_SECONDS = 480


@dataclass(frozen=True)
class Step:
    name: str
    cap: float                  # its box, at most
    minimum: float              # below this it is not started


def steps_for(dry: bool, smoke: bool) -> list[Step]:
    """The steps, their caps and minimums (on a GPU a sample at GPU sizes needs about 15 s: its
    build, the CPU original twice, two configurations with repeats, ptxas, the launches)."""
    present = {p.stem for p in (ROOT / "samples").glob("*.c")}
    samples = SMOKE_SAMPLES if smoke else ([s for s in SAMPLE_ORDER if s in present]
                                           + sorted(present - set(SAMPLE_ORDER)))
    least = 5 if dry else 1
    steps = [Step("preflight", 60, 5), Step("contract", 60 if smoke else 150, 20 / least),
             Step("ceilings", 30 if smoke else 45, 10 / least), Step("fault", 30 if smoke else 45, 10 / least)]
    steps += [Step(f"sample:{name}", 40 if smoke else 60, 20 / least) for name in samples]
    steps.append(Step("launch", 30 if smoke else 45, 15 / least))
    if dry:
        steps.append(Step("compile", 90 if smoke else 240, 10))
    return steps


def selected(step: Step, wanted: list[str] | None) -> bool:
    return step.name == "preflight" or not wanted or any(step.name == w or step.name.startswith(w) for w in wanted)


class Console:
    """Lines to stdout and to RESULT.log."""

    def __init__(self, path: Path):
        self.path = path

    def say(self, line: str) -> None:
        line = f"gpu-check: {line}"
        print(line, flush=True)
        with open(self.path, "a") as handle:
            handle.write(line + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description="the GPU check (see scripts/gpu-check.sh)")
    parser.add_argument("--step", help="run one step (the check itself calls this)")
    parser.add_argument("--work", help="the check's work folder (with --step)")
    parser.add_argument("--table", help="print a result's figures as README table rows")
    options = parser.parse_args()
    if options.table:
        print(figures.table(record.read_json(Path(options.table)) or {}, options.table))
        return 0
    if options.step:
        return run_step(options.step, Path(options.work))
    return check()


def run_step(name: str, work: Path) -> int:
    die_with_parent()
    context = Context.load(work / "context.json")
    out = StepOutput(work / "steps" / f"{name.replace(':', '-')}.json")
    kind, _, argument = name.partition(":")
    if kind == "sample":
        from gpucheck import sample

        return sample.run(context, out, argument)
    module = __import__(f"gpucheck.{kind}", fromlist=["run"])
    return module.run(context, out)


def mode_from_env() -> dict:
    dry, smoke = os.environ.get("GPU_CHECK_DRY") == "1", os.environ.get("GPU_CHECK_SMOKE") == "1"
    seconds = float(os.environ.get("GPU_CHECK_SECONDS") or (90 if smoke else 420))
    wanted = [w.strip() for w in os.environ.get("GPU_CHECK_STEPS", "").split(",") if w.strip()] or None
    boxes = {}
    for item in filter(None, (part.strip() for part in os.environ.get("GPU_CHECK_BOXES", "").split(","))):
        name, _, value = item.rpartition("=")
        boxes[name] = float(value)
    return {"dry": dry, "smoke": smoke, "seconds": seconds, "steps": wanted, "boxes": boxes or None}


def check() -> int:
    started = time.monotonic()
    become_subreaper()
    stop_on_signals()
    mode = mode_from_env()
    if not mode["dry"] and mode["seconds"] > MAX_SECONDS:
        print(f"gpu-check: GPU_CHECK_SECONDS={mode['seconds']:g} is over {MAX_SECONDS}: a device command "
              "runs at most 10 minutes, with start-up and install", file=sys.stderr)
        return 2
    out_dir = Path(os.environ.get("GPU_CHECK_OUT") or os.environ.get("OUT") or
                   ROOT / "results" / ("gpu-dry" if mode["dry"] else "gpu"))
    out_dir.mkdir(parents=True, exist_ok=True)
    given = os.environ.get("GPU_CHECK_WORK")
    work = Path(given or tempfile.mkdtemp(prefix="offload-gpu-check-"))
    (work / "steps").mkdir(parents=True, exist_ok=True)
    (work / "logs").mkdir(exist_ok=True)
    stem = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + ("-dry" if mode["dry"] else "")
    paths = {"json": out_dir / f"{stem}.json", "log": out_dir / f"{stem}.log",
             "logs": out_dir / f"{stem}.logs.tar.gz"}
    console = Console(paths["log"])
    result = record.skeleton(mode)
    result["commit"] = record.commit_info(ROOT)
    context = Context(root=str(ROOT), work=str(work), dry=mode["dry"], smoke=mode["smoke"],
                      device="emu" if mode["dry"] else "cuda")
    deadline = started + mode["seconds"] - MARGIN
    plan = steps_for(mode["dry"], mode["smoke"])
    console.say(f"{'dry run, ' if mode['dry'] else ''}{'smoke mode, ' if mode['smoke'] else ''}"
                f"{mode['seconds']:g} s, {sum(selected(s, mode['steps']) for s in plan)} steps -> {paths['json']}")
    env = dict(os.environ)
    try:
        worst = run_steps(plan, mode, result, paths, work, started, deadline, context, env, console)
        if not given:                       # the builds; what is worth keeping is in the logs bundle
            shutil.rmtree(work, ignore_errors=True)
    except Interrupted as signal_name:
        current = next((name for name, entry in reversed(result["steps"].items()) if entry.get("running")), None)
        console.say(f"stopped by {signal_name}" + (f" during {current}" if current else ""))
        if current:
            result["steps"][current] = {"status": "interrupted", "reason": f"the check got {signal_name}: "
                                        "the step was killed with its process group"}
        write(result, paths, work, started)
        return 1
    if worst == STOP:
        return STOP
    if result["library"]["used"] is None:
        result["library"] = default_library(result, context)
    write(result, paths, work, started, finished=True)
    console.say(f"done in {time.monotonic() - started:.0f} s: " + ", ".join(
        f"{name} {entry['status']}" for name, entry in result["steps"].items() if entry["status"] != "not_run"))
    console.say(f"wrote {paths['json']}, {paths['log'].name}, {paths['logs'].name}")
    return worst


def run_steps(plan, mode, result, paths, work, started, deadline, context, env, console) -> int:
    """Each step in its box, the result written after each; 0, 1 (a step not ok) or STOP."""
    worst = 0
    for index, step in enumerate(plan):
        if not selected(step, mode["steps"]):
            result["steps"][step.name] = {"status": "not_run", "reason": "not in GPU_CHECK_STEPS"}
            continue
        later = sum(s.minimum for s in plan[index + 1:] if selected(s, mode["steps"]))
        cap = (mode["boxes"] or {}).get(step.name, step.cap)
        box = min(cap, deadline - time.monotonic() - later)
        if step.name == "preflight":
            box = max(box, min(step.minimum, cap))          # it always runs: the header comes from it
        if box < min(step.minimum, cap):
            result["steps"][step.name] = {"status": "skipped", "reason": (
                f"no time left ({max(box, 0):.0f} s of the {step.minimum:g} s it needs, after keeping {later:g} s "
                "for later steps)")}
            console.say(f"{step.name}: skipped, no time left")
            worst = max(worst, 1)
            write(result, paths, work, started)
            continue
        result["steps"][step.name] = {"status": None, "running": True}
        entry = result["steps"][step.name] = run_one(step, box, context, work, env, console)
        worst = max(worst, 0 if entry["status"] in ("ok", "skipped") else 1)
        if step.name == "preflight":
            absorb_preflight(result, entry, context)
            if entry["status"] != "ok":
                console.say(f"stopped: {entry.get('reason')}")
                write(result, paths, work, started)
                return STOP
        elif step.name == "contract" and entry.get("library"):
            context.library = entry["library"]
            env["OFFLOAD_GPU_LIBRARY"] = entry["library"]
            result["library"] = {"used": entry["library"], "why": entry.get("library_why")}
        elif step.name == "ceilings":
            context.ceilings = {"device_to_device_gbps": (entry.get("device_to_device") or {}).get("gbps")}
        if step.name.startswith("sample:"):
            keep_replays(result, step.name.split(":", 1)[1], entry)
        write(result, paths, work, started)
    return worst


def run_one(step: Step, box: float, context: Context, work: Path, env: dict, console: Console) -> dict:
    context.save(work / "context.json")
    log = work / "logs" / f"{step.name.replace(':', '-')}.log"
    output = work / "steps" / f"{step.name.replace(':', '-')}.json"
    output.unlink(missing_ok=True)
    console.say(f"{step.name}: started, box {box:.0f} s")
    boxed = run_boxed([sys.executable, str(Path(__file__).resolve()), "--step", step.name, "--work", str(work)],
                      box, str(log), env=env, cwd=str(ROOT))
    data = record.read_json(output) or {}
    status = data.pop("status", None)
    reason = data.pop("reason", None)
    if boxed.status == "overran":
        status, reason = "overran", f"killed with its process group at its {box:.0f} s box" + (
            "; the parts before are kept" if data else "")
    elif status is None:
        status, reason = "crashed", f"exit status {boxed.returncode}: {_tail(log)}"
    entry = {"status": status, "reason": reason, "seconds": round(boxed.seconds, 2), "box_seconds": round(box, 1),
             "log": f"logs/{log.name}", **data}
    console.say(f"{step.name}: {status} in {boxed.seconds:.1f} s" + (f" ({reason})" if reason else ""))
    return entry


def keep_replays(result: dict, name: str, entry: dict) -> None:
    """A sample step's tune recording and its run (what the GPU model's tests model again),
    moved to the top-level lists that offloader/tune/replay.py reads; a sample without a run
    is listed as not_recorded, with why."""
    if entry.get("recording"):
        result["recordings"].append(entry.pop("recording"))
    replay = entry.pop("replay", None)
    run = {"name": name, "sample": f"samples/{name}.c"}
    verified = (entry.get("full_run") or {}).get("verified")
    if replay and verified:
        run.update(status="recorded", reason=None, **replay)
    elif replay:
        run.update(status="not_recorded", reason="the run failed verification: the model is compared with "
                   "verified runs only (the step has its figures)")
    else:
        run.update(status="not_recorded", reason=f"the sample's step {entry['status']}: {entry.get('reason')}")
    result["runs"].append(run)


def absorb_preflight(result: dict, entry: dict, context: Context) -> None:
    """The header fields the preflight step found."""
    result["host"] = entry.get("host")
    result["gpu"] = entry.get("gpu") or result["gpu"]
    result["libraries"] = {**(entry.get("libraries") or {}), "packages": entry.get("packages"),
                           "nvcc": entry.get("nvcc")}
    if context.dry:
        result["library"] = {"used": "emulated", "why": "dry run: the emulated device runs the kernels"}
        return
    from sizing.gpu_models import lookup
    from offloader.tune.gpumodel import gpu_specs

    if not result["gpu"].get("name"):                   # no nvidia-smi: the name CuPy read
        result["gpu"]["name"] = (result["libraries"].get("cupy") or {}).get("name")
    board = lookup(result["gpu"].get("name") or "")
    names = [name for name, spec in gpu_specs().items() if board and spec.board.name == board.name]
    context.gpu_model = names[0] if names else "h200"
    result["gpu"]["model"] = context.gpu_model
    if not names:
        result["gpu"]["model_reason"] = ("the GPU model has no figures for this board" if board else
                                         "the GPU's name is not known") + ": modeled as an H200"


def default_library(result: dict, context: Context) -> dict:
    if context.dry:
        return {"used": "emulated", "why": "dry run"}
    contract = result["steps"].get("contract", {})
    return {"used": "pycuda" if not os.environ.get("GPU_CHECK_WITHOUT_PYCUDA") else "cupy",
            "why": f"the contract step did not choose ({contract.get('status', 'not run')}): "
                   "offloader.device.gpu_library's first choice"}


def write(result: dict, paths: dict, work: Path, started: float, finished: bool = False) -> None:
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    result["figures"] = figures.collect(result)
    if finished:
        result["finished"] = record.now()
    record.write_json(paths["json"], result)
    record.bundle(sorted((work / "logs").glob("*.log")) + sorted((work / "logs").glob("*.xml")), work, paths["logs"])


def _tail(log: Path, lines: int = 3) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(re.sub(r"\s+", " ", line)[:200] for line in text[-lines:])


if __name__ == "__main__":
    sys.exit(main())

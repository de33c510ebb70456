"""`size()`: a profile and a catalog in, the sizing document (sizing.json, document.py) out.

This is the stage's Python entry point; the CLI, the batch mode and the reports all work from the
dictionary it returns, which is also what `offload size --json` prints.
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import Catalog
from .document import GENERATOR, SCHEMA
from .policies import POLICY_NAMES, Candidate, choose, evaluate, explain, pareto
from .predict import predict_all
from .profile import Profile


@dataclass(frozen=True)
class Options:
    policy: str = "cost-perf"
    max_price: float | None = None          # per hour
    deadline: float | None = None           # seconds per run
    board_occupancy: int | None = None      # vGPUs running on the board; None = full
    assume_idle: bool = False               # best-effort: size with the idle end


def size(profile: Profile, catalog: Catalog, options: Options = Options()) -> dict:
    predictions = predict_all(profile, catalog, options.board_occupancy)
    candidates = evaluate(predictions.items, options.max_price, options.deadline, options.assume_idle)
    board = predictions.board
    gpu_part = board.kernel_seconds + board.transfer_seconds
    rho = profile.cpu_part_seconds / gpu_part if gpu_part > 0 else float("inf")
    chosen = choose(options.policy, candidates, rho)
    other_policy = next(p for p in POLICY_NAMES if p != options.policy)
    other = choose(other_policy, candidates, rho)
    front = pareto(candidates)
    on_front = {c.name for c in front}
    best_effort = catalog.policy == "best-effort"

    comparison = {"policy": other_policy, "choice": _candidate(other, on_front, best_effort) if other else None}
    if chosen is not None:
        diff = other.cost_per_run - chosen.cost_per_run if other else None
        comparison.update(cost_per_run_difference=diff,
                          relative_difference=diff / chosen.cost_per_run if other else None,
                          explanation=explain(chosen, other, other_policy, rho))
    return {
        "schema": SCHEMA,
        "generator": GENERATOR,
        "app": profile.app,
        "profile": profile.path,
        "catalog": catalog.path,
        "gpu_model": catalog.model,
        "scheduler": catalog.policy,
        "policy": options.policy,
        "constraints": {"max_price": options.max_price, "deadline": options.deadline,
                        "board_occupancy": options.board_occupancy, "assume_idle": options.assume_idle},
        "recommendation": _candidate(chosen, on_front, best_effort) if chosen else None,
        "comparison": comparison,
        "cpu_scaling": predictions.cpu_scaling,
        "ratio": {"rho": rho, "cpu_part_seconds": profile.cpu_part_seconds, "gpu_part_seconds": gpu_part,
                  "gpu_part_kind": board.kind},
        "pareto": [c.name for c in front],
        "candidates": [_candidate(c, on_front, best_effort) for c in candidates],
        "notes": list(predictions.notes),
    }


def _candidate(c: Candidate, on_front: set[str], best_effort: bool) -> dict:
    p = c.prediction
    out = {
        "config": c.name, "cpu": p.cpu.name, "gpu": p.gpu.name, "vcpus": p.cpu.vcpus,
        "memory_gib": p.cpu.memory_gib, "fraction": p.gpu.fraction, "vgpu_type": p.gpu.vgpu_type,
        "framebuffer_gib": p.gpu.framebuffer_gib, "price_per_hour": c.price_per_hour,
        "feasible": c.feasible, "reason": "; ".join(c.reasons) or None,
        "predicted_seconds": c.predicted_seconds, "cost_per_run": c.cost_per_run,
        "cpu_seconds": p.cpu_seconds, "cpu_kind": p.cpu_kind,
        "gpu_seconds": c.gpu_seconds, "gpu_kind": p.gpu_kind,
        "gpu_share": p.share, "transfer_seconds": p.transfer_seconds, "transfer_kind": p.transfer_kind,
        "unit_ratio": c.unit_ratio, "pareto": c.name in on_front,
    }
    if best_effort:
        out["predicted_seconds_busy"] = p.seconds(idle=False)
        out["predicted_seconds_idle"] = p.seconds(idle=True)
    return out

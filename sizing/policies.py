"""Choosing one configuration: `cost-perf` (cheapest run) or `ratio` (the seed paper's method).

* cost-perf: among configurations that meet every constraint (memory, --max-price per hour,
  --deadline per run), the lowest cost per run = predicted seconds x hourly price / 3600; ties
  go to the faster one. The Pareto front of time vs cost is reported beside it.
* ratio: CPU sizes in vCPU units, GPU slices in quarter-board units; the target is
  rho = Tc / Tg, the CPU-part and GPU-part (kernels + transfers) times on a whole board. Among the
  configurations that meet the constraints, those whose unit ratio is closest to rho on a log
  scale, and of them the largest.

Whatever the policy, the other one's choice is reported with the difference in cost per run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .predict import Prediction

POLICY_NAMES = ("cost-perf", "ratio")
_TIE = 1e-9


@dataclass(frozen=True)
class Candidate:
    prediction: Prediction
    gpu_seconds: float              # the slice's kernel time used: busy end unless assume_idle
    predicted_seconds: float
    reasons: tuple[str, ...]        # every constraint it breaks; empty when feasible

    @property
    def feasible(self) -> bool:
        return not self.reasons

    @property
    def name(self) -> str:
        return f"{self.prediction.cpu.name} + {self.prediction.gpu.name}"

    @property
    def price_per_hour(self) -> float:
        return self.prediction.cpu.price_per_hour + self.prediction.gpu.price_per_hour

    @property
    def cost_per_run(self) -> float:
        return self.predicted_seconds * self.price_per_hour / 3600.0

    @property
    def gpu_units(self) -> float:
        return self.prediction.gpu.fraction * 4

    @property
    def unit_ratio(self) -> float:
        return self.prediction.cpu.vcpus / self.gpu_units


def evaluate(predictions, max_price: float | None, deadline: float | None,
             assume_idle: bool) -> list[Candidate]:
    """Candidates with their time (busy end unless assume_idle) and every constraint they break."""
    out = []
    for p in predictions:
        seconds = p.seconds(idle=assume_idle)
        reasons = list(p.violations)
        price = p.cpu.price_per_hour + p.gpu.price_per_hour
        if max_price is not None and price > max_price + _TIE:
            reasons.append(f"price {price:.2f}/h is over --max-price {max_price:g}/h")
        if deadline is not None and seconds > deadline:
            reasons.append(f"predicted {seconds:.3g} s is over --deadline {deadline:g} s")
        out.append(Candidate(p, p.gpu_seconds_idle if assume_idle else p.gpu_seconds, seconds, tuple(reasons)))
    return out


def cost_perf(candidates: list[Candidate]) -> Candidate | None:
    feasible = [c for c in candidates if c.feasible]
    if not feasible:
        return None
    cheapest = min(c.cost_per_run for c in feasible)
    tied = [c for c in feasible if c.cost_per_run <= cheapest * (1 + _TIE)]
    return min(tied, key=lambda c: c.predicted_seconds)


def ratio(candidates: list[Candidate], rho: float) -> Candidate | None:
    feasible = [c for c in candidates if c.feasible]
    if not feasible:
        return None
    target = math.log(min(max(rho, 1e-9), 1e9))
    distance = {id(c): abs(math.log(c.unit_ratio) - target) for c in feasible}
    closest = min(distance.values())
    tied = [c for c in feasible if distance[id(c)] <= closest + _TIE]
    return max(tied, key=lambda c: (c.prediction.cpu.vcpus, c.prediction.gpu.fraction, c.price_per_hour))


def choose(policy: str, candidates: list[Candidate], rho: float) -> Candidate | None:
    return cost_perf(candidates) if policy == "cost-perf" else ratio(candidates, rho)


def pareto(candidates: list[Candidate]) -> list[Candidate]:
    """Feasible configurations that no other beats on both time and cost per run, fastest first."""
    front, best = [], math.inf
    for c in sorted((c for c in candidates if c.feasible), key=lambda c: (c.predicted_seconds, c.cost_per_run)):
        if c.cost_per_run < best * (1 - _TIE):
            front.append(c)
            best = c.cost_per_run
    return front


def explain(chosen: Candidate, other: Candidate | None, other_policy: str, rho: float) -> str:
    """One paragraph: what the other policy would choose and why its cost per run differs."""
    why = (f"ratio matches vCPU : quarter-GPU units to rho = Tc/Tg = {rho:.3g} and takes the largest "
           "such pair, without looking at cost per run" if other_policy == "ratio" else
           "cost-perf takes the lowest cost per run")
    if other is None:
        return f"{other_policy} finds no configuration that meets the constraints ({why})."
    if other.name == chosen.name:
        return f"{other_policy} would choose the same configuration, {chosen.name} ({why})."
    diff = other.cost_per_run - chosen.cost_per_run
    speed = chosen.predicted_seconds / other.predicted_seconds
    pace = f"{speed:.2f}x faster" if speed >= 1 else f"{1 / speed:.2f}x slower"
    price = other.price_per_hour / chosen.price_per_hour
    more = "more" if diff > 0 else "less"
    return (f"{other_policy} would choose {other.name} ({other.prediction.cpu.vcpus} vCPU : "
            f"{other.gpu_units:g} quarter-GPU): {other.predicted_seconds:.3g} s at "
            f"{other.price_per_hour:.2f}/h = {other.cost_per_run:.4g} per run, "
            f"{diff:+.4g} ({diff / chosen.cost_per_run:+.1%}) per run against the recommendation. "
            f"It is {pace} at {price:.2f}x the hourly price, so each run costs {more}; {why}.")

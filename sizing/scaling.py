"""How the CPU part's time changes with the number of cores: Amdahl's law, fitted to measurements.

T(n) = T1 * (s + (1 - s) / n), with s the serial fraction. Two ways to learn s:

* from the wall times measured pinned to several core counts (a least-squares fit of
  T(n) = a + b / n with a, b >= 0); this is what `offload profile` uses to extrapolate to core
  counts the host does not have;
* from a single run on n > 1 cores, through its CPU time C and wall time W: if the parallel part
  keeps all n cores busy, C = Ts + n * Tp and W = Ts + Tp, so s = Ts / C. It is an independent
  estimate that lets one measured point predict another (tests/test_sizing_scaling_measured.py).

Memory-bound parallel code breaks the second estimate (cores are busy but slower together),
which is why the sizer uses measured points where it has them and the fit only in between.
"""

from __future__ import annotations

from dataclasses import dataclass

SCALING_KINDS = ("measured", "extrapolated", "assumed")


@dataclass(frozen=True)
class ScalingPoint:
    """Time of the CPU part with `cores` cores (and as many threads); kind in SCALING_KINDS."""

    cores: int
    seconds: float
    kind: str


@dataclass(frozen=True)
class Amdahl:
    t1: float                   # time on one core
    serial_fraction: float      # s in [0, 1]

    def seconds(self, cores: int) -> float:
        return self.t1 * (self.serial_fraction + (1.0 - self.serial_fraction) / cores)


def fit_amdahl(points: dict[int, float]) -> Amdahl:
    """Least-squares fit of T(n) = a + b/n with a, b >= 0; one point alone fits flat (s = 1)."""
    if not points:
        raise ValueError("no points to fit")
    if len(points) == 1:
        (_, seconds), = points.items()
        return Amdahl(seconds, 1.0)
    xs = [1.0 / n for n in points]
    ys = list(points.values())
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    if b < 0:               # slower with more cores: no parallel benefit
        a, b = my, 0.0
    elif a < 0:             # better than linear: no serial part
        a, b = 0.0, sum(y * x for x, y in zip(xs, ys)) / sum(x * x for x in xs)
    return Amdahl(a + b, a / (a + b))


def serial_fraction_from_usage(wall: float, cpu: float, cores: int) -> float:
    """s from one run on `cores` cores: wall time and CPU time (user + system) of the process."""
    if cores == 1 or cpu <= 0:
        raise ValueError("a run on one core says nothing about the parallel part")
    parallel = max(0.0, (cpu - wall) / (cores - 1))     # Tp
    serial = max(0.0, wall - parallel)                  # Ts
    return serial / (serial + cores * parallel) if parallel > 0 else 1.0


def predict(from_cores: int, from_seconds: float, serial_fraction: float, to_cores: int) -> float:
    """T(to_cores) from one known point and a serial fraction."""
    def shape(n):
        return serial_fraction + (1.0 - serial_fraction) / n
    return from_seconds * shape(to_cores) / shape(from_cores)


def complete(points: dict[int, ScalingPoint], wanted: list[int]) -> dict[int, ScalingPoint]:
    """The measured points plus, for each wanted core count not measured, an Amdahl estimate.

    With two or more measured points the estimate is `extrapolated` from the fit; with one it is
    `assumed` flat, since a single core count cannot show how the program scales.
    """
    measured = {n: p.seconds for n, p in points.items() if p.kind == "measured"}
    if not measured:
        raise ValueError("no measured point")
    fit = fit_amdahl(measured)
    kind = "extrapolated" if len(measured) >= 2 else "assumed"
    out = dict(points)
    for n in wanted:
        if n not in out:
            out[n] = ScalingPoint(n, fit.seconds(n), kind)
    return dict(sorted(out.items()))

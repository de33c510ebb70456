"""A cost model of an offloaded program, to test and benchmark strategies without a GPU.

Times are modeled, not measured. Each region has a CPU time per call (one core) and a GPU
kernel time per call at its best launch settings; other settings slow the kernel by a factor
per option value, and a few pairs of values interact. Data one region hands to the next
crosses PCIe when the two run on different sides; that transfer is charged to the side on
the GPU, so neighbours on the GPU share it. The figures of the sample-like programs are
sized for an H100-class GPU over PCIe 4.0 against one core of a current server CPU.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from offloader.tune.objective import Outcome, RegionProfile
from offloader.tune.space import Config, Region, Space

HOST = "host"
LAUNCH = 5e-6                      # seconds per kernel launch
GPU_BYTES_PER_SECOND = 2.0e12      # achieved device memory bandwidth
LINK_BYTES_PER_SECOND = 25e9       # achieved PCIe 4.0 x16
LINK_LATENCY = 10e-6               # seconds per copy, however small

BLOCKS_1D = ("128x1x1", "256x1x1", "64x1x1", "512x1x1")
BLOCKS_2D = ("32x8x1", "16x16x1", "32x4x1")
BLOCKS_3D = ("32x4x2", "32x8x1", "8x8x4")
AXES = ("default", "swapped")
REDUCTIONS = ("tree", "atomic")


@dataclass(frozen=True)
class Kernel:
    """One region. `slowdown[option][value]` is the kernel's factor for that value (1 or
    missing: as fast as its best); `pairs[(a, b)]`, with a and b "option=value", multiplies
    when both hold; `fails["option=value"]` is the failure status of that value."""

    id: str
    cpu_seconds: float
    gpu_seconds: float
    calls: int = 1
    options: Mapping[str, Sequence[str]] = field(default_factory=dict)
    slowdown: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    pairs: Mapping[tuple[str, str], float] = field(default_factory=dict)
    fails: Mapping[str, str] = field(default_factory=dict)

    def kernel_seconds(self, settings) -> float:
        held = {f"{name}={value}" for name, value in settings}
        factor = math.prod(self.slowdown.get(name, {}).get(value, 1.0) for name, value in settings)
        factor *= math.prod(f for (a, b), f in self.pairs.items() if a in held and b in held)
        return self.calls * (self.gpu_seconds * factor + LAUNCH)


@dataclass(frozen=True)
class Link:
    """`bytes` that region `a` hands to region `b` (either may be HOST), `times` times a run."""

    a: str
    b: str
    bytes: float
    times: int = 1


@dataclass(frozen=True)
class App:
    name: str
    kernels: tuple[Kernel, ...]
    links: tuple[Link, ...] = ()
    rest_seconds: float = 0.0      # CPU time outside the regions

    def space(self) -> Space:
        return Space(Region(k.id, k.options) for k in self.kernels)

    def evaluate(self, config: Config) -> Outcome:
        transfer = {k.id: 0.0 for k in self.kernels}
        for link in self.links:
            a = link.a != HOST and config.on_gpu(link.a)
            b = link.b != HOST and config.on_gpu(link.b)
            if a != b:
                transfer[link.a if a else link.b] += link.times * (LINK_LATENCY + link.bytes / LINK_BYTES_PER_SECOND)
        regions = {}
        for kernel in self.kernels:
            settings = config.settings(kernel.id)
            if settings is None:
                regions[kernel.id] = RegionProfile(cpu_seconds=kernel.calls * kernel.cpu_seconds)
                continue
            for name, value in settings:
                status = kernel.fails.get(f"{name}={value}")
                if status:
                    return Outcome.failure(status, f"{kernel.id}: {name}={value} fails", kind="modeled",
                                           region=kernel.id)
            gpu = kernel.kernel_seconds(settings) + transfer[kernel.id]
            regions[kernel.id] = RegionProfile(gpu_seconds=gpu, transfer_seconds=transfer[kernel.id])
        seconds = self.rest_seconds + sum(p.cpu_seconds or p.gpu_seconds for p in regions.values())
        return Outcome("ok", seconds, kind="modeled", regions=regions)


def _options(dims: int, reduction: bool) -> dict[str, tuple[str, ...]]:
    options = {"block": {1: BLOCKS_1D, 2: BLOCKS_2D, 3: BLOCKS_3D}[dims]}
    if dims > 1:
        options["axes"] = AXES
    if reduction:
        options["reduction"] = REDUCTIONS
    return options


def heat2d() -> App:
    """samples/heat2d.c at -DNX=4096 -DNY=4096 -DSTEPS=100: init, stencil, copy-back, checksum."""
    grid = 4096 * 4096 * 8
    two_d = _options(2, False)
    return App("heat2d", (
        Kernel("init", 0.140, 0.30e-3, 1, two_d, {"block": {"16x16x1": 1.1, "32x4x1": 1.05}, "axes": {"swapped": 3.5}}),
        Kernel("step", 0.050, 0.25e-3, 100, two_d, {"block": {"32x8x1": 1.25, "16x16x1": 1.4}, "axes": {"swapped": 4.0}},
               {("block=16x16x1", "axes=swapped"): 0.8}),
        Kernel("copy", 0.020, 0.18e-3, 100, two_d, {"block": {"16x16x1": 1.15, "32x4x1": 1.1}, "axes": {"swapped": 3.0}}),
        Kernel("total", 0.025, 0.15e-3, 1, _options(2, True),
               {"block": {"16x16x1": 1.2, "32x4x1": 1.05}, "axes": {"swapped": 2.5}, "reduction": {"atomic": 3.0}}),
    ), (
        Link("init", "step", 2 * grid), Link("step", "copy", grid, 100), Link("copy", "step", grid, 99),
        Link("copy", "total", grid), Link("total", HOST, 8),
    ), rest_seconds=0.002)


def nbody() -> App:
    """samples/nbody.c at -DNB=16384: init, forces, kick-and-drift, kinetic and potential energy."""
    state = 16384 * 7 * 8
    one_d = _options(1, False)
    return App("nbody", (
        Kernel("init", 0.4e-3, 0.02e-3, 1, one_d, {"block": {"64x1x1": 1.1, "512x1x1": 1.2}}),
        Kernel("forces", 1.6, 6e-3, 10, one_d, {"block": {"128x1x1": 1.15, "64x1x1": 1.35}},
               fails={"block=512x1x1": "launch_error"}),
        Kernel("update", 0.25e-3, 0.012e-3, 10, one_d, {"block": {"64x1x1": 1.1, "512x1x1": 1.15}}),
        Kernel("kin", 0.03e-3, 0.01e-3, 1, _options(1, True), {"block": {"512x1x1": 1.2}, "reduction": {"atomic": 1.3}}),
        Kernel("pot", 0.8, 5e-3, 1, _options(1, True),
               {"block": {"128x1x1": 1.1, "64x1x1": 1.3, "512x1x1": 1.05}, "reduction": {"atomic": 4.0}}),
    ), (
        Link("init", "forces", state), Link("forces", "update", state // 2, 10),
        Link("update", "forces", state, 9), Link("update", "kin", state // 2), Link("kin", "pot", state // 2),
        Link("pot", HOST, 8),
    ), rest_seconds=0.001)


def reductions() -> App:
    """samples/reductions.c at -DN=8388608: init, then six reductions over the same arrays.
    The max and min reductions are vectorised on the CPU and lose alone on the GPU; together
    they share one upload and win."""
    array = 8 * 2 ** 20 * 8
    one_d = _options(1, False)
    slow = {"block": {"64x1x1": 1.2, "512x1x1": 1.1}}
    return App("reductions", (
        Kernel("init", 0.060, 0.06e-3, 1, one_d, slow),
        Kernel("dot", 0.010, 0.07e-3, 1, _options(1, True), {"block": {"128x1x1": 1.1, "64x1x1": 1.3},
                                                            "reduction": {"tree": 1.25}}),
        Kernel("max1", 0.003, 0.04e-3, 1, one_d, slow),
        Kernel("max2", 0.003, 0.04e-3, 1, one_d, slow),
        Kernel("max3", 0.004, 0.05e-3, 1, one_d, slow),
        Kernel("min", 0.003, 0.04e-3, 1, one_d, {"block": {"128x1x1": 1.2, "64x1x1": 1.3}}),
        Kernel("prod", 0.008, 0.05e-3, 1, one_d, slow),
    ), tuple(Link(a, b, 2 * array) for a, b in (("init", "dot"), ("dot", "max1"), ("max1", "max2"),
                                                  ("max2", "max3"), ("max3", "min"), ("min", "prod")))
       + (Link("prod", HOST, 8),), rest_seconds=0.001)


def histogram() -> App:
    """samples/histogram.c at -DN=16777216: zero the bins, bin numbers, (the histogram itself
    is sequential and runs on the host, reading bin[]), gather, checksum."""
    ints = 2 ** 24 * 4
    one_d = _options(1, False)
    return App("histogram", (
        Kernel("zero", 0.05e-6, 0.001e-3, 1, one_d),
        Kernel("bins", 0.025, 0.05e-3, 1, one_d, {"block": {"128x1x1": 1.1, "64x1x1": 1.2}}),
        Kernel("gather", 0.045, 0.12e-3, 1, one_d, {"block": {"512x1x1": 1.3, "64x1x1": 1.1}}),
        Kernel("check", 0.020, 0.09e-3, 1, _options(1, True), {"block": {"64x1x1": 1.2}, "reduction": {"atomic": 2.0}}),
    ), (
        Link("zero", HOST, 61 * 4), Link("bins", HOST, ints), Link("bins", "gather", ints),
        Link(HOST, "gather", 61 * 4), Link("bins", "check", ints), Link("gather", "check", ints),
        Link("check", HOST, 8),
    ), rest_seconds=0.060)


SAMPLES = {"heat2d": heat2d, "nbody": nbody, "reductions": reductions, "histogram": histogram}


def random_app(seed: int, regions: int = 5) -> App:
    """A program drawn from realistic ranges: maps, stencils and reductions of 256K to 64M
    doubles, irregular loops (which lose on the GPU) and small ones (launch-bound), part of
    them in a time loop, sequential host code between some of them that needs the data on
    the host, each region with its own best launch settings, a few interactions between
    settings and a few settings that fail to launch."""
    rng = random.Random(seed)
    steps = rng.choice([1, 10, 50, 100])
    lo = rng.randrange(regions)
    hi = rng.randrange(lo, regions)
    kernels, sizes = [], []
    for i in range(regions):
        kind = rng.choices(["map", "stencil", "reduce", "irregular", "small"], weights=[3, 3, 2, 1, 1])[0]
        dims = rng.choice([1, 2, 2, 3])
        elements = 2 ** (rng.randint(8, 13) if kind == "small" else rng.randint(18, 26))
        cpu_ns = {"map": 1.0, "stencil": 2.0, "reduce": 0.6, "irregular": 6.0, "small": 1.0}[kind]
        traffic = {"map": 16, "stencil": 24, "reduce": 8, "irregular": 16, "small": 16}[kind] * elements
        gpu = traffic / GPU_BYTES_PER_SECOND * (rng.uniform(8, 60) if kind == "irregular" else rng.uniform(1, 2))
        options = _options(dims, kind == "reduce")
        blocks = options["block"]
        best_block = rng.choice(blocks)
        slowdown = {"block": {b: 1 + rng.uniform(0.05, 0.6) for b in blocks if b != best_block}}
        if "axes" in options:
            slowdown["axes"] = ({"swapped": rng.uniform(2, 6)} if rng.random() < 0.75
                                else {"default": rng.uniform(1.5, 4)})
        if "reduction" in options:
            slowdown["reduction"] = {rng.choice(REDUCTIONS): rng.uniform(1.2, 3.0)}
        pairs = {}
        if "axes" in options and rng.random() < 0.5:
            pairs[(f"block={rng.choice(blocks)}", "axes=swapped")] = rng.uniform(0.7, 0.95)
        fails = {f"block={blocks[-1]}": "launch_error"} if rng.random() < 0.2 else {}
        calls = steps if lo <= i <= hi else 1
        kernels.append(Kernel(f"r{i}", elements * cpu_ns * rng.uniform(0.7, 1.4) * 1e-9, gpu, calls,
                              options, slowdown, pairs, fails))
        sizes.append(elements * 8)
    links = [Link(HOST, "r0", sizes[0])]
    for i in range(1, regions):
        times = steps if lo <= i - 1 and i <= hi else 1
        data = max(sizes[i - 1], sizes[i]) * rng.choice([1, 2])
        if rng.random() < 0.3:   # host code between the two reads and writes the data
            links += [Link(f"r{i - 1}", HOST, data, times), Link(HOST, f"r{i}", data, times)]
        else:
            links.append(Link(f"r{i - 1}", f"r{i}", data, times))
    if hi > lo:
        links.append(Link(f"r{hi}", f"r{lo}", sizes[hi], steps - 1))
    links.append(Link(f"r{regions - 1}", HOST, sizes[-1]))
    rest = rng.uniform(0.0, 0.1) * sum(k.calls * k.cpu_seconds for k in kernels)
    return App(f"random{seed}", tuple(kernels), tuple(links), rest)

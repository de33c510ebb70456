"""The sizes each sample runs at in the GPU check.

At their default sizes the samples take milliseconds on a CPU and say nothing about a GPU.
GPU sizes raise their size macros so that the CPU original takes about a second on the 2-core
AMD EPYC VM where they were chosen (at least half a second on any recent server core; the
check records the GPU host's own CPU time and flags a sample under half a second). The dry run
runs the samples at their defaults on the emulated device, and only builds them at GPU sizes.
"""

from __future__ import annotations

MIN_CPU_SECONDS = 0.5

GPU_SIZES: dict[str, tuple[str, ...]] = {
    "heat2d": ("NX=2048", "NY=2048", "STEPS=120"),          # 2 x 32 MiB grids
    "histogram": ("N=60000000",),                          # 2 x 240 MiB of int
    "jacobi3d": ("NX=256", "NY=256", "NZ=256", "STEPS=24"),  # 2 x 128 MiB grids
    "linearised": ("N=4096", "M=4096", "ITERS=10"),        # 2 x 128 MiB grids
    "matmul": ("N=896",),                                  # 1024 is 5x slower on the CPU (cache sets)
    "nbody": ("NB=8192", "STEPS=4"),
    "prefix_sum": ("N=32000000",),                         # 3 x 256 MiB
    # It prints every element and keeps its arrays on the stack: 2 x 800 KB of the usual 8 MiB.
    # It stays far under half a second; its regions are timed all the same.
    "printf_loop": ("N=100000",),
    "reductions": ("N=24000000",),
    "saxpy": ("N=50000000", "REPS=12"),                    # 2 x 200 MB of float
    "swap_stencil": ("N=2048", "STEPS=160"),
    "blur": ("W=4096", "H=4096", "PASSES=20"),              # 2 x 64 MiB images
    "csr": ("G=2048", "ITERS=40"),                          # 4M-row 5-point operator
    "particles": ("NP=6000000", "STEPS=40"),                # 5 x 48 MB fields
    "scratch": ("ROWS=65536", "LEN=512"),                   # 256 MiB of rows
}

# The order the check runs them in, the most telling first (a short box reaches these): a
# memory-bound stream, 2-D and 3-D stencils over time steps, a compute-bound product, pairs.
SAMPLE_ORDER = ("saxpy", "heat2d", "matmul", "jacobi3d", "nbody", "reductions", "swap_stencil", "linearised",
                "prefix_sum", "histogram", "blur", "csr", "particles", "scratch", "printf_loop")
SMOKE_SAMPLES = ("saxpy",)          # the smoke mode's one sample: one region per shape, quick to build

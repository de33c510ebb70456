"""GPU boards the sizer knows, and the roofline model that translates kernel times between them.

A profile measured on one GPU (say an H200 on the verification host) has to be sized for the
catalog's GPU (say T4 slices). Each region's kernel time is scaled by the ratio of its roofline
times on the two boards, max(flops / peak, bytes / bandwidth): a memory-bound region scales with
memory bandwidth, a compute-bound one with peak FLOP/s, and a region whose bound changes between
the boards gets the ratio of the two bounds. Transfers scale with the host link (PCIe x16 of the
board's generation). Every time produced here is `modeled`, and the inputs below are stated.

The figures are the vendors' public datasheet peaks (non-tensor-core FP32/FP64, memory bandwidth).
Where a datasheet omits FP64, it is FP32 times the architecture's FP64 rate (Turing 1/32, GA10x
and Ada 1/64). Peaks overstate what kernels reach; since only ratios are used, a common
efficiency factor cancels out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PCIE_X16_GBPS = {3: 15.75, 4: 31.5, 5: 63.0}     # per direction, GB/s


@dataclass(frozen=True)
class Board:
    name: str
    fp32_tflops: float
    fp64_tflops: float
    bandwidth_gbps: float       # device memory, GB/s
    memory_gib: float
    pcie_gen: int
    mig: bool                   # supports Multi-Instance GPU (7 compute, 8 memory slices)

    def peak_flops(self, precision: str) -> float:
        return (self.fp64_tflops if precision == "fp64" else self.fp32_tflops) * 1e12

    @property
    def bandwidth(self) -> float:
        return self.bandwidth_gbps * 1e9

    @property
    def link_bandwidth(self) -> float:
        return PCIE_X16_GBPS[self.pcie_gen] * 1e9

    def describe(self) -> str:
        return (f"{self.name}: {self.fp32_tflops:g} TFLOP/s FP32, {self.fp64_tflops:g} TFLOP/s FP64, "
                f"{self.bandwidth_gbps:g} GB/s, PCIe Gen{self.pcie_gen} x16")


BOARDS = {b.name: b for b in (
    Board("T4", 8.1, 0.253, 320, 16, 3, False),
    Board("L4", 30.3, 0.473, 300, 24, 4, False),
    Board("A10", 31.2, 0.488, 600, 24, 4, False),
    Board("V100", 15.7, 7.8, 900, 32, 3, False),
    Board("A100", 19.5, 9.7, 1555, 40, 4, True),
    Board("A100-80GB", 19.5, 9.7, 2039, 80, 4, True),
    Board("H100-PCIE", 51.0, 26.0, 2000, 80, 5, True),
    Board("H100", 67.0, 34.0, 3350, 80, 5, True),
    Board("H200", 67.0, 34.0, 4800, 141, 5, True),
)}

# Device strings as drivers report them ("Tesla T4", "NVIDIA A100-SXM4-80GB", "NVIDIA H100 PCIe"):
# the first pattern that matches names the board.
_PATTERNS = (
    (r"\bH200\b", "H200"),
    (r"\bH100\b.*\bPCIE\b", "H100-PCIE"),
    (r"\bH100\b", "H100"),
    (r"\bA100\b.*\b80\s*GB\b", "A100-80GB"),
    (r"\bA100\b", "A100"),
    (r"\bV100\b", "V100"),
    (r"\bA10\b", "A10"),
    (r"\bL4\b", "L4"),
    (r"\bT4\b", "T4"),
)


def lookup(device: str) -> Board | None:
    """The board a device or model string names, or None when it is not in the table."""
    text = device.upper().replace("_", "-")
    for pattern, name in _PATTERNS:
        if re.search(pattern, text):
            return BOARDS[name]
    return None


def known_names() -> str:
    return ", ".join(BOARDS)


def roofline_seconds(board: Board, flops: float, nbytes: float, precision: str) -> float:
    """Lower bound of a kernel's time on `board`: whichever of compute and memory takes longer."""
    return max(flops / board.peak_flops(precision), nbytes / board.bandwidth)


def compute_bound(board: Board, flops: float, nbytes: float, precision: str) -> bool:
    return flops / board.peak_flops(precision) > nbytes / board.bandwidth

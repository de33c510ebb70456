"""Every fixture kernel compiles for real GPUs (sm_75 and sm_90) with nvcc: no GPU needed."""

from pathlib import Path

import pytest

from offloader.device.errors import CompileFailure
from offloader.device.nvcc import ARCHS, check, find_nvcc, parse_ptxas
from offloader.device.signature import parse_kernels

KERNELS = Path(__file__).parent / "fixtures" / "kernels"
needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")


@needs_nvcc
@pytest.mark.parametrize("path", sorted(KERNELS.glob("*.cu")), ids=lambda p: p.name)
def test_fixture_compiles_for_every_arch(path):
    source = path.read_text()
    reports = check(source)
    assert [r.arch for r in reports] == list(ARCHS)
    for report in reports:
        assert report.ok, report.log
        assert set(report.kernels) == set(parse_kernels(source))
        assert all(k.registers > 0 for k in report.kernels.values())


@needs_nvcc
def test_a_rejected_text_is_a_typed_report():
    (report,) = check('extern "C" __global__ void k(int *x) { x[0] = nope; }', archs=("sm_90",))
    assert not report.ok and report.failure is CompileFailure.COMPILER_ERROR and "nope" in report.log


def test_ptxas_report_is_read_per_entry_function():
    log = """ptxas info    : 0 bytes gmem
ptxas info    : Function properties for helper
    16 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Compiling entry function 'red' for 'sm_75'
ptxas info    : Function properties for red
    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 10 registers, used 1 barriers, 1024 bytes smem, 372 bytes cmem[0]
ptxas info    : Compiling entry function 'vadd' for 'sm_90'
ptxas info    : Function properties for vadd
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 12 registers, used 0 barriers
"""
    found = parse_ptxas(log)
    assert set(found) == {"red", "vadd"}
    assert (found["red"].registers, found["red"].shared_bytes, found["red"].barriers) == (10, 1024, 1)
    assert (found["red"].stack_bytes, found["red"].spill_stores, found["red"].spill_loads) == (8, 4, 4)
    assert (found["vadd"].registers, found["vadd"].shared_bytes) == (12, 0)

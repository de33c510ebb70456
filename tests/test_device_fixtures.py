"""Broken kernels are caught by the emulator's orders; their correct twins never are.

Each file in fixtures/kernels/ (except contract.cu and orders.cu) holds KERNEL_ok and
KERNEL_broken with the same parameters.  `caught_in` lists the orders that catch the broken
twin by construction, not by luck (the emulator module docstring says why):
  missing barrier   forward (thread 0 reads slot 128 before thread 128 has run);
  racy +=           shuffle (threads are preempted between the load and the store);
  bounds, loop bound, swapped axes: every order (wrong cells whatever the schedule).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from offloader.device.emulated import EmulatedDevice, ExecutionOrder

KERNELS = Path(__file__).parent / "fixtures" / "kernels"
ORDERS = [ExecutionOrder("forward"), ExecutionOrder("reverse"),
          ExecutionOrder("shuffle", 1), ExecutionOrder("shuffle", 2)]


def upload(dev, array):
    buf = dev.alloc(array.nbytes)
    dev.copy_to_device(buf, array)
    return buf


def download(dev, buf, like):
    out = np.empty_like(like)
    dev.copy_to_host(buf, out)
    return out


def missing_sync(dev, module, kernel):
    n = 256 * 6 - 17
    x = (np.arange(n) % 97 + 1).astype(np.int32)
    partial = dev.alloc(6 * 4)
    dev.launch(module, kernel, (6,), (256,), [upload(dev, x), partial, np.int32(n)])
    return download(dev, partial, np.zeros(6, np.int32))


def missing_sync_reference():
    x = (np.arange(256 * 6 - 17) % 97 + 1).astype(np.int32)
    return np.add.reduceat(x, np.arange(0, x.size, 256)).astype(np.int32)


def bounds_guard(dev, module, kernel):
    n, pad = 1000, 40                      # 8 blocks of 128 threads: 24 threads past n
    x = np.full(n + pad, 5.0, np.float32)    # past n: any value that changes a*x + y
    x[:n] = np.arange(n)
    y = np.full(n + pad, -777.0, np.float32)  # sentinels after y[n-1]
    y[:n] = 1.0
    ys = upload(dev, y)
    dev.launch(module, kernel, (8,), (128,), [np.float32(2.0), upload(dev, x), ys, np.int32(n)])
    return download(dev, ys, y)


def bounds_guard_reference():
    y = np.full(1040, -777.0, np.float32)
    y[:1000] = 2.0 * np.arange(1000) + 1.0
    return y


def racy_sum(dev, module, kernel):
    n = 4096
    x = (np.arange(n) % 13 + 1).astype(np.int32)
    total = upload(dev, np.zeros(1, np.int32))
    dev.launch(module, kernel, (16,), (256,), [upload(dev, x), total, np.int32(n)])
    return download(dev, total, np.zeros(1, np.int32))


def loop_bound(dev, module, kernel):
    n = 1000
    x = np.linspace(1.0, 2.0, n)
    y = upload(dev, np.zeros(n))
    dev.launch(module, kernel, (2,), (64,), [upload(dev, x), y, np.int32(n)])
    return download(dev, y, x)


def swapped_axes(dev, module, kernel):
    rows, cols = 37, 53
    src = np.arange(rows * cols, dtype=np.int32)
    out = upload(dev, np.full(rows * cols, -1, np.int32))
    dev.launch(module, kernel, (4, 3), (16, 16), [upload(dev, src), out, np.int32(rows), np.int32(cols)])
    return download(dev, out, src)


def swapped_axes_reference():
    r, c = np.meshgrid(np.arange(37), np.arange(53), indexing="ij")
    return (1000 * r + c).ravel().astype(np.int32) + np.arange(37 * 53, dtype=np.int32)


@dataclass(frozen=True)
class Case:
    name: str             # the file
    kernel: str           # its twins' common stem
    run: Callable
    reference: Callable[[], np.ndarray]
    caught_in: frozenset

    def __str__(self):
        return self.name


ALL = frozenset({"forward", "reverse", "shuffle"})
CASES = [
    Case("missing_sync", "block_sum", missing_sync, missing_sync_reference, frozenset({"forward"})),
    Case("bounds_guard", "saxpy", bounds_guard, bounds_guard_reference, ALL),
    Case("racy_sum", "total", racy_sum, lambda: np.array([(np.arange(4096) % 13 + 1).sum()], np.int32),
         frozenset({"shuffle"})),
    Case("loop_bound", "square", loop_bound, lambda: np.linspace(1.0, 2.0, 1000) ** 2, ALL),
    Case("swapped_axes", "label", swapped_axes, swapped_axes_reference, ALL),
]


@pytest.fixture(scope="module")
def device():
    # One OS thread: blocks never overlap, so what catches a bug is the order alone (with
    # more workers, blocks racing on real cores may catch the racy sum in any order too).
    return EmulatedDevice(workers=1)


def results(device, case, twin):
    module = device.compile((KERNELS / f"{case.name}.cu").read_text())
    found = {}
    for order in ORDERS:
        device.order = order
        found[order] = case.run(device, module, f"{case.kernel}_{twin}")
    return found


def test_every_broken_fixture_has_a_case():
    files = {p.stem for p in KERNELS.glob("*.cu")} - {"contract", "orders"}
    assert files == {case.name for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_correct_twin_matches_the_reference_in_every_order(device, case):
    for order, got in results(device, case, "ok").items():
        np.testing.assert_array_equal(got, case.reference(), err_msg=f"order {order}")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_broken_twin_is_caught(device, case):
    found = results(device, case, "broken")
    caught = {order for order, got in found.items() if not np.array_equal(got, case.reference())}
    assert caught, f"{case.name}: no order exposed the bug"
    for order in ORDERS:
        if order.kind in case.caught_in:
            assert order in caught, f"{case.name}: order {order} should expose the bug"

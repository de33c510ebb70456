"""The runtime's arithmetic on loop bounds: loop variables' final values and launch grids."""

import math

from offloader.device.base import Capacity
from offloader.runtime.launch import final_loop_values, launch_grid, most_blocks
from offloader.runtime.plan import KernelPlan, LoopBounds

H200 = Capacity(132, 2048, 32)


def plan(*loops, waves=4, block=(32, 8, 1)):
    return KernelPlan(0, "k", None, (), waves, block, (), (), tuple(loops))


N = [[["n"], 1]]


def test_final_values_follow_c_for_loop_semantics():
    i = LoopBounds("i", [[[], 0]], N, 1, False)
    j = LoopBounds("j", [[["i"], 1]], N, 1, False)            # triangular: j from i+... to n
    assert final_loop_values(plan(i, j), {"n": 10}) == {"i": 10, "j": 10}
    assert final_loop_values(plan(i, j), {"n": 0}) == {"i": 0}     # the inner loop never ran
    down = LoopBounds("k", N, [[[], 0]], -3, True)            # k = n; k >= 0; k -= 3
    assert final_loop_values(plan(down), {"n": 10}) == {"k": -2}
    assert final_loop_values(plan(LoopBounds("m", None, N, 1, False)), {"n": 4}) is None


def test_the_grid_is_what_the_trip_counts_need_when_that_fits():
    i = LoopBounds("i", [[[], 0]], N, 1, False)
    j = LoopBounds("j", [[[], 0]], [[["i"], 1]], 1, True)     # j <= i: largest at the last i
    assert launch_grid(plan(i, j), {"n": 100}, H200) == (4, 13, 1)   # x: 101/32 -> 4, y: 100/8 -> 13


def test_a_large_nest_fills_the_device_a_few_times_and_keeps_x_whole():
    i = LoopBounds("i", [[[], 0]], N, 1, False)
    j = LoopBounds("j", [[[], 0]], N, 1, False)
    grid = launch_grid(plan(i, j), {"n": 8192}, H200)
    resident = H200.threads_per_multiprocessor // 256            # blocks of 32x8
    assert math.prod(grid) <= 4 * H200.multiprocessors * resident == most_blocks(plan(i, j), H200)
    assert math.prod(grid) >= 0.5 * most_blocks(plan(i, j), H200)  # not far below the fill either
    assert grid[0] == 8192 // 32                                  # the coalesced axis keeps its blocks
    assert launch_grid(plan(i, j, waves=1), {"n": 8192}, H200)[1] < grid[1]
    assert launch_grid(plan(i, j, waves=0), {"n": 8192}, H200) == (256, 1024, 1)   # one thread each


def test_unknown_bounds_get_what_fills_the_device():
    unknown = plan(LoopBounds("m", None, N, 1, False), block=(256, 1, 1))
    assert launch_grid(unknown, {"n": 3}, H200) == (most_blocks(unknown, H200), 1, 1)
    assert most_blocks(unknown, Capacity(40, 1024, 16)) == 4 * 40 * 4     # a T4

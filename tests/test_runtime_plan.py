"""The runtime's arithmetic on loop bounds: loop variables' final values and grid sizing."""

from offloader.runtime.dispatcher import final_loop_values, launch_grid
from offloader.runtime.plan import KernelPlan, LoopBounds


def plan(*loops, grid=(128, 16, 4), block=(32, 8, 1)):
    return KernelPlan(0, "k", None, (), grid, block, (), (), tuple(loops))


N = [[["n"], 1]]


def test_final_values_follow_c_for_loop_semantics():
    i = LoopBounds("i", [[[], 0]], N, 1, False)
    j = LoopBounds("j", [[["i"], 1]], N, 1, False)            # triangular: j from i+... to n
    assert final_loop_values(plan(i, j), {"n": 10}) == {"i": 10, "j": 10}
    assert final_loop_values(plan(i, j), {"n": 0}) == {"i": 0}     # the inner loop never ran
    down = LoopBounds("k", N, [[[], 0]], -3, True)            # k = n; k >= 0; k -= 3
    assert final_loop_values(plan(down), {"n": 10}) == {"k": -2}
    assert final_loop_values(plan(LoopBounds("m", None, N, 1, False)), {"n": 4}) is None


def test_grid_shrinks_to_the_trip_counts():
    i = LoopBounds("i", [[[], 0]], N, 1, False)
    j = LoopBounds("j", [[[], 0]], [[["i"], 1]], 1, True)     # j <= i: largest at the last i
    assert launch_grid(plan(i, j), {"n": 100}) == (4, 13, 4)  # x: 101/32 -> 4, y: 100/8 -> 13
    assert launch_grid(plan(i, j), {"n": 10**6}) == (128, 16, 4)
    assert launch_grid(plan(LoopBounds("m", None, N, 1, False), grid=(64, 1, 1), block=(256, 1, 1)),
                       {"n": 3}) == (64, 1, 1)               # unknown bounds keep the plan's grid

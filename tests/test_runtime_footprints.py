"""Footprints in closed form (offloader/runtime/footprints.py) against the element enumerator
they replaced (tests/footprint_oracle.py): on generated loop nests (rectangular, triangular,
min/max bounds, negative and non-unit steps, run-time strides, spans, guarded accesses) the
runs cover exactly the enumerated elements, and a write is never `exact` where the
enumeration says it is not. And the work is per run, not per element."""

import time
from unittest.mock import patch

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import footprint_oracle as oracle
from offloader.runtime import footprints
from offloader.runtime.plan import Footprint, KernelPlan, LoopRange


def poly(const=0, **coeffs):
    """Serialised polynomial terms: const + sum coeff * symbol (a symbol may be 'L1*m')."""
    terms = [[[], const]] if const else []
    for name, coeff in coeffs.items():
        terms.append([name.split("_"), coeff])
    return terms


@st.composite
def nests(draw):
    depth = draw(st.integers(1, 3))
    names = [f"L{k}" for k in range(depth)]
    values = {"n": draw(st.integers(0, 9)), "m": draw(st.integers(1, 7))}
    ranges = []
    for k, var in enumerate(names):
        lowers = [poly(draw(st.integers(-2, 3)))]
        uppers = [poly(draw(st.integers(-1, 8)))]
        if k and draw(st.booleans()):                 # triangular: bounded by an outer loop
            outer = names[draw(st.integers(0, k - 1))]
            (uppers if draw(st.booleans()) else lowers).append(poly(draw(st.integers(-2, 2)), **{outer: 1}))
        if draw(st.booleans()):
            uppers.append(poly(0, n=1))               # min with a scalar
        step = draw(st.sampled_from([1, 1, 2, -1, -2, 3]))
        ranges.append(LoopRange(var, lowers, uppers, step, True))
    coeffs = {}
    for var in names:
        choice = draw(st.sampled_from(["0", "1", "-1", "2", "3", "m", "big"]))
        if choice == "m":
            coeffs[f"{var}_m"] = 1                    # a run-time stride: a[i*m + j]
        elif choice == "big":
            coeffs[var] = draw(st.integers(4, 12))
        elif choice != "0":
            coeffs[var] = int(choice)
    offset = poly(draw(st.integers(-3, 20)), **coeffs)
    loops = tuple(names[:draw(st.integers(1, depth))]) if draw(st.booleans()) else tuple(names)
    write = draw(st.booleans())
    fp = Footprint("a", read=not write or draw(st.booleans()), write=write, exact=write and draw(st.booleans()),
                   offset=offset, span=draw(st.sampled_from([1, 1, 2, 5])), loops=loops)
    count = draw(st.integers(1, 400))
    return fp, {r.var: r for r in ranges}, values, count


def elements_of(runs):
    return np.concatenate([np.arange(a, b) for a, b in runs]) if len(runs) else np.zeros(0, np.int64)


@settings(max_examples=600, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(nests())
def test_runs_equal_the_enumerated_elements(case):
    fp, ranges, values, count = case
    expected, expected_exact = oracle._elements(fp, ranges, values, count)
    runs, exact = footprints.access_runs(fp, ranges, values, count)
    if expected is None:
        assert runs is None
        return
    assert runs is not None
    got = elements_of(runs)
    assert np.array_equal(got, np.unique(expected)), (runs, np.unique(expected))
    assert not exact or expected_exact
    assert (runs[1:, 0] > runs[:-1, 1]).all()           # sorted, disjoint, not touching


def plan_of(footprint_list, ranges):
    return KernelPlan(0, "k", None, (), (1, 1, 1), (1, 1, 1), (), (), (), tuple(footprint_list), tuple(ranges))


def test_a_whole_array_sweep_is_one_run_at_any_size():
    ranges = [LoopRange("L0", [poly()], [poly(-1, n=1)], 1, True), LoopRange("L1", [poly()], [poly(-1, m=1)], 1, True)]
    fp = Footprint("a", False, True, True, poly(L0_m=1, L1=1), 1, ("L0", "L1"))
    n, m = 8192, 8192                                   # 64M elements
    started = time.perf_counter()
    access = footprints.region_accesses(plan_of([fp], ranges), {"n": np.int64(n), "m": np.int64(m)},
                                        {"a": n * m})["a"]
    assert time.perf_counter() - started < 0.5          # no element is listed (generous for CI)
    assert access.writes.tolist() == [[0, n * m]]
    assert access.need.tolist() == []                   # an exact write needs nothing copied in


def test_a_2d_interior_stencil_writes_a_run_per_row_and_reads_rows_joined_by_the_halo():
    n = 1000
    ranges = [LoopRange("L0", [poly(1)], [poly(-2, n=1)], 1, True), LoopRange("L1", [poly(1)], [poly(-2, n=1)], 1, True)]
    reads = [Footprint("a", True, False, False, poly(d, L0_n=1, L1=1), 1, ("L0", "L1")) for d in (-n, n, -1, 1, 0)]
    write = Footprint("b", False, True, True, poly(L0_n=1, L1=1), 1, ("L0", "L1"))
    access = footprints.region_accesses(plan_of(reads + [write], ranges), {"n": np.int64(n)},
                                        {"a": n * n, "b": n * n})
    need = access["a"].need
    assert footprints.element_count(need, n * n) == n * n - 4        # all of a but its corners
    assert need.tolist() == [[1, n - 1], [n, n * n - n], [n * n - n + 1, n * n - 1]]   # rows joined
    assert len(access["b"].writes) == n - 2 and not len(access["b"].need)


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(nests())
def test_beyond_the_run_limit_the_hull_holds_every_element_and_is_never_exact(case):
    fp, ranges, values, count = case
    expected, _ = oracle._elements(fp, ranges, values, count)
    with patch.object(footprints, "MAX_RUNS", 2):
        runs, exact = footprints.access_runs(fp, ranges, values, count)
    if expected is None:
        return
    unlimited, _ = footprints.access_runs(fp, ranges, values, count)
    assert set(np.unique(expected)) <= set(elements_of(runs).tolist())
    if len(runs) == 1 and len(unlimited) > 2:               # settled for the hull
        assert not exact

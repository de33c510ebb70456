"""The Amdahl model behind cpu_scaling: fitting, the CPU-time estimate, and completing a curve."""

import pytest

from sizing.scaling import ScalingPoint, complete, fit_amdahl, predict, serial_fraction_from_usage


def test_fit_recovers_amdahl_and_handles_odd_measurements():
    truth = {n: 8.0 * (0.25 + 0.75 / n) for n in (1, 2, 4)}
    fit = fit_amdahl(truth)
    assert (fit.t1, fit.serial_fraction) == (pytest.approx(8.0), pytest.approx(0.25))
    assert fit_amdahl({1: 5.0}).serial_fraction == 1.0                 # one point: flat
    slower = fit_amdahl({1: 5.0, 2: 5.5})                               # no benefit at all
    assert slower.serial_fraction == 1.0 and slower.seconds(4) == pytest.approx(5.25)
    superlinear = fit_amdahl({1: 5.0, 2: 2.0})
    assert superlinear.serial_fraction == 0.0 and superlinear.seconds(4) < superlinear.seconds(2)


def test_serial_fraction_from_one_multicore_run():
    # 1 s serial, 3 s of parallel work on 2 cores: wall 2.5 s, CPU 4 s -> s = 1/4
    assert serial_fraction_from_usage(2.5, 4.0, 2) == pytest.approx(0.25)
    assert serial_fraction_from_usage(2.0, 2.0, 2) == 1.0               # single-threaded
    assert serial_fraction_from_usage(2.6, 2.0, 2) == 1.0               # waited for the CPU
    with pytest.raises(ValueError):
        serial_fraction_from_usage(1.0, 1.0, 1)
    assert predict(1, 4.0, 0.25, 2) == pytest.approx(2.5)
    assert predict(2, 2.5, 0.25, 1) == pytest.approx(4.0)


def test_complete_labels_what_it_adds():
    measured = {1: ScalingPoint(1, 4.0, "measured"), 2: ScalingPoint(2, 2.5, "measured")}
    curve = complete(measured, [1, 2, 4, 8])
    assert [(n, p.kind) for n, p in curve.items()] == [
        (1, "measured"), (2, "measured"), (4, "extrapolated"), (8, "extrapolated")]
    assert curve[4].seconds == pytest.approx(4.0 * (0.25 + 0.75 / 4))
    lone = complete({1: ScalingPoint(1, 4.0, "measured")}, [1, 2])
    assert lone[2] == ScalingPoint(2, 4.0, "assumed")


def test_report_axes_get_round_ticks():
    from sizing.report import _scale

    for limit, ticks in ((125, [0, 50, 100, 150]), (0.006994, [0, 0.002, 0.004, 0.006, 0.008]), (30, [0, 5, 10, 15, 20, 25, 30])):
        scale, got = _scale(limit, 100)
        assert got == pytest.approx(ticks) and scale(got[-1]) == pytest.approx(100)

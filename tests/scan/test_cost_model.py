"""The cost model `method="auto"` fits (`lrnn.scan.cost_model`).

Times are synthetic, made from known functions of (T, L), so the fit can be held against the
truth: a function inside the model's class is recovered off the measured grid; "time ∝ T·L"
(the prior) extends exactly beyond it; a candidate measured at one or two sizes still scales as
T·L; the recorded leave-one-out error grows with noise.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lrnn.scan import cost_model

LOG_T = (6, 8, 10, 12, 14, 16)
LOG_L = (6, 8, 10, 12, 14)


def _grid(log_seconds, max_log_size=23):
    points = [(2.0**x, 2.0**y) for x, y in itertools.product(LOG_T, LOG_L) if x + y <= max_log_size]
    lengths, lanes = zip(*points)
    return lengths, lanes, [2.0 ** log_seconds(math.log2(t), math.log2(n)) for t, n in points]


def _bent(x, y):
    """A per-step overhead that fades as lanes grow, and a cache step at 2^18 elements."""
    return -24 + x + 0.3 * y + 0.7 * max(y - 10, 0) + 0.5 * max(x + y - 18, 0)


def test_recovers_a_piecewise_linear_time_off_the_grid():
    fit = cost_model.fit(*_grid(_bent))
    for length, lanes in [(100, 100), (3000, 700), (20000, 90), (700, 9000), (130, 20000)]:
        expected = 2.0 ** _bent(math.log2(length), math.log2(lanes))
        assert fit.seconds(length, lanes) == pytest.approx(expected, rel=0.02), (length, lanes)
    assert fit.points == len(_grid(_bent)[0])


def test_time_proportional_to_t_times_l_extends_beyond_the_grid():
    fit = cost_model.fit(*_grid(lambda x, y: -30 + x + y))
    for length, lanes in [(2**20, 2**4), (2**5, 2**20), (2**19, 2**9)]:
        assert fit.seconds(length, lanes) == pytest.approx(2.0**-30 * length * lanes, rel=1e-3)


@pytest.mark.parametrize("sizes", [[(1024, 2048)], [(1024, 2048), (8192, 2048)]], ids=["one", "two"])
def test_few_points_scale_as_t_times_l(sizes):
    lengths, lanes = zip(*sizes)
    fit = cost_model.fit(lengths, lanes, [1e-9 * t * n for t, n in sizes])
    assert fit.seconds(4096, 4096) == pytest.approx(1e-9 * 4096 * 4096, rel=1e-2)
    assert fit.seconds(512, 2048) / fit.seconds(1024, 2048) == pytest.approx(0.5, rel=1e-2)


def test_leave_one_out_error_reports_noise():
    lengths, lanes, seconds = _grid(_bent)
    noise = np.random.default_rng(0).normal(0.0, 0.3, len(seconds))  # log2 units: about ×1.23
    noisy = cost_model.fit(lengths, lanes, np.asarray(seconds) * 2.0**noise)
    exact = cost_model.fit(lengths, lanes, seconds)
    # Exact data still has a leave-one-out error: a point at the grid's edge, left out, takes a
    # bend's slope with it. Noise of 0.3 (log2) must show on top of that, and not much more.
    assert exact.loo_rms < 0.15 < noisy.loo_rms < 0.6
    assert noisy.loo_rms > exact.loo_rms + 0.1
    assert noisy.loo_max >= noisy.loo_rms


def test_knots_lie_inside_the_measured_range_two_octaves_apart():
    fit = cost_model.fit(*_grid(_bent))
    assert fit.knots_t == (8.0, 10.0, 12.0, 14.0)
    assert fit.knots_lanes == (8.0, 10.0, 12.0)
    assert all(b - a >= cost_model.KNOT_SPACING for a, b in zip(fit.knots_size, fit.knots_size[1:]))
    assert min(fit.knots_size) > 12 and max(fit.knots_size) < 23


def test_description_is_plain_data():
    described = cost_model.fit(*_grid(_bent)).describe()
    assert set(described) >= {"coef", "ridge", "points", "loo_rms", "loo_max", "knots_t"}
    assert all(isinstance(c, float) for c in described["coef"])


def test_mismatched_measurements_are_refused():
    with pytest.raises(ValueError, match="equally many lengths, lanes and seconds"):
        cost_model.fit([64, 128], [64], [1e-3, 2e-3])
    with pytest.raises(ValueError, match="at least one"):
        cost_model.fit([], [], [])

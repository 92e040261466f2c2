import numpy as np
import pytest

from hand25d_ros.filters import OneEuroFilter


def test_smooths_jitter_at_rest():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff_hz=1.0, beta=0.0)
    out = [f(np.array([1.0]) + rng.normal(0, 0.01, 1), i / 30) for i in range(300)]
    assert np.std(np.array(out[100:])) < 0.3 * 0.01


def test_follows_fast_motion_with_little_lag():
    f = OneEuroFilter(min_cutoff_hz=1.0, beta=5.0)
    lag_slow = OneEuroFilter(min_cutoff_hz=1.0, beta=0.0)
    t = np.arange(60) / 30
    x = 0.5 * t  # 0.5 m/s
    a = [f(np.array([v]), s)[0] for v, s in zip(x, t)]
    b = [lag_slow(np.array([v]), s)[0] for v, s in zip(x, t)]
    assert abs(a[-1] - x[-1]) < 0.3 * abs(b[-1] - x[-1])


def test_bad_stamps_and_values():
    f = OneEuroFilter()
    f(np.zeros(3), 1.0)
    # no time step to smooth over: the sample passes through, so that a source whose stamps
    # repeat (a driver that stamps 0) does not freeze the output at its first sample
    np.testing.assert_array_equal(f(np.ones(3), 1.0), np.ones(3))  # same stamp
    np.testing.assert_array_equal(f(np.full(3, 2.0), 0.5), np.full(3, 2.0))  # going back
    np.testing.assert_array_equal(f(np.full(3, np.nan), 2.0), np.full(3, 2.0))  # NaN skipped
    assert np.all(np.isfinite(f(np.ones(3), 2.1)))
    frozen = OneEuroFilter()
    out = [frozen(np.array([v]), 0.0)[0] for v in np.linspace(0.0, 0.3, 10)]
    np.testing.assert_allclose(out, np.linspace(0.0, 0.3, 10))
    with pytest.raises(ValueError, match="non-finite"):
        OneEuroFilter()(np.full(2, np.inf), 0.0)
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff_hz=0)

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.spatial.transform import Rotation

from hand25d_ros import metrics as m


def pose(seed=0):
    return np.random.default_rng(seed).normal(0, 40, (1, 21, 3)) + [0, 0, 500]


def test_identical_is_zero():
    p = pose()
    assert m.pa_errors_mm(p, p).max() < 1e-9
    assert m.root_relative_errors_mm(p, p).max() == 0
    s = m.summarize(p[..., :2], p[..., :2], p, p, [True])
    assert s["mean_error_2d_px"] == 0 and s["auc_20_50"] == 1.0 and s["auc_0_50"] == pytest.approx(1.0, abs=0.02)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), scale=st.floats(0.3, 3.0), shift=st.floats(-500, 500))
def test_similarity_copy_has_zero_pa_error(seed, scale, shift):
    g = pose(seed)
    R = Rotation.random(random_state=seed).as_matrix()
    p = scale * g @ R.T + shift
    assert m.pa_errors_mm(p, g).max() < 1e-6


def test_reflection_is_not_aligned_away():
    g = pose(1)
    p = g * [-1, 1, 1]
    assert m.pa_errors_mm(p, g).mean() > 1.0


def test_translation_only_affects_absolute_error():
    g = pose(2)
    p = g + [10.0, 0, 0]
    assert m.root_relative_errors_mm(p, g).max() < 1e-9
    np.testing.assert_allclose(m.absolute_errors_mm(p, g), 10.0)
    s = m.summarize(p[..., :2], g[..., :2], p, g, [True])
    assert s["root_depth_error_mm"] == 0.0 and s["absolute_error_mm"] == pytest.approx(10.0)


def test_pck_and_auc_known_values():
    e = np.array([0.0, 10.0, 30.0, 60.0])
    np.testing.assert_allclose(m.pck_curve(e, [0, 10, 50, 100]), [0.25, 0.5, 0.75, 1.0])
    assert m.auc(np.full(10, 35.0), 20, 50, steps=301) == pytest.approx(0.5, abs=0.01)


def test_invalid_samples_are_excluded_from_3d():
    g = np.concatenate([pose(3), pose(4)])
    p = g.copy()
    p[1] += 1000.0
    s = m.summarize(p[..., :2], g[..., :2], p, g, [True, False])
    assert s["valid_fraction"] == 0.5 and s["absolute_error_mm"] == 0.0
    s = m.summarize(p[..., :2], g[..., :2], p, g, [False, False])
    assert np.isnan(s["pa_mpjpe_mm"])


def test_degenerate_pred_is_finite():
    g = pose(5)
    assert np.all(np.isfinite(m.pa_errors_mm(np.zeros_like(g), g)))


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        m.pa_errors_mm(np.zeros((2, 20, 3)), np.zeros((2, 20, 3)))
    with pytest.raises(ValueError, match="differ"):
        m.errors_2d_px(np.zeros((2, 21, 2)), np.zeros((3, 21, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        m.pa_errors_mm(np.full((1, 21, 3), np.nan), np.zeros((1, 21, 3)))


def test_plot_pck(tmp_path):
    th = np.linspace(0, 50, 51)
    m.plot_pck({"a": (th, m.pck_curve(np.arange(40.0), th))}, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"

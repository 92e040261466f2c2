"""Metrics: known answers, properties (hypothesis) and bad input."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.spatial.transform import Rotation

from hand25d_ros import metrics as m


def poses(n=1, seed=0):
    """n random, non-planar 3D 'hands' 0.5 m in front of the camera, mm."""
    return np.random.default_rng(seed).normal(0, 40, (n, 21, 3)) + [0, 0, 500]


def similarity(P, seed, scale, shift):
    R = Rotation.random(random_state=seed).as_matrix()
    return scale * P @ R.T + shift


# ----------------------------------------------------------------------------- known answers

def test_identical_is_zero_everywhere():
    p = poses(3)
    for f in (m.mpjpe_mm, m.pa_mpjpe_mm, m.absolute_error_mm, m.root_depth_error_mm):
        per, mean = f(p, p)
        assert per.shape == (3,) and mean < 1e-9 and np.all(per < 1e-9)
    per, mean = m.mean_error_2d_px(p[..., :2], p[..., :2])
    assert mean == 0 and per.shape == (3,)
    s = m.summarize(p[..., :2], p[..., :2], p, p, [True] * 3)
    assert s["mean_error_2d_px"] == 0 and s["mpjpe_mm"] == 0 and s["pa_mpjpe_mm"] < 1e-9
    assert s["auc_20_50"] == 1.0 and s["auc_0_50"] == 1.0 and s["valid_fraction"] == 1.0


def test_rotated_scaled_translated_copy_has_zero_pa_error_but_not_mpjpe():
    g = poses(2, 1)
    p = similarity(g, 1, 1.7, [30.0, -20.0, 100.0])
    assert m.pa_mpjpe_mm(p, g).mean < 1e-9
    np.testing.assert_allclose(m.similarity_align(p, g), g, atol=1e-9)
    assert m.mpjpe_mm(p, g).mean > 10


def test_pure_translation():
    g = poses(2, 2)
    p = g + [3.0, 0.0, 4.0]                      # |shift| = 5 mm, root depth off by 4 mm
    assert m.mpjpe_mm(p, g).mean < 1e-9
    per, mean = m.absolute_error_mm(p, g)
    np.testing.assert_allclose(per, 5.0)
    assert mean == pytest.approx(5.0)
    assert m.root_depth_error_mm(p, g).mean == pytest.approx(4.0)
    s = m.summarize(p[..., :2], g[..., :2], p, g, [True, True])
    assert s["absolute_error_mm"] == pytest.approx(5.0) and s["root_depth_error_mm"] == pytest.approx(4.0)
    assert s["mpjpe_mm"] < 1e-9 and s["mean_error_2d_px"] == pytest.approx(3.0)


def test_mpjpe_known_value():
    g = np.zeros((1, 21, 3))
    p = g.copy()
    p[0, 5] = [0, 0, 21.0]                       # one joint 21 mm off, the root in place
    assert m.mpjpe_mm(p, g).mean == pytest.approx(1.0)


def test_mean_error_2d_with_mask():
    g = np.zeros((2, 21, 2))
    p = g.copy()
    p[0, :, 0] = 2.0
    p[1, :, 0] = 4.0
    p[1, 0, 0] = 100.0                           # masked out below
    mask = np.ones((2, 21), bool)
    mask[1, 0] = False
    per, mean = m.mean_error_2d_px(p, g, mask)
    np.testing.assert_allclose(per, [2.0, 4.0])
    assert mean == pytest.approx((21 * 2 + 20 * 4) / 41)
    mask[1] = False
    per, mean = m.mean_error_2d_px(p, g, mask)
    assert per[0] == 2.0 and np.isnan(per[1]) and mean == 2.0
    with pytest.raises(ValueError, match="mask must have shape"):
        m.mean_error_2d_px(p, g, np.ones((3, 21), bool))


def test_pck_known_set():
    e = np.array([0.0, 10.0, 30.0, 60.0])
    np.testing.assert_allclose(m.pck_curve(e, [0, 5, 10, 50, 100]), [0.25, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(m.pck_curve([np.inf, 1.0], [0.0, 2.0]), [0.0, 0.5])
    np.testing.assert_allclose(m.pck_curve(np.zeros(0), [1.0, 2.0]), [0.0, 0.0])


def test_auc_known_values():
    assert m.auc(np.zeros(50), 0, 50) == 1.0
    assert m.auc(np.zeros(50), 20, 50) == 1.0
    assert m.auc(np.full(7, 1e4), 20, 50) == 0.0
    # every error 35 mm: PCK is 0 below 35 and 1 from 35 on -> half of 20-50
    assert m.auc(np.full(10, 35.0), 20, 50, steps=301) == pytest.approx(0.5, abs=0.005)
    # trapezoid over 3 thresholds 0, 25, 50 with PCK 0, 1, 1 -> (0.5 + 1) * 25 / 50
    assert m.auc([10.0], 0, 50, steps=3) == pytest.approx(0.75)


def test_reflection_is_not_aligned_away():
    g = poses(1, 3)
    p = g * [-1, 1, 1]                           # a mirrored (left vs right) hand
    assert m.pa_mpjpe_mm(p, g).mean > 5.0
    # while the best proper rotation is still found for a rotated copy of the mirror
    q = similarity(p, 4, 1.0, 0.0)
    assert m.pa_mpjpe_mm(q, g).mean == pytest.approx(m.pa_mpjpe_mm(p, g).mean, rel=1e-6)


def test_degenerate_input_is_finite():
    g = poses(1, 5)
    point = np.zeros_like(g) + [1.0, 2.0, 3.0]   # all keypoints at one point
    line = np.zeros_like(g)
    line[0, :, 0] = np.arange(21.0)              # collinear
    plane = g.copy()
    plane[0, :, 2] = 500.0                       # planar
    for p in (point, line, plane, np.zeros_like(g)):
        for a, b in ((p, g), (g, p), (p, p)):
            e = m.pa_errors_mm(a, b)
            assert np.all(np.isfinite(e)), (a, b)
            assert np.all(np.isfinite(m.similarity_align(a, b)))
    # a point pred maps onto the gt centroid
    np.testing.assert_allclose(m.similarity_align(point, g)[0], np.repeat(g.mean(1), 21, 0), atol=1e-9)
    # a planar copy is still aligned exactly, with a proper rotation
    assert m.pa_mpjpe_mm(similarity(plane, 6, 0.5, 10.0), plane).mean < 1e-8


def test_summarize_invalid_samples():
    g = poses(4, 7)
    p = g.copy()
    p[1] = np.nan                                # failed 3D: anything may be there
    p[2] += 1000.0
    valid = [True, False, False, True]
    s = m.summarize(g[..., :2], g[..., :2], p, g, valid)
    assert s["valid_fraction"] == 0.5 and s["num_valid"] == 2 and s["num_samples"] == 4
    assert s["absolute_error_mm"] == 0.0 and s["auc_0_50"] == 1.0
    assert s["auc_0_50_all"] == pytest.approx(0.5)  # invalid samples count as misses
    s = m.summarize(g[..., :2], g[..., :2], p, g, [False] * 4)
    assert all(np.isnan(s[k]) for k in m.FIGURES_3D) and s["auc_20_50_all"] == 0.0
    with pytest.raises(ValueError, match="samples marked valid"):
        m.summarize(g[..., :2], g[..., :2], p, g, [True] * 4)
    with pytest.raises(ValueError, match="same N"):
        m.summarize(g[..., :2], g[..., :2], p, g, [True] * 3)
    with pytest.raises(ValueError, match="boolean"):
        m.summarize(g[..., :2], g[..., :2], p, g, [0, 2, 0, 1])



def test_summarize_counts_3d_figures_over_the_samples_with_true_3d_only():
    """A 2D-only annotation (no true 3D: anything in its gt_3d_mm row) counts for the 2D
    figures and for validity, not for the 3D ones; none with 3D leaves those NaN."""
    g = poses(4, 8)
    p = g.copy()
    p[1] += 1000.0                               # far off, but its truth is unknown
    g[1] = np.nan
    p2 = g[..., :2].copy()
    p2[1] = 0.0
    gt2 = p2.copy()
    gt2[1] = 3.0
    s = m.summarize(p2, gt2, p, g, [True, True, False, True], has_3d=[True, False, True, True])
    assert s["num_samples"] == 4 and s["num_with_3d"] == 3 and s["num_valid_with_3d"] == 2
    assert s["valid_fraction"] == 0.75
    assert s["mean_error_2d_px"] == pytest.approx(np.hypot(3, 3) / 4)
    assert s["absolute_error_mm"] == 0.0 and s["auc_0_50"] == 1.0
    assert s["auc_0_50_all"] == pytest.approx(2 / 3)   # the invalid sample with 3D is a miss
    none = m.summarize(p2, gt2, p, np.full_like(g, np.nan), [True] * 4, has_3d=[False] * 4)
    assert none["num_with_3d"] == 0 and none["mean_error_2d_px"] > 0
    assert all(np.isnan(none[k]) for k in (*m.FIGURES_3D, "auc_20_50_all", "auc_0_50_all"))
    with pytest.raises(ValueError, match="gt_3d_mm contains non-finite values .* having 3D"):
        m.summarize(p2, gt2, p, g, [True] * 4)
    with pytest.raises(ValueError, match="same N"):
        m.summarize(p2, gt2, p, g, [True] * 4, has_3d=[True] * 3)
    with pytest.raises(ValueError, match="has_3d must be boolean"):
        m.summarize(p2, gt2, p, g, [True] * 4, has_3d=[1, 2, 1, 1])


# ----------------------------------------------------------------------------- properties

finite = st.floats(-300, 300)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), scale=st.floats(0.2, 5.0), shift=st.tuples(finite, finite, finite))
def test_similarity_copy_has_zero_pa_error(seed, scale, shift):
    g = poses(1, seed)
    p = similarity(g, seed + 1, scale, np.array(shift))
    assert m.pa_mpjpe_mm(p, g).mean < 1e-7


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), noise=st.floats(0.0, 30.0), scale=st.floats(0.2, 5.0))
def test_pa_is_invariant_to_pred_similarity_and_bounded_by_root_relative(seed, noise, scale):
    g = poses(2, seed)
    p = g + np.random.default_rng(seed + 1).normal(0, noise + 1e-3, g.shape)
    base = m.pa_errors_mm(p, g)
    moved = m.pa_errors_mm(similarity(p, seed + 2, scale, [5.0, -3.0, 40.0]), g)
    np.testing.assert_allclose(moved, base, atol=1e-6)
    # the optimum over similarities is no worse (in RMS) than root-aligning alone
    rms = lambda e: np.sqrt((e ** 2).mean(1))  # noqa: E731
    assert np.all(rms(base) <= rms(m.root_relative_errors_mm(p, g)) + 1e-9)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), shift=st.tuples(finite, finite, finite))
def test_common_translation_changes_nothing(seed, shift):
    g, p = poses(1, seed), poses(1, seed + 1)
    t = np.array(shift)
    for f in (m.mpjpe_mm, m.pa_mpjpe_mm, m.absolute_error_mm):
        assert f(p + t, g + t).mean == pytest.approx(f(p, g).mean, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(errors=st.lists(st.floats(0, 200), min_size=1, max_size=60), extra=st.floats(0, 50))
def test_pck_and_auc_properties(errors, extra):
    e = np.array(errors)
    th = np.linspace(0, 100, 41)
    pck = m.pck_curve(e, th)
    assert np.all((pck >= 0) & (pck <= 1)) and np.all(np.diff(pck) >= 0)
    a = m.auc(e, 0, 50)
    assert 0.0 <= a <= 1.0
    assert m.auc(e + extra, 0, 50) <= a + 1e-12     # larger errors never raise the AUC
    assert m.auc(np.zeros_like(e), 20, 50) == 1.0


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("f", [m.mpjpe_mm, m.pa_mpjpe_mm, m.absolute_error_mm, m.root_depth_error_mm])
def test_bad_3d_input(f):
    with pytest.raises(ValueError, match=r"shape \(N, 21, 3\)"):
        f(np.zeros((2, 20, 3)), np.zeros((2, 20, 3)))
    with pytest.raises(ValueError, match=r"shape \(N, 21, 3\)"):
        f(np.zeros((21, 3)), np.zeros((21, 3)))
    with pytest.raises(ValueError, match="same number of poses"):
        f(np.zeros((2, 21, 3)), np.zeros((3, 21, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        f(np.full((1, 21, 3), np.nan), np.zeros((1, 21, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        f(np.zeros((1, 21, 3)), np.full((1, 21, 3), np.inf))
    with pytest.raises(TypeError):
        f(np.full((1, 21, 3), "a"), np.zeros((1, 21, 3)))


def test_bad_2d_and_pck_input():
    with pytest.raises(ValueError, match=r"shape \(N, 21, 2\)"):
        m.mean_error_2d_px(np.zeros((1, 21, 3)), np.zeros((1, 21, 3)))
    with pytest.raises(ValueError, match="NaN"):
        m.pck_curve([1.0, np.nan], [1.0])
    with pytest.raises(ValueError, match="non-negative"):
        m.pck_curve([-1.0], [1.0])
    with pytest.raises(ValueError, match="lo < hi"):
        m.auc([1.0], 50, 20)
    with pytest.raises(ValueError, match=">= 2"):
        m.auc([1.0], 0, 50, steps=1)


def test_plot_pck(tmp_path):
    th = np.linspace(0, 50, 51)
    e = np.arange(40.0)
    out = m.plot_pck({"ours": (th, m.pck_curve(e, th)), "short": ([0, 10], [0.1, 0.2])},
                     tmp_path / "sub" / "p.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="non-empty dict"):
        m.plot_pck({}, tmp_path / "q.png")
    with pytest.raises(ValueError, match="same length"):
        m.plot_pck({"a": ([0, 1], [0.5])}, tmp_path / "q.png")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.plot_pck({"a": ([0, 1], [0.5, 2.0])}, tmp_path / "q.png")


def test_plot_legend_auc_matches_auc():
    th = np.linspace(0, 50, 501)
    e = np.random.default_rng(0).uniform(0, 60, 500)
    a = m._curve_auc(th, m.pck_curve(e, th), 20.0, 50.0)
    assert a == pytest.approx(m.auc(e, 20, 50, steps=301), abs=0.01)


def test_2d_figures_leave_out_frames_where_no_hand_was_found():
    """A frame without a found hand has no 2D keypoints (zeros): scored at pixel (0, 0), its
    error depended on where the hand was (--crop detect on real_val_snap: 67.7 px against
    17.8 px over the frames with a hand)."""
    from hand25d_ros.metrics import summarize
    gt2 = np.full((3, 21, 2), 100.0)
    pred2 = gt2 + [[3.0, 4.0]]
    pred2[2] = 0.0                       # not found
    p3 = np.zeros((3, 21, 3))
    s = summarize(pred2, gt2, p3, p3, [False] * 3, [True] * 3, found=[True, True, False])
    assert s["mean_error_2d_px"] == pytest.approx(5.0) and s["found_fraction"] == pytest.approx(2 / 3)
    s = summarize(pred2[2:], gt2[2:], p3[2:], p3[2:], [False], [True], found=[False])
    assert np.isnan(s["mean_error_2d_px"]) and s["found_fraction"] == 0.0
    assert summarize(pred2[:2], gt2[:2], p3[:2], p3[:2], [False] * 2)["found_fraction"] == 1.0


def _labelled_case(seed=0, n=4):
    """Poses whose labelled keypoints are an exact similarity transform of the truth, and
    whose unlabelled ones (NaN in the truth) are far off."""
    rng = np.random.default_rng(seed)
    gt = rng.normal(0, 40, (n, 21, 3)) + [0, 0, 450]
    lab = np.ones((n, 21), bool)
    lab[0, [4, 8, 20]] = lab[2, [12, 16]] = False
    R = Rotation.random(n, random_state=seed).as_matrix()
    pred = 1.3 * np.einsum("nij,nkj->nki", R, gt) + rng.normal(0, 50, (n, 1, 3))
    pred[~lab] += 300.0
    gt_nan = np.where(lab[..., None], gt, np.nan)
    return pred, gt, gt_nan, lab


def test_pa_mpjpe_aligns_on_the_labelled_keypoints_only():
    pred, gt, gt_nan, lab = _labelled_case()
    e = m.pa_errors_mm(pred, gt_nan, lab)
    assert np.isnan(e[~lab]).all() and np.abs(e[lab]).max() < 1e-9
    assert m.pa_errors_mm(pred, gt)[lab].max() > 10        # aligned on all 21, the far ones pull it off
    # the truth under an unlabelled keypoint is never read
    np.testing.assert_array_equal(m.pa_errors_mm(pred, np.where(lab[..., None], gt, 1e6), lab), e)
    rr = m.root_relative_errors_mm(pred, gt_nan, lab)
    np.testing.assert_array_equal(rr[lab], m.root_relative_errors_mm(pred, gt)[lab])
    assert np.isnan(rr[~lab]).all()
    bad = lab.copy()
    bad[1, 0] = False
    with pytest.raises(ValueError, match="root \\(keypoint 0\\) labelled"):
        m.root_relative_errors_mm(pred, np.where(bad[..., None], gt, np.nan), bad)
    with pytest.raises(ValueError, match="gt contains non-finite values .* at labelled keypoints"):
        m.pa_errors_mm(pred, gt_nan, np.ones((4, 21), bool))


def test_summarize_scores_labelled_keypoints_only_and_full_labels_as_before():
    pred, gt, gt_nan, lab = _labelled_case(1)
    rng = np.random.default_rng(5)
    gt2 = rng.uniform(0, 200, (4, 21, 2))
    pred2 = gt2 + rng.normal(0, 5, (4, 21, 2))
    pred2[~lab] += 400.0
    valid, has_3d = np.array([True, True, True, False]), np.array([True, True, True, True])
    s = m.summarize(pred2, np.where(lab[..., None], gt2, np.nan), pred, gt_nan, valid, has_3d, labelled=lab)
    e2 = np.linalg.norm(pred2 - gt2, axis=-1)
    assert s["mean_error_2d_px"] == pytest.approx(e2[lab].mean(), rel=1e-12)
    assert s["median_error_2d_px"] == pytest.approx(np.median(e2[lab]), rel=1e-12)
    use = valid & has_3d
    rr = m.root_relative_errors_mm(pred, gt)[use][lab[use]]
    assert s["mpjpe_mm"] == pytest.approx(rr.mean(), rel=1e-12)
    assert s["pa_mpjpe_mm"] < 1e-9
    assert s["absolute_error_mm"] == pytest.approx(np.linalg.norm(pred - gt, axis=-1)[use][lab[use]].mean(), rel=1e-12)
    assert s["auc_0_50"] == pytest.approx(m.auc(rr, 0, 50), rel=1e-12)
    misses = np.concatenate([rr, np.full(lab[3].sum(), np.inf)])
    assert s["auc_0_50_all"] == pytest.approx(m.auc(misses, 0, 50), rel=1e-12)
    # every keypoint labelled: the very figures of a call without the mask
    full = np.ones((4, 21), bool)
    assert m.summarize(pred2, gt2, pred, gt, valid, has_3d, labelled=full) == m.summarize(pred2, gt2, pred, gt, valid, has_3d)
    with pytest.raises(ValueError, match="gt_2d contains non-finite values .* at labelled keypoints"):
        m.summarize(pred2, np.where(lab[..., None], gt2, np.nan), pred, gt, valid, has_3d, labelled=full)

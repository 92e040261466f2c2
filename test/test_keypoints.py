import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand25d_ros import keypoints as kp
from hand25d_ros.data.synthetic import SyntheticConfig, SyntheticHandGenerator


@pytest.fixture(scope="module")
def rendered_hands():
    gen = SyntheticHandGenerator(SyntheticConfig(crop_size_px=32, supersample=1), seed=3)
    samples = [gen.sample(i) for i in range(24)]
    return np.array([s["joints_3d_mm"] for s in samples]), np.array([s["is_left"] for s in samples])


def test_is_left_hand_matches_the_rendered_hand(rendered_hands):
    P, is_left = rendered_hands
    assert 0 < is_left.sum() < len(is_left)  # both hands drawn
    np.testing.assert_array_equal(kp.is_left_hand(P), is_left)
    # batched and single skeletons agree
    assert kp.is_left_hand(P[0]) == is_left[0] and kp.is_left_hand(P[0]).shape == ()


def test_is_left_hand_is_a_chirality(rendered_hands):
    P, is_left = rendered_hands
    R = Rotation.random(len(P), random_state=0).as_matrix()
    moved = np.einsum("nij,nkj->nki", R, P) * 0.001 + np.array([0.1, -0.2, 0.5])
    np.testing.assert_array_equal(kp.is_left_hand(moved), is_left)  # rigid motion, units
    mirrored = P * np.array([-1.0, 1.0, 1.0])
    np.testing.assert_array_equal(kp.is_left_hand(mirrored), ~is_left)


def test_is_left_hand_rejects_a_wrong_shape():
    with pytest.raises(ValueError, match="points_3d"):
        kp.is_left_hand(np.zeros((21, 2)))


@pytest.mark.parametrize("palm_facing", [1.0, 0.0])
def test_palm_toward_camera_follows_the_rendered_view(palm_facing):
    """Renders drawn upright with the palm (or the back) toward the camera read that way."""
    cfg = SyntheticConfig(crop_size_px=32, supersample=1, p_upright=1.0, p_palm_facing=palm_facing)
    gen = SyntheticHandGenerator(cfg, seed=5)
    P = np.array([gen.sample(i)["joints_3d_mm"] for i in range(16)])
    c = kp.palm_toward_camera(P)
    assert c.shape == (16,) and np.all(np.abs(c) <= 1.0)
    sign = 1.0 if palm_facing else -1.0
    assert np.mean(sign * c > 0) >= 0.9 and np.median(sign * c) > 0.5


def test_palm_toward_camera_is_a_view_not_a_hand(rendered_hands):
    P, _ = rendered_hands
    c = kp.palm_toward_camera(P)
    # a mirror across the optical axis makes the other hand seen from the same side
    np.testing.assert_allclose(kp.palm_toward_camera(P * np.array([-1.0, 1.0, 1.0])), c, atol=1e-9)
    # on the optical axis, turning the hand half round about the vertical through its middle
    # MCP shows the other side
    centre = P[:, kp.MIDDLE_MCP:kp.MIDDLE_MCP + 1]
    on_axis = P - centre + np.array([0.0, 0.0, 500.0])
    turned = (on_axis - [0, 0, 500.0]) * np.array([-1.0, 1.0, -1.0]) + [0, 0, 500.0]
    np.testing.assert_allclose(kp.palm_toward_camera(turned), -kp.palm_toward_camera(on_axis), atol=1e-9)
    assert np.isclose(kp.palm_toward_camera(P[0] / 1000.0), c[0])   # any unit
    with pytest.raises(ValueError, match="points_3d"):
        kp.palm_toward_camera(np.zeros((21, 2)))


def test_bone_lengths_takes_lists_and_names_a_wrong_shape():
    P = np.random.default_rng(1).normal(size=(21, 3))
    np.testing.assert_array_equal(kp.bone_lengths(P.tolist()), kp.bone_lengths(P))
    assert kp.bone_lengths(np.stack([P, P])).shape == (2, 20)
    with pytest.raises(ValueError, match=r"points must have shape \(\*, 21, N\), got \(20, 3\)"):
        kp.bone_lengths(P[:20])

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

"""benchmarks/keypoint_bias.py: the hand's own directions, and residuals in them, on the rig's
right hand and its mirror image (the left hand)."""
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand25d_ros import keypoints as kp
from hand25d_ros.data import hand_mesh as hm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from keypoint_bias import bone_frames, residuals_2d, residuals_3d  # noqa: E402

PIPS = [6, 10, 14, 18]


@pytest.fixture(scope="module")
def hands():
    """(2, 21, 3) mm, camera frame: the rig's right hand 0.5 m in front of the camera, turned,
    and its mirror image across the camera's x = 0 plane (a left hand); and the right hand's
    back-of-hand direction (its wrist joint's +Y)."""
    mesh = hm.packaged_hand("right")
    G = mesh.rest_global
    R = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
    right = (G[list(hm.KEYPOINT_FROM_WEBXR), :3, 3] - G[0, :3, 3]) @ R.T * 1000.0 + [0.0, 0.0, 500.0]
    left = right * [-1.0, 1.0, 1.0]
    return np.stack([right, left]), R @ G[0, :3, 1]


def test_axes_point_to_the_back_of_the_hand_and_the_thumb_for_either_hand(hands):
    gt, back = hands
    F = bone_frames(gt)
    np.testing.assert_allclose(np.einsum("nkij,nkil->nkjl", F, F), np.broadcast_to(np.eye(3), F.shape), atol=1e-9)
    assert kp.is_left_hand(gt).tolist() == [False, True]
    assert (F[0, :, 1] @ back > 0.5).all()                      # dorsal: the rig's back of the hand
    np.testing.assert_allclose(F[1, :, 1], F[0, :, 1] * [-1, 1, 1], atol=1e-9)
    thumb_side = gt[:, kp.INDEX_MCP] - gt[:, kp.PINKY_MCP]
    for n in range(2):
        assert (F[n, [5, 9, 13, 17], 2] @ thumb_side[n] > 0).all()
    along = gt[:, 8] - gt[:, 7]
    assert (np.einsum("ni,ni->n", F[:, 8, 0], along) > 0.99 * np.linalg.norm(along, axis=1)).all()


def test_a_similar_hand_has_no_residual_and_an_offset_is_read_alike_on_both_hands(hands):
    gt, _ = hands
    R = Rotation.from_euler("z", 30, degrees=True).as_matrix()
    similar = 1.2 * (gt - gt.mean(1, keepdims=True)) @ R.T + [5.0, -3.0, 40.0]
    np.testing.assert_allclose(residuals_3d(similar, gt), 0.0, atol=1e-6)
    # the estimate reads the PIPs 5 mm toward the palm: the labels sit 5 mm dorsal of it
    pred = gt.copy()
    pred[:, PIPS] -= 5.0 * bone_frames(gt)[:, PIPS, 1]
    res = residuals_3d(pred, gt)
    assert (res[:, PIPS, 1] > 3.5).all() and (res[:, PIPS, 1] < 5.0).all()
    assert np.abs(np.delete(res[..., 1], PIPS, axis=1)).max() < 1.5   # what the alignment spreads
    np.testing.assert_allclose(res[0], res[1], atol=1e-6)


def test_2d_residuals_read_along_the_hand_and_toward_the_index_for_either_hand(hands):
    gt, _ = hands
    uv = gt[..., :2] / gt[..., 2:] * 600.0 + 128.0
    along = uv[:, kp.MIDDLE_MCP] - uv[:, kp.WRIST]
    along /= np.linalg.norm(along, axis=1, keepdims=True)
    across = uv[:, kp.INDEX_MCP] - uv[:, kp.PINKY_MCP]
    across -= along * np.einsum("ni,ni->n", across, along)[:, None]
    across /= np.linalg.norm(across, axis=1, keepdims=True)
    pred = uv - 3.0 * along[:, None] + 2.0 * across[:, None]
    res = residuals_2d(pred, uv)
    np.testing.assert_allclose(res[..., 0], 3.0, atol=1e-9)
    np.testing.assert_allclose(res[..., 1], -2.0, atol=1e-9)

"""Palm frame and per-keypoint orientations (hand25d_ros.pose_frames)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from hand25d_ros import keypoints as kp
from hand25d_ros.pose_frames import CHILD, hand_frames, palm_frame, rotation_to_quaternion


def flat_right_hand() -> np.ndarray:
    """A flat right hand in its own palm axes: fingers along +x, index side at y < 0,
    pinky at y > 0, palm facing +z (so the palm normal of the docs is +z)."""
    P = np.zeros((21, 3))
    # MCPs across the palm at x = 0.09, index (y = -0.03) ... pinky (y = +0.03)
    for f, y in zip(range(1, 5), (-0.03, -0.01, 0.01, 0.03)):
        base = kp.FINGERS[f][0]
        for j in range(4):
            P[base + j] = (0.09 + 0.03 * j, y, 0.0)
    # thumb along +x as well, further to the index side
    for j in range(4):
        P[1 + j] = (0.02 + 0.03 * j, -0.05, 0.0)
    return P


def assert_rotations(R):
    R = np.asarray(R)
    I = np.broadcast_to(np.eye(3), R.shape)
    np.testing.assert_allclose(np.swapaxes(R, -1, -2) @ R, I, atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)


def test_child_table():
    assert CHILD[kp.WRIST] == -2
    assert CHILD[kp.INDEX_MCP] == 6 and CHILD[1] == 2 and CHILD[19] == 20
    assert all(CHILD[t] == -1 for t in kp.TIPS)


def test_flat_hand_palm_frame_matches_the_documented_axes():
    P = flat_right_hand()
    origin, R, ok = palm_frame(P)
    assert ok
    np.testing.assert_allclose(R, np.eye(3), atol=1e-12)  # x fingers, y index->pinky, z out of palm
    np.testing.assert_allclose(origin, (P[0] + P[5] + P[17]) / 3)


def test_flat_hand_joint_frames_coincide_with_the_palm():
    frames = hand_frames(flat_right_hand())
    assert frames.valid
    np.testing.assert_allclose(frames.joint_rotations, np.broadcast_to(np.eye(3), (21, 3, 3)), atol=1e-12)


def test_joint_x_axis_runs_along_the_bone_to_the_child():
    rng = np.random.default_rng(1)
    P = flat_right_hand() + rng.normal(0, 0.004, (21, 3))
    frames = hand_frames(P)
    for k in range(21):
        c = CHILD[k]
        if c == -2:
            continue
        bone = P[c] - P[k] if c >= 0 else P[k] - P[kp.PARENTS[k]]
        np.testing.assert_allclose(frames.joint_rotations[k][:, 0], bone / np.linalg.norm(bone), atol=1e-12)
    assert_rotations(frames.joint_rotations)


def test_flexed_finger_rotates_about_the_palm_y_axis():
    P = flat_right_hand()
    # bend the index finger 90 degrees at its MCP, towards the palm (+z for this palm)
    mcp = P[5].copy()
    for j, k in enumerate((6, 7, 8), start=1):
        P[k] = mcp + (0, 0, 0.03 * j)
    R = hand_frames(P).joint_rotations
    np.testing.assert_allclose(R[5][:, 0], (0, 0, 1), atol=1e-12)
    np.testing.assert_allclose(R[5][:, 1], (0, 1, 0), atol=1e-12)  # the flexion axis stays the palm's y
    np.testing.assert_allclose(R[5], Rotation.from_euler("y", -90, degrees=True).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(R[8], R[5], atol=1e-12)


def test_bone_along_the_palm_y_uses_the_palm_normal():
    P = flat_right_hand()
    # thumb folded straight across the palm: CMC -> MCP along +y
    P[2] = P[1] + (0, 0.03, 0)
    R = hand_frames(P).joint_rotations[1]
    assert_rotations(R)
    np.testing.assert_allclose(R[:, 0], (0, 1, 0), atol=1e-12)
    np.testing.assert_allclose(R[:, 1], np.cross((0, 0, 1), (0, 1, 0)), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_frames_rotate_and_translate_with_the_hand(seed):
    rng = np.random.default_rng(seed)
    P = flat_right_hand() + rng.normal(0, 0.005, (21, 3))
    Q = Rotation.random(random_state=seed).as_matrix()
    t = rng.normal(0, 1, 3)
    a, b = hand_frames(P), hand_frames(P @ Q.T + t)
    np.testing.assert_allclose(b.joint_rotations, Q @ a.joint_rotations, atol=1e-9)
    np.testing.assert_allclose(b.palm_rotation, Q @ a.palm_rotation, atol=1e-9)
    np.testing.assert_allclose(b.palm_origin, Q @ a.palm_origin + t, atol=1e-9)
    assert_rotations(b.joint_rotations)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0))
def test_random_and_degenerate_input_is_never_nan(seed, p_bad):
    rng = np.random.default_rng(seed)
    P = rng.normal(0, 0.05, (21, 3))
    bad = rng.random(21) < p_bad
    choice = rng.integers(0, 3, 21)
    P[bad & (choice == 0)] = np.nan
    P[bad & (choice == 1)] = np.inf
    P[bad & (choice == 2)] = P[0]  # coincident with the wrist
    f = hand_frames(P)
    for arr in (f.palm_origin, f.palm_rotation, f.joint_rotations, f.palm_quaternion, f.joint_quaternions):
        assert np.all(np.isfinite(arr))
    assert_rotations(f.joint_rotations)
    assert_rotations(f.palm_rotation)


def test_degenerate_palm_falls_back_to_identity_and_is_flagged():
    for P in (np.zeros((21, 3)), np.full((21, 3), np.nan)):
        f = hand_frames(P)
        assert not f.palm_valid and not f.valid
        np.testing.assert_array_equal(f.palm_rotation, np.eye(3))
        np.testing.assert_array_equal(f.palm_origin, np.zeros(3))
        assert not f.joint_valid.any()
    # collinear wrist, index MCP, pinky MCP
    P = flat_right_hand()
    P[5], P[17] = (0.09, 0, 0), (0.12, 0, 0)
    origin, R, ok = palm_frame(P)
    assert not ok and np.array_equal(R, np.eye(3))
    np.testing.assert_allclose(origin, (P[0] + P[5] + P[17]) / 3)


def test_degenerate_bone_takes_the_parent_orientation_and_is_flagged():
    P = flat_right_hand()
    P[6] = P[5]            # index MCP -> PIP has zero length
    P[12] = np.nan         # middle tip unknown: middle DIP has no bone, nor has the tip
    f = hand_frames(P)
    assert f.palm_valid
    assert not f.joint_valid[5] and not f.joint_valid[11] and not f.joint_valid[12]
    np.testing.assert_allclose(f.joint_rotations[5], f.palm_rotation)
    np.testing.assert_allclose(f.joint_rotations[11], f.joint_rotations[10])
    np.testing.assert_allclose(f.joint_rotations[12], f.joint_rotations[11])
    assert f.joint_valid[[0, 7, 8, 9, 10]].all()


def test_quaternions_match_rotations_and_have_nonnegative_w():
    rng = np.random.default_rng(3)
    R = Rotation.random(50, random_state=4).as_matrix().reshape(5, 10, 3, 3)
    q = rotation_to_quaternion(R)
    assert q.shape == (5, 10, 4)
    assert np.all(q[..., 3] >= 0)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(Rotation.from_quat(q.reshape(-1, 4)).as_matrix().reshape(R.shape), R, atol=1e-12)
    f = hand_frames(flat_right_hand() + rng.normal(0, 0.003, (21, 3)))
    np.testing.assert_allclose(Rotation.from_quat(f.joint_quaternions).as_matrix(), f.joint_rotations, atol=1e-12)


def test_batches_equal_single_poses():
    rng = np.random.default_rng(5)
    P = flat_right_hand() + rng.normal(0, 0.01, (2, 3, 21, 3))
    P[1, 2, 7] = np.nan
    f = hand_frames(P)
    assert f.joint_rotations.shape == (2, 3, 21, 3, 3) and f.palm_valid.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            s = hand_frames(P[i, j])
            np.testing.assert_allclose(f.joint_rotations[i, j], s.joint_rotations)
            np.testing.assert_array_equal(f.joint_valid[i, j], s.joint_valid)


def test_wrong_shape_is_rejected_with_the_shape():
    with pytest.raises(ValueError, match=r"\(\*, 21, 3\).*\(21, 2\)"):
        hand_frames(np.zeros((21, 2)))
    with pytest.raises(ValueError, match="3, 3"):
        rotation_to_quaternion(np.zeros((4, 3)))


def _sample_hands_m() -> np.ndarray:
    """The bundled sample frames' 3D keypoints (real hands), metres, (8, 21, 3)."""
    import json
    from importlib import resources
    ann = json.loads((resources.files("hand25d_ros") / "samples" / "annotations.json").read_text())["samples"]
    return np.array([s["joints_3d_mm"] for s in ann]) / 1000.0


def test_quaternions_from_one_call_equal_one_call_per_rotation():
    # the three quaternion sets come from one scipy call on stacked matrices; each must equal
    # converting its own matrices alone, bit for bit, on real hands and on degenerate ones
    hands = _sample_hands_m()
    broken = hands[:3].copy()
    broken[0, 8] = np.nan                 # a tip without a position
    broken[1, 6] = broken[1, 5]           # a zero-length bone
    broken[2, [0, 5, 17]] = broken[2, 0]  # no palm: identity fallback
    for P in np.concatenate([hands, broken]):
        f = hand_frames(P)
        R_p, R_j = f.palm_rotation, f.joint_rotations
        np.testing.assert_array_equal(f.palm_quaternion, rotation_to_quaternion(R_p))
        np.testing.assert_array_equal(f.joint_quaternions, np.array([rotation_to_quaternion(R) for R in R_j]))
        np.testing.assert_array_equal(f.joint_quaternions_in_palm,
                                      np.array([rotation_to_quaternion(R_p.T @ R) for R in R_j]))
    fb = hand_frames(hands.reshape(2, 4, 21, 3))
    for i, j in np.ndindex(2, 4):
        one = hand_frames(hands[4 * i + j])
        np.testing.assert_array_equal(fb.palm_quaternion[i, j], one.palm_quaternion)
        np.testing.assert_array_equal(fb.joint_quaternions[i, j], one.joint_quaternions)
        np.testing.assert_array_equal(fb.joint_quaternions_in_palm[i, j], one.joint_quaternions_in_palm)


def test_cached_quaternions_cannot_be_changed_by_a_caller():
    f = hand_frames(_sample_hands_m()[0])
    with pytest.raises(ValueError):
        f.palm_quaternion[0] = 2.0
    with pytest.raises(ValueError):
        f.joint_quaternions[3, 1] = 2.0


@pytest.mark.parametrize("scale", [1e100, 1e160, 1e300])
def test_a_hand_too_large_for_floats_is_flagged_not_an_error(scale):
    """Coordinates from about 1e154 on square to inf: a bone's length overflowed, its axis came
    out zero, and scipy raised 'Non-positive determinant' from the quaternions (and so did
    the node's message builders). A hand that large has no frames, as one with non-finite
    points; one in any real unit keeps them."""
    P = flat_right_hand() + [0.1, 0.2, 0.5]
    f = hand_frames(P * scale)
    for arr in (f.palm_origin, f.palm_rotation, f.joint_rotations, f.palm_quaternion, f.joint_quaternions):
        assert np.all(np.isfinite(arr))
    if scale <= 1e100:
        assert f.valid
        np.testing.assert_allclose(f.joint_rotations, hand_frames(P).joint_rotations, atol=1e-9)
    else:
        assert not f.palm_valid and not f.joint_valid.any()

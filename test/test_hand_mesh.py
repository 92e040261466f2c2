"""The WebXR hand rig: glb loading, FK, LBS, label convention, pose sampler, bad assets."""
import numpy as np
import pytest

from hand25d_ros.data import hand_mesh as hm
from hand25d_ros.data.pose_sampler import (LIMITS_DEG, POSE_FAMILIES, angles_to_rotations, joint_kinds,
                                           sample_angles, sample_pose, sample_shape, thumb_penetrates_palm)


@pytest.fixture(scope="module")
def right():
    return hm.load_hand_mesh("right")


def test_rest_pose_reproduces_the_glb(right):
    import pygltflib
    from scipy.spatial.transform import Rotation
    g = pygltflib.GLTF2().load(str(hm.asset_path("right")))
    by_name = {n.name: n for n in g.nodes}
    fk = hm.forward_kinematics(right, np.tile(np.eye(3), (25, 1, 1)))
    for j, name in enumerate(hm.WEBXR_JOINTS):       # the armature is the identity in this asset
        n = by_name[name]
        np.testing.assert_allclose(fk[j, :3, 3], n.translation, atol=1e-6)
        np.testing.assert_allclose(fk[j, :3, :3], Rotation.from_quat(n.rotation).as_matrix(), atol=1e-5)
    v, nrm = hm.skin(right, fk)
    np.testing.assert_allclose(v, right.vertices, atol=1e-9)
    np.testing.assert_allclose(nrm, right.normals, atol=1e-9)
    assert right.vertices.shape == (1360, 3) and right.faces.max() < 1360


def test_left_asset_is_the_mirrored_right(right):
    left = hm.load_hand_mesh("left")
    # the generator renders left hands as the mirrored right rig: the assets agree within a few mm
    assert np.abs(left.rest_joints - right.rest_joints @ hm.MIRROR_X).max() < 0.008


def test_posing_keeps_bone_lengths_and_rigid_segments(right):
    rng = np.random.default_rng(0)
    for fam in POSE_FAMILIES:
        R = sample_pose(rng, fam, right)
        G = hm.forward_kinematics(right, R)
        for j, p in enumerate(hm.WEBXR_PARENTS):
            if p >= 0:
                assert np.linalg.norm(G[j, :3, 3] - G[p, :3, 3]) == pytest.approx(
                    np.linalg.norm(right.rest_joints[j] - right.rest_joints[p]), abs=1e-9)
        np.testing.assert_allclose(G[:, :3, :3] @ G[:, :3, :3].transpose(0, 2, 1), np.tile(np.eye(3), (25, 1, 1)),
                                   atol=1e-9)
        # a vertex bound to one joint only moves rigidly with it
        v, _ = hm.skin(right, G)
        solo = np.nonzero(right.joint_w.max(1) > 0.999)[0][:50]
        for i in solo:
            j = right.dominant_joint[i]
            assert np.linalg.norm(v[i] - G[j, :3, 3]) == pytest.approx(
                np.linalg.norm(right.vertices[i] - right.rest_joints[j]), abs=1e-6)


def test_global_rotation_and_bone_scale(right):
    from scipy.spatial.transform import Rotation
    R0 = Rotation.from_euler("xyz", [30, -50, 120], degrees=True).as_matrix()
    root = np.eye(4)
    root[:3, :3] = R0 @ right.rest_global[0, :3, :3]
    root[:3, 3] = [0.1, 0.2, 0.5]
    G = hm.forward_kinematics(right, sample_pose(np.random.default_rng(1), "fist", right), root=root)
    G0 = hm.forward_kinematics(right, sample_pose(np.random.default_rng(1), "fist", right))
    lengths = lambda X: np.linalg.norm(X[1:, :3, 3] - X[list(hm.WEBXR_PARENTS[1:]), :3, 3], axis=1)  # noqa
    np.testing.assert_allclose(lengths(G), lengths(G0), atol=1e-9)
    bs = np.full(25, 1.1)
    Gs = hm.forward_kinematics(right, np.tile(np.eye(3), (25, 1, 1)), bs)
    np.testing.assert_allclose(lengths(Gs), 1.1 * lengths(G0 * 0 + right.rest_global), atol=1e-9)


def test_labels_follow_the_photo_convention(right):
    G = right.rest_global
    L = hm.keypoint_labels(right, G)
    J = right.rest_joints
    assert L.shape == (21, 3)
    # inner joints are the rig's joints
    for k, j in enumerate(hm.KEYPOINT_FROM_WEBXR):
        if k not in (0, 1, 4, 8, 12, 16, 20):
            np.testing.assert_allclose(L[k], J[j])
    # tips move out along the distal bone onto the skin, the wrist and CMC as measured
    for f, tip in enumerate(hm.TIP_JOINTS):
        ext = np.linalg.norm(L[4 * f + 4] - J[tip])
        assert ext == pytest.approx(hm.tip_skin_extents_m(right)[f] * hm.LABEL_TIP_SKIN_FRACTION[f], abs=1e-9)
    assert np.linalg.norm(L[0] - J[0]) * 1000 == pytest.approx(np.linalg.norm(hm.LABEL_WRIST_OFFSET_MM), abs=1e-6)
    # with the mean palm proportion, distances as measured on real_val_snap (rig units: real / 1.036)
    bs = np.ones(25)
    bs[list(hm.PALM_JOINTS)] = hm.PALM_SCALE
    Lp = hm.keypoint_labels(right, hm.forward_kinematics(right, np.tile(np.eye(3), (25, 1, 1)), bs), bs)
    assert np.linalg.norm(Lp[1] - Lp[0]) * 1000 == pytest.approx(30.6, abs=3)     # real median 31.7 mm
    assert np.linalg.norm(Lp[5] - Lp[0]) * 1000 == pytest.approx(83.5, abs=6)     # real median 86.6 mm
    assert np.linalg.norm(Lp[17] - Lp[5]) * 1000 == pytest.approx(64.2, abs=3)    # real median 66.5 mm


def test_pose_sampler_respects_limits(right):
    kinds = joint_kinds()
    rng = np.random.default_rng(5)
    for i in range(60):
        A = sample_angles(rng, POSE_FAMILIES[i % len(POSE_FAMILIES)], right)
        for j, k in enumerate(kinds):
            if k is None:
                assert np.all(A[j] == 0)
            else:
                lo = [lim[0] for lim in LIMITS_DEG[k]]
                hi = [lim[1] for lim in LIMITS_DEG[k]]
                assert np.all(A[j] >= np.array(lo) - 1e-9) and np.all(A[j] <= np.array(hi) + 1e-9)
        assert not thumb_penetrates_palm(right, A)
    R = angles_to_rotations(A)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    scale, width = sample_shape(rng)
    assert scale.shape == (25,) and 0.8 < scale.min() and scale.max() < 1.25 and 0.8 <= width <= 1.25
    with pytest.raises(ValueError, match="pose family"):
        sample_angles(rng, "jazz hands")


def test_missing_or_corrupt_asset_names_the_file(tmp_path):
    with pytest.raises(hm.AssetError, match="missing.glb"):
        hm.load_hand_mesh("right", tmp_path / "missing.glb")
    bad = tmp_path / "bad.glb"
    bad.write_bytes(b"glTF" + b"\x02\x00\x00\x00" + b"\x00" * 40)
    with pytest.raises(hm.AssetError, match="bad.glb"):
        hm.load_hand_mesh("right", bad)
    # a real glb cut short
    cut = tmp_path / "cut.glb"
    cut.write_bytes(hm.asset_path("right").read_bytes()[:5000])
    with pytest.raises(hm.AssetError, match="cut.glb"):
        hm.load_hand_mesh("right", cut)
    with pytest.raises(ValueError, match="side"):
        hm.asset_path("middle")


def test_family_probabilities_override_the_named_families_only():
    from hand25d_ros.data.pose_sampler import FAMILY_WEIGHTS, family_probabilities
    p = family_probabilities({"count": 0.26})
    w = FAMILY_WEIGHTS.astype(float).copy()
    w[POSE_FAMILIES.index("count")] = 0.26
    np.testing.assert_allclose(p, w / w.sum())
    np.testing.assert_array_equal(family_probabilities(None), FAMILY_WEIGHTS / FAMILY_WEIGHTS.sum())
    # sample_angles draws its family with them: a one-hot choice draws that family's pose
    onehot = np.eye(len(POSE_FAMILIES))[POSE_FAMILIES.index("fist")]
    a = sample_angles(np.random.default_rng(7), family_p=onehot)
    rng = np.random.default_rng(7)
    rng.choice(len(POSE_FAMILIES), p=onehot)
    np.testing.assert_array_equal(a, sample_angles(rng, "fist"))


def test_photo_knuckle_labels_move_only_the_finger_mcps(right):
    bs = np.ones(25)
    bs[list(hm.PALM_JOINTS)] = 1.1
    G = hm.forward_kinematics(right, sample_pose(np.random.default_rng(3), "fist", right), bs)
    joint = hm.keypoint_labels(right, G, bs)
    photo = hm.keypoint_labels(right, G, bs, knuckles="photo")
    moved = np.linalg.norm(photo - joint, axis=1) * 1000
    assert np.all(moved[[k for k in range(21) if k not in (5, 9, 13, 17)]] == 0)
    # rigid with each proximal phalanx, scaled with the palm
    np.testing.assert_allclose(moved[[5, 9, 13, 17]], 1.1 * np.linalg.norm(hm.LABEL_KNUCKLE_OFFSET_MM, axis=1))
    # the offsets' along-the-bone parts: index and pinky distal, middle and ring proximal
    for f, sign in enumerate((1, -1, -1, 1)):
        k = 4 * f + 5
        bone = (G[hm.KEYPOINT_FROM_WEBXR[k + 1], :3, 3] - G[hm.KEYPOINT_FROM_WEBXR[k], :3, 3])
        assert sign * (photo[k] - joint[k]) @ bone > 0
    with pytest.raises(ValueError, match="knuckles must be one of joint, photo"):
        hm.keypoint_labels(right, G, bs, knuckles="skin")


def test_knuckle_fit_recovers_the_offsets_of_labels_made_with_them(right):
    from hand25d_ros.tools.measure_label_offsets import fit_knuckle_offsets, palm_bone_scale
    bs = palm_bone_scale(hm.PALM_SCALE)
    rng = np.random.default_rng(0)
    # "photos" labelled with known knuckle offsets, in poses and at 1.03x the rig's size
    truth = np.array([[0.0, 0.0, -4.0], [0.0, 0.0, 2.0], [0.0, 0.0, 3.0], [0.0, 0.0, -3.0]])
    real = []
    old = hm.LABEL_KNUCKLE_OFFSET_MM.copy()
    try:
        hm.LABEL_KNUCKLE_OFFSET_MM[:] = truth
        for i in range(20):
            G = hm.forward_kinematics(right, sample_pose(rng, "open", right), bs)
            real.append(hm.keypoint_labels(right, G, bs, knuckles="photo") * 1030.0)
    finally:
        hm.LABEL_KNUCKLE_OFFSET_MM[:] = old
    fit = fit_knuckle_offsets(np.array(real), right)
    # the along-the-bone parts, which the distances pin down, come back to a millimetre
    np.testing.assert_allclose(fit["offsets_mm"][:, 2], truth[:, 2], atol=1.0)
    assert np.abs(fit["after_mm"]).max() < 0.5 < np.abs(fit["before_mm"]).max()


def test_tucked_thumb_holds_the_thumb_over_the_curled_fingers_of_gestures(right):
    def thumbs(p, family):
        rng = np.random.default_rng(11)
        return np.array([sample_angles(rng, family, right, p_thumb_tucked=p)[1:4, 0] for _ in range(40)])
    for family in ("point", "count"):
        # a fist's thumb: CMC flexed 20-55, MCP 20-60 and IP 15-70 degrees
        t = thumbs(1.0, family)
        assert np.all((t >= [20, 20, 15]) & (t <= [55, 60, 70]))
        # as drawn before the option: mostly out of the palm, so most fall outside those ranges
        t = thumbs(0.0, family)
        assert np.mean(np.all((t >= [20, 20, 15]) & (t <= [55, 60, 70]), axis=1)) < 0.2


def test_thumb_on_tips_holds_half_bent_fingers_by_a_dip_or_tip(right):
    from hand25d_ros.data.pose_sampler import FINGER_BASE, FINGERS

    def thumb_to_held_mm(p, family, n=30):
        """Per draw: the thumb tip's distance to the nearest DIP or tip of a bent finger, and
        the bent fingers' largest PIP flexion."""
        rng = np.random.default_rng(21)
        dist, pip = [], []
        for _ in range(n):
            A = sample_angles(rng, family, right, p_thumb_on_tips=p)
            P = hm.forward_kinematics(right, angles_to_rotations(A))[:, :3, 3] * 1000.0
            bent = [f for f in FINGERS if A[FINGER_BASE[f] + 2, 0] > 40.0]
            if not bent:
                continue
            held = [FINGER_BASE[f] + k for f in bent for k in (3, 4)]
            dist.append(np.linalg.norm(P[held] - P[4], axis=1).min())
            pip.append(max(A[FINGER_BASE[f] + 2, 0] for f in bent))
        return np.array(dist), np.array(pip)
    for family in ("point", "count"):
        d1, pip1 = thumb_to_held_mm(1.0, family)
        d0, pip0 = thumb_to_held_mm(0.0, family)
        # the thumb tip at a bent finger's DIP or tip, where before it was mostly out of reach
        assert np.median(d1) < 20.0 < np.median(d0)
        # the held fingers half-bent (curl 0.55-0.85: PIP about 58-89 degrees), not curled as in a fist
        assert np.median(pip1) < 100.0 < np.median(pip0)


@pytest.mark.parametrize("option", ["p_thumb_tucked", "p_thumb_on_tips"])
def test_the_thumb_options_leave_other_poses_and_the_default_draw_alone(right, option):
    from hand25d_ros.data.synthetic import SyntheticConfig
    # 0, the default, takes no extra draw from the stream; the other families ignore the option
    for family in POSE_FAMILIES:
        a = sample_angles(np.random.default_rng(3), family, right)
        np.testing.assert_array_equal(a, sample_angles(np.random.default_rng(3), family, right, **{option: 0.0}))
        if family not in ("point", "count"):
            np.testing.assert_array_equal(a, sample_angles(np.random.default_rng(3), family, right, **{option: 1.0}))
    with pytest.raises(ValueError, match=f"{option} is a probability"):
        sample_angles(np.random.default_rng(0), "count", right, **{option: 1.5})
    with pytest.raises(ValueError, match=option):
        SyntheticConfig(**{option: -0.1})

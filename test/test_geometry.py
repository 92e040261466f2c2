"""Geometry of the 2.5D representation: exact data must reconstruct to float precision."""
import numpy as np
import pytest
import torch
from hypothesis import example, given, settings, strategies as st

from hand25d_ros import geometry as g
from hand25d_ros import keypoints as kp
from hand25d_ros.crop import box_to_crop_affine, crop_intrinsics, transform_points, crop_affine

# A plausible open right hand in mm, wrist at the origin, fingers along -y, palm facing +z.
CANON_MM = np.array([
    [0, 0, 0],
    [-25, -20, -5], [-45, -40, -10], [-60, -58, -12], [-72, -75, -14],
    [-25, -87, 0], [-28, -125, 0], [-30, -148, 0], [-31, -168, 0],
    [-3, -90, 0], [-3, -132, 0], [-3, -158, 0], [-3, -180, 0],
    [18, -84, 0], [20, -122, 0], [21, -146, 0], [22, -166, 0],
    [36, -74, 0], [40, -104, 0], [42, -120, 0], [44, -138, 0],
], dtype=np.float64)


def random_rotation(rng):
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def random_pose_mm(rng, hand_scale=1.0, depth_mm=500.0):
    P = CANON_MM * hand_scale
    P = P + rng.normal(scale=4.0, size=P.shape) * hand_scale  # articulation-ish noise
    P = P @ random_rotation(rng).T
    # wrist at the requested depth: hands 0.25-1.2 m from the camera
    P = P - P[0] + np.array([rng.uniform(-100, 100), rng.uniform(-80, 80), depth_mm])
    return P


def make_K(f, cx, cy, fy=None):
    return np.array([[f, 0, cx], [0, fy or f, cy], [0, 0, 1.0]])


def reconstruct_exact_25d(P, K):
    """The metric pose back from P's exact 2.5D form with the true scale: the one-bone
    quadratic, or the robust solver where that quadratic has two roots in front of the
    camera and the truth is the near one (one bone cannot tell them apart)."""
    uv, z, s = g.pose_to_25d(P, K)
    P_hat, status = g.reconstruct_metric(uv, z, K, s / 1000.0, method="bone")
    _, Z_near, _ = g._root_depth_candidates_torch(
        torch.tensor(g.normalize_points(uv, K)), torch.tensor(z), (kp.SCALE_BONE,), (1.0,))
    if status == g.RootDepthStatus.OK and Z_near[0] > 0 and abs(Z_near[0].item() - P[0, 2] / s) < 1e-6:
        ratios = g.bone_ratios_from_poses(P[None])
        P_hat, status = g.reconstruct_metric(uv, z, K, s / 1000.0, bone_ratios=ratios)
    return P_hat, status


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.7, 1.3), depth=st.floats(250, 1200),
       f=st.floats(200, 1500), cx=st.floats(100, 700), cy=st.floats(100, 500))
def test_exact_25d_reconstructs_metric_pose(seed, scale, depth, f, cx, cy):
    rng = np.random.default_rng(seed)
    P = random_pose_mm(rng, scale, depth)
    K = make_K(f, cx, cy, fy=f * rng.uniform(0.95, 1.05))
    P_hat, status = reconstruct_exact_25d(P, K)
    assert status == g.RootDepthStatus.OK
    np.testing.assert_allclose(P_hat * 1000.0, P, atol=1e-6 * depth)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), side=st.floats(40, 600), rot=st.floats(-0.6, 0.6),
       ox=st.floats(-50, 50), oy=st.floats(-50, 50))
@example(seed=379, side=40.0, rot=0.0, ox=0.0, oy=0.0)   # a pose whose near root is the truth
def test_crop_intrinsics_carry_the_pose_exactly(seed, side, rot, ox, oy):
    rng = np.random.default_rng(seed)
    P = random_pose_mm(rng, 1.0, 600.0)
    K = make_K(600, 320, 240)
    uv_full = g.project_points(P, K)
    A = crop_affine(uv_full.mean(0) + [ox, oy], side, 128, rot)
    Kc = crop_intrinsics(K, A)
    uv_crop = g.project_points(P, Kc)
    np.testing.assert_allclose(uv_crop, transform_points(A, uv_full), atol=1e-8)
    P_hat, status = reconstruct_exact_25d(P, Kc)
    assert status == g.RootDepthStatus.OK
    np.testing.assert_allclose(P_hat * 1000.0, P, atol=1e-6 * 600)


def test_batched_matches_single():
    rng = np.random.default_rng(0)
    P = np.stack([random_pose_mm(rng) for _ in range(5)])
    K = np.stack([make_K(500 + 10 * i, 320, 240) for i in range(5)])
    uv, z, s = g.pose_to_25d(P, K)
    assert uv.shape == (5, 21, 2) and z.shape == (5, 21) and s.shape == (5,)
    Pb, stb = g.reconstruct_metric(uv, z, K, s / 1000.0, method="bone")
    for i in range(5):
        Pi, sti = g.reconstruct_metric(uv[i], z[i], K[i], s[i] / 1000.0, method="bone")
        np.testing.assert_allclose(Pb[i], Pi, atol=1e-12)


def test_robust_reconstruction_is_exact_on_exact_data():
    rng = np.random.default_rng(1)
    P = np.stack([random_pose_mm(rng) for _ in range(20)])
    K = make_K(600, 320, 240)
    ratios = np.stack([g.bone_ratios_from_poses(P[i:i + 1]) for i in range(20)])
    uv, z, s = g.pose_to_25d(P, K)
    P_hat, status = g.reconstruct_metric(uv, z, K, s / 1000.0, method="robust",
                                         bone_ratios=ratios[0])
    assert np.all(status == 0)
    # each pose uses its own ratios -> exact
    for i in range(20):
        Pi, _ = g.reconstruct_metric(uv[i], z[i], K, s[i] / 1000.0, method="robust",
                                     bone_ratios=ratios[i])
        np.testing.assert_allclose(Pi * 1000, P[i], atol=1e-6)


def test_robust_takes_the_root_every_bone_shares_when_each_has_two():
    """Wide-angle views: every bone's quadratic has two roots in front of the camera. The true
    depth is a root of each; the median of the far roots (the fallback before) gave 0.4 m off."""
    from scipy.spatial.transform import Rotation
    P = (CANON_MM / 1000.0) @ Rotation.from_rotvec([0.806, -1.567, -1.839]).as_matrix().T + [0.488, -0.428, 0.199]
    K = make_K(330, 639.5, 479.5)
    uv, z, s = g.pose_to_25d(P, K)
    ratios = g.bone_ratios_from_poses(P[None])
    far, near, _ = g._root_depth_candidates_torch(torch.tensor(g.normalize_points(uv, K)), torch.tensor(z),
                                                  g.ROBUST_BONES, torch.tensor(ratios))
    assert (near > 0).all()            # the case: two roots in front of the camera for every bone
    P_hat, st = g.reconstruct_metric(uv, z, K, s, method="robust", bone_ratios=ratios)
    assert st == 0
    np.testing.assert_allclose(P_hat, P, atol=1e-6)


def test_wrong_hand_size_scales_along_rays_and_keeps_2d():
    rng = np.random.default_rng(2)
    P = random_pose_mm(rng)
    K = make_K(600, 320, 240)
    uv, z, s = g.pose_to_25d(P, K)
    P1, _ = g.reconstruct_metric(uv, z, K, s / 1000.0, method="bone")
    P2, _ = g.reconstruct_metric(uv, z, K, 1.5 * s / 1000.0, method="bone")
    np.testing.assert_allclose(P2, 1.5 * P1, rtol=1e-12)
    np.testing.assert_allclose(g.project_points(P2, K), uv, atol=1e-8)


def test_root_quadratic_factor_two_trap():
    """The excerpt's 0.5 (-b + sqrt(b^2 - 4ac)) / a with half-b is wrong; ours is right."""
    rng = np.random.default_rng(3)
    P = random_pose_mm(rng)
    K = make_K(600, 320, 240)
    uv, z, s = g.pose_to_25d(P, K)
    xn = g.normalize_points(uv, K)
    n, m = kp.SCALE_BONE
    d = xn[n] - xn[m]
    e = xn[n] * z[n] - xn[m] * z[m]
    a, b = d @ d, d @ e
    c = e @ e + (z[n] - z[m]) ** 2 - 1.0
    wrong = 0.5 * (-b + np.sqrt(b * b - 4 * a * c)) / a
    right, _ = g.solve_root_depth(xn, z)
    true_root = P[kp.ROOT, 2] / s
    assert abs(right - true_root) < 1e-9
    assert abs(wrong - true_root) > 1e-3


def test_end_on_bone_is_flagged_not_nan():
    xn = np.zeros((21, 2))
    xn[5] = xn[0] = [0.1, 0.05]  # index MCP straight behind the wrist
    z = np.zeros(21)
    z[5] = 1.0
    Z, st = g.solve_root_depth(xn, z)
    assert st == g.RootDepthStatus.DEGENERATE and Z == 0.0
    P, st2 = g.reconstruct_metric(xn * 500 + 300, z, make_K(500, 300, 300), 0.08, method="bone")
    assert np.all(np.isfinite(P)) and st2 == g.RootDepthStatus.DEGENERATE


def test_negative_discriminant_clamps():
    # bone image far too long for its normalised length -> no real root
    xn = np.zeros((21, 2))
    xn[5] = [0.5, 0.0]
    z = np.zeros(21)
    z[5] = 5.0
    Z, st = g.solve_root_depth(xn, z)
    assert st in (g.RootDepthStatus.CLAMPED, g.RootDepthStatus.BEHIND)
    assert np.isfinite(Z)


def test_solution_behind_camera_is_flagged():
    # both roots negative: c > 0 and b > 0
    xn = np.zeros((21, 2))
    xn[5] = [0.1, 0.0]
    z = np.zeros(21)
    z[5] = 20.0   # huge relative depth
    Z, st = g.solve_root_depth(xn, z)
    assert st == g.RootDepthStatus.BEHIND and Z == 0.0


def test_nonfinite_input_is_flagged_not_propagated():
    xn = np.full((21, 2), 0.1)
    xn[3] = np.nan
    xn[5] = [np.nan, 0.2]
    z = np.zeros(21)
    P, st = g.reconstruct_metric(xn, z, np.eye(3), 0.08, method="bone")
    assert st == g.RootDepthStatus.NONFINITE
    assert np.all(np.isfinite(P))
    # one keypoint off the bones the depth comes from: the pose is still unusable, not that
    # keypoint put on the optical axis with status OK
    K = make_K(600, 320, 240)
    uv, z, s = g.pose_to_25d(CANON_MM / 1000.0 + [0, 0, 0.5], K)
    uv[8, 0] = np.nan
    ratios = g.bone_ratios_from_poses(CANON_MM[None])
    for method in ("bone", "robust"):
        P, st = g.reconstruct_metric(uv, z, K, s, method=method, bone_ratios=ratios)
        assert st == g.RootDepthStatus.NONFINITE and not P.any()


def test_torch_is_differentiable():
    rng = np.random.default_rng(4)
    P = torch.tensor(random_pose_mm(rng), requires_grad=True)
    K = torch.tensor(make_K(600, 320, 240))
    uv, z, s = g.pose_to_25d_torch(P, K)
    (uv.sum() + z.sum()).backward()
    assert torch.isfinite(P.grad).all()


def test_undistort_roundtrip():
    import cv2
    K = make_K(600, 320, 240)
    D = np.array([-0.2, 0.05, 0.001, -0.002, 0.0])
    rng = np.random.default_rng(5)
    pts3 = np.c_[rng.uniform(-0.3, 0.3, (30, 2)), np.ones(30)]
    distorted, _ = cv2.projectPoints(pts3, np.zeros(3), np.zeros(3), K, D)
    ideal = g.project_points(pts3, K)
    und = g.undistort_points(distorted.reshape(-1, 2), K, D, "plumb_bob")
    np.testing.assert_allclose(und, ideal, atol=1e-8)
    np.testing.assert_allclose(g.undistort_points(ideal, K, np.zeros(5)), ideal)


@pytest.mark.parametrize("D", [[-0.45, 0.25, 0.0, 0.0, -0.08], [-0.35, 0.1, 0.002, -0.001, 0.0]])
def test_a_wide_lens_is_undistorted_to_convergence_and_lifts_exactly(D):
    """OpenCV's default stops after 5 iterations: 1.25 px off at a wide lens' corners, and a
    hand inside the image 22 mm off in 3D with valid poses."""
    import cv2
    K = np.array([[600.0, 0, 330.0], [0, 610.0, 235.0], [0, 0, 1]])
    corners = np.array([[5.0, 5.0], [634.0, 474.0], [5.0, 474.0], [634.0, 5.0], [320.0, 240.0]])
    rays = np.c_[g.normalize_points(corners, K), np.ones(5)]
    distorted, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), K, np.array(D))
    np.testing.assert_allclose(g.undistort_points(distorted.reshape(-1, 2), K, D), corners, atol=1e-6)
    P = CANON_MM @ random_rotation(np.random.default_rng(2)).T / 1000.0 + np.array([-0.70, 0.50, 1.0]) * 1.2
    raw, _ = cv2.projectPoints(P, np.zeros(3), np.zeros(3), K, np.array(D))
    uv, z, s = g.pose_to_25d(P, K)
    P_hat, st = g.reconstruct_metric(g.undistort_points(raw.reshape(-1, 2), K, D), z, K, s, method="bone")
    assert st == 0
    np.testing.assert_allclose(P_hat, P, atol=1e-6)


@pytest.mark.parametrize("model, D", [("plumb_bob", [-0.2, 0.05, 0.001, -0.002, 0.0]),
                                      ("plumb_bob", [1e-9, 0, 0, 0, 0]),
                                      ("equidistant", [0.1, -0.02, 0.003, 0.0])])
def test_undistort_keeps_the_skew_of_K(model, D):
    """A K with skew (CameraInfo allows it): the lens distorts normalised coordinates and the
    whole K maps them to pixels. OpenCV's undistortion drops the skew: 5.6 px off at skew 20."""
    import cv2
    K = np.array([[600.0, 20.0, 320.0], [0, 610.0, 240.0], [0, 0, 1]])
    rays = np.c_[np.random.default_rng(6).uniform(-0.3, 0.3, (30, 2)), np.ones(30)]
    if model == "equidistant":
        xd = cv2.fisheye.distortPoints(rays[None, :, :2], np.eye(3), np.array(D))[0]
    else:
        xd = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), np.eye(3), np.array(D))[0].reshape(-1, 2)
    distorted = xd @ K[:2, :2].T + K[:2, 2]
    np.testing.assert_allclose(g.undistort_points(distorted, K, D, model), g.project_points(rays, K), atol=1e-6)


def test_undistort_no_points():
    out = g.undistort_points(np.zeros((0, 2)), make_K(600, 320, 240), [0.1, 0, 0, 0, 0])
    assert out.shape == (0, 2)


@pytest.mark.parametrize("bad, match", [
    (dict(D=[np.nan, 0, 0, 0, 0]), "non-finite"),
    (dict(model="kannala"), "unsupported"),
    (dict(K=np.zeros((3, 3))), "last row|singular"),
    (dict(uv=np.zeros((5, 3))), "shape"),
])
def test_undistort_bad_input(bad, match):
    K = bad.get("K", make_K(600, 320, 240))
    D = bad.get("D", [0.1, 0, 0, 0, 0])
    uv = bad.get("uv", np.zeros((5, 2)))
    with pytest.raises((ValueError, TypeError), match=match):
        g.undistort_points(uv, K, D, bad.get("model", "plumb_bob"))


def test_robust_needs_ratios():
    with pytest.raises(ValueError, match="bone_ratios"):
        g.reconstruct_metric(np.zeros((21, 2)), np.zeros(21), np.eye(3), 0.08, method="robust")
    with pytest.raises(ValueError, match="method"):
        g.reconstruct_metric(np.zeros((21, 2)), np.zeros(21), np.eye(3), 0.08, method="x")

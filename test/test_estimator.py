"""The public API: shapes, NaN-free output, ROI bookkeeping, bad input."""
import os

import numpy as np
import pytest

from hand25d_ros import HandPose, HandPoseEstimator, WeightsError
from hand25d_ros import geometry as geo

K = np.array([[500.0, 0, 160], [0, 500, 120], [0, 0, 1]])


@pytest.fixture(scope="module")
def est(untrained_weights):
    return HandPoseEstimator(weights=untrained_weights, device="cpu")


def test_estimate_shapes_and_finite(est):
    img = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    pose = est.estimate(img, K, roi="image")
    assert pose.keypoints_2d.shape == (21, 2) and pose.keypoints_3d.shape == (21, 3)
    assert pose.confidence.shape == (21,)
    assert np.all(np.isfinite(pose.keypoints_3d)) and np.all(np.isfinite(pose.keypoints_2d))
    assert np.all((pose.confidence >= 0) & (pose.confidence <= 1))
    assert isinstance(pose.valid, bool)
    if pose.valid:
        # 3D reprojects onto 2D through K (no distortion)
        np.testing.assert_allclose(geo.project_points(pose.keypoints_3d, K), pose.keypoints_2d, atol=1e-6)
    else:
        assert np.all(pose.keypoints_3d == 0)


def test_roi_crop_is_the_same_as_cropping_by_hand(est):
    """A hand cropped by the estimator from a big frame == the same crop given with its K."""
    import cv2
    from hand25d_ros.crop import box_to_crop_affine, crop_intrinsics, warp_crop
    rng = np.random.default_rng(1)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (7, 7), 2)
    Kf = np.array([[600.0, 0, 320], [0, 600, 240], [0, 0, 1]])
    roi = (200.0, 100.0, 128.0, 128.0)  # exactly 128 px: the crop is a pure translation
    a = est.estimate(frame, Kf, roi=roi)
    A = box_to_crop_affine(roi, 128)
    crop = warp_crop(frame, A, 128)
    b = est.estimate(crop, crop_intrinsics(Kf, A), roi="image")
    np.testing.assert_allclose(a.keypoints_2d, b.keypoints_2d + [200.5, 100.5], atol=1e-3)
    np.testing.assert_allclose(a.keypoints_3d, b.keypoints_3d, atol=1e-6)


def test_hand_size_scales_depth(est):
    img = np.random.default_rng(2).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    Kc = np.array([[300.0, 0, 64], [0, 300, 64], [0, 0, 1]])
    p1 = est.estimate(img, Kc, hand_size_m=0.08, roi="image")
    p2 = est.estimate(img, Kc, hand_size_m=0.10, roi="image")
    if p1.valid and p2.valid:
        np.testing.assert_allclose(p2.keypoints_3d, p1.keypoints_3d * 1.25, rtol=1e-9)
    np.testing.assert_allclose(p1.keypoints_2d, p2.keypoints_2d)


def test_batch_matches_single(est):
    rng = np.random.default_rng(3)
    imgs = [rng.integers(0, 255, (100 + 20 * i, 120, 3), dtype=np.uint8) for i in range(3)]
    batch = est.estimate_batch(imgs, [K] * 3)
    for img, p in zip(imgs, batch):
        q = est.estimate(img, K, roi="image")
        np.testing.assert_allclose(p.keypoints_2d, q.keypoints_2d, atol=1e-3)


def test_distortion_is_removed_before_lifting(est):
    img = np.random.default_rng(4).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    D = [-0.3, 0.1, 0, 0, 0]
    p = est.estimate(img, K, D=D, roi="image")
    q = est.estimate(img, K, roi="image")
    np.testing.assert_allclose(p.keypoints_2d, q.keypoints_2d)  # 2D stays in the raw image
    if p.valid:
        und = geo.undistort_points(p.keypoints_2d, K, D)
        np.testing.assert_allclose(geo.project_points(p.keypoints_3d, K), und, atol=1e-6)


def test_lift_of_exact_25d_is_exact_and_reprojects(untrained_weights):
    """The estimator's lifting step on exact 2.5D data recovers the metric pose."""
    est = HandPoseEstimator(weights=untrained_weights, device="cpu", root_depth="bone")
    import sys, pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from test_geometry import random_pose_mm
    P = random_pose_mm(np.random.default_rng(5), 1.0, 600.0)
    uv, z, s = geo.pose_to_25d(P, K)
    pose = est._lift(uv, z, np.ones(21), K, s / 1000.0, (0, 0, 1, 1), None, "plumb_bob")
    assert pose.valid
    np.testing.assert_allclose(pose.keypoints_3d * 1000.0, P, atol=1e-4)
    np.testing.assert_allclose(geo.project_points(pose.keypoints_3d, K), uv, atol=1e-6)
    # a pose 50 m away is not trusted
    far = est._lift(uv, z, np.ones(21), K, s / 1000.0 * 100, (0, 0, 1, 1), None, "plumb_bob")
    assert not far.valid and np.all(far.keypoints_3d == 0)
    # nor one at a sane depth a kilometre to the side (intrinsics far off)
    K_off = K.copy()
    K_off[0, 2] += 1e6
    aside = est._lift(uv, z, np.ones(21), K_off, s / 1000.0, (0, 0, 1, 1), None, "plumb_bob")
    assert not aside.valid and np.all(aside.keypoints_3d == 0)


IMG = np.zeros((64, 64, 3), np.uint8)


@pytest.mark.parametrize("image, K_, kwargs, exc, match", [
    (np.zeros((64, 64), np.uint8), K, {}, ValueError, r"shape \(H, W, 3\)"),
    (np.zeros((64, 64, 4), np.uint8), K, {}, ValueError, r"shape \(H, W, 3\)"),
    (np.zeros((64, 64, 3), np.float32), K, {}, TypeError, "uint8"),
    (np.zeros((0, 64, 3), np.uint8), K, {}, ValueError, "empty"),
    ([[1, 2, 3]], K, {}, TypeError, "numpy array"),
    (IMG, np.eye(2), {}, ValueError, r"shape \(3, 3\)"),
    (IMG, np.zeros((3, 3)), {}, ValueError, "last row"),
    (IMG, np.diag([0.0, 0.0, 1.0]), {}, ValueError, "singular"),
    (IMG, np.array([[np.nan, 0, 1], [0, 1, 1], [0, 0, 1]]), {}, ValueError, "non-finite"),
    (IMG, K, {"hand_size_m": -0.1}, ValueError, "hand_size_m"),
    (IMG, K, {"hand_size_m": float("nan")}, ValueError, "hand_size_m"),
    (IMG, K, {"roi": (0, 0, 0, 10)}, ValueError, "positive width"),
    (IMG, K, {"roi": (0, 0, 10)}, ValueError, r"shape \(4,\)"),
    (IMG, K, {"roi": (0, np.inf, 10, 10)}, ValueError, "non-finite"),
    (IMG, K, {"roi": "whole"}, ValueError, "'image'"),
    (IMG, np.diag([-100.0, 100.0, 1.0]), {}, ValueError, "both must be > 0"),    # mirrored the hand
    (IMG, K, {"roi": (70, 10, 20, 20)}, ValueError, "wholly outside the 64 x 64 image"),
    # the image spans [-0.5, 63.5]: a box from its right edge on is as outside as one ending at its left
    (IMG, K, {"roi": (63.5, 10, 20, 20)}, ValueError, "wholly outside the 64 x 64 image"),
    (IMG, K, {"roi": (-20.5, 10, 20, 20)}, ValueError, "wholly outside the 64 x 64 image"),
    # a sub-pixel box read as a found hand at its corner; 1e300 px ended in a ZeroDivisionError
    (IMG, K, {"roi": (10, 10, 1e-300, 1e-300)}, ValueError, r"longer side must be 1 to 6400 px .* got 1e-300"),
    (IMG, K, {"roi": (0, 0, 1e300, 1e300)}, ValueError, r"longer side must be 1 to 6400 px .* got 1e\+300"),
    (IMG, K, {"roi": (0, 0, 1e6, 20)}, ValueError, "longer side must be 1 to 6400 px"),
    (IMG, K, {"hand_size_m": True}, TypeError, "hand_size_m must be a number"),
    (IMG, K, {"hand_size_m": [0.08]}, TypeError, "hand_size_m must be a number"),
    (IMG, K, {"roi": "image", "D": "abc"}, TypeError, "D must be distortion coefficients"),
])
def test_bad_input_raises_clear_errors(est, image, K_, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        est.estimate(image, K_, **kwargs)


@pytest.mark.parametrize("box, match", [
    ((0, 0, 1e300, 1e300), r"rois\[1\] .*longer side must be 1 to 6400 px .* got 1e\+300"),   # ZeroDivisionError
    ((0, 0, 1e6, 20), r"rois\[1\] .*longer side must be 1 to 6400 px"),   # keypoints 600,000 px out
    ((10, 10, 1e-9, 1e-9), r"rois\[1\] .*longer side must be 1 to 6400 px .* got 1e-09"),   # a one-colour crop
    ((70, 10, 20, 20), r"rois\[1\] .* lies wholly outside the 64 x 64 image"),
], ids=["1e300", "1e6", "1e-9", "outside"])
def test_estimate_batch_refuses_the_boxes_estimate_refuses(est, box, match):
    """estimate() refused boxes under a pixel, over 100 images wide or wholly outside the image;
    estimate_batch() took them: (0, 0, 1e300, 1e300) ended in a ZeroDivisionError deep in
    crop.warp_crop."""
    with pytest.raises(ValueError, match=match):
        est.estimate_batch([IMG, IMG], [K, K], rois=["image", box])
    if box[2] < 1e6:
        # the boxes the package makes itself (the tracker's, from keypoints that may leave the
        # image with the hand) are not refused: a crop there reads as no hand
        assert len(est._estimate_batch([IMG], [K], rois=[box])) == 1


def test_bad_batch_arguments_raise_clear_errors(est):
    with pytest.raises(ValueError, match="max_hands must be >= 1"):
        est.estimate_hands(IMG, K, max_hands=0)
    with pytest.raises(TypeError, match="max_hands must be a whole number"):
        est.estimate_hands(IMG, K, max_hands=1.5)
    with pytest.raises(ValueError, match="plumb_bob distortion needs"):
        est.estimate_hands(IMG, K, D=[0.1, 0.2, 0.3])     # checked also where no hand is found
    crops = np.zeros((2, 128, 128, 3), np.uint8)
    with pytest.raises(TypeError, match="uint8"):
        est.predict_crops(crops.astype(np.float32) / 255)
    with pytest.raises(ValueError, match=r"\(B, S, S, 3\)"):
        est.predict_crops(crops[0])
    with pytest.raises(ValueError, match=r"\(B, S, S, 3\)"):
        est.predict_crops(crops[:0])
    with pytest.raises(TypeError, match="hand_is_left values"):
        est.predict_crops(crops, hand_is_left=["right", None])
    # a crop of another size runs (the network is fully convolutional) but reads the hand at
    # the wrong scale: an error, not a silently worse answer
    with pytest.raises(ValueError, match=f"must be {est.input_size} x {est.input_size}.*got 256 x 256"):
        est.predict_crops(np.zeros((1, 256, 256, 3), np.uint8))


def test_missing_weights_fail_clearly(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        HandPoseEstimator(weights=tmp_path / "missing.pt")


def test_bad_device(untrained_weights):
    with pytest.raises(ValueError, match="device"):
        HandPoseEstimator(weights=untrained_weights, device="tpu")
    import torch
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            HandPoseEstimator(weights=untrained_weights, device="cuda")


@pytest.mark.parametrize("device", ["cudax", "cuda:", "cuda:-1", "cuda:0:1", "cuda:one", " cpu", "CPU"])
def test_malformed_device_strings_are_refused_by_the_package(device):
    """Anything starting with "cuda" passed the check, and torch's own error (or none, for
    "cudax" on a machine without CUDA: "CUDA is not available") came instead of the rule."""
    from hand25d_ros.estimator import resolve_device
    with pytest.raises(ValueError, match=r"device must be 'auto', 'cpu' or 'cuda\[:N\]', got"):
        resolve_device(device)


def test_torch_devices_are_taken_as_their_strings(monkeypatch):
    """torch.device("cpu") was refused though it names what "cpu" does; a GPU index past the
    machine's GPUs fails at start-up, naming how many there are, not at the first frame."""
    import torch

    from hand25d_ros.estimator import resolve_device
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device(torch.device("meta"))
    # the checks below are the package's own, so they are exercised with CUDA reported present
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert resolve_device(torch.device("cuda", 1)) == torch.device("cuda:1")
    with pytest.raises(RuntimeError, match=r"device 'cuda:2' requested but this machine has 2 CUDA devices \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(RuntimeError, match=r"has 1 CUDA device \(cuda:0\)$"):
        resolve_device("cuda:1")


def test_crop_of_a_large_frame_matches_the_crop_geometry():
    """The pyramid pre-shrink keeps the crop exactly A: a dot lands where A sends it."""
    import cv2
    from hand25d_ros.crop import crop_affine, transform_points, warp_crop
    img = np.zeros((960, 1280, 3), np.uint8)
    cv2.circle(img, (700, 400), 12, (255, 255, 255), -1)
    A = crop_affine(np.array([640.0, 480.0]), 900.0, 128)   # 7x downscale
    crop = warp_crop(img, A, 128)
    ys, xs = np.nonzero(crop[..., 0] > 20)
    w = crop[ys, xs, 0].astype(float)
    centre = np.array([np.sum(xs * w) / w.sum(), np.sum(ys * w) / w.sum()])
    np.testing.assert_allclose(centre, transform_points(A, np.array([700.0, 400.0])), atol=0.15)


def test_a_large_frames_crop_shrinks_only_its_neighbourhood_to_the_same_pixels():
    """The pyramid pre-shrink of a small crop of a large frame reads only the crop's
    neighbourhood (8 against 1 ms a crop on 4K): the pixels are those of the whole frame's
    pyramid, up to one level where the shifted affine rounds a weight otherwise."""
    import cv2
    from hand25d_ros.crop import crop_affine, warp_crop
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (900, 1600, 3), dtype=np.uint8), (0, 0), 3)

    def whole_frame_pyramid(image, A, size):
        scale = float(np.sqrt(abs(np.linalg.det(A[:, :2]))))
        while scale < 0.5:
            image, A, scale = cv2.pyrDown(image), A @ np.diag([2.0, 2.0, 1.0]), scale * 2.0
        return cv2.warpAffine(image, A, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    diffs = []
    for _ in range(60):   # inside, across the borders, partly and wholly outside, 2x to 14x smaller
        A = crop_affine(rng.uniform([-300, -300], [1900, 1200]), rng.uniform(260, 1800), 128)
        diffs.append(np.abs(warp_crop(frame, A, 128).astype(int) - whole_frame_pyramid(frame, A, 128)))
    assert max(d.max() for d in diffs) <= 1 and np.mean([d.mean() for d in diffs]) < 0.01


def test_flip_tta_is_the_weighted_mean_of_the_crop_and_its_mirror(untrained_weights):
    """tta='flip': each output is the confidence-weighted mean of the plain answer on the
    crop and the plain answer on its mirror image mapped back (2D: scaled to the two answers'
    weighted mean size), the mirror's left out where its skeleton is the other hand."""
    import torch
    from hand25d_ros.estimator import confident_view_weights, mean_of_views
    plain = HandPoseEstimator(weights=untrained_weights, device="cpu", tta="none")
    flip = HandPoseEstimator(weights=untrained_weights, device="cpu", tta="flip")
    crops = np.random.default_rng(5).integers(0, 255, (3, 128, 128, 3), dtype=np.uint8)
    uv0, z0, c0 = plain.predict_crops(crops)[:3]
    uv1, z1, c1 = plain.predict_crops(crops[:, :, ::-1].copy())[:3]
    uv1[..., 0] = 127.0 - uv1[..., 0]
    uv, z, c = flip.predict_crops(crops)[:3]
    uvs, zs, cs = np.stack([uv0, uv1], 1), np.stack([z0, z1], 1), np.stack([c0, c1], 1)
    w = confident_view_weights(uvs, zs, cs)
    np.testing.assert_allclose(w.sum(1), 1.0)
    # absolute: the untrained hand is ~0.1 px across, and the mirror pass runs in a batch of
    # twice the size, whose float32 convolutions round differently (4e-6 px on AMX CPUs)
    np.testing.assert_allclose(uv, mean_of_views(torch.from_numpy(uvs), torch.from_numpy(w)).numpy(), atol=1e-4)
    np.testing.assert_allclose(z, (zs * w[..., None]).sum(1), atol=1e-5)
    np.testing.assert_allclose(c, (cs * w[..., None]).sum(1), atol=1e-5)
    assert np.abs(uv0 - uv1).max() > 0.02   # the mirror's answer differs: the mean is not trivial


def test_flip_tta_answers_a_mirrored_image_with_the_mirrored_pose():
    """With the bundled weights: mirroring the image mirrors the 2D keypoints exactly
    (the flip average is symmetric), which fails if the mirror's pixels are mapped back
    one pixel off."""
    from conftest import sample_hand
    est = HandPoseEstimator(device="cpu", tta="flip")
    img, Kc, _ = sample_hand(0, 128)
    a = est.estimate(img, Kc, roi="image")
    b = est.estimate(img[:, ::-1].copy(), Kc, roi="image")
    mirrored = np.stack([img.shape[1] - 1 - b.keypoints_2d[:, 0], b.keypoints_2d[:, 1]], -1)
    np.testing.assert_allclose(mirrored, a.keypoints_2d, atol=1e-3)
    np.testing.assert_allclose(b.z_rel_norm, a.z_rel_norm, atol=1e-5)


def test_flip_rotate_tta_averages_the_views_on_the_confident_hand(untrained_weights):
    """tta='flip_rotate': the plain answers on the crop, its copies rotated about the centre
    by ROTATE_VIEWS_DEG and the mirrors of all three, mapped back into the crop, the views on
    the most confident view's hand averaged with confidence weights (2D at their mean size)."""
    import torch
    from hand25d_ros.crop import ROTATE_VIEWS_DEG, crop_affine, invert_affine, transform_points, warp_crop
    from hand25d_ros.estimator import confident_view_weights, mean_of_views
    plain = HandPoseEstimator(weights=untrained_weights, device="cpu", tta="none")
    multi = HandPoseEstimator(weights=untrained_weights, device="cpu", tta="flip_rotate")
    crops = np.random.default_rng(6).integers(0, 255, (3, 128, 128, 3), dtype=np.uint8)
    uvs, zs, cs = [], [], []
    for mirror in (False, True):
        for angle in ROTATE_VIEWS_DEG:
            V = crop_affine(np.array([63.5, 63.5]), 128, 128, np.deg2rad(angle))
            views = np.stack([warp_crop(c, V, 128) for c in crops])
            uv, z, c = plain.predict_crops(views[:, :, ::-1].copy() if mirror else views)[:3]
            if mirror:
                uv[..., 0] = 127.0 - uv[..., 0]
            uvs.append(np.stack([transform_points(invert_affine(V), u) for u in uv]))
            zs.append(z)
            cs.append(c)
    uvs, zs, cs = np.stack(uvs, 1), np.stack(zs, 1), np.stack(cs, 1)
    w = confident_view_weights(uvs, zs, cs)
    uv, z, c = multi.predict_crops(crops)[:3]
    np.testing.assert_allclose(uv, mean_of_views(torch.from_numpy(uvs), torch.from_numpy(w)).numpy(), atol=1e-4)
    np.testing.assert_allclose(z, (zs * w[..., None]).sum(1), atol=1e-5)
    np.testing.assert_allclose(c, (cs * w[..., None]).sum(1), atol=1e-5)
    assert np.abs(uvs - uvs[:, :1]).max() > 0.02   # the views differ: the mean is not trivial


def _sample_views():
    """The first bundled sample's 2D skeleton and depths (128 px crop), four views of it, the
    third its mirror image (fingers in reverse order, same depths)."""
    import json
    from importlib import resources
    from conftest import sample_hand
    _, _, uv = sample_hand(0, 128)
    s = json.loads((resources.files("hand25d_ros") / "samples" / "annotations.json").read_text())["samples"][0]
    xyz = np.asarray(s["joints_3d_mm"])
    z = (xyz[:, 2] - xyz[0, 2]) / np.linalg.norm(xyz[5] - xyz[0])
    mirrored = np.stack([127.0 - uv[:, 0], uv[:, 1]], -1)
    views = np.stack([uv, uv + 1.0, mirrored, uv - 1.0])[None]
    return uv, views, np.stack([z] * 4)[None]


def test_confident_view_weights_follow_the_most_confident_view():
    """The mirrored view is left out when a view of the other hand is the most confident,
    and wins alone when it is; the kept views count by their confidence."""
    import torch
    from hand25d_ros.estimator import confident_view_weights, mean_of_views
    uv, views, z = _sample_views()
    conf = np.array([0.2, 0.4, 0.3, 0.2])[None, :, None].repeat(21, -1)
    w = confident_view_weights(views, z, conf)
    np.testing.assert_allclose(w, [[0.25, 0.5, 0.0, 0.25]])
    np.testing.assert_allclose(mean_of_views(torch.from_numpy(views), torch.from_numpy(w)).numpy()[0],
                               uv + 0.25, atol=1e-9)
    conf[0, 2] = 0.9       # the mirror image is now the most confident view
    np.testing.assert_allclose(confident_view_weights(views, z, conf), [[0.0, 0.0, 1.0, 0.0]])
    # equal weights for equal views: the plain mean, exactly
    w = confident_view_weights(views[:, [0, 1, 3]], z[:, :3], np.full((1, 3, 21), 0.3))
    np.testing.assert_allclose(w, [[1 / 3] * 3])
    np.testing.assert_allclose(mean_of_views(torch.from_numpy(views[:, [0, 1, 3]]), torch.from_numpy(w)).numpy()[0],
                               uv, atol=1e-9)


def test_confident_view_weights_without_confidence_stay_finite():
    """All-zero or NaN confidence (a blank crop, a broken view) gives finite weights that sum
    to 1, on view 0's hand, never a NaN in the mean."""
    from hand25d_ros.estimator import confident_view_weights
    _, views, z = _sample_views()
    for bad in (np.zeros((1, 4, 21)), np.full((1, 4, 21), np.nan)):
        w = confident_view_weights(views, z, bad)
        assert np.all(np.isfinite(w)) and abs(w.sum() - 1.0) < 1e-12
        np.testing.assert_allclose(w, [[1 / 3, 1 / 3, 0.0, 1 / 3]])


def test_a_known_hand_keeps_the_views_on_that_hand():
    """hand_is_left given: the views whose skeleton is that hand count, however unconfident;
    a crop without any such view keeps the most confident view's hand."""
    from hand25d_ros.estimator import confident_view_weights, skeleton_is_left
    uv, views, z = _sample_views()
    sample_left = bool(skeleton_is_left(uv, z[0, 0]))
    conf = np.array([0.2, 0.4, 0.3, 0.2])[None, :, None].repeat(21, -1)
    np.testing.assert_allclose(confident_view_weights(views, z, conf, sample_left), [[0.25, 0.5, 0.0, 0.25]])
    np.testing.assert_allclose(confident_view_weights(views, z, conf, not sample_left), [[0.0, 0.0, 1.0, 0.0]])
    conf[0, 2] = 0.9        # the mirror image is the most confident view, the known hand still wins
    np.testing.assert_allclose(confident_view_weights(views, z, conf, sample_left), [[0.25, 0.5, 0.0, 0.25]])
    # no view on the known hand: the confident rule
    same = views[:, [0, 1, 3]], z[:, :3], conf[:, [0, 1, 3]]
    np.testing.assert_allclose(confident_view_weights(*same, not sample_left), confident_view_weights(*same))
    # per crop: a batch of two crops, the second without a view on the known hand
    both = np.concatenate([views, views[:, [0, 1, 3, 3]]]), np.concatenate([z, z]), np.concatenate([conf, conf])
    w = confident_view_weights(*both, not sample_left)
    np.testing.assert_allclose(w[0], [0.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(w[1], confident_view_weights(*(a[1:] for a in both))[0])


def test_hand_side_chooses_among_the_test_time_views(untrained_weights):
    """HandPoseEstimator(hand_side=...) combines the views it runs with the known hand, and
    can be changed on a live estimator; an unknown side is a clear error."""
    import torch
    from hand25d_ros.crop import ROTATE_VIEWS_DEG
    from hand25d_ros.estimator import confident_view_weights, mean_of_views
    est = HandPoseEstimator(weights=untrained_weights, device="cpu", tta="flip_rotate")
    crops = np.random.default_rng(7).integers(0, 255, (6, 128, 128, 3), dtype=np.uint8)
    uvs, zs, cs, _ = est.predict_views(crops, ROTATE_VIEWS_DEG, mirror=True)
    answers = {}
    for side, is_left in (("auto", None), ("left", True), ("right", False)):
        est.hand_side = side
        w = confident_view_weights(uvs, zs, cs, is_left)
        uv = est.predict_crops(crops)[0]
        np.testing.assert_allclose(uv, mean_of_views(torch.from_numpy(uvs), torch.from_numpy(w)).numpy(), atol=1e-4)
        answers[side] = uv
    # the untrained network's views disagree about the hand, so the side changes the answer
    assert np.abs(answers["left"] - answers["right"]).max() > 0.01
    assert HandPoseEstimator(weights=untrained_weights, device="cpu", hand_side="left").hand_side == "left"
    with pytest.raises(ValueError, match="hand_side must be one of auto, left, right"):
        est.hand_side = "both"
    with pytest.raises(ValueError, match="hand_side must be one of"):
        HandPoseEstimator(weights=untrained_weights, device="cpu", hand_side="Left")
    K = np.array([[100.0, 0, 63.5], [0, 100.0, 63.5], [0, 0, 1]])
    with pytest.raises(ValueError, match="got 2 crops but 1 hand_is_left values"):
        est.estimate_batch([crops[0], crops[1]], [K, K], rois=["image", "image"], hand_is_left=[True])


def test_a_known_hand_that_no_view_shows_gets_more_views(untrained_weights):
    """A crop whose every tta view reads the other hand than the known one is run again on
    FALLBACK_VIEWS_DEG (mirrored too), and its answer is made of those views on the known
    hand; a crop with a view on it in the first place is answered from its own views."""
    from hand25d_ros.crop import FALLBACK_VIEWS_DEG
    from hand25d_ros.estimator import combine_views, skeleton_is_left
    est = HandPoseEstimator(weights=untrained_weights, device="cpu", tta="flip")
    rng = np.random.default_rng(11)
    for _ in range(100):
        crop = rng.integers(0, 255, (1, 128, 128, 3), dtype=np.uint8)
        first = est.predict_views(crop, (0.0,), mirror=True)
        more = est.predict_views(crop, FALLBACK_VIEWS_DEG, mirror=True)
        left, left_more = skeleton_is_left(*first[:2])[0], skeleton_is_left(*more[:2])[0]
        if len(set(left)) == 1 and (left_more != left[0]).any():
            break
    else:
        raise AssertionError("no crop whose two views agree and whose further views do not")
    other = not left[0]
    mixed = next(c for c in (rng.integers(0, 255, (1, 128, 128, 3), dtype=np.uint8) for _ in range(100))
                 if len(set(skeleton_is_left(*est.predict_views(c, (0.0,), mirror=True)[:2])[0])) == 2)
    crops = np.concatenate([crop, mixed])
    est.hand_side = "left" if other else "right"
    uv = est.predict_crops(crops)[0]
    want_fallback = combine_views(*more[:3], [other])[0]
    want_own = combine_views(*est.predict_views(mixed, (0.0,), mirror=True)[:3], [other])[0]
    np.testing.assert_allclose(uv[0], want_fallback[0], atol=1e-4)
    np.testing.assert_allclose(uv[1], want_own[0], atol=1e-4)
    est.hand_side = "auto"      # not known: the crop's own views, whatever they read
    np.testing.assert_allclose(est.predict_crops(crop)[0][0], combine_views(*first[:3], [None])[0][0], atol=1e-4)
    assert np.abs(want_fallback[0] - combine_views(*first[:3], [None])[0][0]).max() > 0.01


def test_one_pass_with_a_known_hand_runs_more_views_only_where_it_reads_the_other(untrained_weights):
    """tta='none' and a known hand: the one pass where it reads that hand, else the views on
    it among FALLBACK_VIEWS_DEG (mirrored too)."""
    from hand25d_ros.crop import FALLBACK_VIEWS_DEG
    from hand25d_ros.estimator import combine_views, skeleton_is_left
    est = HandPoseEstimator(weights=untrained_weights, device="cpu", tta="none")
    crop = np.random.default_rng(3).integers(0, 255, (1, 128, 128, 3), dtype=np.uint8)
    one = est.predict_views(crop, (0.0,))
    more = est.predict_views(crop, FALLBACK_VIEWS_DEG, mirror=True)
    read_left = bool(skeleton_is_left(*one[:2])[0, 0])
    other = not read_left
    assert (skeleton_is_left(*more[:2])[0] == other).any(), "pick another seed: no further view on the other hand"
    est.hand_side = "left" if read_left else "right"
    np.testing.assert_allclose(est.predict_crops(crop)[0], one[0][:, 0], atol=1e-9)
    est.hand_side = "left" if other else "right"
    np.testing.assert_allclose(est.predict_crops(crop)[0], combine_views(*more[:3], [other])[0], atol=1e-4)


def test_unknown_tta_is_a_clear_error(untrained_weights):
    with pytest.raises(ValueError, match="tta must be one of none, flip, flip_rotate"):
        HandPoseEstimator(weights=untrained_weights, device="cpu", tta="rotate")


def test_the_left_right_label_is_the_skeletons_hand():
    """is_left is the chirality of the estimated skeleton, so the label never contradicts the
    keypoints; the crop head's opinion stays in left_prob. Bundled weights on the bundled hand
    and its mirror image: the labels are opposite and each is its lifted 3D skeleton's hand."""
    from conftest import sample_hand
    from hand25d_ros import keypoints as kp
    from hand25d_ros.estimator import skeleton_is_left
    est = HandPoseEstimator(device="cpu", tta="flip")
    img, Kc, _ = sample_hand(0, 128)
    a = est.estimate(img, Kc, roi="image")
    b = est.estimate(img[:, ::-1].copy(), Kc, roi="image")
    assert a.valid and b.valid and a.is_left != b.is_left
    for p in (a, b):
        assert p.is_left == bool(kp.is_left_hand(p.keypoints_3d)) == bool(skeleton_is_left(p.keypoints_2d, p.z_rel_norm))
        assert 0.0 <= p.left_prob <= 1.0


def test_skeleton_is_left_is_the_3d_chirality_and_flips_with_a_mirror():
    import json
    from importlib import resources
    from hand25d_ros import geometry as geom
    from hand25d_ros import keypoints as kp
    from hand25d_ros.estimator import skeleton_is_left
    s = json.loads((resources.files("hand25d_ros") / "samples" / "annotations.json").read_text())["samples"][0]
    xyz, K = np.asarray(s["joints_3d_mm"]), np.asarray(s["K"])
    uv = geom.project_points(xyz, K)
    z = (xyz[:, 2] - xyz[0, 2]) / np.linalg.norm(xyz[5] - xyz[0])
    assert bool(skeleton_is_left(uv, z)) == bool(kp.is_left_hand(xyz))
    mirrored = np.stack([-uv[:, 0], uv[:, 1]], -1)
    assert bool(skeleton_is_left(mirrored, z)) != bool(kp.is_left_hand(xyz))
    assert skeleton_is_left(np.stack([uv, mirrored]), np.stack([z, z])).tolist() == [
        bool(kp.is_left_hand(xyz)), not kp.is_left_hand(xyz)]


def test_a_camera_matrix_no_camera_has_warns_and_keeps_the_2d(est):
    """Normalised or metric intrinsics (or an identity from a caller who wants 2D) lift no
    sound 3D; the warning says why, the 2D is the same as with a real K."""
    import warnings
    img = np.random.default_rng(3).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    good = est.estimate(img, K, roi="image")
    for bad in (np.eye(3), np.array([[0.0025, 0, 0.0008], [0, 0.0025, 0.0006], [0, 0, 1]]),
                np.array([[1e7, 0, 160], [0, 1e7, 120], [0, 0, 1]])):
        with pytest.warns(RuntimeWarning, match=r"field of view outside .*\(2D keypoints are unaffected\)"):
            pose = est.estimate(img, bad, roi="image")
        np.testing.assert_allclose(pose.keypoints_2d, good.keypoints_2d, atol=1e-6)
        assert np.all(np.isfinite(pose.keypoints_3d))
    # a hand crop's K, its principal point far outside the crop, is a real camera's: no warning
    crop_K = np.array([[450.0, 0, -600], [0, 450, 900], [0, 0, 1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.estimate(img, crop_K, roi="image")
        est.estimate(img, K, roi="image")


def test_poses_can_be_looked_up_in_lists(est):
    img = np.random.default_rng(3).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    hands = est.estimate_batch([img, img], [K, K], rois=["image", (10, 10, 100, 100)])
    # list membership compares each earlier element with ==, which raised on the arrays
    assert hands[1] in hands and hands.index(hands[1]) == 1
    hands.remove(hands[1])
    assert len(hands) == 1


def test_camera_info_with_an_empty_distortion_model(est):
    """Passed on as CameraInfo has them: an uncalibrated driver's "" and empty D, as the node
    reads them (plumb_bob), and a D with "" the same as plumb_bob."""
    img = np.random.default_rng(4).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    plain = est.estimate(img, K, roi="image")
    empty = est.estimate(img, K, roi="image", D=[], distortion_model="")
    np.testing.assert_array_equal(empty.keypoints_3d, plain.keypoints_3d)
    D = [-0.2, 0.05, 0.001, -0.002, 0.0]
    np.testing.assert_array_equal(est.estimate(img, K, roi="image", D=D, distortion_model="").keypoints_3d,
                                  est.estimate(img, K, roi="image", D=D).keypoints_3d)
    est.track(img, K, 0.0, D=[], distortion_model="", rois=[(0, 0, 100, 100)])
    est.reset_tracking()


def test_a_frame_without_a_hand_is_no_hand(est):
    # estimate(roi=None)'s answer for a frame where localisation found nothing
    assert not est.is_hand(HandPose.not_found())
    # its arrays are its own: filling one in place left the others as they were
    pose = HandPose.not_found()
    pose.confidence[:] = 1.0
    assert not pose.z_rel_norm.any() and not HandPose.not_found().confidence.any()


def test_an_estimator_can_be_copied_and_pickled(est):
    import copy
    import pickle
    img = np.random.default_rng(8).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    want = est.estimate(img, K, roi="image").keypoints_2d
    for other in (copy.deepcopy(est), pickle.loads(pickle.dumps(est))):
        np.testing.assert_array_equal(other.estimate(img, K, roi="image").keypoints_2d, want)
        assert other._track_lock is not est._track_lock


def test_copying_an_estimator_waits_for_a_track_in_another_thread(est):
    """A copy taken while another thread is inside track() would hold that tracker half-way
    through its update: the copy waits for the frame to finish, and its tracker is its own."""
    import copy
    import threading
    img = np.random.default_rng(8).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    est.reset_tracking()
    est.track(img, K, 0.0, rois=[(0, 0, 64, 64)])
    copies = []
    with est._track_lock:       # as track() holds it through a frame
        t = threading.Thread(target=lambda: copies.append(copy.deepcopy(est)))
        t.start()
        t.join(0.3)
        assert t.is_alive() and not copies
    t.join(10)
    other = copies[0]
    assert other._tracker is not est._tracker and other._tracker.est is other
    assert [h.track_id for h in other.track(img, K, 1 / 30, rois=[(0, 0, 64, 64)])] == \
        [h.track_id for h in est.track(img, K, 1 / 30, rois=[(0, 0, 64, 64)])]
    est.reset_tracking()


@pytest.mark.parametrize("hand_size_m", [87.0, 8.7, 0.0087])
def test_a_hand_size_in_the_wrong_unit_warns(est, hand_size_m):
    """87 (mm) or 8.7 (cm) made every pose not valid with nothing saying why; 0.0087 puts
    valid hands 10x too near."""
    img = np.random.default_rng(9).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    with pytest.warns(RuntimeWarning, match=f"hand_size_m={hand_size_m:g} is outside 0.03-0.2 m"):
        est.estimate(img, K, roi="image", hand_size_m=hand_size_m)


def test_a_real_hand_size_does_not_warn(est):
    import warnings
    img = np.random.default_rng(9).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for hand_size_m in (None, 0.03, 0.07, 0.2):
            est.estimate(img, K, roi="image", hand_size_m=hand_size_m)


def test_a_pose_whose_keypoints_fly_apart_is_not_valid():
    """Nonsense distortion coefficients (a broken calibration) undistorted one keypoint 2e6 m
    from a root at a sane depth, and the pose was valid: only the root was judged."""
    import json
    from pathlib import Path

    import cv2
    from hand25d_ros import HandPoseEstimator
    from hand25d_ros.estimator import MAX_SPAN_HAND_SIZES
    samples = Path(__file__).resolve().parents[1] / "hand25d_ros" / "samples"
    s = json.loads((samples / "annotations.json").read_text())["samples"][3]
    img = cv2.cvtColor(cv2.imread(str(samples / s["image"])), cv2.COLOR_BGR2RGB)
    est = HandPoseEstimator(device="cpu")
    pose = est.estimate(img, np.array(s["K"]), 0.087)
    assert pose.valid       # the same frame without the broken distortion
    span = np.linalg.norm(pose.keypoints_3d - pose.keypoints_3d[0], axis=-1).max()
    assert span < MAX_SPAN_HAND_SIZES * 0.087 / 3
    D = [82.52727511243019, -276.9203737623751, -126.11347648025382, -279.9891364727701]
    pose = est.estimate(img, np.array(s["K"]), 0.087, None, D=D, distortion_model="equidistant")
    assert not pose.valid and not pose.keypoints_3d.any()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_process_forked_while_another_thread_tracks_can_track(est):
    """multiprocessing's 'fork' (and DataLoader workers) copy the track lock as it is: forked
    while another thread was inside track(), the child's first track() waited for ever."""
    import signal
    import threading
    held, done = threading.Event(), threading.Event()

    def hold():                       # another thread in the middle of a track() call
        with est._track_lock:
            held.set()
            done.wait(10)
    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(10)
    try:
        pid = os.fork()
        if pid == 0:                  # the child: a hang ends it by SIGALRM
            signal.alarm(5)
            est.reset_tracking()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
    finally:
        done.set()
        thread.join()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"the forked child hung (status {status})"


def test_tta_set_later_is_checked(est):
    """est.tta = 'flip-rotate' (a typo) ran every crop once, as 'none', with nothing said."""
    before = est.tta
    with pytest.raises(ValueError, match="tta must be one of"):
        est.tta = "flip-rotate"
    assert est.tta == before
    est.tta = "flip_rotate"
    try:
        assert est.tta == "flip_rotate"
    finally:
        est.tta = before

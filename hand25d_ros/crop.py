"""Crop bookkeeping: square hand crops and the intrinsics that go with them.

Pixel convention (OpenCV's): pixel (i, j) has its centre at x = j, y = i, so an
image of width W spans x in [-0.5, W - 0.5]. A crop is the affine map
``dst = A @ [x, y, 1]`` that ``cv2.warpAffine`` applies; the crop's intrinsics
are ``K_crop = [A; 0 0 1] @ K``, so 3D points keep living in the original
camera frame and project into the crop through ``K_crop``. With a rotated crop
``K_crop`` is no longer upper-triangular; everything downstream uses ``K^-1``
and does not care.
"""
from __future__ import annotations

import cv2
import numpy as np

from ._checks import check_box, check_image_rgb


def crop_affine(center_px: np.ndarray, side_px: float, out_size_px: int,
                rotation_rad: float = 0.0) -> np.ndarray:
    """Affine map from image pixels to a square crop of ``out_size_px``.

    The square of side ``side_px`` centred on ``center_px``, rotated by
    ``rotation_rad`` (counter-clockwise in the image as seen), fills the crop.

    Args:
        center_px: (2,) crop centre in image pixels.
        side_px: side of the square in image pixels, > 0.
        out_size_px: side of the output crop in pixels.
        rotation_rad: in-plane rotation of the crop.

    Returns:
        (2, 3) float64 affine ``A`` with ``crop_xy = A @ [x, y, 1]``.
    """
    if not np.isfinite(side_px) or side_px <= 0:
        raise ValueError(f"crop side must be a positive finite number of pixels, got {side_px}")
    s = out_size_px / side_px
    c, sn = np.cos(rotation_rad), np.sin(rotation_rad)
    # x' = s R (x - centre) + (out - 1) / 2 : edges map to edges under the pixel-centre convention
    R = s * np.array([[c, sn], [-sn, c]])
    t = (out_size_px - 1) / 2.0 - R @ np.asarray(center_px, dtype=np.float64)
    return np.concatenate([R, t[:, None]], axis=1)


def box_to_crop_affine(box_xywh, out_size_px: int, scale: float = 1.0) -> np.ndarray:
    """Affine for the square crop around a box, its longer side times ``scale``.

    Box convention: ``(x, y, w, h)`` with (x, y) the top-left corner in continuous
    pixel coordinates, so the whole W x H image is ``(-0.5, -0.5, W, H)``.

    Returns:
        (2, 3) float64 affine, as :func:`crop_affine`.
    """
    x, y, w, h = check_box(box_xywh)
    center = np.array([x + w / 2.0, y + h / 2.0])
    return crop_affine(center, max(w, h) * scale, out_size_px)


def whole_image_box(height: int, width: int) -> tuple[float, float, float, float]:
    """The box that covers a whole H x W image."""
    return (-0.5, -0.5, float(width), float(height))


def crop_intrinsics(K: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Intrinsics of a crop.

    Args:
        K: (*, 3, 3) intrinsics of the source image.
        A: (*, 2, 3) crop affine.

    Returns:
        (*, 3, 3) ``[A; 0 0 1] @ K``.
    """
    A3 = affine_to_3x3(A)
    return A3 @ np.asarray(K, dtype=np.float64)


def affine_to_3x3(A: np.ndarray) -> np.ndarray:
    """(*, 2, 3) affine -> (*, 3, 3) homogeneous matrix."""
    A = np.asarray(A, dtype=np.float64)
    last = np.broadcast_to(np.array([0.0, 0.0, 1.0]), A.shape[:-2] + (1, 3))
    return np.concatenate([A, last], axis=-2)


def transform_points(A: np.ndarray, points_px: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to (*, 2) points."""
    points_px = np.asarray(points_px, dtype=np.float64)
    return points_px @ A[:, :2].T + A[:, 2]


def invert_affine(A: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine, as (2, 3)."""
    return cv2.invertAffineTransform(np.asarray(A, dtype=np.float64))


def _crop_neighbourhood(image: np.ndarray, A: np.ndarray, out_size_px: int, scale: float):
    """The part of ``image`` a pyramid-shrunk crop ``A`` reads, and ``A`` for it: shrinking the
    whole of a 4K frame for each crop cost 8 ms (1 ms for the neighbourhood). The part starts
    on the pyramid's grid and keeps a margin wider than its kernels reach, so the crop's
    pixels are the same as from the whole frame."""
    step = 2 ** int(np.ceil(np.log2(0.5 / scale)))         # the pyramid's total downscale
    margin = 8 * step
    corners = np.array([[-0.5, -0.5], [out_size_px - 0.5, -0.5], [-0.5, out_size_px - 0.5],
                        [out_size_px - 0.5, out_size_px - 0.5]])
    src = transform_points(invert_affine(A), corners)
    H, W = image.shape[:2]
    x0 = max(0, int(np.floor((src[:, 0].min() - margin) / step)) * step)
    y0 = max(0, int(np.floor((src[:, 1].min() - margin) / step)) * step)
    x1 = min(W, int(np.ceil(src[:, 0].max() + margin)))
    y1 = min(H, int(np.ceil(src[:, 1].max() + margin)))
    if x1 - x0 < 2 or y1 - y0 < 2 or (x0, y0, x1, y1) == (0, 0, W, H):
        return image, A          # wholly outside (the crop is border) or all of it is needed
    return image[y0:y1, x0:x1], A @ np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])


def warp_crop(image: np.ndarray, A: np.ndarray, out_size_px: int,
              border_value=(0, 0, 0)) -> np.ndarray:
    """Cut the crop ``A`` out of ``image`` (bilinear; constant border outside).

    Downscaling by more than 2x first halves the image with Gaussian pyramid steps
    (``cv2.pyrDown``, fast and alias-free), so that small crops of large frames do not
    alias; the affine is updated so that the crop stays exactly ``A``.
    """
    check_image_rgb(image)
    A = np.asarray(A, dtype=np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(A[:, :2]))))
    if scale < 0.5:
        image, A = _crop_neighbourhood(image, A, out_size_px, scale)
    while scale < 0.5 and min(image.shape[:2]) >= 2:
        # pyrDown: destination pixel x sits on source pixel 2x, so crop = A [2 x_small]
        image = cv2.pyrDown(image)
        A = A @ np.diag([2.0, 2.0, 1.0])
        scale *= 2.0
    return cv2.warpAffine(image, A, (out_size_px, out_size_px), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)


def box_intersection(a, b) -> float:
    """Area shared by two (x, y, w, h) boxes."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return iw * ih


def box_iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    inter = box_intersection(a, b)
    return inter / max(1e-9, a[2] * a[3] + b[2] * b[3] - inter)


def keypoint_box(uv_px: np.ndarray, scale: float) -> tuple[float, float, float, float]:
    """Square (x, y, w, h) box around 2D keypoints, side = longest bbox side x scale."""
    lo, hi = np.min(uv_px, 0), np.max(uv_px, 0)
    side = max(float(max(hi - lo)) * scale, 8.0)
    c = (lo + hi) / 2.0
    return (float(c[0] - side / 2), float(c[1] - side / 2), side, side)


def scale_box(box, scale: float) -> tuple[float, float, float, float]:
    """The square box with the same centre and ``scale`` times the longer side."""
    x, y, w, h = box
    side = max(w, h) * scale
    return (x + w / 2 - side / 2, y + h / 2 - side / 2, side, side)


# Test-time augmentation of the hand crops (HandPoseEstimator(tta=...), the command lines'
# --tta, the node's tta parameter): "flip" also runs each crop mirrored left-right (a left
# hand seen as a right one) and averages the two answers in the crop's pixels. On the held-out
# synthetic test set (cache/synth_test, stage-3 weights) it cut the 2D error from 23.2 to
# 22.5 px for twice the network work; rotated and rescaled copies (+-15 deg, x0.9/1.1)
# gained nothing more there.
# "flip_rotate" adds copies of the crop rotated about its centre by ROTATE_VIEWS_DEG, each
# also mirrored (six views). In both, the views on the hand of the most confident view are
# averaged, weighted by confidence (estimator.confident_view_weights): a view read as the
# mirror image has the more spread heatmaps. With the stage-8 weights that measured 16.61
# and 16.58 px with six views on the two synthetic test sets against 16.79 and 16.82 px for
# the majority vote it replaced, and 18.2 against 19.6 px on real_val_snap; "flip" 16.82 and
# 16.89 against 16.87 and 16.90 px for the plain mean (README model card). Six views cost
# three times the network time of "flip".
TTA_MODES = ("none", "flip", "flip_rotate")
ROTATE_VIEWS_DEG = (0.0, -15.0, 15.0)
DEFAULT_TTA = "flip"
# HandPoseEstimator(hand_side=...): read each crop's hand from the image, or one known hand
HAND_SIDES = ("auto", "left", "right")
# With a known hand, a crop whose every tta view reads the other hand runs again on these
# rotations, each mirrored too (eight more views), and their views on the known hand are
# kept. Chosen on cache/synth_test among +-15, +-15/30, +-30/45 and +-15/30/45 (stage 8,
# "flip" + known hand 16.71 px -> 16.61, 16.47, 16.37, 16.37 px; benchmarks/view_combining.py
# --known-hand); real_val_snap 18.73 -> 18.09 px ("flip"), 17.55 -> 17.36 px ("flip_rotate").
FALLBACK_VIEWS_DEG = (-30.0, 30.0, -45.0, 45.0)

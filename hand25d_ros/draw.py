"""Drawing the 2D skeleton on an image (debug image, CLI overlays, contact sheets)."""
from __future__ import annotations

import cv2
import numpy as np

from . import keypoints as kp


def _bgr255(rgb01):
    return tuple(int(255 * c) for c in rgb01)


def draw_skeleton(image_rgb: np.ndarray, uv_px: np.ndarray, confidence=None,
                  min_confidence: float = 0.0, radius: int | None = None,
                  thickness: int | None = None) -> np.ndarray:
    """Return a copy of ``image_rgb`` with bones and joints drawn in finger colours.

    Args:
        image_rgb: (H, W, 3) uint8 RGB.
        uv_px: (21, 2) keypoints in its pixels.
        confidence: (21,) optional; keypoints below ``min_confidence`` are drawn hollow.
    """
    out = np.ascontiguousarray(image_rgb).copy()
    scale = max(1.0, min(out.shape[:2]) / 256.0)
    radius = radius or int(round(2 * scale + 1))
    thickness = thickness or int(round(scale + 0.5))
    uv = np.nan_to_num(np.asarray(uv_px, dtype=np.float64))
    conf = np.ones(kp.NUM_KEYPOINTS) if confidence is None else np.asarray(confidence)
    shift = 4  # sub-pixel drawing: cv2 takes fixed-point coordinates
    pts = np.round(uv * (1 << shift)).astype(np.int64)
    for child, parent in kp.BONES:
        cv2.line(out, tuple(map(int, pts[parent])), tuple(map(int, pts[child])),
                 _bgr255(kp.keypoint_color_rgb(child)), thickness, cv2.LINE_AA, shift)
    for k in range(kp.NUM_KEYPOINTS):
        filled = conf[k] >= min_confidence
        cv2.circle(out, tuple(map(int, pts[k])), radius << shift, _bgr255(kp.keypoint_color_rgb(k)),
                   -1 if filled else thickness, cv2.LINE_AA, shift)
    return out

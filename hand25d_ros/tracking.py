"""Hands in full camera frames: find them, follow them, smooth them.

Localisation is a coarse pass of the 2.5D network itself (no second model to train or
ship): square windows at a few scales tile the frame, one batched forward pass scores
each by its mean keypoint confidence, and the best windows are refined by re-cropping
around their predicted keypoints. Tracking then places each next crop around the
previous keypoints with a motion margin, and detects again when confidence drops.
The crop's intrinsics are carried exactly by ``HandPoseEstimator`` (``roi``), so the
3D result is the same as for a hand cropped by hand.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .estimator import HandPose, HandPoseEstimator
from .filters import OneEuroFilter


def keypoint_box(uv_px: np.ndarray, scale: float) -> tuple[float, float, float, float]:
    """Square (x, y, w, h) box around 2D keypoints, side = longest bbox side x scale."""
    lo, hi = np.min(uv_px, 0), np.max(uv_px, 0)
    side = float(max(hi - lo)) * scale
    c = (lo + hi) / 2.0
    return (float(c[0] - side / 2), float(c[1] - side / 2), side, side)


def box_iou(a, b) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    iw = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    ih = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = iw * ih
    return inter / max(1e-9, aw * ah + bw * bh - inter)


def sliding_windows(height: int, width: int, fractions=(0.9, 0.6, 0.4), overlap: float = 0.5):
    """Square windows tiling an H x W frame at several sizes (fractions of the short side)."""
    boxes = []
    for f in fractions:
        side = f * min(height, width)
        step = side * (1.0 - overlap)
        xs = np.arange(-0.5, max(-0.5, width - 0.5 - side) + 1e-6, step) if width > side else [-0.5 + (width - side) / 2]
        ys = np.arange(-0.5, max(-0.5, height - 0.5 - side) + 1e-6, step) if height > side else [-0.5 + (height - side) / 2]
        xs = np.unique(np.append(xs, width - 0.5 - side)) if width > side else xs
        ys = np.unique(np.append(ys, height - 0.5 - side)) if height > side else ys
        boxes += [(float(x), float(y), side, side) for y in ys for x in xs]
    return boxes


@dataclass
class TrackedHand:
    """A hand followed over frames: a stable id and its latest (smoothed) pose."""
    track_id: int
    pose: HandPose
    box: tuple
    age: int = 0
    misses: int = 0
    filt: OneEuroFilter | None = field(default=None, repr=False)


class HandTracker:
    """Stateful multi-hand estimation on a video stream.

    Args:
        estimator: the HandPoseEstimator.
        max_hands: most hands followed at once.
        min_confidence: mean keypoint confidence under which a hand counts as lost.
        crop_scale: side of the next crop relative to the keypoints' bounding box
            (the margin covers motion between frames and matches training crops).
        smoothing: One Euro filtering of the 3D keypoints.
        detect_every: also search for new hands every N frames while some are tracked.
    """

    def __init__(self, estimator: HandPoseEstimator, max_hands: int = 2, min_confidence: float = 0.05,
                 crop_scale: float = 1.45, smoothing: bool = True, min_cutoff_hz: float = 1.5,
                 beta: float = 0.5, detect_every: int = 15):
        if max_hands < 1:
            raise ValueError(f"max_hands must be >= 1, got {max_hands}")
        self.est, self.max_hands, self.min_confidence = estimator, max_hands, min_confidence
        self.crop_scale, self.smoothing, self.detect_every = crop_scale, smoothing, detect_every
        self._filter_args = (min_cutoff_hz, beta)
        self.tracks: list[TrackedHand] = []
        self._next_id = 0
        self._frame = 0

    def reset(self) -> None:
        self.tracks, self._frame = [], 0

    def detect(self, image_rgb, K, hand_size_m=None, D=None, max_hands=None) -> list[HandPose]:
        """Find up to ``max_hands`` hands in a frame from scratch (coarse pass + refinement)."""
        max_hands = max_hands or self.max_hands
        H, W = image_rgb.shape[:2]
        boxes = sliding_windows(H, W)
        coarse = self.est.estimate_batch([image_rgb] * len(boxes), [K] * len(boxes), hand_size_m, boxes, D)
        order = np.argsort([-p.mean_confidence for p in coarse])
        found: list[HandPose] = []
        for i in order[: 4 * max_hands]:
            if coarse[i].mean_confidence < 0.5 * self.min_confidence:
                break
            box = keypoint_box(coarse[i].keypoints_2d, self.crop_scale)
            if any(box_iou(box, f.roi) > 0.3 for f in found):
                continue
            refined = self.est.estimate(image_rgb, K, hand_size_m, roi=box, D=D)
            if refined.mean_confidence >= self.min_confidence and refined.valid:
                found.append(refined)
            if len(found) >= max_hands:
                break
        return found

    def update(self, image_rgb, K, t_s: float, hand_size_m=None, D=None) -> list[TrackedHand]:
        """Process one frame; returns the hands seen in it (ids stable across frames)."""
        self._frame += 1
        kept = []
        if self.tracks:
            boxes = [keypoint_box(t.pose.keypoints_2d, self.crop_scale) for t in self.tracks]
            poses = self.est.estimate_batch([image_rgb] * len(boxes), [K] * len(boxes), hand_size_m, boxes, D)
            for tr, pose, box in zip(self.tracks, poses, boxes):
                if pose.valid and pose.mean_confidence >= self.min_confidence:
                    kept.append(self._advance(tr, pose, box, t_s))
        # drop duplicates (two tracks converged on one hand): keep the older
        kept.sort(key=lambda t: -t.age)
        unique = []
        for t in kept:
            if all(box_iou(t.box, u.box) < 0.5 for u in unique):
                unique.append(t)
        self.tracks = unique
        want_more = len(self.tracks) < self.max_hands and (not self.tracks or self._frame % self.detect_every == 0)
        if want_more:
            for pose in self.detect(image_rgb, K, hand_size_m, D, self.max_hands):
                box = keypoint_box(pose.keypoints_2d, self.crop_scale)
                if len(self.tracks) < self.max_hands and all(box_iou(box, t.box) < 0.3 for t in self.tracks):
                    self.tracks.append(self._new_track(pose, box, t_s))
        return list(self.tracks)

    def _new_track(self, pose, box, t_s) -> TrackedHand:
        tr = TrackedHand(track_id=self._next_id, pose=pose, box=box,
                         filt=OneEuroFilter(*self._filter_args) if self.smoothing else None)
        self._next_id += 1
        if tr.filt is not None:
            tr.filt(pose.keypoints_3d, t_s)
        return tr

    def _advance(self, tr, pose, box, t_s) -> TrackedHand:
        if tr.filt is not None:
            pose.keypoints_3d = tr.filt(pose.keypoints_3d, t_s)
        tr.pose, tr.box, tr.age = pose, box, tr.age + 1
        return tr

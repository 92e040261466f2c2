"""Hands in full camera frames: find them, follow them, smooth them.

Localisation is the small full-frame detector (``detector.py``): one pass over the
letterboxed frame proposes each hand's box and score, and the 2.5D network's crop head
confirms it. Tracking places each next crop around the previous frame's keypoints (with
a motion margin, the training crops' scale), which is both cheaper and tighter than a
detector box. A track ends at once when the crop head sees no hand in its crop; the
detector runs again every ``detect_every`` frames (to confirm the tracks, find new hands
and notice hands that left) and whenever a track ends or its keypoint confidence drops.
A track keeps its id while detections overlap it; its left/right label is the running
mean of its frames' skeleton hands (the detector's own left/right output stayed at chance
on hands this small, so it is not used). Once that vote is settled (``SETTLED_VOTES``
frames, at least ``SETTLED_MARGIN`` from even), the track's crops are estimated as that
hand (``HandPoseEstimator.predict_crops``' ``hand_is_left``): of the test-time views, those
on the track's hand are kept, so a frame that some views read as the mirror image follows
the hand the track has shown. The crop's intrinsics are
carried exactly by ``HandPoseEstimator`` (``roi``), so the 3D result is the same as for a
hand that was cropped by hand. One Euro filtering (``filters.py``) smooths the 3D output
per track.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field

import numpy as np

from ._checks import (check_box_in_image, check_distortion, check_image_rgb, check_intrinsics, check_positive,
                      is_real_number)
from .crop import box_intersection, box_iou, scale_box
from .estimator import HandPose, HandPoseEstimator, keypoint_box
from .filters import OneEuroFilter

__all__ = ["HandTracker", "TrackedHand", "box_iou", "keypoint_box"]

# A track's hand counts as known after this many labelled frames with at most
# (0.5 - SETTLED_MARGIN) of them for the other hand: on real_val_snap one frame in nine
# (stage 8, flip) reads as the other hand, and the first five settle on it only if four do.
SETTLED_VOTES = 5
SETTLED_MARGIN = 0.3
# Two crops of which the smaller lies this much inside the larger are one hand: a track whose
# crop shrank onto part of a real hand (0.44 m -> 0.99 m deep in four frames) lay wholly inside
# the detection of the whole hand, at an IoU of 0.19.
SAME_HAND_OVERLAP = 0.7
# Frames in a row each later than max_gap_s after the one before, after which the tracker says
# that every frame is found afresh (t_s in milliseconds, nanoseconds or frame numbers does that).
GAP_WARNING_FRAMES = 3
# A detection that confirms a track with a crop this many times the side of the track's has
# found more of the hand than the track sees: the track's crop is shrinking onto a part of it
# (crops come from the last keypoints, so a partial reading narrows the next crop).
GROWN_CROP_RATIO = 1.5


def _overlap_of_smaller(a, b) -> float:
    """Intersection of two (x, y, w, h) boxes over the smaller one's area (1: one inside the other)."""
    return box_intersection(a, b) / max(1e-9, min(a[2] * a[3], b[2] * b[3]))


def _same_hand(a, b) -> bool:
    return box_iou(a, b) >= 0.5 or _overlap_of_smaller(a, b) >= SAME_HAND_OVERLAP


def _centre(box) -> np.ndarray:
    return np.array([box[0] + box[2] / 2.0, box[1] + box[3] / 2.0])


def _overlaps(det_box, track_box) -> bool:
    # a detection confirms a track when its centre lies in the track's crop and it is not
    # far smaller or larger (the crop is the keypoint box times the crop scale)
    c = _centre(det_box)
    x, y, w, h = track_box
    inside = x <= c[0] <= x + w and y <= c[1] <= y + h
    return inside and 0.25 <= det_box[2] / max(w, 1e-9) <= 2.0


@dataclass
class TrackedHand:
    """A hand followed over frames.

    Attributes:
        track_id: stable id while the hand stays in view.
        pose: its latest pose (3D smoothed when the tracker smooths).
        box: (x, y, w, h) crop used for ``pose``.
        age: frames since the track started.
        left_fraction: running mean of the per-frame labels (1 left, 0 right; ``HandPose.is_left``,
            the skeleton's hand), the first 30 frames weighted equally, then fading with a
            30-frame constant; None before the first label. ``is_left`` is ``>= 0.5``.
    """
    track_id: int
    pose: HandPose
    box: tuple
    age: int = 0
    misses: int = 0
    left_fraction: float | None = None
    _votes: int = field(default=0, repr=False)
    filt: OneEuroFilter | None = field(default=None, repr=False)

    @property
    def is_left(self) -> bool | None:
        return None if self.left_fraction is None else self.left_fraction >= 0.5

    @property
    def settled_is_left(self) -> bool | None:
        """The track's hand once its vote is settled (see the module), else None."""
        if self._votes < SETTLED_VOTES or abs(self.left_fraction - 0.5) < SETTLED_MARGIN:
            return None
        return self.is_left

    def vote(self, is_left: bool | None) -> None:
        if is_left is None:
            return
        self._votes += 1
        x = float(bool(is_left))
        self.left_fraction = x if self.left_fraction is None else \
            self.left_fraction + (x - self.left_fraction) / min(self._votes, 30)


def _snapshots(tracks) -> list[TrackedHand]:
    """Copies of the tracks as they are now: the tracker updates its own in place, and a
    caller's list of earlier frames' hands must keep what those frames said. Deep copies:
    a shallow one shared the pose's arrays with the tracker, which places the next crop from
    ``pose.keypoints_2d``, so a caller drawing into or shifting a returned hand's keypoints
    moved the next frame's crop (up to 80 px of 2D on the sample frames)."""
    return [copy.deepcopy(t) for t in tracks]


def _checked_frame(image_rgb, K, t_s, hand_size_m, D, rois, distortion_model):
    """:meth:`HandTracker.update`'s inputs, checked up front as ``estimate`` checks them: a
    frame without a hand would otherwise let a bad K or D through until the first hand."""
    image_rgb, K = check_image_rgb(image_rgb), check_intrinsics(K)
    if not is_real_number(t_s):
        raise TypeError(f"t_s must be a number of seconds, got {type(t_s).__name__} {t_s!r}")
    if not np.isfinite(t_s):
        raise ValueError(f"t_s must be finite, got {t_s}")
    if hand_size_m is not None:
        hand_size_m = check_positive(hand_size_m, "hand_size_m")
    if D is not None:
        D = check_distortion(D, distortion_model, "D")
    if rois is not None:
        rois = list(rois)
        if rois and all(is_real_number(v) for v in rois):
            raise ValueError(f"rois must be a list of (x, y, w, h) boxes; for one box pass [box], got {rois}")
        h, w = image_rgb.shape[:2]
        rois = [check_box_in_image(r, w, h) for r in rois]
    return image_rgb, K, float(t_s), hand_size_m, D, rois


class HandTracker:
    """Stateful multi-hand estimation on a video stream.

    Args:
        estimator: the HandPoseEstimator (its detector finds the hands).
        max_hands: most hands followed at once.
        min_confidence: mean keypoint confidence under which a track is checked by the
            detector at once.
        smoothing: One Euro filtering of the 3D keypoints (``min_cutoff_hz``, ``beta``).
        detect_every: run the detector every N frames while hands are tracked (1: every frame).
        max_misses: detector passes in a row that may miss a track before it is dropped.
        max_gap_s: after a pause in the stream longer than this (dropped frames, a paused bag,
            unrelated stills) the tracks are dropped and the hands found afresh: an old crop is
            no prior, and one that half covers a hand still looks like a hand. 0: every frame
            is found afresh (repeated ``t_s`` too). Gaps over it on several frames in a row warn
            once: ``t_s`` is in seconds.
        follow_hand: estimate a track's crops as its settled hand (see the module); False
            reads every frame's hand afresh.
        first_id: the first track id (``HandPoseEstimator.reset_tracking`` continues the count).

    A tracker follows one video: calls are serialised by the estimator's ``track``, and a
    second camera needs its own estimator (or tracker).
    """

    def __init__(self, estimator: HandPoseEstimator, max_hands: int = 2, min_confidence: float = 0.05,
                 smoothing: bool = True, min_cutoff_hz: float = 1.5, beta: float = 0.5,
                 detect_every: int = 3, max_misses: int = 1, max_gap_s: float = 0.5,
                 follow_hand: bool = True, first_id: int = 0):
        if max_hands < 1:
            raise ValueError(f"max_hands must be >= 1, got {max_hands}")
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        self.est, self.max_hands, self.min_confidence = estimator, int(max_hands), float(min_confidence)
        if not max_gap_s >= 0:
            raise ValueError(f"max_gap_s must be >= 0, got {max_gap_s}")
        self.smoothing, self.detect_every, self.max_misses = smoothing, int(detect_every), int(max_misses)
        self.max_gap_s, self._last_t = float(max_gap_s), None
        self._filter_args = (min_cutoff_hz, beta)
        self.follow_hand = bool(follow_hand)
        self.tracks: list[TrackedHand] = []
        self._next_id = int(first_id)
        self._frame = 0
        self._gaps_in_row, self._warned_gaps = 0, False
        self._lift = None        # (hand_size_m, K, D, model) of the last frame: a change is no motion to smooth
        self._size = None        # (height, width) of the last frame: another size is another pixel frame

    @property
    def crop_scale(self) -> float:
        return self.est.crop_scale

    def reset(self) -> None:
        """Forget all tracks (ids keep counting up, so an id is never reused)."""
        self.tracks, self._frame, self._last_t, self._lift, self._size = [], 0, None, None, None

    def detect(self, image_rgb, K, hand_size_m=None, D=None, max_hands=None,
               distortion_model: str = "plumb_bob") -> list[HandPose]:
        """Find up to ``max_hands`` hands in a frame from scratch (detector proposals, confirmed by the crop head)."""
        return [p for p in self.est.estimate_hands(image_rgb, K, hand_size_m, max_hands or self.max_hands, D,
                                                   distortion_model) if p.valid]

    def update(self, image_rgb, K, t_s: float, hand_size_m=None, D=None, rois=None,
               distortion_model: str = "plumb_bob") -> list[TrackedHand]:
        """Process one frame; returns the hands seen in it (ids stable across frames).

        Args:
            image_rgb: (H, W, 3) uint8 RGB frame; K its (3, 3) intrinsics; t_s its time (s).
            rois: boxes (x, y, w, h) from an external detector: used instead of the own
                detector and tracking (at most ``max_hands``, in the given order); a box keeps
                the id of the track it overlaps.
            D, distortion_model: CameraInfo distortion of a raw image (see ``estimate``).
        """
        image_rgb, K, t_s, hand_size_m, D, rois = _checked_frame(image_rgb, K, t_s, hand_size_m, D, rois, distortion_model)
        dm = distortion_model
        self._frame += 1
        self._check_gap(t_s)
        self._check_size(image_rgb.shape[:2])
        self._check_lift(hand_size_m, K, D, dm)
        if rois is not None:
            return self._update_from_rois(image_rgb, K, t_s, hand_size_m, D, list(rois)[: self.max_hands], dm)
        tracked = []
        if self.tracks:
            boxes = [keypoint_box(t.pose.keypoints_2d, self.crop_scale) for t in self.tracks]
            # boxes of its own making: not refused as a caller's would be (estimator._estimate_batch)
            poses = self.est._estimate_batch([image_rgb] * len(boxes), [K] * len(boxes), hand_size_m, boxes, D, dm,
                                             hand_is_left=self._hands(self.tracks))
            # a crop the network says holds no hand ends its track at once
            tracked = [(t, p, b) for t, p, b in zip(self.tracks, poses, boxes) if p.valid and self.est.is_hand(p)]
        weak = any(p.mean_confidence < self.min_confidence for _, p, _ in tracked)
        run_detector = (not tracked or weak or len(tracked) < len(self.tracks)
                        or self._frame % self.detect_every == 0)
        if not run_detector:
            self.tracks = [self._advance(t, p, b, t_s) for t, p, b in tracked]
            return _snapshots(self.tracks)
        dets = self.est.detector(image_rgb, max_hands=self.max_hands + 2)
        kept, used, grown = [], set(), []
        for t, p, b in tracked:
            j = next((j for j, d in enumerate(dets) if j not in used and _overlaps(d.box, b)), None)
            if j is None:
                t.misses += 1
                if t.misses > self.max_misses:
                    continue
            else:
                used.add(j)
                t.misses = 0
                if scale_box(dets[j].box, self.crop_scale)[2] >= GROWN_CROP_RATIO * b[2]:
                    grown.append((t, dets[j]))
            kept.append(self._advance(t, p, b, t_s))
        if grown:
            poses = self.est.estimate_detections(image_rgb, K, [d for _, d in grown], hand_size_m, D, dm)
            for (t, _), p in zip(grown, poses):
                if p.valid and self.est.is_hand(p):
                    self._take_detection(t, p, t_s)
        # two tracks on one hand (they converge when hands cross): keep the older
        kept.sort(key=lambda t: -t.age)
        self.tracks = []
        for t in kept:
            if not any(_same_hand(t.box, u.box) for u in self.tracks):
                self.tracks.append(t)
        new = [d for j, d in enumerate(dets) if j not in used
               and all(not _overlaps(d.box, t.box) for t in self.tracks)]
        # one even when the tracks are full: it may be the whole of a hand a track shrank on
        new = new[: max(1, self.max_hands - len(self.tracks))]
        for p in self.est.estimate_detections(image_rgb, K, new, hand_size_m, D, dm):
            b = p.roi
            if not (p.valid and self.est.is_hand(p)):
                continue
            same = next((t for t in self.tracks if _same_hand(b, t.box)), None)
            if same is not None:
                # a confirmed detection the track did not match (far larger, its centre off the
                # track's crop) yet one lies inside the other: the same hand, seen whole
                self._take_detection(same, p, t_s)
            elif len(self.tracks) < self.max_hands:
                self.tracks.append(self._new_track(p, b, t_s))
        return _snapshots(self.tracks)

    def _check_gap(self, t_s: float) -> None:
        """Drop the tracks after a pause, time running backwards, or always with max_gap_s 0."""
        if self._last_t is None:
            self._last_t = t_s
            return
        dt, self._last_t = t_s - self._last_t, t_s
        if self.max_gap_s > 0 and 0.0 <= dt <= self.max_gap_s:
            self._gaps_in_row = 0
            return
        if self.tracks and self.max_gap_s > 0:
            self._gaps_in_row += 1
            if self._gaps_in_row >= GAP_WARNING_FRAMES and not self._warned_gaps:
                self._warned_gaps = True
                warnings.warn(f"t_s moved by {dt:g} on each of the last {self._gaps_in_row} frames, more than max_gap_s "
                              f"{self.max_gap_s:g} s: every frame's hands are found afresh, with new ids and no "
                              "smoothing. Is t_s in seconds (not milliseconds, nanoseconds or frame numbers)?",
                              RuntimeWarning, stacklevel=4)
        self.tracks = []          # a pause (or time running backwards): find the hands afresh

    def _check_size(self, size) -> None:
        """Drop the tracks when the image size changes (a camera switched resolution): their
        boxes are in the old image's pixels, where the next crops would land on another part
        of the frame and follow it as that hand, under its id."""
        size, last, self._size = tuple(size), self._size, tuple(size)
        if last is not None and size != last:
            self.tracks = []

    def _check_lift(self, hand_size_m, K, D=None, distortion_model: str = "plumb_bob") -> None:
        """A new hand-size prior, K or distortion moves every hand's 3D at once: restart the
        smoothing rather than glide there over several frames."""
        lift = (hand_size_m, np.asarray(K, np.float64).tobytes(),
                None if D is None else np.asarray(D, np.float64).tobytes(), distortion_model)
        last, self._lift = self._lift, lift
        if last is not None and last != lift:
            for t in self.tracks:
                if t.filt is not None:
                    t.filt.reset()

    def _take_detection(self, tr, pose, t_s) -> None:
        """The track's crop had shrunk onto part of its hand: the detection's pose and crop of the
        whole hand replace this frame's, under the same id; its 3D jump is a correction, not
        motion, so the smoothing starts over."""
        if tr.filt is not None:
            tr.filt.reset()
            pose.keypoints_3d = tr.filt(pose.keypoints_3d, t_s)
        tr.pose, tr.box = pose, pose.roi
        self._label(tr)

    def _update_from_rois(self, image_rgb, K, t_s, hand_size_m, D, rois, dm) -> list[TrackedHand]:
        boxes = [tuple(float(v) for v in r) for r in rois]
        # each box to the track it overlaps most, before estimating, so that it is estimated as that hand
        free, matched = list(self.tracks), []
        for b in boxes:
            best = max(free, key=lambda t: box_iou(t.box, b), default=None)
            if best is not None and box_iou(best.box, b) > 0.2:
                free.remove(best)
            else:
                best = None
            matched.append(best)
        poses = self.est.estimate_batch([image_rgb] * len(boxes), [K] * len(boxes), hand_size_m, boxes, D, dm,
                                        hand_is_left=self._hands(matched))
        out = []
        for p, b, t in zip(poses, boxes, matched):
            if not p.valid:
                continue
            out.append(self._new_track(p, b, t_s) if t is None else self._advance(t, p, b, t_s))
        self.tracks = out
        return _snapshots(out)

    def _hands(self, tracks) -> list:
        """Each track's settled hand (None for no track, or when not following hands)."""
        return [t.settled_is_left if self.follow_hand and t is not None else None for t in tracks]

    def _new_track(self, pose, box, t_s) -> TrackedHand:
        tr = TrackedHand(track_id=self._next_id, pose=pose, box=box,
                         filt=OneEuroFilter(*self._filter_args) if self.smoothing else None)
        self._next_id += 1
        tr.vote(pose.is_left)
        self._label(tr)
        if tr.filt is not None:
            tr.filt(pose.keypoints_3d, t_s)
        return tr

    def _advance(self, tr, pose, box, t_s) -> TrackedHand:
        tr.vote(pose.is_left)
        if tr.filt is not None:
            pose.keypoints_3d = tr.filt(pose.keypoints_3d, t_s)
        tr.pose, tr.box, tr.age = pose, box, tr.age + 1
        self._label(tr)
        return tr

    @staticmethod
    def _label(tr) -> None:
        tr.pose.is_left = tr.is_left

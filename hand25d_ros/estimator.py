"""HandPoseEstimator: image + intrinsics -> metric 3D hand pose (the public API)."""
from __future__ import annotations

import copy
import os
import re
import threading
import warnings
import weakref
from dataclasses import dataclass, field

import numpy as np
import torch

from . import geometry as geo
from . import keypoints as kp
from ._checks import (check_box_in_image, check_count, check_distortion, check_image_rgb, check_intrinsics,
                      check_positive, warn_implausible_focal_length, warn_implausible_hand_size)
from .crop import (DEFAULT_TTA, FALLBACK_VIEWS_DEG, HAND_SIDES, ROTATE_VIEWS_DEG, TTA_MODES, box_iou, box_to_crop_affine,
                   crop_affine, invert_affine, keypoint_box, scale_box, transform_points, warp_crop,
                   whole_image_box)
from .weights import load_weights

# Plausible depth and distance of a hand from a camera; a root outside is not trusted. The
# distance, not the depth alone, since intrinsics far off can put a hand at a sane depth
# and a kilometre to the side.
MIN_DEPTH_M, MAX_DISTANCE_M = 0.05, 10.0
# The farthest a keypoint may lie from the wrist, in hand sizes (wrist to index MCP): a hand
# spans about 2.2 of them. Beyond it the lifting went wrong (nonsense distortion coefficients
# undistorted a keypoint 2e6 m away from a root at a sane depth).
MAX_SPAN_HAND_SIZES = 10.0
# crop side / keypoint box side for crops placed from detections and keypoints. Measured on
# real_val_snap crops pasted into frames (benchmarks/bench_localisation.py): 1.3 gave 26.2 px
# against 28.7 px at 1.45 (the middle of the training crops' 1.2-1.7) and 32.9 px at 1.7, and
# more recall on synthetic scenes; the network's keypoint boxes run larger than the truth.
DEFAULT_CROP_SCALE = 1.3


# eq=False: the generated __eq__ compares the arrays, whose truth value is an error, so
# `pose in hands` and hands.index(pose) raised ValueError; poses compare by identity
@dataclass(eq=False)
class HandPose:
    """One hand's pose in one image.

    Attributes:
        keypoints_2d: (21, 2) pixels of the input image (keypoint order in ``keypoints.py``).
        keypoints_3d: (21, 3) metres in the camera optical frame; NaN-free (zeros when not valid).
        confidence: (21,) in [0, 1], heatmap mass around each keypoint.
        valid: False when no trustworthy 3D could be made (see ``root_status``).
        z_rel_norm: (21,) the network's scale-normalised root-relative depth.
        root_status: ``geometry.RootDepthStatus`` of the root-depth solve.
        roi: (x, y, w, h) crop box that was used, in input-image pixels.
        hand_size_m: the hand-size prior used (wrist -> index MCP).
        found: False when localisation found no hand in the frame (then nothing else is set).
        is_left: left hand: the hand of the estimated skeleton (:func:`skeleton_is_left`), so the
            label agrees with the keypoints; while tracking, the track's running vote
            (``tracking.TrackedHand``), which one frame read as the mirror image does not flip.
        left_prob: the network's crop head's probability that this is a left hand, a second
            opinion (None for weights without the head). The skeleton's hand was right more
            often (README model card), so it is the label.
        hand_prob: the crop head's probability that the crop holds a hand at all (None likewise).
        detection_score: the detector's hand probability (None when the crop was given).
    """
    keypoints_2d: np.ndarray
    keypoints_3d: np.ndarray
    confidence: np.ndarray
    valid: bool
    z_rel_norm: np.ndarray = field(repr=False, default=None)
    root_status: int = 0
    roi: tuple = ()
    hand_size_m: float = kp.DEFAULT_HAND_SIZE_M
    found: bool = True
    is_left: bool | None = None
    left_prob: float | None = None
    hand_prob: float | None = None
    detection_score: float | None = None

    @classmethod
    def not_found(cls, hand_size_m: float = kp.DEFAULT_HAND_SIZE_M) -> "HandPose":
        """The result for a frame without a hand: not valid, zeros everywhere."""
        # an array each: one shared by confidence and z_rel_norm changed both when a caller
        # filled one in place
        return cls(keypoints_2d=np.zeros((kp.NUM_KEYPOINTS, 2)), keypoints_3d=np.zeros((kp.NUM_KEYPOINTS, 3)),
                   confidence=np.zeros(kp.NUM_KEYPOINTS), valid=False, z_rel_norm=np.zeros(kp.NUM_KEYPOINTS),
                   roi=(), hand_size_m=hand_size_m, found=False)

    @property
    def mean_confidence(self) -> float:
        return float(np.mean(self.confidence))


def mean_keeping_size(uv_a: torch.Tensor, uv_b: torch.Tensor) -> torch.Tensor:
    """The mean of two 2D skeletons, scaled about its centroid to their mean size.

    Two answers that disagree average to a smaller hand, and a smaller hand lifts to a
    farther one: the plain mean of a crop's and its mirror's keypoints put the root 10 mm
    farther on the synthetic test set (8 mm on real_val_snap); with the size kept, the depth
    error is that of one pass and the 2D error that of the mean.

    Args:
        uv_a, uv_b: (B, K, 2) keypoints.

    Returns:
        (B, K, 2); size is the RMS distance of the keypoints from their centroid.
    """
    return mean_of_views(torch.stack([uv_a, uv_b], 1))


def _skeleton_size(uv: torch.Tensor) -> torch.Tensor:
    return (uv - uv.mean(-2, keepdim=True)).square().sum(-1).mean(-1).sqrt()


def mean_of_views(uv: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The weighted mean of the views' 2D skeletons, scaled to their weighted mean size (as
    :func:`mean_keeping_size`).

    Args:
        uv: (B, V, K, 2) keypoints of V views of each crop, in the crop's pixels.
        weights: (B, V), bool (the views to keep) or non-negative float, at least one
            positive per row; None weighs every view equally.

    Returns:
        (B, K, 2).
    """
    w = torch.ones(uv.shape[:2], dtype=uv.dtype, device=uv.device) if weights is None else weights.to(uv.dtype)
    w = w / w.sum(1, keepdim=True).clamp_min(1e-12)
    m = (uv * w[..., None, None]).sum(1)
    c = m.mean(1, keepdim=True)
    gain = (_skeleton_size(uv) * w).sum(1) / _skeleton_size(m).clamp_min(1e-9)
    return c + (m - c) * gain[:, None, None]


def skeleton_is_left(uv: np.ndarray, z_rel_norm: np.ndarray) -> np.ndarray:
    """Which hand the network's 2.5D skeleton is: the chirality
    (:func:`keypoints.is_left_hand`) of (u, v, z_rel_norm x its scale bone in pixels), a
    right-handed frame like the camera's. It needs no lifting, so it holds for poses that are
    not valid too, and it is the chirality of the lifted 3D keypoints (perspective keeps it).

    Args:
        uv: (*, 21, 2) keypoints in pixels; z_rel_norm: (*, 21).

    Returns:
        (*,) bool, True for a left hand.
    """
    uv, z_rel_norm = np.asarray(uv, dtype=np.float64), np.asarray(z_rel_norm, dtype=np.float64)
    bone_px = np.linalg.norm(uv[..., kp.INDEX_MCP, :] - uv[..., kp.WRIST, :], axis=-1)
    return kp.is_left_hand(np.concatenate([uv, (z_rel_norm * bone_px[..., None])[..., None]], -1))


def confident_view_weights(uv: np.ndarray, z_rel_norm: np.ndarray, confidence: np.ndarray,
                           hand_is_left=None) -> np.ndarray:
    """How much each view of a crop counts in the mean: the views on the most confident
    view's hand, weighted by their confidence; the others not at all.

    A view read as the mirror image of the hand (thumb on the little finger's side, or palm
    for back) has its fingers in reverse order, and averaging it with the others gives a
    hand that is neither. Such a view's heatmaps are also the more spread: on the mixed
    crops of real_val_snap (stage-8 weights) the views on the true hand have mean confidence
    0.187 and the others 0.153, so the most confident view names the hand right more often
    (92.1% of real frames, 95.6% of synthetic test frames) than the majority of the six views
    (88.7%, 95.2%). Each view's hand is its skeleton's (:func:`skeleton_is_left`), its
    confidence the mean over the keypoints.

    When the hand is known (``hand_is_left``), the views on that hand are kept instead, where
    a crop has any; a crop whose every view reads the other hand keeps the rule above. On
    real_val_snap (stage-8 weights, the true hand given) that took the 2D error from 19.6 to
    18.7 px with two views and from 18.2 to 17.5 px with six (before the further views that
    :meth:`HandPoseEstimator.predict_crops` runs where no view is the known hand).

    Args:
        uv: (B, V, 21, 2) keypoints, crop pixels; z_rel_norm, confidence: (B, V, 21).
        hand_is_left: True for a left hand, False for a right one, None (default) to go by
            the most confident view; or one of those per crop, (B,).

    Returns:
        (B, V) float weights summing to 1 per row (equal where every confidence is 0).
    """
    left = skeleton_is_left(uv, z_rel_norm)
    c = np.nan_to_num(np.asarray(confidence, dtype=np.float64).mean(-1), nan=0.0).clip(0.0, None)
    best = c.argmax(1)
    keep = left == left[np.arange(len(left)), best][:, None]
    if hand_is_left is not None:
        known = np.broadcast_to(np.asarray(hand_is_left, dtype=object), left.shape[:1])
        is_known = np.array([k is not None for k in known])
        on_hand = left == np.array([bool(k) for k in known])[:, None]
        keep = np.where((is_known & on_hand.any(1))[:, None], on_hand, keep)
    w = keep * np.maximum(c, 1e-9)
    return w / w.sum(1, keepdims=True)


def combine_views(uv, z_rel_norm, confidence, hand_is_left=None):
    """The views of each crop averaged with :func:`confident_view_weights` (2D by
    :func:`mean_of_views`).

    Args:
        uv: (B, V, 21, 2); z_rel_norm, confidence: (B, V, 21); hand_is_left: as there.

    Returns:
        uv (B, 21, 2), z_rel_norm (B, 21), confidence (B, 21).
    """
    w = confident_view_weights(uv, z_rel_norm, confidence, hand_is_left)
    return (mean_of_views(torch.from_numpy(uv), torch.from_numpy(w)).numpy(), (z_rel_norm * w[..., None]).sum(1),
            (confidence * w[..., None]).sum(1))


def views_miss_the_hand(uv: np.ndarray, z_rel_norm: np.ndarray, hand_is_left) -> np.ndarray:
    """Which crops have a known hand that none of their views' skeletons is.

    Args:
        uv: (B, V, 21, 2); z_rel_norm: (B, V, 21); hand_is_left: (B,) True, False or None.

    Returns:
        (B,) bool (False where the hand is not known).
    """
    left = skeleton_is_left(uv, z_rel_norm)
    return np.array([k is not None and not (row == bool(k)).any() for k, row in zip(hand_is_left, left)], dtype=bool)


def combine_views_with_fallback(uv, z_rel_norm, confidence, hand_is_left, more_views):
    """:func:`combine_views` (a single view as it is), and for each crop whose known hand
    none of its views is, the views on that hand among ``more_views(indices)`` where it has
    any (:meth:`HandPoseEstimator.predict_crops` with ``FALLBACK_VIEWS_DEG``).

    Args:
        uv: (B, V, 21, 2); z_rel_norm, confidence: (B, V, 21).
        hand_is_left: None, or (B,) True, False or None.
        more_views: called with the indices of those crops, returns their further views'
            (uv, z_rel_norm, confidence), shaped as above; None: no further views.

    Returns:
        uv (B, 21, 2), z_rel_norm (B, 21), confidence (B, 21).
    """
    if uv.shape[1] > 1:
        out = combine_views(uv, z_rel_norm, confidence, hand_is_left)
    else:
        out = tuple(t[:, 0].copy() for t in (uv, z_rel_norm, confidence))
    if hand_is_left is None or more_views is None:
        return out
    missing = np.flatnonzero(views_miss_the_hand(uv, z_rel_norm, hand_is_left))
    if len(missing):
        more = more_views(missing)
        sides = [hand_is_left[i] for i in missing]
        found = ~views_miss_the_hand(*more[:2], sides)
        if found.any():
            answer = combine_views(*(t[found] for t in more), [s for s, f in zip(sides, found) if f])
            for a, b in zip(out, answer):
                a[missing[found]] = b
    return out


_DEVICE_RE = re.compile(r"cpu|cuda(:\d+)?")


class DeviceError(RuntimeError):
    """A well-formed device that this machine does not have (CUDA, or that GPU index)."""


def resolve_device(device: "str | torch.device") -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' (or such a torch.device) -> torch.device; CUDA
    without a GPU, or a GPU index the machine lacks, is an error here rather than at the
    first frame."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not _DEVICE_RE.fullmatch(device):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} requested but CUDA is not available "
                               "(use device='auto' or 'cpu')")
        index, count = torch.device(device).index, torch.cuda.device_count()
        if index is not None and index >= count:
            raise DeviceError(f"device {device!r} requested but this machine has {count} CUDA device"
                               + ("s (cuda:0 to cuda:%d)" % (count - 1) if count > 1 else " (cuda:0)"))
    return torch.device(device)


# Every estimator, for the fork hook below.
_ESTIMATORS: "weakref.WeakSet[HandPoseEstimator]" = weakref.WeakSet()


def _new_track_locks_after_fork() -> None:
    # A process forked (multiprocessing's 'fork', a DataLoader worker) while another thread was
    # inside track() inherits that thread's lock as held, with no thread left to release it:
    # the child's first track() or reset_tracking() waited for ever.
    for est in list(_ESTIMATORS):
        est._track_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_track_locks_after_fork)


class HandPoseEstimator:
    """Latent 2.5D hand pose estimator.

    Args:
        weights: path of a weights file, or None for the weights bundled with the package.
        device: 'auto' (CUDA when there is one), 'cpu' or 'cuda[:N]', or such a torch.device; a
            malformed one is a ValueError, one this machine lacks a DeviceError (a RuntimeError).
        fp16: run the network in half precision (CUDA only; ignored on CPU).
        root_depth: 'robust' (median over palm bones, default when the weights carry
            bone ratios) or 'bone' (the scale bone alone, as in the paper).
        detector: weights of the full-frame hand detector (None: bundled), loaded on the
            first call that has to find hands (``roi=None``, :meth:`estimate_hands`, tracking).
        crop_scale: crop side / side of the hand's keypoint box when the crop is placed from
            a detection or from keypoints.
        tta: test-time augmentation, one of ``TTA_MODES``: 'flip' (default) averages each
            crop's keypoints with those of its mirror image; 'none' runs the crop once
            (half the network time); 'flip_rotate' also runs copies rotated by +-15 degrees
            (three times the network time of 'flip'; see ``crop.TTA_MODES``).
        hand_side: 'auto' (default): each crop's hand is read from the image; 'left' or
            'right': every hand is that one (one known hand, e.g. a teleoperator's), so of
            the test-time views those whose skeleton is that hand are kept, and a crop that no
            view shows as that hand runs on more views (``crop.FALLBACK_VIEWS_DEG``); with
            ``tta='none'`` that is the one pass, then the more views where it reads the other
            hand. Settable later (``est.hand_side = 'right'``).
    """

    def __init__(self, weights=None, device: str = "auto", fp16: bool = False,
                 root_depth: str = "robust", detector=None, crop_scale: float = DEFAULT_CROP_SCALE,
                 tta: str = DEFAULT_TTA, hand_side: str = "auto"):
        loaded = load_weights(weights)
        self._setup(loaded.model, loaded.meta, loaded.path, device, fp16, root_depth, tta=tta)
        self.hand_side = hand_side
        self._detector_weights = detector
        self.crop_scale = check_positive(crop_scale, "crop_scale")

    @classmethod
    def from_model(cls, model, meta: dict | None = None, device: str = "auto", fp16: bool = False,
                   root_depth: str = "robust", tta: str = DEFAULT_TTA,
                   hand_side: str = "auto") -> "HandPoseEstimator":
        """An estimator around an in-memory network (e.g. one being trained). The model is
        used as it is: switch it to eval mode before estimating."""
        est = cls.__new__(cls)
        est._setup(model, dict(meta or {}), "<in-memory>", device, fp16, root_depth, move=False, tta=tta)
        est.hand_side = hand_side
        est._detector_weights, est.crop_scale = None, DEFAULT_CROP_SCALE
        return est

    def _setup(self, model, meta, path, device, fp16, root_depth, move=True, tta=DEFAULT_TTA):
        self.tta = tta
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval() if move else model
        self.meta = meta
        self.weights_path = path
        self.input_size = int(self.meta.get("input_size", self.model.input_size))
        self.fp16 = bool(fp16) and self.device.type == "cuda"
        ratios = self.meta.get("bone_ratios")
        if root_depth not in ("robust", "bone"):
            raise ValueError(f"root_depth must be 'robust' or 'bone', got {root_depth!r}")
        if root_depth == "robust" and ratios is None:
            warnings.warn("weights carry no bone_ratios: using the scale bone alone for root depth")
            root_depth = "bone"
        self.root_depth = root_depth
        self.bone_ratios = None if ratios is None else np.asarray(ratios, dtype=np.float64)
        # calibrated at training time on held-out hand-free crops (see train.py)
        self.hand_threshold = float(self.meta.get("hand_threshold", 0.5))
        self._detector = None
        self._tracker = None          # track()'s, made on its first call
        self._track_lock = threading.Lock()
        self._next_track_id = 0
        _ESTIMATORS.add(self)
        self._tracker_options: dict = {}

    def __getstate__(self) -> dict:
        # a lock cannot be pickled: copy.deepcopy(est) and passing an estimator to another
        # process raised "cannot pickle '_thread.lock' object"; a copy gets its own lock
        with self._track_lock:
            state = dict(self.__dict__)
            # copied after this returns, the tracker could be copied half-way through a track()
            # in another thread: its hands' state is taken here, whole, under the lock (the
            # estimator it refers to stays this one, which the copy then maps to itself)
            state["_tracker"] = copy.deepcopy(self._tracker, {id(self): self})
        del state["_track_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        if "tta" in state:            # pickled before tta was a checked property
            state["_tta"] = state.pop("tta")
        self.__dict__.update(state)
        self._track_lock = threading.Lock()
        _ESTIMATORS.add(self)

    @property
    def tta(self) -> str:
        """The test-time augmentation, one of ``TTA_MODES`` (see the class); settable, checked
        as in the constructor: a plain attribute took ``est.tta = 'flip-rotate'`` (a typo)
        and ran every crop once, as ``'none'``, with nothing said."""
        return self._tta

    @tta.setter
    def tta(self, tta: str) -> None:
        if tta not in TTA_MODES:
            raise ValueError(f"tta must be one of {', '.join(TTA_MODES)}; got {tta!r}")
        self._tta = tta

    @property
    def hand_side(self) -> str:
        """'auto', 'left' or 'right': the hand every crop is taken to be (see the class)."""
        return self._hand_side

    @hand_side.setter
    def hand_side(self, side: str) -> None:
        if side not in HAND_SIDES:
            raise ValueError(f"hand_side must be one of {', '.join(HAND_SIDES)}; got {side!r}")
        self._hand_side = side

    def is_hand(self, pose: HandPose) -> bool:
        """Whether the crop head sees a hand in ``pose``'s crop (always, without a crop head);
        False for :meth:`HandPose.not_found`, which has no crop (and no ``hand_prob``, which
        read as 'no crop head' and made it True)."""
        if not pose.found:
            return False
        return pose.hand_prob is None or pose.hand_prob >= self.hand_threshold

    @property
    def detector(self):
        """The full-frame hand detector (``detector.HandDetector``), loaded on first use."""
        if self._detector is None:
            from .detector import HandDetector
            self._detector = HandDetector(self._detector_weights, device=self.device)
        return self._detector

    # ------------------------------------------------------------------ network
    @torch.inference_mode()
    def predict_crops(self, crops_rgb: np.ndarray, hand_is_left=None):
        """Run the network on square crops.

        Args:
            crops_rgb: (B, S, S, 3) uint8 RGB, S = ``input_size``.
            hand_is_left: None, or per crop True (left), False (right) or None: the hand each
                crop is known to hold (a followed hand's, :class:`tracking.HandTracker`), where
                ``hand_side`` is 'auto'; a set ``hand_side`` wins.

        Returns:
            uv_px (B, 21, 2) crop pixels, z_rel_norm (B, 21), confidence (B, 21), float64 numpy;
            and (B, 2) probabilities [left hand, hand present] when the weights have a crop head.
            With ``tta='flip'`` the views are the crop and its mirror image, with
            ``'flip_rotate'`` also its copies rotated by ``ROTATE_VIEWS_DEG``, each mirrored
            too; keypoints (at the views' mean size, see :func:`mean_keeping_size`), depths
            and confidences are the mean over the views on the most confident view's hand
            (on ``hand_side``'s, when it is set and a view has it), weighted by confidence
            (:func:`confident_view_weights`). A crop of a known hand whose every view reads
            the other hand runs again on ``FALLBACK_VIEWS_DEG`` (each mirrored too), and where
            some of those views are the known hand, they alone make its answer. The crop-head
            probabilities are the plain crop's, the ones ``hand_threshold`` was calibrated on.
        """
        crops_rgb = np.asarray(crops_rgb)
        if crops_rgb.dtype != np.uint8:
            # float crops in [0, 1] would read as near-black, silently
            raise TypeError(f"crops_rgb must be uint8 RGB, got dtype {crops_rgb.dtype}")
        if crops_rgb.ndim != 4 or crops_rgb.shape[3] != 3 or crops_rgb.shape[1] != crops_rgb.shape[2] \
                or not len(crops_rgb):
            raise ValueError(f"crops_rgb must be a non-empty batch (B, S, S, 3) of square crops, got {crops_rgb.shape}")
        if crops_rgb.shape[1] != self.input_size:
            # the network is fully convolutional and runs on any size, but reads a hand at the
            # scale it was trained on: 256 px real_val_snap crops passed as they are came out at
            # 45 px mean 2D error against 15 px resized to 128
            raise ValueError(f"crops_rgb must be {self.input_size} x {self.input_size} (the network's input_size), "
                             f"got {crops_rgb.shape[1]} x {crops_rgb.shape[2]}: resize the crops, or pass the "
                             "image to estimate(..., roi='image')")
        if hand_is_left is not None:
            if len(hand_is_left) != len(crops_rgb):
                raise ValueError(f"got {len(crops_rgb)} crops but {len(hand_is_left)} hand_is_left values")
            if any(h is not None and not isinstance(h, (bool, np.bool_)) for h in hand_is_left):
                raise TypeError(f"hand_is_left values must be True (left), False (right) or None, got {list(hand_is_left)}")
        angles = ROTATE_VIEWS_DEG if self.tta == "flip_rotate" else (0.0,)
        views = self.predict_views(crops_rgb, angles, mirror=self.tta in ("flip", "flip_rotate"))
        logits = views[3]
        side = {"auto": None, "left": True, "right": False}[self.hand_side]
        sides = [side] * len(crops_rgb) if side is not None else hand_is_left
        uv, z, conf = combine_views_with_fallback(
            *views[:3], sides,
            lambda idx: self.predict_views(np.asarray(crops_rgb)[idx], FALLBACK_VIEWS_DEG, mirror=True)[:3])
        if getattr(self.model, "crop_head", None) is None:
            return uv, z, conf
        return uv, z, conf, torch.sigmoid(torch.from_numpy(logits[:, 0])).numpy()

    @torch.inference_mode()
    def predict_views(self, crops_rgb: np.ndarray, angles_deg=(0.0,), mirror: bool = False):
        """Run the network on views of square crops, each answer mapped back into its crop's
        pixels: the crop rotated about its centre by each of ``angles_deg`` and, with
        ``mirror``, the mirror images of those.

        Args:
            crops_rgb: (B, S, S, 3) uint8 RGB, S = ``input_size``.
            angles_deg: rotations in degrees, 0 for the crop itself.
            mirror: also run each rotated view mirrored left-right.

        Returns:
            uv_px (B, V, 21, 2), z_rel_norm (B, V, 21), confidence (B, V, 21) and crop-head
            logits (B, V, 2) [left hand, hand present], float64 numpy; V = len(angles_deg),
            doubled with ``mirror`` (the mirrored views after the plain ones, in the same
            order). A mirrored view's left-hand logit is negated, since the mirror of a left
            hand is a right one; without a crop head the logits are 0.
        """
        crops_rgb = np.ascontiguousarray(crops_rgb)
        B, S = crops_rgb.shape[0], crops_rgb.shape[2]
        # rotations about the crop's centre, in its own pixels
        views = [None if a == 0 else crop_affine(np.full(2, (S - 1) / 2.0), S, S, np.deg2rad(a)) for a in angles_deg]
        x = np.concatenate([crops_rgb if A is None else np.stack([warp_crop(c, A, S) for c in crops_rgb])
                            for A in views])
        x = torch.from_numpy(x).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        if mirror:
            x = torch.cat([x, x.flip(-1)])
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.fp16):
            uv, z, conf, logits = self.model(x, crop_logits=True)
        uv, z, conf, logits = (t.double().cpu().numpy() for t in (uv, z, conf, logits))
        if mirror:
            # pixel u of the mirror is pixel (S - 1) - u of the crop (pixel centres at integers)
            n = len(views) * B
            uv[n:, :, 0] = (S - 1) - uv[n:, :, 0]
            logits[n:, 0] = -logits[n:, 0]
            views = views * 2
        # (V B, ...) -> (B, V, ...), each view mapped back into the crop's own pixels
        uv = np.stack([u if A is None else transform_points(invert_affine(A), u)
                       for A, u in zip(views, np.split(uv, len(views)))], 1)
        z, conf, logits = (t.reshape(len(views), B, -1).transpose(1, 0, 2) for t in (z, conf, logits))
        return uv, z, conf, logits

    # ------------------------------------------------------------------ public API
    def estimate(self, image_rgb: np.ndarray, K, hand_size_m: float | None = None,
                 roi=None, D=None, distortion_model: str = "plumb_bob") -> HandPose:
        """Estimate the 3D pose of the hand in ``image_rgb``.

        Args:
            image_rgb: (H, W, 3) uint8 RGB (``cv2.imread`` gives BGR, which reads silently
                worse: ``cv2.cvtColor(img, cv2.COLOR_BGR2RGB)``).
            K: (3, 3) intrinsics of ``image_rgb``.
            hand_size_m: wrist -> index-MCP length in metres (None: ``DEFAULT_HAND_SIZE_M``).
            roi: (x, y, w, h) box around the hand, whose longer side's square is the crop;
                ``"image"``: the whole image is the hand crop; None: find the hand (the
                most confident one; ``HandPose.found`` is False when there is none).
            D: CameraInfo distortion coefficients when ``image_rgb`` is not rectified.
            distortion_model: CameraInfo distortion model name for ``D``.

        Returns:
            HandPose.
        """
        if hand_size_m is not None:
            check_positive(hand_size_m, "hand_size_m")
        if roi is not None and not isinstance(roi, str):
            image_rgb = check_image_rgb(image_rgb)
            roi = check_box_in_image(roi, image_rgb.shape[1], image_rgb.shape[0])
        if roi is None:
            # a few proposals, so that one the crop head rejects does not hide the hand
            hands = self.estimate_hands(image_rgb, K, hand_size_m, max_hands=3, D=D,
                                        distortion_model=distortion_model)
            return hands[0] if hands else HandPose.not_found(
                kp.DEFAULT_HAND_SIZE_M if hand_size_m is None else hand_size_m)
        return self.estimate_batch([image_rgb], [K], hand_size_m, [roi], D, distortion_model)[0]

    def track(self, image_rgb: np.ndarray, K, t_s: float, hand_size_m: float | None = None, D=None,
              rois=None, distortion_model: str = "plumb_bob", **tracker_options) -> list:
        """Stateful estimation for video: the hands in this frame, with ids stable across calls.

        A ``tracking.HandTracker`` held by the estimator follows the hands (crops from the last
        keypoints, detection when needed, One Euro smoothing); ``tracker_options`` (max_hands,
        smoothing, ...) configure it on the first call or after :meth:`reset_tracking`.

        Returns:
            list of ``tracking.TrackedHand`` (``track_id``, ``pose``, ``is_left``).
        """
        with self._track_lock:     # two threads on one tracker would pair poses with the wrong tracks
            if self._tracker is None:
                from .tracking import HandTracker
                self._tracker = HandTracker(self, **{"first_id": self._next_track_id, **tracker_options})
                self._tracker_options = dict(tracker_options)
            elif tracker_options and tracker_options != self._tracker_options:
                # silently keeping the first call's options would look like the new ones do nothing
                raise ValueError(f"tracker options {tracker_options} differ from the running tracker's "
                                 f"{self._tracker_options}; call reset_tracking() first to change them")
            return self._tracker.update(image_rgb, K, t_s, hand_size_m, D, rois, distortion_model)

    def reset_tracking(self) -> None:
        """Forget the hands :meth:`track` follows (a new video); ids keep counting up."""
        with self._track_lock:
            if self._tracker is not None:
                self._next_track_id = self._tracker._next_id
            self._tracker = None

    def estimate_hands(self, image_rgb: np.ndarray, K, hand_size_m: float | None = None, max_hands: int = 2,
                       D=None, distortion_model: str = "plumb_bob", refine: bool = False) -> list[HandPose]:
        """Find up to ``max_hands`` hands in a full frame and estimate each, best first.

        The detector's box, widened by ``crop_scale``, is the crop; with ``refine`` the crop
        is placed once more around the keypoints found in it (off by default: on pasted real
        crops it cost 0.5 px and recall on synthetic scenes). A
        detection whose crop the network's crop head rejects (``hand_prob`` under the
        weights' ``hand_threshold``) is dropped, and so is one whose refined crop overlaps a
        better one's (the same hand proposed twice).
        """
        kept = []
        for p in self.propose_hands(image_rgb, K, hand_size_m, max_hands, D, distortion_model, refine):
            # two proposals on one hand (boxes of two scales) refine onto the same keypoints
            if self.is_hand(p) and all(box_iou(p.roi, q.roi) < 0.4 for q in kept):
                kept.append(p)
        return kept

    def propose_hands(self, image_rgb: np.ndarray, K, hand_size_m: float | None = None, max_hands: int = 2,
                      D=None, distortion_model: str = "plumb_bob", refine: bool = False) -> list[HandPose]:
        """:meth:`estimate_hands` before the crop head's verdict: every detection's pose, with
        ``detection_score`` and ``hand_prob`` set (for calibration and inspection)."""
        image_rgb = check_image_rgb(image_rgb)
        K = check_intrinsics(K)
        max_hands = check_count(max_hands, "max_hands")
        if D is not None:   # checked here too, not first when a hand is lifted
            D = check_distortion(D, distortion_model, "D")
        return self.estimate_detections(image_rgb, K, self.detector(image_rgb, max_hands=max_hands), hand_size_m,
                                        D, distortion_model, refine)

    def estimate_detections(self, image_rgb, K, dets, hand_size_m=None, D=None, distortion_model: str = "plumb_bob",
                            refine: bool = False) -> list[HandPose]:
        """The pose for each ``detector.Detection``: its box widened by ``crop_scale``, then (with
        ``refine``) the crop placed again around the keypoints found in it."""
        if not dets:
            return []
        boxes = [scale_box(d.box, self.crop_scale) for d in dets]
        poses = self._estimate_batch([image_rgb] * len(dets), [K] * len(dets), hand_size_m, boxes, D, distortion_model)
        if refine:
            boxes = [keypoint_box(p.keypoints_2d, self.crop_scale) for p in poses]
            poses = self._estimate_batch([image_rgb] * len(dets), [K] * len(dets), hand_size_m, boxes, D,
                                         distortion_model)
        for p, d in zip(poses, dets):
            p.detection_score = d.score
        return poses

    def estimate_batch(self, images_rgb, Ks, hand_size_m: float | None = None, rois=None,
                       D=None, distortion_model: str = "plumb_bob", hand_is_left=None) -> list[HandPose]:
        """:meth:`estimate` over several (image, K, roi), one network pass. Each roi is a
        box, or None / ``"image"`` for the whole image (no localisation here); a box is checked
        as :meth:`estimate` checks it (a ValueError naming it); ``hand_is_left`` optionally the
        hand of each (see :meth:`predict_crops`)."""
        return self._estimate_batch(images_rgb, Ks, hand_size_m, rois, D, distortion_model, hand_is_left,
                                    check_boxes=True)

    def _estimate_batch(self, images_rgb, Ks, hand_size_m=None, rois=None, D=None,
                        distortion_model: str = "plumb_bob", hand_is_left=None,
                        check_boxes: bool = False) -> list[HandPose]:
        """:meth:`estimate_batch`; without ``check_boxes`` for boxes this package made (the
        detector's, the tracker's from its last keypoints, which may leave the image with the
        hand: a crop there reads as no hand and ends the track, where an error would fail every
        later frame)."""
        if len(images_rgb) != len(Ks):
            raise ValueError(f"got {len(images_rgb)} images but {len(Ks)} intrinsics")
        rois = [None] * len(images_rgb) if rois is None else list(rois)
        if len(rois) != len(images_rgb):
            raise ValueError(f"got {len(images_rgb)} images but {len(rois)} rois")
        hand_size_m = kp.DEFAULT_HAND_SIZE_M if hand_size_m is None else check_positive(hand_size_m, "hand_size_m")
        warn_implausible_hand_size(hand_size_m)
        crops, affines, Kmats, boxes = [], [], [], []
        for i, (image, K, roi) in enumerate(zip(images_rgb, Ks, rois)):
            image = check_image_rgb(image)
            K = check_intrinsics(K)
            warn_implausible_focal_length(K, image.shape[1], image.shape[0])
            if roi is None or (isinstance(roi, str) and roi == "image"):
                box = whole_image_box(*image.shape[:2])
            elif isinstance(roi, str):
                raise ValueError(f"roi must be None, 'image' or (x, y, w, h), got {roi!r}")
            elif check_boxes:
                # as estimate(): a box of 1e300 px ended in a ZeroDivisionError deep in the crop, one
                # of 1e6 px in keypoints 600,000 px out, one under a pixel in a one-colour crop
                box = check_box_in_image(roi, image.shape[1], image.shape[0], f"rois[{i}]")
            else:
                box = tuple(roi)
            A = box_to_crop_affine(box, self.input_size)
            crops.append(warp_crop(image, A, self.input_size))
            affines.append(A)
            Kmats.append(K)
            boxes.append(tuple(float(v) for v in box))
        if not crops:
            return []
        out = self.predict_crops(np.stack(crops), hand_is_left=hand_is_left)
        uv_crop, z, conf = out[:3]
        head = out[3] if len(out) > 3 else None
        skeleton_left = skeleton_is_left(uv_crop, z)
        poses = []
        for i, (A, K) in enumerate(zip(affines, Kmats)):
            uv_img = transform_points(invert_affine(A), uv_crop[i])
            pose = self._lift(uv_img, z[i], conf[i], K, hand_size_m, boxes[i], D, distortion_model)
            pose.is_left = bool(skeleton_left[i])
            if head is not None:
                pose.left_prob, pose.hand_prob = float(head[i, 0]), float(head[i, 1])
            poses.append(pose)
        return poses

    def _lift(self, uv_img, z, conf, K, hand_size_m, box, D, distortion_model) -> HandPose:
        # a non-finite network output is an invalid pose (reconstruct_metric says so), with or
        # without distortion: undistort_points would refuse it as bad input instead
        uv_ideal = uv_img if D is None or not np.all(np.isfinite(uv_img)) else \
            geo.undistort_points(uv_img, K, D, distortion_model)
        P, status = geo.reconstruct_metric(uv_ideal, z, K, hand_size_m, method=self.root_depth,
                                           bone_ratios=self.bone_ratios)
        status = int(status)
        valid = bool(status in (int(s) for s in geo.USABLE_STATUSES) and np.all(np.isfinite(P))
                     and P[kp.ROOT, 2] >= MIN_DEPTH_M and np.linalg.norm(P[kp.ROOT]) <= MAX_DISTANCE_M
                     and np.linalg.norm(P - P[kp.ROOT], axis=-1).max() <= MAX_SPAN_HAND_SIZES * hand_size_m)
        if not valid:
            P = np.zeros_like(P)
        return HandPose(keypoints_2d=np.nan_to_num(uv_img), keypoints_3d=P,
                        confidence=np.nan_to_num(conf), valid=valid, z_rel_norm=np.nan_to_num(z),
                        root_status=status, roi=box, hand_size_m=hand_size_m)

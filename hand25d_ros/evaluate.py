"""hand25d-eval: run HandPoseEstimator over an annotated folder and report errors.

    hand25d-eval ../shared/data/real_val_snap --out eval_out/

The folder holds ``annotations.json`` (``samples``: image, K, joints_3d_mm,
joints_2d_px) in our keypoint order. Each image goes through the public
``HandPoseEstimator.estimate`` exactly as a user calls it (whole image as the hand
crop, or ``--roi-from-gt`` for a box around the true keypoints), with the true
hand size as the prior so that the absolute depth error measures the method and
not the prior. Prints a table, writes ``report.json`` and ``pck.png``.

A sample may be 2D-only (no ``joints_3d_mm``): it counts for the 2D figures, and the
3D ones are over the samples with a true 3D pose (``num_with_3d``; ``num_valid_with_3d``
for those that need a valid estimate). Having no true size, it is estimated with the
default hand size, which can only move its depth, a figure it has no truth for
(``num_default_hand_size`` says how many). A sample with 3D and no 2D gets the 3D
pose's projection as its 2D truth (the dataset loader's rule). A figure over no
sample is NaN in :func:`evaluate_folder`'s summary, null in ``report.json`` and
"n/a (0 frames)" in the table.

A keypoint the annotation leaves unlabelled (``null``) is scored nowhere: the 2D and 3D
figures pool the labelled keypoints (``num_unlabelled_keypoints`` counts the others),
PA-MPJPE aligns each pose on its labelled keypoints, root-relative errors use the wrist
(a 3D truth always labels it), and ``--crop gt`` frames the labelled keypoints. A sample
whose palm keypoints are not all labelled has no hand or view from its 3D chirality.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import keypoints as kp
from . import metrics
from ._checks import argparse_number
from .crop import DEFAULT_TTA, HAND_SIDES, TTA_MODES

SEQUENCE_FPS = 30.0     # evaluate_folder(sequence=True): the frame rate its timestamps assume


def evaluate_folder(est, root, limit: int | None = None, progress: bool = True,
                    roi_from_gt: bool = False, hand_size: str = "true", crop: str = "image",
                    hand_side: str | None = None, sequence: bool = False) -> dict:
    """Evaluate ``est`` on an annotated folder.

    Args:
        est: a HandPoseEstimator.
        root: folder with annotations.json.
        limit: evaluate the first N samples only; None or 0: all of them.
        roi_from_gt: crop around the true 2D keypoints (side x1.4) instead of the whole image
            (the same as ``crop="gt"``).
        crop: 'image' (the whole image is the hand crop), 'gt' (around the true keypoints) or
            'detect' (the estimator finds the hand; a frame where it finds none is not valid).
        hand_size: 'true' (each sample's true wrist->index-MCP length; the default one for a
            2D-only sample, which has none) or 'default'.
        hand_side: None (default): the estimator's own ``hand_side``; 'true': each sample's
            true hand, as a user who knows it would set it (a :class:`DatasetError` if a sample
            has neither ``is_left`` nor 3D to tell it); or 'auto', 'left', 'right' for all.
        sequence: the samples are the frames of one video, in order: estimate them through
            ``HandPoseEstimator.track`` (30 frames/s, the crop given as the tracker's box,
            without smoothing, so a frame's 3D is its own), where a followed hand's settled
            left/right vote picks its views (``tracking``). Else each sample on its own.

    Returns:
        {"summary": {...}, "per_sample": [...], "data": {...}}; the summary's figures are
        :func:`metrics.summarize`'s and this module's, NaN where they cover no sample.
    """
    from .data.public_datasets import AnnotatedFolderDataset, DatasetError
    if hand_side not in (None, "true", *HAND_SIDES):
        raise ValueError(f"hand_side must be None, 'true' or one of {', '.join(HAND_SIDES)}; got {hand_side!r}")
    if hand_size not in ("true", "default"):
        raise ValueError(f"hand_size must be 'true' or 'default', got {hand_size!r}")
    if crop not in ("image", "gt", "detect"):
        raise ValueError(f"crop must be 'image', 'gt' or 'detect', got {crop!r}")
    if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 0):
        raise ValueError(f"limit must be a whole number of samples >= 0 (0 or None: all), got {limit!r}")
    ds = AnnotatedFolderDataset(root)
    if hand_side == "true":
        # refused up front: a run that stops at the first such sample wastes the ones before it
        n = len(ds) if not limit else min(int(limit), len(ds))
        unknown = [i for i in range(n) if true_hand(ds.annotation(i))[0] is None]
        if unknown:
            raise DatasetError(f"{Path(root) / 'annotations.json'}: hand_side 'true' needs each sample's "
                               f"true hand, but sample(s) {unknown[:5]}{' ...' if len(unknown) > 5 else ''} "
                               "have neither 'is_left' nor 'joints_3d_mm' with its palm keypoints (0, 2, 5, 9, 17) "
                               "labelled; add 'is_left' or let the "
                               "estimator read the hand (hand_side 'auto')")
    own_side = est.hand_side
    if sequence:
        est.reset_tracking()      # the video starts here
    try:
        return _evaluate(est, ds, root, limit, progress, roi_from_gt, hand_size, crop, hand_side, sequence)
    finally:
        est.hand_side = own_side
        if sequence:
            est.reset_tracking()


def _estimate_frame(est, i: int, s: dict, size_m, roi):
    """Frame ``i`` of a video through the estimator's tracker (see ``evaluate_folder``)."""
    from .crop import whole_image_box
    from .estimator import HandPose
    box = whole_image_box(*s["image"].shape[:2]) if roi == "image" else roi
    hands = est.track(s["image"], s["K"], i / SEQUENCE_FPS, hand_size_m=size_m, rois=None if box is None else [box],
                      smoothing=False, max_hands=1)
    return hands[0].pose if hands else HandPose.not_found(kp.DEFAULT_HAND_SIZE_M if size_m is None else size_m)


def _evaluate(est, ds, root, limit, progress, roi_from_gt, hand_size, crop, hand_side, sequence) -> dict:
    n = len(ds) if not limit else min(int(limit), len(ds))
    it = range(n)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc=f"eval {Path(root).name}", unit="img")
    pred2d, gt2d, pred3d, gt3d, valid, conf, left, pred_left = [], [], [], [], [], [], [], []
    head_left, has_3d, extent, found, labelled = [], [], [], [], []
    for i in it:
        s = ds[i]
        uv_true = np.asarray(s["joints_2d_px"], dtype=np.float64)
        labelled.append(np.asarray(s.get("labelled", np.ones(kp.NUM_KEYPOINTS, bool)), dtype=bool))
        lo, hi = uv_true[labelled[-1]].min(0), uv_true[labelled[-1]].max(0)
        extent.append(float((hi - lo).max()) / min(s["image"].shape[:2]))
        has_3d.append(s["joints_3d_mm"] is not None)
        # NaN marks "no truth" for metrics.summarize, which reads only the rows with has_3d
        P = np.asarray(s["joints_3d_mm"], dtype=np.float64) if has_3d[-1] else np.full((kp.NUM_KEYPOINTS, 3), np.nan)
        is_left, true_size_m = true_hand(s)
        size_m = true_size_m if hand_size == "true" else None     # None: the estimator's default
        if hand_side is not None:
            est.hand_side = ("left" if is_left else "right") if hand_side == "true" else hand_side
        roi = {"image": "image", "gt": "image", "detect": None}[crop]
        if roi_from_gt or crop == "gt":
            side = float(max(hi - lo)) * 1.4
            c = (lo + hi) / 2
            roi = (c[0] - side / 2, c[1] - side / 2, side, side)
        if sequence:
            pose = _estimate_frame(est, i, s, size_m, roi)
        else:
            pose = est.estimate(s["image"], s["K"], hand_size_m=size_m, roi=roi)
        pred2d.append(pose.keypoints_2d)
        gt2d.append(s["joints_2d_px"])
        pred3d.append(pose.keypoints_3d * 1000.0)
        gt3d.append(P)
        valid.append(pose.valid)
        found.append(pose.found)
        conf.append(pose.mean_confidence)
        left.append(is_left)
        pred_left.append(pose.is_left)
        head_left.append(None if pose.left_prob is None else pose.left_prob >= 0.5)
    pred2d, gt2d = np.asarray(pred2d), np.asarray(gt2d)
    pred3d, gt3d, valid = np.asarray(pred3d), np.asarray(gt3d), np.asarray(valid, dtype=bool)
    has_3d = np.asarray(has_3d, dtype=bool)
    labelled = np.asarray(labelled, dtype=bool).reshape(n, kp.NUM_KEYPOINTS)
    summary = metrics.summarize(pred2d, gt2d, pred3d, gt3d, valid, has_3d, found, labelled)
    summary["num_samples"] = int(n)
    if not labelled.all():      # absent otherwise: a fully labelled folder's table is as it was
        summary["num_unlabelled_keypoints"] = int((~labelled).sum())
    # the true hand's extent over the image's shorter side: a training crop's is 0.59-0.83
    summary["hand_extent_fraction_median"] = float(np.median(extent)) if extent else float("nan")
    summary["num_default_hand_size"] = int(n if hand_size == "default" else (~has_3d).sum())
    summary["mean_confidence"] = float(np.mean(conf)) if conf else 0.0
    # each sample's mean over its labelled keypoints (a fully labelled folder: the plain mean)
    err = metrics.mean_error_2d_px(pred2d, np.nan_to_num(gt2d), None if labelled.all() else labelled).per_sample
    summary.update(handedness_summary(err, left, pred_left))
    head = handedness_summary(err, left, head_left)
    if head:
        summary["handedness_accuracy_crop_head"] = head["handedness_accuracy"]
    palm_cos = np.full(n, np.nan)       # the side the camera sees is unknown without true 3D
    if has_3d.any():
        palm_cos[has_3d] = kp.palm_toward_camera(gt3d[has_3d])
    # a frame where no hand was found has no keypoints (zeros): no 2D error, as in summarize
    summary.update(view_summary(np.where(np.asarray(found, dtype=bool), err, np.nan) if n else err,
                                left, pred_left, palm_cos))
    # an invalid or missing pose's 3D is zeros, which would read as a right hand: no skeleton
    pred_cos = np.where(valid, kp.palm_toward_camera(pred3d), np.nan) if n else np.zeros(0)
    chiral = kp.is_left_hand(pred3d) if n else np.zeros(0, bool)
    pred_chiral = [bool(c) if v else None for c, v in zip(chiral, valid)]
    summary.update(mirror_summary(err, left, pred_chiral, palm_cos, pred_cos))
    per = [{"index": i, "error_2d_px": float(err[i]) if found[i] else None, "found": bool(found[i]),
            "valid": bool(valid[i]), "has_3d": bool(has_3d[i]),
            "is_left": left[i], "pred_is_left": pred_left[i], "crop_head_is_left": head_left[i],
            "palm_toward_camera": float(palm_cos[i]) if has_3d[i] else None,
            "pred_skeleton_is_left": pred_chiral[i],
            "pred_palm_toward_camera": float(pred_cos[i]) if valid[i] else None}
           for i in range(n)]
    return {"summary": summary, "per_sample": per,
            "data": {"pred_3d_mm": pred3d, "gt_3d_mm": gt3d, "valid": valid, "has_3d": has_3d,
                     "pred_2d_px": pred2d, "gt_2d_px": gt2d, "labelled": labelled,
                     "found": np.asarray(found, dtype=bool).reshape(n)}}


def true_hand(sample: dict) -> tuple[bool | None, float | None]:
    """The truth an annotated sample gives about its hand: whether it is a left one (the
    annotation's ``is_left``, else the chirality of ``joints_3d_mm``) and its size (the scale
    bone's length in metres, the prior that evaluation passes as ``hand_size_m``). A 2D-only
    sample (``joints_3d_mm`` None) has no size, and no hand unless ``is_left`` gives it: None."""
    P = sample.get("joints_3d_mm")
    left = kp.annotated_hand_is_left(sample.get("is_left"), P, sample.get("labelled"))
    if P is None:
        return left, None
    P = np.asarray(P, dtype=np.float64)
    return left, float(np.linalg.norm(P[kp.SCALE_BONE[0]] - P[kp.SCALE_BONE[1]]) / 1000.0)


def handedness_summary(error_2d_px, is_left, pred_is_left) -> dict:
    """How often the estimator names the right hand, and the 2D error either way.

    A hand read as its mirror image gets its fingers in reverse order, so the two error
    figures show how much of the mean that failure costs.

    Args:
        error_2d_px: (N,) per-sample mean 2D error.
        is_left: (N,) the true hand, None where it is unknown (a 2D-only sample without
            ``is_left``).
        pred_is_left: (N,) the estimator's answer (or the crop head's), None where it gave
            none (no hand found, or weights without a crop head).

    Returns:
        ``handedness_accuracy`` over the samples with an answer and a known hand, and
        ``mean_error_2d_px_hand_right`` / ``_wrong`` (NaN where there is no such sample);
        empty when no sample has both.
    """
    have = np.array([p is not None and t is not None for p, t in zip(pred_is_left, is_left)], dtype=bool)
    if not have.any():
        return {}
    right = np.array([h and bool(p) == bool(t) for h, p, t in zip(have, pred_is_left, is_left)], dtype=bool)
    err = np.asarray(error_2d_px, dtype=np.float64)
    wrong = have & ~right
    return {"handedness_accuracy": float(right[have].mean()),
            "mean_error_2d_px_hand_right": float(err[right].mean()) if right.any() else float("nan"),
            "mean_error_2d_px_hand_wrong": float(err[wrong].mean()) if wrong.any() else float("nan")}


def view_summary(error_2d_px, is_left, pred_is_left, palm_toward_camera) -> dict:
    """The 2D error and left/right split by the side of the hand the camera sees.

    Args:
        error_2d_px: (N,) per-sample mean 2D error; NaN where there is none (no hand found:
            such a sample counts for its view's left/right and not for its 2D error).
        is_left, pred_is_left: as in :func:`handedness_summary`.
        palm_toward_camera: (N,) ``keypoints.palm_toward_camera`` of the true skeletons;
            above 0 counts as a palm view; NaN where there is no true skeleton (such a
            sample is left out: its view is unknown, not a back view).

    Returns:
        ``palm_view_fraction`` (of the samples with a known view); for each of
        ``palm_view`` and ``back_view`` with samples, ``mean_error_2d_px_<view>`` (over those
        with a 2D error; NaN where none has one) and,
        where the estimator named the hand, ``handedness_accuracy_<view>``. Empty for no
        samples with a known view.
    """
    err = np.asarray(error_2d_px, dtype=np.float64)
    cos = np.asarray(palm_toward_camera, dtype=np.float64)
    known = ~np.isnan(cos)
    if not known.any():
        return {}
    palm = cos > 0
    out = {"palm_view_fraction": float(palm[known].mean())}
    for view, m in (("palm_view", palm), ("back_view", known & ~palm)):
        if not m.any():
            continue
        scored = m & np.isfinite(err)
        out[f"mean_error_2d_px_{view}"] = float(err[scored].mean()) if scored.any() else float("nan")
        sub = handedness_summary(err[m], np.asarray(is_left)[m], [p for p, k in zip(pred_is_left, m) if k])
        if sub:
            out[f"handedness_accuracy_{view}"] = sub["handedness_accuracy"]
    return out


def mirror_summary(error_2d_px, is_left, pred_skeleton_is_left, palm_toward_camera,
                   pred_palm_toward_camera) -> dict:
    """Which kind of mirror image the estimate is, where its skeleton is the other hand.

    A skeleton of the wrong chirality is either the image mirrored left-right (the thumb
    read on the little finger's side; the same side of the hand toward the camera) or the
    hand flipped in depth (a palm read as a back or a back as a palm; the 2D can still be
    right). Texture that tells a palm from a back only helps against the second kind.

    Args:
        error_2d_px: (N,) per-sample mean 2D error.
        is_left: (N,) the true hand, None where it is unknown (such a sample is left out).
        pred_skeleton_is_left: (N,) ``keypoints.is_left_hand`` of the estimated skeletons, None
            where there is none (an invalid or missing pose: such a sample is left out).
        palm_toward_camera, pred_palm_toward_camera: (N,) ``keypoints.palm_toward_camera``
            of the true and the estimated skeletons; the true one NaN where there is no
            true skeleton.

    Returns:
        ``mirrored_skeleton_fraction`` (of the samples with a known hand and a skeleton) and, where there
        are mirrored ones, ``mean_error_2d_px_mirrored`` and, where some of those have a
        true skeleton, ``mirrored_same_side_fraction`` (of those, the fraction with the true
        side toward the camera). Empty for no samples with a known hand.
    """
    err = np.asarray(error_2d_px, dtype=np.float64)
    known = np.array([t is not None and p is not None for t, p in zip(is_left, pred_skeleton_is_left)], dtype=bool)
    if not known.any():
        return {}
    truth = np.array([bool(t) for t in is_left], dtype=bool)        # read only where known
    pred = np.array([bool(p) for p in pred_skeleton_is_left], dtype=bool)
    mirrored = known & (pred != truth)
    out = {"mirrored_skeleton_fraction": float(mirrored[known].mean())}
    if mirrored.any():
        out["mean_error_2d_px_mirrored"] = float(err[mirrored].mean())
        cos = np.asarray(palm_toward_camera, dtype=np.float64)
        seen = mirrored & ~np.isnan(cos)
        if seen.any():
            same = (cos > 0) == (np.asarray(pred_palm_toward_camera) > 0)
            out["mirrored_same_side_fraction"] = float(same[seen].mean())
    return out


def per_keypoint_summary(data: dict) -> list[dict]:
    """Each keypoint's mean errors, under its name: 2D (px) over the frames where a hand was
    found, root-relative and similarity-aligned 3D (mm) over the valid frames with a true 3D
    pose; over its labelled entries only, NaN where it has none.

    Args:
        data: :func:`evaluate_folder`'s ``data``.
    """
    lab = data["labelled"]
    f = data["found"][:, None] & lab
    e2d = np.where(f, np.linalg.norm(data["pred_2d_px"] - np.nan_to_num(data["gt_2d_px"]), axis=-1), 0.0)
    ok = data["valid"] & data["has_3d"]
    rr = np.full(lab.shape, np.nan)
    pa = np.full(lab.shape, np.nan)
    if ok.any():
        P, G, L = data["pred_3d_mm"][ok], data["gt_3d_mm"][ok], lab[ok]
        rr[ok] = metrics.root_relative_errors_mm(P, G, L)
        pa[ok] = np.where(L, np.linalg.norm(metrics.similarity_align(P, G, L) - np.nan_to_num(G), axis=-1), np.nan)

    def mean(x, m):
        return float(x[m].mean()) if m.any() else float("nan")
    return [{"name": name, "error_2d_px": mean(e2d[:, k], f[:, k]),
             "root_relative_error_mm": mean(rr[:, k], ok & lab[:, k]),
             "pa_error_mm": mean(pa[:, k], ok & lab[:, k])}
            for k, name in enumerate(kp.KEYPOINT_NAMES)]


TABLE_ROWS = [
    ("num_with_3d", "frames with a true 3D pose (the others count for 2D only)", ""),
    ("num_valid_with_3d", "of those, valid poses (the 3D figures' frames)", ""),
    ("num_default_hand_size", "frames estimated with the default hand size", ""),
    ("num_unlabelled_keypoints", "keypoints the annotation leaves unlabelled (scored nowhere)", ""),
    ("mean_error_2d_px", "2D mean keypoint error", "px"),
    # the mean weighs the few frames read as the mirror image (45 px each) heavily; the median is the typical frame
    ("median_error_2d_px", "2D median keypoint error", "px"),
    ("pa_mpjpe_mm", "PA-MPJPE (similarity aligned)", "mm"),
    ("mpjpe_mm", "root-relative MPJPE", "mm"),
    ("root_depth_error_mm", "absolute root-depth error (true hand size)", "mm"),
    ("absolute_error_mm", "absolute 3D error (true hand size)", "mm"),
    ("auc_20_50", "3D PCK AUC 20-50 mm (root-relative)", ""),
    ("auc_0_50", "3D PCK AUC 0-50 mm (root-relative)", ""),
    ("found_fraction", "hand found (2D figures over these frames)", ""),
    ("valid_fraction", "valid poses", ""),
    ("handedness_accuracy", "left/right hand named right", ""),
    ("handedness_accuracy_crop_head", "left/right by the crop head alone", ""),
    ("mean_error_2d_px_hand_right", "2D mean error, hand named right", "px"),
    ("mean_error_2d_px_hand_wrong", "2D mean error, hand named wrong", "px"),
    ("palm_view_fraction", "palm toward the camera (of the frames with true 3D)", ""),
    ("mean_error_2d_px_palm_view", "2D mean error, palm toward the camera", "px"),
    ("handedness_accuracy_palm_view", "left/right named right, palm toward the camera", ""),
    ("mean_error_2d_px_back_view", "2D mean error, back toward the camera", "px"),
    ("handedness_accuracy_back_view", "left/right named right, back toward the camera", ""),
    ("mirrored_skeleton_fraction", "estimated skeleton of the other hand (a mirror image)", ""),
    ("mirrored_same_side_fraction", "of those, the true side toward the camera (thumb side misread)", ""),
    ("mean_error_2d_px_mirrored", "2D mean error, skeleton of the other hand", "px"),
]


# below this median hand extent, images are not hand crops (see the warning in main)
HAND_CROP_MIN_EXTENT = 0.5
NO_FIGURE = "n/a (0 frames)"    # the table's entry for a figure over no sample (NaN or None)


def format_table(summary: dict) -> str:
    lines = ["| figure | value |", "|---|---|"]
    for key, label, unit in TABLE_ROWS:
        if key in summary:
            v = summary[key]
            if v is None or (isinstance(v, float) and np.isnan(v)):
                lines.append(f"| {label} | {NO_FIGURE} |")
            else:
                lines.append(f"| {label} | {v:.3f}{' ' + unit if unit else ''} |" if isinstance(v, float)
                             else f"| {label} | {v} |")
    return "\n".join(lines)


def report_json(report: dict) -> str:
    """``report`` as strict JSON: a figure over no sample (NaN) becomes null, which any JSON
    reader takes; anything else non-finite is a bug and raises ValueError rather than
    writing a file that JavaScript's JSON.parse and other strict readers reject."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, float) and np.isnan(x):
            return None
        return x
    return json.dumps(clean(report), indent=1, allow_nan=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="hand25d-eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="folder with annotations.json (real_val_snap format)")
    ap.add_argument("--weights", default=None, help="weights file (default: the bundled weights)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tta", choices=TTA_MODES, default=DEFAULT_TTA,
                    help="test-time augmentation of the estimator (default flip, as HandPoseEstimator())")
    ap.add_argument("--out", type=Path, default=None, help="write report.json and pck.png here")
    ap.add_argument("--limit", type=argparse_number(int, 0, what="a whole number of samples >= 0 (0: all)"),
                    default=0, metavar="N",
                    help="evaluate the first N samples only (default 0: all of them)")
    ap.add_argument("--crop", choices=["image", "gt", "detect"], default="image",
                    help="the hand crop: the whole image (default), around the true keypoints, "
                         "or found by the detector")
    ap.add_argument("--roi-from-gt", action="store_true", help="the same as --crop gt")
    ap.add_argument("--hand-size", choices=["true", "default"], default="true",
                    help="the hand-size prior: true (default): each sample's true size, the default "
                         "size for a 2D-only sample (counted in the report); default: the default for all")
    ap.add_argument("--hand-side", choices=["true", *HAND_SIDES], default="auto",
                    help="auto (default): the estimator reads each hand from the image; true: it is "
                         "told each sample's true hand, as a user with one known hand would set it")
    ap.add_argument("--root-depth", choices=["robust", "bone"], default="robust")
    ap.add_argument("--sequence", action="store_true",
                    help="the samples are one video's frames in order: estimate them through the tracker, "
                         "whose followed hand's settled left/right picks the views (no smoothing)")
    args = ap.parse_args(argv)
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        ap.error(f"--out {args.out} exists and is not a folder")   # before the run, not after it
    from .data.public_datasets import DatasetError
    from .estimator import DeviceError, HandPoseEstimator
    from .weights import WeightsError
    try:
        est = HandPoseEstimator(weights=args.weights, device=args.device, root_depth=args.root_depth,
                                tta=args.tta)
    except (WeightsError, DeviceError, ValueError) as exc:   # a malformed --device is a ValueError
        raise SystemExit(f"hand25d-eval: {exc}") from None
    try:
        rep = evaluate_folder(est, args.folder, args.limit or None, roi_from_gt=args.roi_from_gt,
                              hand_size=args.hand_size, crop=args.crop, hand_side=args.hand_side,
                              sequence=args.sequence)
    except (WeightsError, DatasetError) as exc:
        raise SystemExit(f"hand25d-eval: {exc}") from None
    print(f"\n{args.folder} ({rep['summary']['num_samples']} images, weights {est.weights_path}, "
          f"crop {args.crop}, tta {est.tta}, hand side {args.hand_side}{', as a sequence' if args.sequence else ''})")
    print(format_table(rep["summary"]))
    extent = rep["summary"]["hand_extent_fraction_median"]
    if args.crop == "image" and not args.roi_from_gt and extent < HAND_CROP_MIN_EXTENT:
        print(f"hand25d-eval: WARNING: the hands span a median {extent:.0%} of these images, whose whole "
              "image --crop image takes for the hand crop (training crops: 59-83%); for full camera frames "
              "use --crop detect (the hands found) or --crop gt", file=sys.stderr)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        d = rep["data"]
        ok = d["valid"] & d["has_3d"]
        err = metrics.root_relative_errors_mm(d["pred_3d_mm"][ok], d["gt_3d_mm"][ok], d["labelled"][ok]) \
            [d["labelled"][ok]] if ok.any() else np.zeros((0,))
        th = np.linspace(0, 50, 51)
        pck = args.out / "pck.png"
        if d["has_3d"].any():
            metrics.plot_pck({"hand25d_ros": (th, metrics.pck_curve(err, th))}, pck)
        else:
            # a curve of zeros would read as "every keypoint missed", not "nothing to measure"
            pck.unlink(missing_ok=True)
            pck = None
        report = {"folder": str(args.folder), "weights": est.weights_path, "crop": args.crop, "tta": est.tta,
                  "hand_size": args.hand_size, "hand_side": args.hand_side, "sequence": args.sequence,
                  "root_depth": est.root_depth, "summary": rep["summary"],
                  "per_keypoint": per_keypoint_summary(rep["data"]), "per_sample": rep["per_sample"]}
        (args.out / "report.json").write_text(report_json(report))
        print(f"wrote {args.out / 'report.json'}"
              + (f" and {pck}" if pck else " (no pck.png: no sample has a true 3D pose)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

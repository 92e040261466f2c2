"""hand25d-eval: run HandPoseEstimator over an annotated folder and report errors.

    hand25d-eval ../shared/data/real_val_snap --out eval_out/

The folder holds ``annotations.json`` (``samples``: image, K, joints_3d_mm,
joints_2d_px) in our keypoint order. Each image goes through the public
``HandPoseEstimator.estimate`` exactly as a user calls it (whole image as the hand
crop, or ``--roi-from-gt`` for a box around the true keypoints), with the true
hand size as the prior so that the absolute depth error measures the method and
not the prior. Prints a table, writes ``report.json`` and ``pck.png``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from . import keypoints as kp
from . import metrics
from .crop import DEFAULT_TTA, HAND_SIDES, TTA_MODES

SEQUENCE_FPS = 30.0     # evaluate_folder(sequence=True): the frame rate its timestamps assume


def evaluate_folder(est, root, limit: int | None = None, progress: bool = True,
                    roi_from_gt: bool = False, hand_size: str = "true", crop: str = "image",
                    hand_side: str | None = None, sequence: bool = False) -> dict:
    """Evaluate ``est`` on an annotated folder.

    Args:
        est: a HandPoseEstimator.
        root: folder with annotations.json.
        limit: evaluate the first N samples only.
        roi_from_gt: crop around the true 2D keypoints (side x1.4) instead of the whole image
            (the same as ``crop="gt"``).
        crop: 'image' (the whole image is the hand crop), 'gt' (around the true keypoints) or
            'detect' (the estimator finds the hand; a frame where it finds none is not valid).
        hand_size: 'true' (each sample's true wrist->index-MCP length) or 'default'.
        hand_side: None (default): the estimator's own ``hand_side``; 'true': each sample's
            true hand, as a user who knows it would set it; or 'auto', 'left', 'right' for all.
        sequence: the samples are the frames of one video, in order: estimate them through
            ``HandPoseEstimator.track`` (30 frames/s, the crop given as the tracker's box,
            without smoothing, so a frame's 3D is its own), where a followed hand's settled
            left/right vote picks its views (``tracking``). Else each sample on its own.

    Returns:
        {"summary": {...}, "per_sample": [...], "pck": {...}}.
    """
    from .data.public_datasets import AnnotatedFolderDataset
    if hand_side not in (None, "true", *HAND_SIDES):
        raise ValueError(f"hand_side must be None, 'true' or one of {', '.join(HAND_SIDES)}; got {hand_side!r}")
    ds = AnnotatedFolderDataset(root)
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
    n = len(ds) if not limit else min(limit, len(ds))
    it = range(n)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc=f"eval {Path(root).name}", unit="img")
    pred2d, gt2d, pred3d, gt3d, valid, conf, left, pred_left = [], [], [], [], [], [], [], []
    head_left = []
    for i in it:
        s = ds[i]
        P = np.asarray(s["joints_3d_mm"], dtype=np.float64)
        is_left, true_size_m = true_hand(s)
        size_m = true_size_m if hand_size == "true" else None
        if hand_side is not None:
            est.hand_side = ("left" if is_left else "right") if hand_side == "true" else hand_side
        if crop not in ("image", "gt", "detect"):
            raise ValueError(f"crop must be 'image', 'gt' or 'detect', got {crop!r}")
        roi = {"image": "image", "gt": "image", "detect": None}[crop]
        if roi_from_gt or crop == "gt":
            uv = np.asarray(s["joints_2d_px"])
            lo, hi = uv.min(0), uv.max(0)
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
        conf.append(pose.mean_confidence)
        left.append(is_left)
        pred_left.append(pose.is_left)
        head_left.append(None if pose.left_prob is None else pose.left_prob >= 0.5)
    pred2d, gt2d = np.asarray(pred2d), np.asarray(gt2d)
    pred3d, gt3d, valid = np.asarray(pred3d), np.asarray(gt3d), np.asarray(valid)
    summary = metrics.summarize(pred2d, gt2d, pred3d, gt3d, valid)
    summary["num_samples"] = int(n)
    summary["mean_confidence"] = float(np.mean(conf)) if conf else 0.0
    err = np.linalg.norm(pred2d - gt2d, axis=-1).mean(-1) if n else np.zeros(0)
    summary.update(handedness_summary(err, left, pred_left))
    head = handedness_summary(err, left, head_left)
    if head:
        summary["handedness_accuracy_crop_head"] = head["handedness_accuracy"]
    palm_cos = kp.palm_toward_camera(gt3d) if n else np.zeros(0)
    summary.update(view_summary(err, left, pred_left, palm_cos))
    pred_cos = kp.palm_toward_camera(pred3d) if n else np.zeros(0)
    pred_chiral = kp.is_left_hand(pred3d) if n else np.zeros(0, bool)
    summary.update(mirror_summary(err, left, pred_chiral, palm_cos, pred_cos))
    per = [{"index": i, "error_2d_px": float(err[i]), "valid": bool(valid[i]), "is_left": left[i],
            "pred_is_left": pred_left[i], "crop_head_is_left": head_left[i], "palm_toward_camera": float(palm_cos[i]),
            "pred_skeleton_is_left": bool(pred_chiral[i]), "pred_palm_toward_camera": float(pred_cos[i])}
           for i in range(n)]
    return {"summary": summary, "per_sample": per,
            "data": {"pred_3d_mm": pred3d, "gt_3d_mm": gt3d, "valid": valid}}


def true_hand(sample: dict) -> tuple[bool, float]:
    """The truth an annotated sample gives about its hand: whether it is a left one (the
    annotation's ``is_left``, else the chirality of ``joints_3d_mm``) and its size (the scale
    bone's length in metres, the prior that evaluation passes as ``hand_size_m``)."""
    P = np.asarray(sample["joints_3d_mm"], dtype=np.float64)
    left = sample["is_left"] if sample.get("is_left") is not None else kp.is_left_hand(P)
    return bool(left), float(np.linalg.norm(P[kp.SCALE_BONE[0]] - P[kp.SCALE_BONE[1]]) / 1000.0)


def handedness_summary(error_2d_px, is_left, pred_is_left) -> dict:
    """How often the estimator names the right hand, and the 2D error either way.

    A hand read as its mirror image gets its fingers in reverse order, so the two error
    figures show how much of the mean that failure costs.

    Args:
        error_2d_px: (N,) per-sample mean 2D error.
        is_left: (N,) the true hand.
        pred_is_left: (N,) the estimator's answer (or the crop head's), None where it gave
            none (no hand found, or weights without a crop head).

    Returns:
        ``handedness_accuracy`` over the samples with an answer, and
        ``mean_error_2d_px_hand_right`` / ``_wrong`` (NaN where there is no such sample);
        empty when no sample has an answer.
    """
    have = np.array([p is not None for p in pred_is_left], dtype=bool)
    if not have.any():
        return {}
    right = np.array([p is not None and bool(p) == bool(t) for p, t in zip(pred_is_left, is_left)])
    err = np.asarray(error_2d_px, dtype=np.float64)
    wrong = have & ~right
    return {"handedness_accuracy": float(right[have].mean()),
            "mean_error_2d_px_hand_right": float(err[right].mean()) if right.any() else float("nan"),
            "mean_error_2d_px_hand_wrong": float(err[wrong].mean()) if wrong.any() else float("nan")}


def view_summary(error_2d_px, is_left, pred_is_left, palm_toward_camera) -> dict:
    """The 2D error and left/right split by the side of the hand the camera sees.

    Args:
        error_2d_px: (N,) per-sample mean 2D error.
        is_left, pred_is_left: as in :func:`handedness_summary`.
        palm_toward_camera: (N,) ``keypoints.palm_toward_camera`` of the true skeletons;
            above 0 counts as a palm view.

    Returns:
        ``palm_view_fraction``; for each of ``palm_view`` and ``back_view`` with samples,
        ``mean_error_2d_px_<view>`` and, where the estimator named the hand,
        ``handedness_accuracy_<view>``. Empty for no samples.
    """
    err = np.asarray(error_2d_px, dtype=np.float64)
    palm = np.asarray(palm_toward_camera, dtype=np.float64) > 0
    if not len(err):
        return {}
    out = {"palm_view_fraction": float(palm.mean())}
    for view, m in (("palm_view", palm), ("back_view", ~palm)):
        if not m.any():
            continue
        out[f"mean_error_2d_px_{view}"] = float(err[m].mean())
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
        is_left: (N,) the true hand.
        pred_skeleton_is_left: (N,) ``keypoints.is_left_hand`` of the estimated skeletons.
        palm_toward_camera, pred_palm_toward_camera: (N,) ``keypoints.palm_toward_camera``
            of the true and the estimated skeletons.

    Returns:
        ``mirrored_skeleton_fraction`` (of all samples) and, where there are mirrored ones,
        ``mirrored_same_side_fraction`` (of those, the fraction with the true side toward the
        camera) and ``mean_error_2d_px_mirrored``. Empty for no samples.
    """
    err = np.asarray(error_2d_px, dtype=np.float64)
    if not len(err):
        return {}
    mirrored = np.asarray(pred_skeleton_is_left, dtype=bool) != np.asarray(is_left, dtype=bool)
    out = {"mirrored_skeleton_fraction": float(mirrored.mean())}
    if mirrored.any():
        same = (np.asarray(palm_toward_camera) > 0) == (np.asarray(pred_palm_toward_camera) > 0)
        out["mirrored_same_side_fraction"] = float(same[mirrored].mean())
        out["mean_error_2d_px_mirrored"] = float(err[mirrored].mean())
    return out


TABLE_ROWS = [
    ("mean_error_2d_px", "2D mean keypoint error", "px"),
    ("pa_mpjpe_mm", "PA-MPJPE (similarity aligned)", "mm"),
    ("mpjpe_mm", "root-relative MPJPE", "mm"),
    ("root_depth_error_mm", "absolute root-depth error (true hand size)", "mm"),
    ("absolute_error_mm", "absolute 3D error (true hand size)", "mm"),
    ("auc_20_50", "3D PCK AUC 20-50 mm (root-relative)", ""),
    ("auc_0_50", "3D PCK AUC 0-50 mm (root-relative)", ""),
    ("valid_fraction", "valid poses", ""),
    ("handedness_accuracy", "left/right hand named right", ""),
    ("handedness_accuracy_crop_head", "left/right by the crop head alone", ""),
    ("mean_error_2d_px_hand_right", "2D mean error, hand named right", "px"),
    ("mean_error_2d_px_hand_wrong", "2D mean error, hand named wrong", "px"),
    ("palm_view_fraction", "palm toward the camera (of all frames)", ""),
    ("mean_error_2d_px_palm_view", "2D mean error, palm toward the camera", "px"),
    ("handedness_accuracy_palm_view", "left/right named right, palm toward the camera", ""),
    ("mean_error_2d_px_back_view", "2D mean error, back toward the camera", "px"),
    ("handedness_accuracy_back_view", "left/right named right, back toward the camera", ""),
    ("mirrored_skeleton_fraction", "estimated skeleton of the other hand (a mirror image)", ""),
    ("mirrored_same_side_fraction", "of those, the true side toward the camera (thumb side misread)", ""),
    ("mean_error_2d_px_mirrored", "2D mean error, skeleton of the other hand", "px"),
]


def format_table(summary: dict) -> str:
    lines = ["| figure | value |", "|---|---|"]
    for key, label, unit in TABLE_ROWS:
        if key in summary:
            v = summary[key]
            lines.append(f"| {label} | {v:.3f}{' ' + unit if unit else ''} |" if isinstance(v, float)
                         else f"| {label} | {v} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="hand25d-eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="folder with annotations.json (real_val_snap format)")
    ap.add_argument("--weights", default=None, help="weights file (default: the bundled weights)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tta", choices=TTA_MODES, default=DEFAULT_TTA,
                    help="test-time augmentation of the estimator (default flip, as HandPoseEstimator())")
    ap.add_argument("--out", type=Path, default=None, help="write report.json and pck.png here")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--crop", choices=["image", "gt", "detect"], default="image",
                    help="the hand crop: the whole image (default), around the true keypoints, "
                         "or found by the detector")
    ap.add_argument("--roi-from-gt", action="store_true", help="the same as --crop gt")
    ap.add_argument("--hand-size", choices=["true", "default"], default="true")
    ap.add_argument("--hand-side", choices=["true", *HAND_SIDES], default="auto",
                    help="auto (default): the estimator reads each hand from the image; true: it is "
                         "told each sample's true hand, as a user with one known hand would set it")
    ap.add_argument("--root-depth", choices=["robust", "bone"], default="robust")
    ap.add_argument("--sequence", action="store_true",
                    help="the samples are one video's frames in order: estimate them through the tracker, "
                         "whose followed hand's settled left/right picks the views (no smoothing)")
    args = ap.parse_args(argv)
    from .data.public_datasets import DatasetError
    from .estimator import HandPoseEstimator
    from .weights import WeightsError
    try:
        est = HandPoseEstimator(weights=args.weights, device=args.device, root_depth=args.root_depth,
                                tta=args.tta)
        rep = evaluate_folder(est, args.folder, args.limit or None, roi_from_gt=args.roi_from_gt,
                              hand_size=args.hand_size, crop=args.crop, hand_side=args.hand_side,
                              sequence=args.sequence)
    except (WeightsError, DatasetError) as exc:
        raise SystemExit(f"hand25d-eval: {exc}") from None
    print(f"\n{args.folder} ({rep['summary']['num_samples']} images, weights {est.weights_path}, "
          f"crop {args.crop}, tta {est.tta}, hand side {args.hand_side}{', as a sequence' if args.sequence else ''})")
    print(format_table(rep["summary"]))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        d = rep["data"]
        ok = d["valid"]
        err = metrics.root_relative_errors_mm(d["pred_3d_mm"][ok], d["gt_3d_mm"][ok]) \
            if ok.any() else np.zeros((0,))
        th = np.linspace(0, 50, 51)
        metrics.plot_pck({"hand25d_ros": (th, metrics.pck_curve(err, th))}, args.out / "pck.png")
        report = {"folder": str(args.folder), "weights": est.weights_path, "crop": args.crop, "tta": est.tta,
                  "hand_size": args.hand_size, "hand_side": args.hand_side, "sequence": args.sequence,
                  "root_depth": est.root_depth, "summary": rep["summary"],
                  "per_sample": rep["per_sample"]}
        (args.out / "report.json").write_text(json.dumps(report, indent=1))
        print(f"wrote {args.out / 'report.json'} and {args.out / 'pck.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

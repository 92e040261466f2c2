"""Hands in full frames: localisation accuracy, detection precision/recall and throughput.

    .venv/bin/python benchmarks/bench_localisation.py [--real ../shared/data/real_val_snap]
        [--scenes 200] [--threads 2] [--weights PATH] [--detector PATH]

1. Each real_val_snap crop (256 px, with its K) is pasted into a 640x480 synthetic frame at a
   random place and scale, with the intrinsics carried along (``K_frame = A K_crop``), and
   the estimator runs on the full frame (``estimate_hands(frame, K_frame)``: detector, crop,
   crop head). Printed: detection rate, and the same 2D/3D errors as on the
   crops given, on the pasted crop's own square in the frame (the cost of the resampling
   alone) and on the crop the pipeline found, over the frames where it found the hand
   (2D errors scaled back to the 256 px crop so that the columns compare).
2. Synthetic scenes (held-out cutouts and seed) with 0, 1 and 2 hands at 640x480:
   detector precision, recall, frames with a false hand, left/right accuracy.
3. Time per 640x480 frame with one hand: tracking (``HandTracker.update``, smoothing on) and
   detection from scratch (``estimate_hands``), median over the frames.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from hand25d_ros import HandPoseEstimator
from hand25d_ros import keypoints as kp
from hand25d_ros import metrics
from hand25d_ros.crop import DEFAULT_TTA, TTA_MODES, keypoint_box, transform_points
from hand25d_ros.data import backgrounds
from hand25d_ros.data.composites import render_cutouts
from hand25d_ros.data.public_datasets import AnnotatedFolderDataset
from hand25d_ros.detector import Detection
from hand25d_ros.detector_train import match, scene_benchmark
from hand25d_ros.tracking import HandTracker

W, H = 640, 480


def paste(rng, crop, K_crop, side_px, xy=None):
    """``crop`` resized to ``side_px`` and pasted into a synthetic W x H frame; returns the
    frame, its intrinsics and the crop -> frame affine (scale f, offset)."""
    import cv2
    bg = backgrounds.sample_background(rng, W)[:H]
    frame = (bg * 255 + 0.5).astype(np.uint8)
    if xy is None:
        xy = (int(rng.integers(0, W - side_px + 1)), int(rng.integers(0, H - side_px + 1)))
    x0, y0 = xy
    frame[y0:y0 + side_px, x0:x0 + side_px] = cv2.resize(crop, (side_px, side_px), interpolation=cv2.INTER_AREA
                                                         if side_px < crop.shape[0] else cv2.INTER_LINEAR)
    f = side_px / crop.shape[0]
    # pixel-centre convention: u_frame = (u_crop + 0.5) f - 0.5 + x0
    A = np.array([[f, 0.0, 0.5 * f - 0.5 + x0], [0.0, f, 0.5 * f - 0.5 + y0], [0.0, 0.0, 1.0]])
    return frame, A @ np.asarray(K_crop, dtype=np.float64), A


def real_pasted(est, root, seed, limit):
    """Per real crop: the estimate on the crop itself and on the crop pasted into a frame.
    Both columns are summarised over the frames where the hand was detected (the same
    samples), so that their difference is what localisation costs. Keypoints the folder
    leaves unlabelled (null) are left out of the figures and of the true box, as the
    evaluation leaves them out; a 2D-only sample (no ``joints_3d_mm``) counts for the 2D
    figures and runs with the default hand size, as in ``hand25d-eval``."""
    ds = AnnotatedFolderDataset(root)
    n = len(ds) if not limit else min(limit, len(ds))
    rng = np.random.default_rng(seed)
    rows = {"crop given": [], "true box in the frame": [], "full frame": []}
    hits = []
    for i in range(n):
        s = ds[i]
        has_3d = s.get("joints_3d_mm") is not None
        # a 2D-only sample was an IndexError here; NaN truths are what summarize skips by has_3d
        P = np.asarray(s["joints_3d_mm"], dtype=np.float64) if has_3d else np.full((kp.NUM_KEYPOINTS, 3), np.nan)
        gt2 = np.asarray(s["joints_2d_px"], dtype=np.float64)
        lab = np.asarray(s["labelled"], dtype=bool)
        size_m = float(np.linalg.norm(P[kp.SCALE_BONE[0]] - P[kp.SCALE_BONE[1]]) / 1000.0) if has_3d else None
        c = est.estimate(s["image"], s["K"], hand_size_m=size_m, roi="image")
        frame, Kf, A = paste(rng, s["image"], s["K"], int(rng.uniform(0.35, 0.95) * H))
        poses = est.estimate_hands(frame, Kf, hand_size_m=size_m, max_hands=1)
        gt2_frame = transform_points(A[:2], gt2)
        hand = {"box": keypoint_box(gt2_frame[lab], 1.0)}
        hit = bool(poses) and match([Detection.from_pose(poses[0])], [hand])[0] == 1
        hits.append(hit)
        if not hit:
            continue
        # the pasted crop's own square: what the frame's resampling costs without localisation
        f, S = A[0, 0], s["image"].shape[0]
        g = est.estimate(frame, Kf, hand_size_m=size_m, roi=(A[0, 2] - 0.5 * f, A[1, 2] - 0.5 * f, S * f, S * f))
        rows["crop given"].append((c.keypoints_2d, gt2, c.keypoints_3d * 1000.0, P, c.valid, has_3d, lab))
        for name, q in (("true box in the frame", g), ("full frame", poses[0])):
            # frame pixels back to the crop's: the same 2D figure as on the crop itself
            uv_crop = (q.keypoints_2d - A[:2, 2]) / A[0, 0]
            rows[name].append((uv_crop, gt2, q.keypoints_3d * 1000.0, P, q.valid, has_3d, lab))
    out = {}
    for k, v in rows.items():
        if not v:
            out[k] = {}
            continue
        *cols, has_3d, lab = (np.asarray(col) for col in zip(*v))
        out[k] = metrics.summarize(*cols, has_3d=has_3d, labelled=lab)
    return n, int(np.sum(hits)), out


def throughput(est, root, frames=120, seed=3):
    ds = AnnotatedFolderDataset(root) if root else None
    rng = np.random.default_rng(seed)
    if ds is not None:
        s = ds[0]
        crop, K_crop = s["image"], s["K"]
    else:
        import json
        from importlib import resources
        import cv2
        r = resources.files("hand25d_ros") / "samples"
        s = json.loads((r / "annotations.json").read_text())["samples"][0]
        crop, K_crop = cv2.cvtColor(cv2.imread(str(r / s["image"])), cv2.COLOR_BGR2RGB), s["K"]
    seq = []
    for t in range(frames):
        xy = (int(200 + 60 * np.sin(t / 15)), int(120 + 30 * np.cos(t / 20)))
        seq.append(paste(rng, crop, K_crop, 220, xy)[:2])
    tracker = HandTracker(est, max_hands=2)
    times_track, found = [], 0
    for t, (frame, K) in enumerate(seq):
        t0 = time.perf_counter()
        hands = tracker.update(frame, K, t / 30.0)
        times_track.append(time.perf_counter() - t0)
        found += len(hands) > 0
    times_det = []
    for frame, K in seq[:40]:
        t0 = time.perf_counter()
        est.estimate_hands(frame, K, max_hands=2)
        times_det.append(time.perf_counter() - t0)
    return {"tracking_ms_median": 1000 * float(np.median(times_track[5:])),
            "tracking_ms_mean": 1000 * float(np.mean(times_track[5:])),
            "tracking_fps": 1.0 / float(np.mean(times_track[5:])),
            "frames_with_hand": found / frames,
            "detect_ms_median": 1000 * float(np.median(times_det[3:]))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", type=Path, default=Path("../shared/data/real_val_snap"))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--scenes", type=int, default=200, help="synthetic scenes per hand count")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--detector", default=None)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--tta", choices=TTA_MODES, default=DEFAULT_TTA, help="the estimator's test-time augmentation")
    ap.add_argument("--skip", nargs="*", default=[], choices=["real", "scenes", "speed"])
    ap.add_argument("--bank", type=Path, default=Path("cache/det_bank_val.npz"),
                    help="held-out cutout bank of the synthetic scenes (rendered when missing; "
                         "calibrate_localisation's default)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    est = HandPoseEstimator(weights=args.weights, device="cpu", detector=args.detector, tta=args.tta)
    print(f"weights {est.weights_path}; detector threshold {est.detector.score_threshold:.3f}; "
          f"{args.threads} threads; tta {args.tta}")
    has_real = (args.real / "annotations.json").is_file()
    if "real" not in args.skip and has_real:
        n, det, rows = real_pasted(est, args.real, args.seed, args.limit)
        print(f"\n1. real_val_snap crops pasted into {W}x{H} synthetic frames: detected {det}/{n} "
              f"({100 * det / n:.1f}%)")
        print("| figure | crop given | pasted, true box | pasted, found by the detector |\n|---|---|---|---|")
        for key, label, unit in (("mean_error_2d_px", "2D mean error (256 px crop scale)", "px"),
                                 ("pa_mpjpe_mm", "PA-MPJPE", "mm"), ("mpjpe_mm", "root-relative MPJPE", "mm"),
                                 ("root_depth_error_mm", "root-depth error", "mm"),
                                 ("auc_20_50", "AUC 20-50 mm", ""), ("valid_fraction", "valid (and detected)", "")):
            fmt = (lambda v: "-" if v is None else (f"{v:.3f} {unit}".strip() if isinstance(v, float) else str(v)))
            print(f"| {label} | " + " | ".join(fmt(rows[k].get(key)) for k in rows) + " |")
    elif "real" not in args.skip:
        print(f"\n1. skipped: no {args.real}/annotations.json")
    if "scenes" not in args.skip:
        bank = render_cutouts(args.bank, 400, seed=7001, workers=2)
        K = np.array([[530.0, 0, (W - 1) / 2], [0, 530.0, (H - 1) / 2], [0, 0, 1]])

        def pipeline(image, max_hands):
            return [Detection.from_pose(p) for p in est.estimate_hands(image, K, max_hands=max_hands) if p.valid]

        rows = scene_benchmark(pipeline, bank, n_per_count=args.scenes, seed=args.seed)
        print(f"\n2. synthetic {W}x{H} scenes, {args.scenes} per hand count (held-out cutouts), "
              f"valid hands from estimate_hands (detector, crop, crop head):")
        print("| hands | precision | recall | frames with a false hand | left/right correct |\n|---|---|---|---|---|")
        for k, r in rows.items():
            f = (lambda v: "-" if v is None else f"{v:.3f}")
            print(f"| {k} | {f(r['precision'])} | {f(r['recall'])} | {r['frames_with_false_hand']:.3f} | "
                  f"{f(r['left_right_accuracy'])} |")
    if "speed" not in args.skip:
        sp = throughput(est, args.real if has_real else None)
        print(f"\n3. {W}x{H}, one hand, {args.threads} threads: tracking {sp['tracking_ms_median']:.1f} ms median "
              f"({sp['tracking_fps']:.1f} frames/s mean, hand in {100 * sp['frames_with_hand']:.0f}% of frames); "
              f"detection from scratch {sp['detect_ms_median']:.1f} ms median")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

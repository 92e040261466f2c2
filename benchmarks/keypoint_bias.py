"""Where the estimate sits on average relative to each label: the mean residual (label minus
estimate) per keypoint, in the hand's own directions, on an annotated folder.

A mean error that a keypoint shows on photos and not on renders is either a label
convention (where a dataset puts the knuckle or the fingertip) or something the network
reads differently in a photo; a mean residual that every view shares points at the first,
one that flips with the view at the second. This prints, per keypoint:

- 3D (mm), after aligning the estimate to the label by similarity (``metrics.similarity_align``,
  as PA-MPJPE), in the keypoint's bone frame from the labels: ``along`` the bone into the
  keypoint (the wrist: toward the middle MCP), ``dorsal`` out of the back of the hand
  (the palm's normal made square to the bone), ``thumbward`` across, toward the thumb's
  side (the same for left and right hands);
- 2D (px), unaligned, in the image's hand frame: ``along`` wrist -> middle MCP, ``across``
  toward the index side;

over all frames, and the 3D dorsal column split by the side the camera sees
(``keypoints.palm_toward_camera`` of the labels above +0.3 or below -0.3).

    python benchmarks/keypoint_bias.py ../shared/data/real_val_snap cache/synth_val27 --hand-side true

The stage-27 measure is in docs/training_history.md. It only measures: nothing at training
or inference reads it, and it fits nothing.
"""
import argparse
import sys
import time

import numpy as np

from hand25d_ros import keypoints as kp
from hand25d_ros.metrics import errors_2d_px, similarity_align

def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def bone_frames(gt: np.ndarray) -> np.ndarray:
    """Each keypoint's (along, dorsal, thumbward) unit axes from the labelled skeleton.

    Args:
        gt: (N, 21, 3) labels in a right-handed frame (the camera optical frame), any unit.

    Returns:
        (N, 21, 3, 3): [..., 0, :] along the bone into the keypoint (the wrist's: wrist ->
        middle MCP), [..., 1, :] out of the back of the hand, square to it, [..., 2, :]
        toward the thumb's side, square to both. Mirror images of one hand get mirrored axes.
    """
    g = np.asarray(gt, dtype=np.float64)
    left = kp.is_left_hand(g)
    dorsal = -kp.palm_normal(g)[:, None, :]
    along = g - g[:, np.clip(kp.PARENTS, 0, None)]
    along[:, 0] = g[:, kp.MIDDLE_MCP] - g[:, kp.WRIST]      # the wrist has no parent
    along = _unit(along)
    dorsal = _unit(dorsal - along * (dorsal * along).sum(-1, keepdims=True))
    thumbward = np.cross(along, dorsal)
    # cross(along, dorsal) is the thumb's side of a left hand and the little finger's of a right one
    thumbward = np.where(left[:, None, None], thumbward, -thumbward)
    return np.stack([along, dorsal, thumbward], -2)


def residuals_3d(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, 21, 3) label minus the similarity-aligned estimate, in :func:`bone_frames` axes.

    Args:
        pred, gt: (N, 21, 3), the same unit.
    """
    e = np.asarray(gt, dtype=np.float64) - similarity_align(pred, gt)
    return np.einsum("nkij,nkj->nki", bone_frames(gt), e)


def residuals_2d(pred_px: np.ndarray, gt_px: np.ndarray) -> np.ndarray:
    """(N, 21, 2) label minus estimate in the labelled hand's image axes: along wrist ->
    middle MCP, and across it toward the index MCP's side.

    Args:
        pred_px, gt_px: (N, 21, 2) pixels.
    """
    g = np.asarray(gt_px, dtype=np.float64)
    along = _unit(g[:, kp.MIDDLE_MCP] - g[:, kp.WRIST])
    across = np.stack([-along[:, 1], along[:, 0]], -1)
    toward_index = ((g[:, kp.INDEX_MCP] - g[:, kp.PINKY_MCP]) * across).sum(-1, keepdims=True) >= 0
    across = np.where(toward_index, across, -across)
    return np.einsum("nij,nkj->nki", np.stack([along, across], 1), g - np.asarray(pred_px, dtype=np.float64))


def table(res3: np.ndarray, res2: np.ndarray, err2: np.ndarray, palm_cos: np.ndarray) -> str:
    """The per-keypoint means as text (see the module's docstring)."""
    palm, back = palm_cos > 0.3, palm_cos < -0.3
    head = (f"{'kp':>3} | {'3D mm: along':>12} {'dorsal':>7} {'thumbward':>9} | {'dorsal, palm seen':>17} "
            f"{'back seen':>9} | {'2D px: along':>12} {'across':>7} | {'2D error':>8}")
    lines = [f"frames: {len(res3)}, palm seen {int(palm.sum())}, back seen {int(back.sum())}", head]
    split = lambda m, k: f"{res3[m, k, 1].mean():.1f}" if m.any() else "-"  # noqa: E731
    for k in range(kp.NUM_KEYPOINTS):
        a, d, t = res3[:, k].mean(0)
        u, v = res2[:, k].mean(0)
        lines.append(f"{k:>3} | {a:12.1f} {d:7.1f} {t:9.1f} | {split(palm, k):>17} {split(back, k):>9} | "
                     f"{u:12.1f} {v:7.1f} | {err2[:, k].mean():8.1f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", help="annotated folders (annotations.json with joints_3d_mm)")
    ap.add_argument("--weights", default=None, help="weights file (default: the bundled weights)")
    ap.add_argument("--hand-side", default=None, choices=("true", "auto"),
                    help="true: tell the estimator each frame's hand, so mirror readings do not "
                         "swamp the means (default: the estimator's own, auto)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    from hand25d_ros.estimator import HandPoseEstimator
    from hand25d_ros.evaluate import evaluate_folder
    est = HandPoseEstimator(weights=args.weights)
    for folder in args.folders:
        t0 = time.perf_counter()
        d = evaluate_folder(est, folder, progress=False, hand_side=args.hand_side)["data"]
        ok = d["valid"] & d["has_3d"] & d["labelled"].all(1)
        if not ok.any():
            print(f"{folder}: no valid estimate of a fully labelled 3D frame", file=sys.stderr)
            return 1
        gt3 = d["gt_3d_mm"][ok]
        err2 = errors_2d_px(d["pred_2d_px"][ok], d["gt_2d_px"][ok])
        print(f"\n{folder} (2D mean error over these frames {err2.mean():.2f} px; {time.perf_counter() - t0:.0f} s)")
        print(table(residuals_3d(d["pred_3d_mm"][ok], gt3), residuals_2d(d["pred_2d_px"][ok], d["gt_2d_px"][ok]),
                    err2, kp.palm_toward_camera(gt3)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

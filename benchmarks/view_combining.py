"""Ways of combining the test-time views of a crop, compared on the same network outputs.

The network runs once per frame on the crop, its copies rotated about the centre by
``--angles`` and the mirrors of all of them; each way of combining those views is then
replayed through ``hand25d-eval``'s own evaluation (whole image as the crop, true hand size),
so that only the combining differs. This is how the estimator's ``confident_view_weights``
was chosen (on the synthetic test sets; README model card, "Views weighted by confidence").

    python benchmarks/view_combining.py cache/synth_test
    python benchmarks/view_combining.py ../shared/data/real_val_snap --angles 0 -15 15 -30 30
    python benchmarks/view_combining.py cache/synth_test --known-hand --fallback 15 15,30 30,45 15,30,45

Views (the first column): ``flip`` the crop and its mirror, ``six`` the first three angles
(by default the crop and its +-15 degree copies) and their mirrors, ``all`` every view
(with more than three angles). Rules:
  mean: the plain mean; majority: the views on the majority's hand (a tie to view 0);
  head: the views on the crop head's hand (its probability averaged over the views);
  majority_head: the majority, a tie to the crop head; conf_sum: the hand whose views have
  the higher mean confidence; confident: the views on the most confident view's hand;
  confident_weighted: the same, weighted by confidence (the estimator's).
With ``--known-hand`` it then replays each frame told its true hand (``hand25d-eval
--hand-side true``): the views ``none`` (the crop alone), ``flip`` and ``six`` on that hand
(confidence-weighted), and, for a frame none of whose views is that hand, the views on it
among each ``--fallback`` set of further rotations (each angle both ways, each view mirrored too), as
``HandPoseEstimator.predict_crops`` does with ``FALLBACK_VIEWS_DEG`` (how that set was chosen).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hand25d_ros.crop import FALLBACK_VIEWS_DEG
from hand25d_ros.estimator import (HandPoseEstimator, combine_views_with_fallback, confident_view_weights,
                                   mean_of_views, skeleton_is_left)
from hand25d_ros.evaluate import evaluate_folder

RULES = ("mean", "majority", "head", "majority_head", "conf_sum", "confident", "confident_weighted")


def view_weights(rule: str, uv, z, conf, p_left) -> np.ndarray:
    """(B, V) weights of the views for one rule; uv (B, V, 21, 2), z/conf (B, V, 21), p_left (B, V)."""
    B, V = z.shape[:2]
    if rule == "mean":
        return np.ones((B, V))
    if rule == "confident_weighted":
        return confident_view_weights(uv, z, conf)
    left = skeleton_is_left(uv, z)
    n_left = left.sum(1)
    head_left = p_left.mean(1) >= 0.5
    c = conf.mean(-1)
    if rule == "majority":
        hand = np.where(2 * n_left == V, left[:, 0], 2 * n_left > V)
    elif rule == "majority_head":
        hand = np.where(2 * n_left == V, head_left, 2 * n_left > V)
    elif rule == "head":
        hand = head_left
    elif rule == "conf_sum":
        c_left = (c * left).sum(1) / np.maximum(n_left, 1)
        c_right = (c * ~left).sum(1) / np.maximum(V - n_left, 1)
        hand = c_left > c_right
    elif rule == "confident":
        hand = left[np.arange(B), c.argmax(1)]
    else:
        raise ValueError(f"unknown rule {rule!r}; choose from {RULES}")
    keep = left == hand[:, None]
    keep[~keep.any(1)] = True
    return keep.astype(np.float64)


class ReplayEstimator(HandPoseEstimator):
    """The estimator with its views recorded on the first pass and combined by ``rule``."""

    def setup_views(self, angles_deg, subset):
        self.angles_deg, self.subset, self.recorded, self.replay_at, self.rule = angles_deg, subset, [], None, "mean"
        self.fallback = []

    def predict_crops(self, crops_rgb, hand_is_left=None):
        # evaluate_folder frame by frame, as here, gives no followed hand: hand_is_left is None
        if self.replay_at is None:
            uv, z, conf, logits = self.predict_views(crops_rgb, self.angles_deg, mirror=True)
            p = 1.0 / (1.0 + np.exp(-logits))
            out = (uv, z, conf, p[..., 0], p[:, 0])
            self.recorded.append(out)
        else:
            out = self.recorded[self.replay_at]
            self.replay_at += 1
        uv, z, conf, p_left, head = out
        if self.rule == "known":
            return known_hand_answer(uv, z, conf, self.subset, self.fallback, self.hand_side == "left") + (head,)
        idx = self.subset
        uv, z, conf, p_left = uv[:, idx], z[:, idx], conf[:, idx], p_left[:, idx]
        w = view_weights(self.rule, uv, z, conf, p_left)
        w = w / w.sum(1, keepdims=True)
        uv_mean = mean_of_views(torch.from_numpy(uv), torch.from_numpy(w)).numpy()
        return uv_mean, (z * w[..., None]).sum(1), (conf * w[..., None]).sum(1), head


def known_hand_answer(uv, z, conf, subset, fallback, is_left: bool):
    """The answer from the views ``subset`` on the known hand, or where none is, from the views
    ``fallback`` on it (when there are any); view indices into the recorded (B, V, ...) arrays."""
    more_views = (lambda idx: tuple(t[idx][:, fallback] for t in (uv, z, conf))) if fallback else None
    return combine_views_with_fallback(uv[:, subset], z[:, subset], conf[:, subset], [is_left] * len(uv),
                                       more_views)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--angles", type=float, nargs="+", default=[0.0, -15.0, 15.0],
                    help="rotations of the crop in degrees, the first 0 (default 0 -15 15)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--known-hand", action="store_true",
                    help="also replay each frame told its true hand, with and without the --fallback views")
    ap.add_argument("--fallback", nargs="+", default=None, metavar="DEG,DEG,...",
                    help="sets of further rotations for --known-hand, each comma-separated and each angle "
                         "taken both ways, e.g. 30,45 for -30, 30, -45, 45 (default: the estimator's "
                         "FALLBACK_VIEWS_DEG)")
    args = ap.parse_args(argv)
    if args.angles[0] != 0.0 or len(args.angles) < 3:
        raise SystemExit("view_combining: --angles must start with 0 and hold at least 0 and two rotations")
    try:
        fallbacks = [tuple(x for a in f.split(",") for x in (-abs(float(a)), abs(float(a)))) for f in args.fallback] \
            if args.fallback else [tuple(FALLBACK_VIEWS_DEG)]
    except ValueError:
        raise SystemExit(f"view_combining: --fallback takes comma-separated angles, got {args.fallback}") from None
    torch.set_num_threads(args.threads)
    est = ReplayEstimator(weights=args.weights, device="cpu", tta="none")
    # the fallback rotations are recorded too, after the given ones
    angles = list(args.angles) + (sorted({a for f in fallbacks for a in f} - set(args.angles), key=abs)
                                  if args.known_hand else [])
    A, given = len(angles), range(len(args.angles))
    subsets = {"flip": [0, A], "six": [0, 1, 2, A, A + 1, A + 2]}
    if len(given) > 3:
        subsets["all"] = [*given, *(A + i for i in given)]
    est.setup_views(angles, subsets["six"])
    t0 = time.perf_counter()
    evaluate_folder(est, args.folder, progress=False)      # records every view
    print(f"{args.folder}: {len(est.recorded)} frames, {2 * A} views each ({time.perf_counter() - t0:.0f} s)")
    print(f"{'views':6s} {'rule':20s} {'2D px':>7s} {'PA mm':>7s} {'root mm':>8s} {'left/right':>10s} {'mirror':>7s}")
    for name, subset in subsets.items():
        for rule in RULES:
            est.subset, est.rule, est.replay_at = subset, rule, 0
            s = evaluate_folder(est, args.folder, progress=False)["summary"]
            print(f"{name:6s} {rule:20s} {s['mean_error_2d_px']:7.3f} {s['pa_mpjpe_mm']:7.3f} "
                  f"{s['root_depth_error_mm']:8.2f} {s['handedness_accuracy']:10.3f} "
                  f"{s['mirrored_skeleton_fraction']:7.3f}")
    if args.known_hand:
        print("\ntold the true hand (hand25d-eval --hand-side true); fallback: the further rotations")
        known_subsets = {"none": [0], "flip": subsets["flip"], "six": subsets["six"]}
        for name, subset in known_subsets.items():
            for f in [()] + fallbacks:
                est.subset, est.rule, est.replay_at = subset, "known", 0
                est.fallback = [angles.index(a) for a in f] + [A + angles.index(a) for a in f]
                s = evaluate_folder(est, args.folder, progress=False, hand_side="true")["summary"]
                label = ",".join(f"{a:g}" for a in f) or "-"
                print(f"{name:6s} {label:20s} {s['mean_error_2d_px']:7.3f} {s['pa_mpjpe_mm']:7.3f} "
                      f"{s['root_depth_error_mm']:8.2f} {s['handedness_accuracy']:10.3f} "
                      f"{s['mirrored_skeleton_fraction']:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Set the detector's score threshold for the whole localisation pipeline.

    python -m hand25d_ros.tools.calibrate_localisation --detector runs/detector/detector.pt \
        --out hand25d_ros/weights/hand_detector.pt [--weights POSE_WEIGHTS]

The detector alone has to be strict to keep false hands out of empty frames, which costs
recall. In the pipeline a detection only becomes a hand when the 2.5D network's crop head
also sees one (``HandPoseEstimator.estimate_hands``), so the detector may propose more.
This picks the lowest detector threshold at which at most ``--max-false-rate`` of
held-out empty synthetic scenes still yield a hand, prints the recall that buys on
held-out one-hand scenes, and writes the detector file with that threshold and the
figures in its metadata (the network weights are unchanged).
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from .._checks import WHOLE_AT_LEAST_1, WHOLE_NON_NEGATIVE, argparse_number, require_render_extra
from ..data.composites import composite_scene, render_cutouts
from ..detector import Detection, save_detector
from ..detector_train import match


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def best_passing_score(est, image, K, max_hands: int = 2) -> tuple[float, list]:
    """Highest detector score among proposals the crop head accepts (0 if none), and the
    accepted proposals with their scores."""
    props = [p for p in est.propose_hands(image, K, max_hands=max_hands) if p.valid and est.is_hand(p)]
    return max((p.detection_score for p in props), default=0.0), props


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detector", type=Path, required=True, help="detector file to calibrate")
    ap.add_argument("--out", type=Path, required=True, help="calibrated detector file to write")
    ap.add_argument("--weights", default=None, help="pose weights (default: the bundled ones)")
    # checked as argparse reads them: --empty 0 ended in an IndexError after loading both networks
    ap.add_argument("--empty", type=WHOLE_AT_LEAST_1, default=400, help="held-out empty scenes")
    ap.add_argument("--hands", type=WHOLE_AT_LEAST_1, default=200, help="held-out one-hand scenes")
    ap.add_argument("--max-false-rate", type=argparse_number(float, 0.0, 1.0, hi_open=True, what="a rate in [0, 1)"),
                    default=0.01)
    ap.add_argument("--floor", type=argparse_number(float, 0.0, 1.0, what="a score in [0, 1]"), default=0.15,
                    help="lowest threshold allowed")
    ap.add_argument("--seed", type=WHOLE_NON_NEGATIVE, default=9090)
    ap.add_argument("--bank", type=Path, default=Path("cache/det_bank_val.npz"),
                    help="held-out cutout bank (rendered when missing; the detector's validation bank)")
    ap.add_argument("--bank-size", type=WHOLE_AT_LEAST_1, default=400)
    args = ap.parse_args(argv)
    if args.out.is_dir():   # found only when the file is written, after all the work, leaving a .tmp beside it
        raise SystemExit(f"calibrate_localisation: --out {args.out} is a folder; give the detector file to write")
    # before any work: its scenes and cutout bank are rendered
    require_render_extra("calibrate_localisation")
    from ..estimator import HandPoseEstimator
    from ..weights import WeightsError
    try:   # the detector file loads on first use
        est = HandPoseEstimator(weights=args.weights, device="cpu", detector=args.detector)
        model, meta = est.detector.model, est.detector.meta
    except WeightsError as exc:    # a mistyped --detector or --weights: its message, not a traceback
        raise SystemExit(f"calibrate_localisation: {exc}") from None
    est.detector.score_threshold = args.floor
    K = np.array([[530.0, 0, 319.5], [0, 530.0, 239.5], [0, 0, 1]])
    empty = []
    for i in range(args.empty):
        image, _ = composite_scene(np.random.default_rng((args.seed, 0, i)), None, 640, 480, n_hands=0)
        empty.append(best_passing_score(est, image, K)[0])
    empty = np.asarray(empty)
    thr = float(max(args.floor, np.quantile(empty, 1.0 - args.max_false_rate) + 1e-3))
    bank = render_cutouts(args.bank, args.bank_size, seed=7001, workers=2 if args.bank_size > 100 else 1)
    hit_scores = []
    for i in range(args.hands):
        image, hands = composite_scene(np.random.default_rng((args.seed, 1, i)), bank, 640, 480, n_hands=1,
                                       side_range_frac=(0.08, 0.7))
        _, props = best_passing_score(est, image, K)
        _, _, _, pairs = match([Detection.from_pose(p) for p in props], hands)
        hit_scores.append(pairs[0][0].score if pairs else 0.0)
    hit_scores = np.asarray(hit_scores)
    figures = {"score_threshold": thr, "empty_scenes": int(args.empty),
               "empty_scenes_with_a_hand": float((empty >= thr).mean()),
               "one_hand_scenes": int(args.hands), "recall": float((hit_scores >= thr).mean()),
               "detector_alone_threshold": float(meta.get("score_threshold", 0.0)),
               # the file's name and digest, not its path: the metadata ships inside the package
               "pose_weights": Path(est.weights_path).name, "pose_weights_sha256": file_sha256(est.weights_path),
               "hand_threshold": est.hand_threshold}
    meta = dict(meta, score_threshold=thr, pipeline_calibration=figures)
    save_detector(model, args.out, {"input_size": model.input_size}, meta)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

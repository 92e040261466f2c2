"""Does the network look at the skin? Left/right and 2D error with the skin's cues blanked.

    .venv/bin/python benchmarks/skin_cues.py [--weights PATH] [--n 300] [--seed 777]
        [--hand-detail 1.0] [--threads 1]

Renders the same synthetic crops (network input size, the training generator's settings)
twice: as generated, and with every cue that tells a palm from the back of a hand
blanked (the per-vertex palm tint, nails, creases and knuckle shading, and the renderer's
skin detail). Pose, camera, background and labels are the same in both. A network that
reads those cues loses left/right accuracy when they go; one that reads only the
silhouette and shading does not. Printed per condition: how often the crop head names the
hand right, the 2D mean error (crop pixels) and that error on the crops named wrong.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from hand25d_ros import HandPoseEstimator
from hand25d_ros.data.synthetic import SyntheticConfig, SyntheticHandGenerator
from hand25d_ros.evaluate import handedness_summary

_CUE_MASKS = ("palm", "nail", "crease", "knuckle")


def render(n: int, seed: int, size_px: int, hand_detail: float, blank: bool):
    """(n, S, S, 3) crops, (n, 21, 2) keypoints, (n,) is_left."""
    gen = SyntheticHandGenerator(SyntheticConfig(crop_size_px=size_px, hand_detail=0.0 if blank else hand_detail),
                                 seed=seed)
    if blank:
        # the per-vertex colouring's masks; nothing public sets them, this benchmark is the
        # one place that wants a hand without them
        look = gen._lazy()["look"]
        for name in _CUE_MASKS:
            setattr(look, name, np.zeros_like(getattr(look, name)))
    samples = [gen.sample(i) for i in range(n)]
    return (np.stack([s["image"] for s in samples]), np.stack([s["joints_2d_px"] for s in samples]),
            np.array([s["is_left"] for s in samples]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=None, help="weights file (default: the bundled weights)")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--hand-detail", type=float, default=1.0, help="skin-detail strength of the unblanked crops")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    est = HandPoseEstimator(weights=args.weights, device="cpu", tta="none")
    if getattr(est.model, "crop_head", None) is None:
        raise SystemExit("these weights have no crop head: there is no left/right answer to test")
    print(f"weights {est.weights_path}; {args.n} crops of {est.input_size} px, seed {args.seed}")
    print("| skin cues | left/right right | 2D mean error (crop px) | 2D error when named wrong |")
    print("|---|---|---|---|")
    for blank in (False, True):
        imgs, uv, is_left = render(args.n, args.seed, est.input_size, args.hand_detail, blank)
        out = [est.predict_crops(imgs[k:k + 50]) for k in range(0, len(imgs), 50)]
        pred = np.concatenate([o[0] for o in out])
        left_prob = np.concatenate([o[3] for o in out])[:, 0]
        err = np.linalg.norm(pred - uv, axis=-1).mean(-1)
        hs = handedness_summary(err, is_left, list(left_prob >= 0.5))
        wrong = hs["mean_error_2d_px_hand_wrong"]
        label = "blanked" if blank else f"as rendered (hand_detail {args.hand_detail:g})"
        print(f"| {label} | {hs['handedness_accuracy']:.3f} | {err.mean():.2f} | "
              f"{'-' if np.isnan(wrong) else f'{wrong:.2f}'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

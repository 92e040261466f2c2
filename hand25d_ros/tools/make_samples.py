"""Render the sample frames bundled with the package (hand25d_ros/samples/), or a
held-out synthetic test set in the same annotated-folder format.

    python -m hand25d_ros.tools.make_samples --out hand25d_ros/samples --n 8 --seed 7
    python -m hand25d_ros.tools.make_samples --out cache/synth_test --n 500 --seed 424242 --test-set

Writes frame_XX.png (RGB hand images, 256 x 256) and frames.json with each frame's
intrinsics and true keypoints, so the demo can show its error as well as its output.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--test-set", action="store_true",
                    help="the training distribution (all orientations, occluders): a held-out synthetic test set")
    args = ap.parse_args(argv)
    from ..data.synthetic import SyntheticConfig, SyntheticHandGenerator
    if args.test_set:
        cfg = SyntheticConfig(crop_size_px=args.size)
    else:
        # camera-facing hands without occluders: what a user holds up to a camera
        cfg = SyntheticConfig(crop_size_px=args.size, p_upright=1.0, p_occluder=0.0,
                              p_motion_blur=0.0, crop_scale=(1.35, 1.5))
    gen = SyntheticHandGenerator(cfg, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    frames = []
    for i in range(args.n):
        s = gen.sample(i)
        name = f"frame_{i:02d}.png"
        cv2.imwrite(str(args.out / name), cv2.cvtColor(s["image"], cv2.COLOR_RGB2BGR))
        frames.append({"image": name, "K": np.round(s["K"], 6).tolist(),
                       "joints_3d_mm": np.round(s["joints_3d_mm"], 3).tolist(),
                       "joints_2d_px": np.round(s["joints_2d_px"], 3).tolist(),
                       "is_left": bool(s["is_left"])})
    (args.out / "annotations.json").write_text(json.dumps({"source": f"hand25d_ros synthetic renderer, seed {args.seed}",
                                                           "samples": frames}, indent=1))
    print(f"wrote {args.n} frames to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How sharp and busy the backgrounds are, behind the hand and on it, in annotated folders.

Each image is area-resized to the network's 128 px input; the figure is the mean absolute
high-pass (grey level minus its Gaussian blur, sigma 1.5 px, 0-255 scale) over the hand
(the skeleton's lines drawn 5 px wide and the palm's hull) and over the background farther
than 7 px from it. It compares renders with photos: the network's left/right reading on
real_val_snap improved when the photos were blurred, and their backgrounds (a drinks fridge)
measured more than twice as busy as the renders'.

    python benchmarks/background_detail.py ../shared/data/real_val_snap cache/synth_test_detail
"""
import argparse
import json
from pathlib import Path

import cv2
import numpy as np

PALM = [0, 1, 2, 5, 9, 13, 17]


def hand_mask(uv_px: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool: the skeleton's bones 5 px wide and the palm's convex hull."""
    m = np.zeros((size, size), np.uint8)
    for f in range(5):
        chain = [0] + list(range(1 + 4 * f, 5 + 4 * f))
        for a, b in zip(chain[:-1], chain[1:]):
            cv2.line(m, tuple(int(v) for v in uv_px[a]), tuple(int(v) for v in uv_px[b]), 1, 5)
    cv2.fillConvexPoly(m, cv2.convexHull(uv_px[PALM].astype(np.int32)), 1)
    return m.astype(bool)


def high_pass(folder: Path, limit: int, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Per-image mean |high-pass| on the hand and on the background."""
    samples = json.loads((folder / "annotations.json").read_text())["samples"][:limit]
    hand, bg = [], []
    for s in samples:
        im = cv2.imread(str(folder / s["image"]), cv2.IMREAD_GRAYSCALE)
        if im is None:
            raise SystemExit(f"{folder / s['image']}: cannot read the image")
        f = size / max(im.shape)
        grey = cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
        hp = np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 1.5))
        m = hand_mask(np.asarray(s["joints_2d_px"], np.float32) * f, size)
        far = ~cv2.dilate(m.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
        hand.append(hp[m].mean())
        if far.sum() > 100:
            bg.append(hp[far].mean())
    return np.array(hand), np.array(bg)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--limit", type=int, default=300)
    args = ap.parse_args(argv)
    print(f"{'folder':45s} {'frames':>6s} {'hand':>6s} {'background':>10s} {'background p10/p50/p90':>24s}")
    for folder in args.folders:
        hand, bg = high_pass(folder, args.limit)
        p = np.percentile(bg, [10, 50, 90])
        print(f"{str(folder):45s} {len(hand):6d} {hand.mean():6.2f} {bg.mean():10.2f} "
              f"{p[0]:8.2f}{p[1]:8.2f}{p[2]:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

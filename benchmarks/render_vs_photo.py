"""Renders against photos: how sharp and busy the image is on and behind the hand, and the
colour of the skin, in annotated folders (real_val_snap format).

Each image is area-resized to the network's 128 px input. Detail is the mean absolute
high-pass (grey level minus its Gaussian blur, sigma 1.5 px, 0-255 scale) over the hand
(the skeleton's lines drawn 5 px wide and the palm's hull) and over the background farther
than 7 px from it. Skin is the per-image median hue (degrees), saturation and value (0-1,
OpenCV HSV) inside the hand mask shrunk by a pixel, reported as the 10th/50th/90th
percentiles over the images.

    python benchmarks/render_vs_photo.py ../shared/data/real_val_snap cache/synth_test_detail
"""
import argparse
from pathlib import Path

import cv2
import numpy as np

from hand25d_ros import keypoints as kp

PALM = [0, 1, 2, 5, 9, 13, 17]


def hand_mask(uv_px: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool: the skeleton's bones 5 px wide and the palm's convex hull."""
    m = np.zeros((size, size), np.uint8)
    for a, b in kp.BONES:
        cv2.line(m, tuple(int(v) for v in uv_px[a]), tuple(int(v) for v in uv_px[b]), 1, 5)
    cv2.fillConvexPoly(m, cv2.convexHull(uv_px[PALM].astype(np.int32)), 1)
    return m.astype(bool)


def image_stats(folder: Path, limit: int, size: int = 128) -> dict:
    """Per-image mean |high-pass| on the hand and on the background, and the skin's median
    hue, saturation and value."""
    from hand25d_ros.data.public_datasets import AnnotatedFolderDataset
    ds = AnnotatedFolderDataset(folder)
    out = {"hand": [], "background": [], "hue": [], "saturation": [], "value": []}
    for i in range(min(limit, len(ds))):
        s = ds[i]
        im = s["image"]
        f = size / max(im.shape[:2])
        im = cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32)
        hp = np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 1.5))
        m = hand_mask(np.asarray(s["joints_2d_px"], np.float32) * f, size)
        far = ~cv2.dilate(m.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
        out["hand"].append(hp[m].mean())
        if far.sum() > 100:
            out["background"].append(hp[far].mean())
        inner = cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        hsv = cv2.cvtColor(im, cv2.COLOR_RGB2HSV).astype(np.float64)[inner if inner.any() else m]
        out["hue"].append(np.median(hsv[:, 0]) * 2.0)         # OpenCV stores hue / 2
        out["saturation"].append(np.median(hsv[:, 1]) / 255.0)
        out["value"].append(np.median(hsv[:, 2]) / 255.0)
    return {k: np.array(v) for k, v in out.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--limit", type=int, default=300)
    args = ap.parse_args(argv)
    def pct(v, fmt):
        return "/".join(format(x, fmt) for x in np.percentile(v, [10, 50, 90]))

    print("detail: mean |high-pass| (0-255) on the hand and behind it (background: mean, p10/p50/p90);"
          " skin: p10/p50/p90 of per-image medians")
    print(f"{'folder':40s} {'frames':>6s} {'hand':>5s} {'bg':>5s} {'bg p10/50/90':>15s} {'skin hue deg':>13s} "
          f"{'skin sat':>15s} {'skin value':>15s}")
    for folder in args.folders:
        st = image_stats(folder, args.limit)
        print(f"{str(folder):40s} {len(st['hand']):6d} {st['hand'].mean():5.2f} {st['background'].mean():5.2f} "
              f"{pct(st['background'], '.1f'):>15s} {pct(st['hue'], '.0f'):>13s} "
              f"{pct(st['saturation'], '.2f'):>15s} {pct(st['value'], '.2f'):>15s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

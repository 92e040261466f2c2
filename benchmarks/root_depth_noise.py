"""Which root-depth estimate survives noisy 2.5D predictions better: the scale bone
alone (the paper's) or the median over palm bones (``method='robust'``)?

    .venv/bin/python benchmarks/root_depth_noise.py [--data ../shared/data/real_val_snap]

Takes the true poses and intrinsics of an annotated folder, adds Gaussian noise to the
2D keypoints (px) and to the normalised depths, lifts with one hand size for all
frames (the median scale bone of the first half, as a user would set it), and prints
the root-depth error and the absolute 3D error (mm) of both estimates. Bone ratios
and hand size come from the first half of the poses, errors from the second half.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from hand25d_ros import geometry as geo
from hand25d_ros import keypoints as kp


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/real_val_snap"))
    ap.add_argument("--trials", type=int, default=20)
    args = ap.parse_args()
    ann = json.loads((args.data / "annotations.json").read_text())["samples"]
    P = np.array([s["joints_3d_mm"] for s in ann], dtype=np.float64)
    K = np.array([s["K"] for s in ann], dtype=np.float64)
    half = len(P) // 2
    ratios = geo.bone_ratios_from_poses(P[:half])
    hand_size_m = float(np.median(np.linalg.norm(P[:half, 5] - P[:half, 0], axis=-1))) / 1000.0
    P, K = P[half:], K[half:]
    uv, z, _ = geo.pose_to_25d(P, K)
    rng = np.random.default_rng(0)
    print(f"{len(P)} poses from {args.data}; noise added to 2D (px) and normalised depth")
    print("| 2D noise px | z noise | root-depth err bone | robust | abs 3D err bone | robust | invalid bone | robust |")
    print("|---|---|---|---|---|---|---|---|")
    for sigma_px, sigma_z in [(0, 0), (1, 0.02), (2, 0.05), (4, 0.1), (8, 0.2)]:
        res = {"bone": ([], [], 0), "robust": ([], [], 0)}
        for _ in range(args.trials):
            uv_n = uv + rng.normal(0, sigma_px, uv.shape)
            z_n = z + rng.normal(0, sigma_z, z.shape)
            for method in res:
                Ph, st = geo.reconstruct_metric(uv_n, z_n, K, hand_size_m, method=method, bone_ratios=ratios)
                ok = st <= int(geo.RootDepthStatus.CLAMPED)
                rd, ab, bad = res[method]
                rd.extend(np.abs(Ph[ok, kp.ROOT, 2] * 1000 - P[ok, kp.ROOT, 2]))
                ab.extend(np.linalg.norm(Ph[ok] * 1000 - P[ok], axis=-1).mean(-1))
                res[method] = (rd, ab, bad + int((~ok).sum()))
        n = args.trials * len(P)
        b, r = res["bone"], res["robust"]
        print(f"| {sigma_px} | {sigma_z} | {np.median(b[0]):.1f} | {np.median(r[0]):.1f} | "
              f"{np.median(b[1]):.1f} | {np.median(r[1]):.1f} | {b[2] / n:.1%} | {r[2] / n:.1%} |")
    print("(median over poses and trials, mm)")


if __name__ == "__main__":
    main()

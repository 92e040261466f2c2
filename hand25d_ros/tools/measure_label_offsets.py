"""Measure where photo datasets put the wrist and fingertips relative to the WebXR rig.

    python -m hand25d_ros.tools.measure_label_offsets ../shared/data/real_val_snap

Compares the median bone lengths of real 3D labels with the rest skeleton of the
WebXR hand (after scaling by the finger bones both agree on), and fits the wrist label
position in the wrist joint's frame that reproduces the real distances from the wrist
to the four finger MCPs and the thumb CMC and MCP. Prints the fitted offset (the value
of ``synth.synthetic.LABEL_WRIST_OFFSET_MM``) and the fingertip skin extents.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from ..synth.hand_mesh import KEYPOINT_FROM_WEBXR, load_hand_mesh
from ..synth.synthetic import TIP_JOINTS, tip_skin_extents


def _length(X, i, j):
    return np.linalg.norm(X[..., i, :] - X[..., j, :], axis=-1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="annotated folder (annotations.json with joints_3d_mm)")
    args = ap.parse_args(argv)
    samples = json.loads((args.folder / "annotations.json").read_text())["samples"]
    P = np.array([s["joints_3d_mm"] for s in samples]) / 1000.0
    mesh = load_hand_mesh("right")
    J = mesh.rest_joints[list(KEYPOINT_FROM_WEBXR)]
    ref = [(5, 6), (9, 10), (13, 14), (17, 18), (5, 9), (9, 13), (13, 17), (6, 7), (10, 11), (14, 15)]
    scale = np.median([np.median(_length(P, i, j)) / _length(J, i, j) for i, j in ref])
    print(f"real / rig scale from finger bones: {scale:.3f}")
    ks = (5, 9, 13, 17, 1, 2)
    target = {k: np.median(_length(P, 0, k)) / scale for k in ks}

    def residual(w):
        return [np.linalg.norm(w - J[k]) - target[k] for k in ks] + list(0.1 * (w - J[0]))

    W = least_squares(residual, J[0]).x
    R = mesh.rest_global[0, :3, :3]
    print("wrist label offset in the wrist joint frame (mm):", np.round(R.T @ (W - J[0]) * 1000, 1))
    print("residuals (mm):", np.round(np.array(residual(W))[:len(ks)] * 1000, 1))
    for tip, ext in zip(TIP_JOINTS, tip_skin_extents(mesh)):
        print(f"tip joint {tip}: skin extends {ext * 1000:.1f} mm beyond it")
    print("real DIP->tip medians (mm):", [round(float(np.median(_length(P, t, t - 1))) * 1000, 1) for t in (4, 8, 12, 16, 20)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Measure where a photo dataset puts the wrist, thumb CMC and fingertips relative to the rig.

    python -m hand25d_ros.tools.measure_label_offsets /work/shared/data/real_val_snap

The WebXR rig's joints are joint centres: its wrist sits inside the palm, its thumb
"metacarpal" joint far from the wrist, its tip joints ~10 mm short of the end of the
finger. Photo datasets mark the wrist and the fingertips on the skin. This tool reads
``annotations.json`` (``joints_3d_mm`` per sample) and

1. scales the rig to the real hand with the bones both conventions agree on (finger
   PIP-DIP bones and the MCP-to-MCP spacing);
2. fits the palm's size relative to the fingers (a scale of the metacarpals, grid
   search) together with the wrist label W and the thumb CMC label C (points rigid with
   the wrist joint) to the real median distances W-MCP(index..pinky), C-MCP(index..pinky),
   W-C, C-thumb MCP and the MCP spacings, starting from the rig joints (least squares,
   small pull toward the rig joints to pick the solution nearest them);
3. fits, per finger, which fraction of the skin beyond the tip joint the real tip label
   reaches, from the real |DIP-tip| (thumb: |IP-tip|);

and prints them as the constants of ``hand25d_ros.data.hand_mesh`` with the ratio
table before and after. Only aggregate numbers leave the data set.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from ..data import hand_mesh as hm

# (i, j) keypoint pairs whose distance the ratio table reports
RATIO_PAIRS = ((0, 5), (5, 6), (0, 9), (9, 10), (0, 13), (13, 14), (0, 17), (0, 1), (1, 2), (1, 5), (7, 8), (6, 7), (11, 12),
               (10, 11), (15, 16), (19, 20), (3, 4), (2, 3))


def _dist(X, i, j):
    return np.linalg.norm(X[..., i, :] - X[..., j, :], axis=-1)


def rig_scale(real_mm: np.ndarray, rig_mm: np.ndarray) -> float:
    """Real / rig size from the finger bones (MCP-PIP-DIP), which both conventions place alike."""
    ref = [(5, 6), (9, 10), (13, 14), (17, 18), (6, 7), (10, 11), (14, 15), (18, 19)]
    return float(np.median([np.median(_dist(real_mm, i, j)) / _dist(rig_mm, i, j) for i, j in ref]))


def palm_bone_scale(p: float) -> np.ndarray:
    """(25,) bone scales that enlarge the palm by p: the thumb CMC and the finger metacarpal
    joints' offsets from the wrist, and the metacarpal bones (offsets of the MCPs)."""
    bs = np.ones(hm.NUM_JOINTS)
    bs[list(hm.PALM_JOINTS)] = p
    return bs


def rest_pose(mesh: hm.HandMesh, p: float) -> tuple[np.ndarray, np.ndarray]:
    """The rig's rest pose with its palm enlarged by p: ((25, 4, 4) joint frames, (25,) bone scales)."""
    bs = palm_bone_scale(p)
    return hm.forward_kinematics(mesh, np.tile(np.eye(3), (hm.NUM_JOINTS, 1, 1)), bs), bs


def rig_unit_medians(real_mm: np.ndarray, mesh: hm.HandMesh):
    """(real / rig scale, ``med(i, j)``: the real median distance of keypoints i and j in rig mm)."""
    s = rig_scale(real_mm, mesh.rest_joints[list(hm.KEYPOINT_FROM_WEBXR)] * 1000.0)
    return s, lambda i, j: float(np.median(_dist(real_mm, i, j))) / s


KNUCKLES = (5, 9, 13, 17)


def fit_offsets(real_mm: np.ndarray, mesh: hm.HandMesh) -> dict:
    """Fit the label constants. real_mm: (N, 21, 3). Returns a dict of results (mm)."""
    J0 = mesh.rest_joints[list(hm.KEYPOINT_FROM_WEBXR)] * 1000.0
    s, med = rig_unit_medians(real_mm, mesh)
    R0 = mesh.rest_global[0, :3, :3]

    def solve(p):
        J = rest_pose(mesh, p)[0][list(hm.KEYPOINT_FROM_WEBXR), :3, 3] * 1000.0

        def residual(x):
            W, C = x[:3], x[3:]
            r = [np.linalg.norm(W - J[k]) - med(0, k) for k in KNUCKLES]
            r += [np.linalg.norm(C - J[k]) - med(1, k) for k in KNUCKLES]
            r += [np.linalg.norm(W - C) - med(0, 1), np.linalg.norm(C - J[2]) - med(1, 2)]
            r += [_dist(J, i, j) - med(i, j) for i, j in ((5, 9), (9, 13), (13, 17), (5, 17))]
            r += list(0.05 * (W - J[0])) + list(0.05 * (C - J0[1]))
            return np.array(r)

        sol = least_squares(residual, np.concatenate([J[0], J0[1]]))
        return sol, residual

    grid = np.round(np.arange(0.90, 1.30001, 0.01), 2)
    costs = [solve(p)[0].cost for p in grid]
    p = float(grid[int(np.argmin(costs))])
    sol, residual = solve(p)
    W, C = sol.x[:3], sol.x[3:]
    Jw = mesh.rest_joints[0] * 1000.0
    wrist_off = R0.T @ (W - Jw) / p
    cmc_off = R0.T @ (C - Jw) / p
    # tips: fraction of the skin extent beyond the tip joint the real label reaches
    ext = hm.tip_skin_extents_m(mesh) * 1000.0
    fracs = []
    for f, tip in enumerate(hm.TIP_JOINTS):
        k_tip = 4 * f + 4
        rig_len = _dist(J0, k_tip, k_tip - 1)
        fracs.append((med(k_tip - 1, k_tip) - rig_len) / ext[f])
    return {"scale": s, "palm_scale": p, "wrist_offset_mm": wrist_off, "cmc_offset_mm": cmc_off,
            "residuals_mm": residual(sol.x)[:14], "tip_extent_mm": ext, "tip_fraction": np.array(fracs)}


def knuckle_residuals(M: np.ndarray, L: np.ndarray, med) -> np.ndarray:
    """(16,) distances of knuckle labels M (4, 3) to the other labels L (21, 3) minus the real
    medians ``med(i, j)``: wrist-MCP, CMC-MCP, MCP-PIP (index..pinky) and the MCP spacings."""
    r = [np.linalg.norm(L[0] - m) - med(0, k) for k, m in zip(KNUCKLES, M)]
    r += [np.linalg.norm(L[1] - m) - med(1, k) for k, m in zip(KNUCKLES, M)]
    r += [np.linalg.norm(L[k + 1] - m) - med(k, k + 1) for k, m in zip(KNUCKLES, M)]
    r += [np.linalg.norm(M[a] - M[b]) - med(KNUCKLES[a], KNUCKLES[b]) for a, b in ((0, 1), (1, 2), (2, 3), (0, 3))]
    return np.array(r)


def fit_knuckle_offsets(real_mm: np.ndarray, mesh: hm.HandMesh) -> dict:
    """Fit ``LABEL_KNUCKLE_OFFSET_MM`` (each finger MCP label's offset from its joint, in that
    joint's frame) with the wrist, CMC and other labels as in use, at ``PALM_SCALE``, to the
    real median distances. real_mm: (N, 21, 3). Returns a dict of results (rig mm)."""
    _, med = rig_unit_medians(real_mm, mesh)
    p = hm.PALM_SCALE
    G, bs = rest_pose(mesh, p)
    L = hm.keypoint_labels(mesh, G, bs) * 1000.0
    joints = [hm.KEYPOINT_FROM_WEBXR[k] for k in KNUCKLES]
    R = G[joints, :3, :3]

    def knuckles(x):
        return L[list(KNUCKLES)] + np.einsum("fij,fj->fi", R, x.reshape(4, 3)) * p

    def residual(x):
        # the small pull picks, of the offsets that fit as well, those nearest the joints
        return np.concatenate([knuckle_residuals(knuckles(x), L, med), 0.05 * x])

    sol = least_squares(residual, np.zeros(12))
    return {"offsets_mm": sol.x.reshape(4, 3), "before_mm": knuckle_residuals(knuckles(np.zeros(12)), L, med),
            "after_mm": knuckle_residuals(knuckles(sol.x), L, med)}


def ratio_table(real_mm: np.ndarray, rig_raw: np.ndarray, rig_lab: np.ndarray, scale: float) -> str:
    """Median real distances (divided by the real / rig scale) beside the rig's joints and labels,
    in rig mm, and as ratios to |index MCP - PIP| (real / labels)."""
    norm = lambda X: np.median(_dist(X, 5, 6))  # noqa: E731
    lines = [f"{'pair':>8} {'real/s':>7} {'joints':>7} {'labels':>7}   ratio: {'real':>5} {'labels':>6}"]
    for i, j in RATIO_PAIRS:
        r = np.median(_dist(real_mm, i, j))
        lines.append(f"{i:>3}-{j:<4} {r / scale:7.1f} {_dist(rig_raw, i, j):7.1f} {_dist(rig_lab, i, j):7.1f}"
                     f"          {r / norm(real_mm):5.2f} {_dist(rig_lab, i, j) / norm(rig_lab):6.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="annotated folder (annotations.json with joints_3d_mm)")
    args = ap.parse_args(argv)
    ann = args.folder / "annotations.json"
    if not ann.is_file():
        raise SystemExit(f"{ann} not found")
    samples = json.loads(ann.read_text())["samples"]
    real = np.array([s["joints_3d_mm"] for s in samples], dtype=np.float64)
    mesh = hm.load_hand_mesh("right")
    res = fit_offsets(real, mesh)
    np.set_printoptions(precision=1, suppress=True)
    print(f"{len(real)} samples; real / rig scale from finger bones: {res['scale']:.3f}")
    print(f"PALM_SCALE (palm / fingers, real vs rig) = {res['palm_scale']:.2f}")
    print("LABEL_WRIST_OFFSET_MM (wrist joint frame) =", res["wrist_offset_mm"])
    print("LABEL_THUMB_CMC_OFFSET_MM (wrist joint frame) =", res["cmc_offset_mm"])
    print("distance residuals (mm, rig units; W-MCP x4, C-MCP x4, W-C, C-thumbMCP, MCP spacings 5-9 9-13 "
          "13-17 5-17):", res["residuals_mm"])
    print("skin beyond each tip joint (mm):", res["tip_extent_mm"])
    print("fitted tip fractions (thumb..pinky):", np.round(res["tip_fraction"], 2), "(in use: clipped to [0.5, 1])")
    print("in use: LABEL_TIP_SKIN_FRACTION =", np.array(hm.LABEL_TIP_SKIN_FRACTION))
    kn = fit_knuckle_offsets(real, mesh)
    print("LABEL_KNUCKLE_OFFSET_MM (each MCP joint's frame, index..pinky) =\n", kn["offsets_mm"])
    print("knuckle distance residuals (mm, rig units; W-MCP x4, C-MCP x4, MCP-PIP x4, MCP spacings 5-9 9-13 "
          "13-17 5-17), at the joints:", kn["before_mm"])
    print("                                              with the fitted offsets:", kn["after_mm"])
    J = mesh.rest_global
    raw = J[list(hm.KEYPOINT_FROM_WEBXR), :3, 3] * 1000.0
    G, bs = rest_pose(mesh, hm.PALM_SCALE)
    lab = hm.keypoint_labels(mesh, G, bs, knuckles="photo") * 1000.0
    print("median distances (mm, rig units) and ratios to |indexMCP-indexPIP| (labels with photo knuckles):")
    print(ratio_table(real, raw, lab, res["scale"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Hand pose metrics: 2D error, MPJPE, PA-MPJPE, absolute and root-depth errors, 3D PCK/AUC.

All functions are numpy, batched over N poses, with shapes in the docstrings. 3D
quantities are in millimetres; the root is keypoint 0 (wrist).
"""
from __future__ import annotations

import numpy as np

from . import keypoints as kp
from ._checks import check_array


def _pair(pred, gt, dim, name):
    p = check_array(pred, f"{name} pred", (None, kp.NUM_KEYPOINTS, dim)).astype(np.float64)
    g = check_array(gt, f"{name} gt", (None, kp.NUM_KEYPOINTS, dim)).astype(np.float64)
    if p.shape != g.shape:
        raise ValueError(f"{name}: pred {p.shape} and gt {g.shape} differ")
    return p, g


def errors_2d_px(pred, gt) -> np.ndarray:
    """(N, 21, 2) x2 -> (N, 21) Euclidean keypoint errors in pixels."""
    p, g = _pair(pred, gt, 2, "2D")
    return np.linalg.norm(p - g, axis=-1)


def root_relative_errors_mm(pred, gt) -> np.ndarray:
    """(N, 21, 3) x2 -> (N, 21) errors after subtracting each pose's root keypoint."""
    p, g = _pair(pred, gt, 3, "3D")
    return np.linalg.norm((p - p[:, kp.ROOT:kp.ROOT + 1]) - (g - g[:, kp.ROOT:kp.ROOT + 1]), axis=-1)


def absolute_errors_mm(pred, gt) -> np.ndarray:
    """(N, 21, 3) x2 -> (N, 21) errors in the camera frame, no alignment."""
    p, g = _pair(pred, gt, 3, "3D")
    return np.linalg.norm(p - g, axis=-1)


def similarity_align(pred, gt) -> np.ndarray:
    """Align each pred to its gt by rotation, uniform scale and translation (Umeyama).

    Args:
        pred, gt: (N, 21, 3).

    Returns:
        (N, 21, 3) aligned pred. Reflections are not allowed; a degenerate pred
        (all points equal) aligns to gt's centroid.
    """
    p, g = _pair(pred, gt, 3, "3D")
    mp, mg = p.mean(1, keepdims=True), g.mean(1, keepdims=True)
    P, G = p - mp, g - mg
    cov = np.einsum("nki,nkj->nij", G, P) / p.shape[1]           # (N, 3, 3) = G^T P / K
    U, S, Vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.tile(np.eye(3), (len(p), 1, 1))
    D[:, 2, 2] = d
    R = U @ D @ Vt                                                 # rotation taking P to G
    var_p = (P ** 2).sum((1, 2)) / p.shape[1]
    scale = np.where(var_p > 1e-12, (S * np.diagonal(D, axis1=1, axis2=2)).sum(1) / np.maximum(var_p, 1e-12), 0.0)
    return scale[:, None, None] * np.einsum("nij,nkj->nki", R, P) + mg


def pa_errors_mm(pred, gt) -> np.ndarray:
    """(N, 21, 3) x2 -> (N, 21) errors after similarity (Procrustes) alignment."""
    p, g = _pair(pred, gt, 3, "3D")
    return np.linalg.norm(similarity_align(p, g) - g, axis=-1)


def pck_curve(errors, thresholds) -> np.ndarray:
    """Fraction of keypoint errors at or below each threshold: (any) errors, (T,) -> (T,)."""
    e = np.asarray(errors, dtype=np.float64).ravel()
    t = np.asarray(thresholds, dtype=np.float64)
    if e.size == 0:
        return np.zeros_like(t)
    return (e[None, :] <= t[:, None]).mean(1)


def auc(errors, lo: float, hi: float, steps: int = 100) -> float:
    """Area under the PCK curve between lo and hi, normalised to [0, 1]
    (mean PCK over ``steps`` evenly spaced thresholds, the usual definition)."""
    th = np.linspace(lo, hi, steps)
    return float(np.trapezoid(pck_curve(errors, th), th) / (hi - lo))


def summarize(pred_2d, gt_2d, pred_3d_mm, gt_3d_mm, valid) -> dict:
    """All figures for one evaluation.

    2D figures use every sample (a 2D keypoint is always produced); 3D figures use the
    valid samples only, and ``valid_fraction`` reports how many that is.

    Args:
        pred_2d, gt_2d: (N, 21, 2) px. pred_3d_mm, gt_3d_mm: (N, 21, 3) mm. valid: (N,) bool.
    """
    valid = np.asarray(valid, dtype=bool)
    e2d = errors_2d_px(pred_2d, gt_2d)
    out = {"num_samples": int(len(valid)), "valid_fraction": float(valid.mean()) if len(valid) else 0.0,
           "mean_error_2d_px": float(e2d.mean()) if e2d.size else float("nan"),
           "median_error_2d_px": float(np.median(e2d)) if e2d.size else float("nan")}
    p3, g3 = np.asarray(pred_3d_mm)[valid], np.asarray(gt_3d_mm)[valid]
    if valid.any():
        rr = root_relative_errors_mm(p3, g3)
        out.update({
            "pa_mpjpe_mm": float(pa_errors_mm(p3, g3).mean()),
            "mpjpe_mm": float(rr.mean()),
            "absolute_error_mm": float(absolute_errors_mm(p3, g3).mean()),
            "root_depth_error_mm": float(np.abs(p3[:, kp.ROOT, 2] - g3[:, kp.ROOT, 2]).mean()),
            "auc_20_50": auc(rr, 20, 50),
            "auc_0_50": auc(rr, 0, 50),
        })
    else:
        out.update({k: float("nan") for k in ("pa_mpjpe_mm", "mpjpe_mm", "absolute_error_mm",
                                              "root_depth_error_mm", "auc_20_50", "auc_0_50")})
    return out


def plot_pck(curves: dict, path, title: str = "3D PCK (root-relative)") -> None:
    """PNG of PCK curves: ``curves`` maps a name to (thresholds_mm, pck)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for name, (th, pck) in curves.items():
        th, pck = np.asarray(th), np.asarray(pck)
        sel = (th >= 20) & (th <= 50)
        a = float(np.trapezoid(pck[sel], th[sel]) / 30.0) if sel.sum() > 1 else float("nan")
        ax.plot(th, pck, label=f"{name} (AUC 20-50 mm: {a:.3f})")
    ax.set_xlabel("error threshold (mm)")
    ax.set_ylabel("fraction of keypoints within threshold")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

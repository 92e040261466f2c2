"""Hand pose metrics: 2D error, MPJPE, PA-MPJPE, absolute and root-depth errors, 3D PCK/AUC.

Pure numpy, batched over N poses of the 21 keypoints in :mod:`hand25d_ros.keypoints`
order; 3D quantities in millimetres, 2D in pixels. The root is keypoint 0 (wrist).

Two kinds of function:

- per-keypoint errors ``*_errors_*`` -> (N, 21), the raw material of PCK curves;
- figures ``mean_error_2d_px``, ``mpjpe_mm``, ``pa_mpjpe_mm``, ``absolute_error_mm``,
  ``root_depth_error_mm`` -> :class:`ErrorStats` ``(per_sample (N,), mean)``, which
  unpacks as a pair: ``per_sample, mean = mpjpe_mm(pred, gt)``.

Every public function validates its inputs (shape, matching batch, finite values) and
raises ``ValueError`` saying what was expected and what came.

Keypoints an annotation leaves unlabelled: the per-keypoint 3D errors and
:func:`summarize` take a ``labelled`` (N, 21) bool mask; the truth may be NaN where it is
False, those keypoints' errors are NaN and no figure counts them. The root (wrist) must be
labelled in a 3D truth (the annotated-folder loader refuses one without it).
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import keypoints as kp
from ._checks import check_array

K = kp.NUM_KEYPOINTS


class ErrorStats(NamedTuple):
    """One figure: ``per_sample`` (N,) mean error of each pose, ``mean`` over all of them."""

    per_sample: np.ndarray
    mean: float


# ----------------------------------------------------------------------------- input checks

def _poses(x, name: str, dim: int, finite: bool = True) -> np.ndarray:
    return check_array(x, name, (None, K, dim), finite=finite).astype(np.float64)


def _pair(pred, gt, dim: int, finite: bool = True,
          names: tuple[str, str] = ("pred", "gt")) -> tuple[np.ndarray, np.ndarray]:
    """(N, 21, dim) pred and gt with the same N, as float64."""
    p = _poses(pred, names[0], dim, finite)
    g = _poses(gt, names[1], dim, finite)
    if p.shape != g.shape:
        raise ValueError(f"{names[0]} and {names[1]} must hold the same number of poses, "
                         f"got {p.shape} and {g.shape}")
    return p, g


def _masked_pair(pred, gt, dim: int, labelled,
                 names: tuple[str, str] = ("pred", "gt")) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """pred, gt as in :func:`_pair`, gt finite only where ``labelled`` (None: everywhere);
    the mask comes back None when it is None or all True, so that fully labelled poses take
    the arithmetic they always did, to the bit."""
    if labelled is None:
        return (*_pair(pred, gt, dim, names=names), None)
    p, g = _pair(pred, gt, dim, finite=False, names=names)
    m = _mask(labelled, g.shape[:2])
    if not np.isfinite(p).all():
        raise ValueError(f"{names[0]} contains non-finite values (NaN or inf)")
    if not np.isfinite(g[m]).all():
        raise ValueError(f"{names[1]} contains non-finite values (NaN or inf) at labelled keypoints")
    return p, g, (None if m.all() else m)


def _mask(mask, shape: tuple, name: str = "labelled") -> np.ndarray:
    m = check_array(mask, name, (None, K))
    if m.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} (one flag per keypoint), got {m.shape}")
    if m.dtype != bool and not np.isin(m, (0, 1)).all():
        raise ValueError(f"{name} must be boolean (or 0/1)")
    return m.astype(bool)


def _masked_errors(err: np.ndarray, m: np.ndarray | None) -> np.ndarray:
    return err if m is None else np.where(m, err, np.nan)


def _stats(err: np.ndarray) -> ErrorStats:
    """(N, 21) errors -> per-sample mean and the mean over all samples (NaN when N = 0)."""
    per = err.mean(axis=1) if err.shape[0] else np.zeros(0)
    return ErrorStats(per, float(err.mean()) if err.size else float("nan"))


# ----------------------------------------------------------------------------- 2D

def errors_2d_px(pred, gt) -> np.ndarray:
    """Euclidean keypoint errors in pixels.

    Args:
        pred, gt: (N, 21, 2) pixel coordinates.

    Returns:
        (N, 21) errors in px.
    """
    p, g = _pair(pred, gt, 2)
    return np.linalg.norm(p - g, axis=-1)


def mean_error_2d_px(pred, gt, mask=None) -> ErrorStats:
    """Mean 2D keypoint error.

    Args:
        pred, gt: (N, 21, 2) pixel coordinates.
        mask: optional (N, 21) bool, the keypoints to count (e.g. the visible ones).

    Returns:
        ``(per_sample (N,), mean)`` in px. With a mask, ``mean`` weights every counted
        keypoint equally; a sample with no counted keypoint gets NaN in ``per_sample``,
        and ``mean`` is NaN only when nothing is counted at all.
    """
    e = errors_2d_px(pred, gt)
    if mask is None:
        return _stats(e)
    m = check_array(mask, "mask", (None, K))
    if m.shape != e.shape:
        raise ValueError(f"mask must have shape {e.shape} (one flag per keypoint), got {m.shape}")
    if m.dtype != bool and not np.isin(m, (0, 1)).all():
        raise ValueError("mask must be boolean (or 0/1)")
    m = m.astype(bool)
    n = m.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(n > 0, (e * m).sum(axis=1) / n, np.nan)
    mean = float((e * m).sum() / m.sum()) if m.any() else float("nan")
    return ErrorStats(per, mean)


# ----------------------------------------------------------------------------- 3D, per keypoint

def root_relative_errors_mm(pred, gt, labelled=None) -> np.ndarray:
    """Errors after moving each pose's root (keypoint 0, wrist) to the origin.

    Args:
        pred, gt: (N, 21, 3) mm.
        labelled: optional (N, 21) bool, the keypoints with a truth (the root among them).

    Returns:
        (N, 21) mm; the root's own error is 0; NaN where not labelled.
    """
    p, g, m = _masked_pair(pred, gt, 3, labelled)
    r = kp.ROOT
    if m is not None and not m[:, r].all():
        raise ValueError("root-relative errors need the root (keypoint 0) labelled in every pose")
    # e_k = || (P_k - P_root) - (G_k - G_root) ||
    return _masked_errors(np.linalg.norm((p - p[:, r:r + 1]) - (g - g[:, r:r + 1]), axis=-1), m)


def absolute_errors_mm(pred, gt, labelled=None) -> np.ndarray:
    """Errors in the camera frame, no alignment: (N, 21, 3) x2 -> (N, 21) mm (NaN where not
    ``labelled``)."""
    p, g, m = _masked_pair(pred, gt, 3, labelled)
    return _masked_errors(np.linalg.norm(p - g, axis=-1), m)


def similarity_align(pred, gt, labelled=None) -> np.ndarray:
    """Align each pred to its gt by rotation, uniform scale and translation (Umeyama 1991).

    Minimises ``sum_k || s R p_k + t - g_k ||^2`` over proper rotations (det R = +1: a
    mirrored hand is an error, not something to align away), s >= 0 and t.

    Args:
        pred, gt: (N, 21, 3).
        labelled: optional (N, 21) bool: the sums run over these keypoints only (the
            alignment is fitted to the keypoints with a truth, and then moves all of pred).

    Returns:
        (N, 21, 3) aligned pred. Degenerate input stays finite: a pred whose points all
        coincide maps onto gt's centroid (s = 0); a gt whose points coincide gives
        s = 0 as well; a planar or collinear pose gets a proper rotation either way.
    """
    p, g, m = _masked_pair(pred, gt, 3, labelled)
    if m is None:
        w, n = np.ones(p.shape[:2]), K
        mp, mg = p.mean(1, keepdims=True), g.mean(1, keepdims=True)
    else:
        # weight 0 outside the mask, with gt's NaN there zeroed so that 0 * NaN adds nothing
        w, n = m.astype(np.float64), m.sum(1).astype(np.float64)[:, None, None]
        g = np.where(m[..., None], g, 0.0)
        mp = (p * w[..., None]).sum(1, keepdims=True) / n
        mg = (g * w[..., None]).sum(1, keepdims=True) / n
    P, G = p - mp, g - mg
    if m is not None:
        Pw, G = P * w[..., None], G * w[..., None]
    else:
        Pw = P
    # cross-covariance Sigma = (1/K) sum_k g_k p_k^T = U S V^T (K: the labelled keypoints)
    cov = np.einsum("nki,nkj->nij", G, Pw) / n
    U, S, Vt = np.linalg.svd(cov)
    # D = diag(1, 1, det(U V^T)) keeps R a rotation; R = U D V^T
    D = np.ones((len(p), 3))
    D[:, 2] = np.where(np.linalg.det(U @ Vt) < 0, -1.0, 1.0)
    R = np.einsum("nij,nj,njk->nik", U, D, Vt)
    # s = tr(D S) / sigma_p^2, with sigma_p^2 = (1/K) sum_k |p_k|^2
    nk = K if m is None else n[:, 0, 0]
    var_p = (Pw ** 2).sum((1, 2)) / nk
    tiny = 1e-12 * np.maximum(1.0, (G ** 2).sum((1, 2)) / nk)   # "all points coincide"
    s = np.where(var_p > tiny, (S * D).sum(1) / np.maximum(var_p, tiny), 0.0)
    s = np.maximum(s, 0.0)
    return s[:, None, None] * np.einsum("nij,nkj->nki", R, P) + mg


def pa_errors_mm(pred, gt, labelled=None) -> np.ndarray:
    """Errors after similarity (Procrustes) alignment: (N, 21, 3) x2 -> (N, 21) mm; with
    ``labelled``, aligned on the labelled keypoints only and NaN elsewhere."""
    p, g, m = _masked_pair(pred, gt, 3, labelled)
    if m is None:
        return np.linalg.norm(similarity_align(p, g) - g, axis=-1)
    return _masked_errors(np.linalg.norm(similarity_align(p, g, m) - g, axis=-1), m)


# ----------------------------------------------------------------------------- 3D figures

def mpjpe_mm(pred, gt) -> ErrorStats:
    """Root-relative mean per-joint position error (root = keypoint 0).

    Args:
        pred, gt: (N, 21, 3) mm.

    Returns:
        ``(per_sample (N,), mean)`` in mm. The root's zero error is part of the mean of
        21 keypoints, as in the usual definition.
    """
    return _stats(root_relative_errors_mm(pred, gt))


def pa_mpjpe_mm(pred, gt) -> ErrorStats:
    """Mean per-joint error after similarity alignment (:func:`similarity_align`).

    Args:
        pred, gt: (N, 21, 3) mm.

    Returns:
        ``(per_sample (N,), mean)`` in mm.
    """
    return _stats(pa_errors_mm(pred, gt))


def absolute_error_mm(pred, gt) -> ErrorStats:
    """Mean per-joint error in the camera frame, no alignment.

    Args:
        pred, gt: (N, 21, 3) mm.

    Returns:
        ``(per_sample (N,), mean)`` in mm.
    """
    return _stats(absolute_errors_mm(pred, gt))


def root_depth_error_mm(pred, gt) -> ErrorStats:
    """Error of the root's depth ``|Z_root_pred - Z_root_gt|``.

    Args:
        pred, gt: (N, 21, 3) mm.

    Returns:
        ``(per_sample (N,), mean)`` in mm.
    """
    p, g = _pair(pred, gt, 3)
    e = np.abs(p[:, kp.ROOT, 2] - g[:, kp.ROOT, 2])
    return ErrorStats(e, float(e.mean()) if e.size else float("nan"))


# ----------------------------------------------------------------------------- PCK / AUC

def _errors_1d(errors) -> np.ndarray:
    e = np.asarray(errors, dtype=np.float64).ravel()
    if np.isnan(e).any():
        raise ValueError("errors contain NaN; drop invalid samples first (or count them as inf)")
    if (e < 0).any():
        raise ValueError(f"errors must be non-negative distances, got min {e.min()}")
    return e


def pck_curve(errors_mm, thresholds_mm) -> np.ndarray:
    """Percentage of correct keypoints: fraction of errors at or below each threshold.

    Args:
        errors_mm: (*) non-negative errors (any shape, pooled); ``inf`` counts as a miss.
        thresholds_mm: (T,) thresholds.

    Returns:
        (T,) fractions in [0, 1]. No errors at all gives a curve of zeros.
    """
    e = _errors_1d(errors_mm)
    t = check_array(thresholds_mm, "thresholds_mm", (None,)).astype(np.float64)
    if e.size == 0:
        return np.zeros_like(t)
    # sort once, then count e <= t for every t
    return np.searchsorted(np.sort(e), t, side="right") / e.size


def auc(errors, lo: float, hi: float, steps: int = 100) -> float:
    """Area under the PCK curve between ``lo`` and ``hi``, normalised to [0, 1].

    The usual definition (Zimmermann & Brox's evaluation code, used for the published STB
    and RHD figures): PCK at ``steps`` evenly spaced thresholds, trapezoidal integral,
    divided by ``hi - lo``. With even spacing that is the mean PCK over the thresholds
    with the two end points at half weight; errors all zero give 1, all above ``hi`` 0.
    Errors are pooled over keypoints, which equals the per-keypoint average when every
    sample has all 21 keypoints.

    Args:
        errors: (*) non-negative errors, same unit as lo/hi.
        lo, hi: threshold range, ``lo < hi``.
        steps: number of thresholds, >= 2.
    """
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise ValueError(f"AUC range needs finite lo < hi, got lo={lo}, hi={hi}")
    if int(steps) != steps or steps < 2:
        raise ValueError(f"AUC needs an integer number of thresholds >= 2, got {steps}")
    th = np.linspace(lo, hi, int(steps))
    return _trapezoid(pck_curve(errors, th), th) / (hi - lo)


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    # integral ~ sum_i (y_i + y_{i+1}) / 2 * (x_{i+1} - x_i)
    return float(((y[1:] + y[:-1]) * 0.5 * np.diff(x)).sum())


def _curve_auc(th: np.ndarray, pck: np.ndarray, lo: float, hi: float) -> float | None:
    """AUC of a sampled curve over [lo, hi], or None when the curve does not cover it."""
    if th.min() > lo or th.max() < hi:
        return None
    sel = (th >= lo) & (th <= hi)
    x = np.unique(np.concatenate([[lo, hi], th[sel]]))
    return _trapezoid(np.interp(x, th, pck), x) / (hi - lo)


# ----------------------------------------------------------------------------- summary

FIGURES_3D = ("pa_mpjpe_mm", "mpjpe_mm", "absolute_error_mm", "root_depth_error_mm",
              "auc_20_50", "auc_0_50")


def summarize(pred_2d, gt_2d, pred_3d_mm, gt_3d_mm, valid, has_3d=None, found=None,
              labelled=None) -> dict:
    """All figures of one evaluation, as plain floats.

    How invalid predictions count (``valid`` False: no trustworthy 3D was made):

    - 2D figures use every sample where a hand was found (``found``; an estimate on a given
      crop always is), since those have 2D keypoints; a frame where the hand was not found
      has none (scoring its zeros, pixel (0, 0), made the figure depend on where the hand
      was), and ``found_fraction`` says how many were;
    - 3D figures (``pa_mpjpe_mm``, ``mpjpe_mm``, ``absolute_error_mm``,
      ``root_depth_error_mm``, ``auc_20_50``, ``auc_0_50``) use the valid samples with a
      true 3D pose only (``num_valid_with_3d`` of them) and are NaN when there are none;
    - ``valid_fraction`` is of all samples: validity is the estimator's own verdict and
      needs no truth;
    - ``auc_20_50_all`` / ``auc_0_50_all`` use every sample with a true 3D pose
      (``num_with_3d``), counting an invalid one's keypoints as misses at all thresholds,
      so a method cannot gain by declaring hard frames invalid; NaN when there are none.

    AUCs are over root-relative 3D errors (:func:`root_relative_errors_mm`).

    With ``labelled``, every figure pools the labelled keypoints only (a 2D mean over
    the labelled keypoints of all found samples, not a mean of per-sample means), PA-MPJPE
    aligns each pose on its labelled keypoints, and an invalid sample's misses in
    ``auc_*_all`` are its labelled keypoints.

    Args:
        pred_2d, gt_2d: (N, 21, 2) px, finite.
        pred_3d_mm: (N, 21, 3) mm; must be finite where ``valid``, anything elsewhere.
        gt_3d_mm: (N, 21, 3) mm; finite where ``has_3d``, anything elsewhere.
        valid: (N,) bool.
        has_3d: (N,) bool, the samples with a true 3D pose (a 2D-only annotation has
            none); None: all of them.
        found: (N,) bool, the samples where a hand was found; None: all of them.
        labelled: (N, 21) bool, the keypoints with a truth (the truths may be NaN
            elsewhere; a 3D truth needs its root); None: all of them.

    Returns:
        dict with ``num_samples``, ``num_valid``, ``valid_fraction``, ``num_with_3d``,
        ``num_valid_with_3d``, ``found_fraction``, ``mean_error_2d_px``, ``median_error_2d_px``, the 3D
        figures above (mm) and AUCs.
    """
    # lab None where fully labelled: the arithmetic it always had, to the bit
    p2, g2, lab = _masked_pair(pred_2d, gt_2d, 2, labelled, names=("pred_2d", "gt_2d"))
    p3, g3 = _pair(pred_3d_mm, gt_3d_mm, 3, finite=False, names=("pred_3d_mm", "gt_3d_mm"))
    v = _flags(valid, "valid")
    n = len(p2)
    h = np.ones(n, bool) if has_3d is None else _flags(has_3d, "has_3d")
    f = np.ones(n, bool) if found is None else _flags(found, "found")
    if not (len(p3) == len(v) == len(h) == len(f) == n):
        raise ValueError(f"pred_2d, pred_3d_mm, valid, has_3d and found must cover the same N samples, "
                         f"got {n}, {len(p3)}, {len(v)}, {len(h)} and {len(f)}")
    if not np.isfinite(g3[h] if lab is None else g3[h][lab[h]]).all():
        raise ValueError("gt_3d_mm contains non-finite values (NaN or inf) in samples marked as having 3D")
    if not np.isfinite(p3[v]).all():
        raise ValueError("pred_3d_mm contains non-finite values in samples marked valid")

    if lab is None:
        e2d = errors_2d_px(p2, g2)[f]
    else:
        e2d = np.linalg.norm(p2 - g2, axis=-1)[f][lab[f]]
    use = v & h
    out = {"num_samples": int(n), "num_valid": int(v.sum()),
           "valid_fraction": float(v.mean()) if n else 0.0,
           "num_with_3d": int(h.sum()), "num_valid_with_3d": int(use.sum()),
           "found_fraction": float(f.mean()) if n else 0.0,
           "mean_error_2d_px": float(e2d.mean()) if len(e2d) else float("nan"),
           "median_error_2d_px": float(np.median(e2d)) if len(e2d) else float("nan")}
    rr_all = np.full((int(h.sum()), K), np.inf)
    if use.any() and lab is None:
        pv, gv = p3[use], g3[use]
        rr = root_relative_errors_mm(pv, gv)
        out.update({
            "pa_mpjpe_mm": pa_mpjpe_mm(pv, gv).mean,
            "mpjpe_mm": float(rr.mean()),
            "absolute_error_mm": absolute_error_mm(pv, gv).mean,
            "root_depth_error_mm": root_depth_error_mm(pv, gv).mean,
            "auc_20_50": auc(rr, 20, 50),
            "auc_0_50": auc(rr, 0, 50),
        })
        rr_all[v[h]] = rr
    elif use.any():
        pv, gv, mv = p3[use], g3[use], lab[use]
        rr = root_relative_errors_mm(pv, gv, mv)
        out.update({
            "pa_mpjpe_mm": float(pa_errors_mm(pv, gv, mv)[mv].mean()),
            "mpjpe_mm": float(rr[mv].mean()),
            "absolute_error_mm": float(absolute_errors_mm(pv, gv, mv)[mv].mean()),
            "root_depth_error_mm": root_depth_error_mm(pv, np.where(mv[..., None], gv, 0.0)).mean,
            "auc_20_50": auc(rr[mv], 20, 50),
            "auc_0_50": auc(rr[mv], 0, 50),
        })
        rr_all[v[h]] = rr
    else:
        out.update({k: float("nan") for k in FIGURES_3D})
    if lab is not None:
        rr_all = rr_all[lab[h]]         # an invalid sample misses its labelled keypoints only
    out["auc_20_50_all"] = auc(rr_all, 20, 50) if len(rr_all) else float("nan")
    out["auc_0_50_all"] = auc(rr_all, 0, 50) if len(rr_all) else float("nan")
    return out


def _flags(x, name: str) -> np.ndarray:
    """(N,) bool from bools or 0/1."""
    a = check_array(x, name, (None,))
    if a.dtype != bool and not np.isin(a, (0, 1)).all():
        raise ValueError(f"{name} must be boolean (or 0/1)")
    return a.astype(bool)


# ----------------------------------------------------------------------------- plot

def plot_pck(curves: dict, path, title: str = "3D PCK (root-relative)") -> Path:
    """Write a PNG of PCK curves with their AUCs in the legend.

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend switch).

    Args:
        curves: name -> (thresholds_mm (T,), pck (T,) in [0, 1]).
        path: output .png; missing parent folders are created.
        title: plot title.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not isinstance(curves, dict) or not curves:
        raise ValueError("curves must be a non-empty dict: name -> (thresholds_mm, pck)")
    checked = {}
    for name, curve in curves.items():
        try:
            th, pck = curve
        except (TypeError, ValueError):
            raise ValueError(f"curve {name!r} must be a pair (thresholds_mm, pck)") from None
        th = check_array(th, f"thresholds of {name!r}", (None,)).astype(np.float64)
        pck = check_array(pck, f"pck of {name!r}", (None,)).astype(np.float64)
        if th.shape != pck.shape or th.size == 0:
            raise ValueError(f"curve {name!r}: thresholds {th.shape} and pck {pck.shape} "
                             "must be non-empty and of the same length")
        if (pck < 0).any() or (pck > 1).any():
            raise ValueError(f"curve {name!r}: pck values must lie in [0, 1]")
        order = np.argsort(th)
        checked[str(name)] = (th[order], pck[order])

    fig = Figure(figsize=(5.5, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, (th, pck) in checked.items():
        parts = []
        for lo, hi in ((20.0, 50.0), (0.0, 50.0)):
            a = _curve_auc(th, pck, lo, hi)
            parts.append(f"{lo:g}-{hi:g} mm {a:.3f}" if a is not None else f"{lo:g}-{hi:g} mm n/a")
        ax.plot(th, pck, lw=1.8, label=f"{name} (AUC {', '.join(parts)})")
    ax.set_xlabel("error threshold (mm)")
    ax.set_ylabel("PCK: fraction of keypoints within threshold")
    ax.set_ylim(0.0, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out

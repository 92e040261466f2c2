"""2.5D <-> 3D geometry of the latent 2.5D method (Iqbal et al. 2018).

Every function works on any batch shape ``(*)`` and exists in two flavours:
``foo_torch`` on tensors (differentiable, used by losses and the exported model)
and ``foo`` on numpy arrays (float64, used by the estimator and the tools). The
numpy flavour runs the torch one, so the two cannot drift apart.

Symbols follow ``method.md``: ``uv_px`` pixel keypoints, ``xn`` intrinsics-
normalised coordinates ``K^-1 (u, v, 1)``, ``z_rel_norm`` scale-normalised
root-relative depth ``(C / s) (Z_k - Z_root)``, ``Z_root_norm`` the normalised
root depth, ``s`` the length of the scale bone (wrist -> index MCP), C = 1.
"""
from __future__ import annotations

import enum

import cv2
import numpy as np
import torch

from . import keypoints as kp
from ._checks import check_array, check_distortion, check_intrinsics


class RootDepthStatus(enum.IntEnum):
    """Outcome of the root-depth solve, per pose."""
    OK = 0
    CLAMPED = 1      # negative discriminant (noisy 2.5D): clamped to the closest-approach depth
    DEGENERATE = 2   # the bone is seen end-on (a ~ 0): its length says nothing about depth
    BEHIND = 3       # the solution lies behind the camera
    NONFINITE = 4    # non-finite input


# Statuses whose depth can be used.
USABLE_STATUSES = (RootDepthStatus.OK, RootDepthStatus.CLAMPED)

# a below this (squared normalised-coordinate length of the bone's image) counts as end-on:
# 1e-8 is a bone image of 1e-4 focal lengths, a tenth of a pixel at f = 1000 px.
_A_EPS = 1e-8
_Z_MIN = 1e-6


# ----------------------------------------------------------------------------- torch

def normalize_points_torch(uv_px: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Pixels -> intrinsics-normalised coordinates.

    Args:
        uv_px: (*, N, 2) pixel coordinates.
        K: (*, 3, 3) intrinsics (any invertible matrix with last row 0 0 1).

    Returns:
        (*, N, 2) ``(x~, y~)`` with ``(x~, y~, 1) = K^-1 (u, v, 1)``.
    """
    Kinv = torch.linalg.inv(K)
    # (x~, y~) = Kinv[:2, :2] (u, v) + Kinv[:2, 2]; Kinv's last row stays (0, 0, 1)
    return uv_px @ Kinv[..., :2, :2].transpose(-1, -2) + Kinv[..., None, :2, 2]


def project_points_torch(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Perspective projection.

    Args:
        points: (*, N, 3) points in the camera optical frame, Z > 0.
        K: (*, 3, 3) intrinsics.

    Returns:
        (*, N, 2) pixels; ``u = (K P)_x / Z`` (``u = fx X / Z + cx`` for a plain K).
    """
    h = points @ K.transpose(-1, -2)
    return h[..., :2] / h[..., 2:3]


def scale_bone_length_torch(points: torch.Tensor) -> torch.Tensor:
    """(*, 21, 3) -> (*,) length s of the scale bone (wrist -> index MCP)."""
    n, m = kp.SCALE_BONE
    return torch.linalg.norm(points[..., n, :] - points[..., m, :], dim=-1)


def pose_to_25d_torch(points: torch.Tensor, K: torch.Tensor):
    """3D pose -> its scale-normalised 2.5D representation.

    Args:
        points: (*, 21, 3) pose in the camera optical frame (any length unit).
        K: (*, 3, 3) intrinsics.

    Returns:
        uv_px (*, 21, 2), z_rel_norm (*, 21) ``= (C / s) (Z_k - Z_root)``,
        s (*,) the scale-bone length in the unit of ``points``.
    """
    s = scale_bone_length_torch(points)
    z = points[..., 2]
    z_rel_norm = (kp.SCALE_C / s)[..., None] * (z - z[..., kp.ROOT:kp.ROOT + 1])
    return project_points_torch(points, K), z_rel_norm, s


def _root_depth_candidates_torch(xn, z_rel_norm, bones, lengths_norm):
    """Both roots of the bone quadratic for B bones at once: (Z_far, Z_near, status), each
    (*, B); see solve_root_depth_torch. One vectorised pass: a robust estimate over several
    bones costs the same handful of tensor ops as one bone."""
    n = [b[0] for b in bones]
    m = [b[1] for b in bones]
    L = torch.as_tensor(lengths_norm, dtype=xn.dtype, device=xn.device)
    d = xn[..., n, :] - xn[..., m, :]                                          # (*, B, 2)
    e = xn[..., n, :] * z_rel_norm[..., n, None] - xn[..., m, :] * z_rel_norm[..., m, None]
    dz = z_rel_norm[..., n] - z_rel_norm[..., m]
    a = (d * d).sum(-1)
    b = (d * e).sum(-1)
    c = (e * e).sum(-1) + dz * dz - L * L
    disc = b * b - a * c
    finite = torch.isfinite(a) & torch.isfinite(b) & torch.isfinite(c)
    degenerate = a < _A_EPS
    zero = torch.zeros_like(a)
    a_safe = torch.where(degenerate | ~finite, torch.ones_like(a), a)
    root = torch.sqrt(torch.where(finite, disc.clamp(min=0.0), zero))
    b_safe = torch.where(finite, b, zero)
    Z_far = (-b_safe + root) / a_safe
    Z_near = (-b_safe - root) / a_safe
    status = torch.zeros_like(a, dtype=torch.int64)
    for cond, code in ((disc < 0, RootDepthStatus.CLAMPED), (Z_far <= _Z_MIN, RootDepthStatus.BEHIND),
                       (degenerate, RootDepthStatus.DEGENERATE), (~finite, RootDepthStatus.NONFINITE)):
        status = torch.where(cond, torch.full_like(status, int(code)), status)
    usable = status <= int(RootDepthStatus.CLAMPED)
    Z_far = torch.where(usable, Z_far, zero)
    # a second root in front of the camera: the bone alone cannot tell which is right
    Z_near = torch.where(usable & (Z_near > _Z_MIN), Z_near, zero)
    return Z_far, Z_near, status


def solve_root_depth_torch(xn: torch.Tensor, z_rel_norm: torch.Tensor,
                           bone: tuple[int, int] = kp.SCALE_BONE,
                           length_norm: float = kp.SCALE_C):
    """Normalised root depth from one bone of known normalised length.

    With ``Z_k = Z_root + z_k`` and ``X = x~ Z``, ``Y = y~ Z`` the bone constraint
    ``|P_n - P_m|^2 = L^2`` is ``a Z_root^2 + 2 b Z_root + c = 0`` with
    ``a = |x~n - x~m|^2``, ``b = (x~n - x~m) . (x~n z_n - x~m z_m)``,
    ``c = |x~n z_n - x~m z_m|^2 + (z_n - z_m)^2 - L^2``; the root in front of the
    camera is ``(-b + sqrt(b^2 - a c)) / a`` (b is half the linear coefficient:
    the paper's ``0.5 (-b + sqrt(b^2 - 4ac)) / a`` needs the full one).
    When c > 0 both roots can lie in front of the camera (a hand very close to a
    wide-angle lens, about 0.2% of poses 0.25-1.2 m away); this takes the far one,
    the robust solver uses other bones to choose.

    Args:
        xn: (*, 21, 2) normalised coordinates.
        z_rel_norm: (*, 21) normalised root-relative depths.
        bone: (n, m) keypoint pair.
        length_norm: normalised length L of that pair (C for the scale bone).

    Returns:
        Z_root_norm (*,) finite, > 0 where usable, else 0; status (*,) int64 RootDepthStatus.
    """
    Z, _, status = _root_depth_candidates_torch(xn, z_rel_norm, (bone,), (length_norm,))
    return Z[..., 0], status[..., 0]


def _masked_median(values: torch.Tensor, mask: torch.Tensor):
    """Median over the last dim of the entries where mask; (median, count)."""
    big = torch.finfo(values.dtype).max
    sorted_v, _ = torch.sort(torch.where(mask, values, torch.full_like(values, big)), dim=-1)
    count = mask.sum(-1)
    lo = ((count - 1).clamp(min=0) // 2)[..., None]
    hi = (count // 2).clamp(max=values.shape[-1] - 1)[..., None]
    med = 0.5 * (sorted_v.gather(-1, lo) + sorted_v.gather(-1, hi))[..., 0]
    return torch.where(count > 0, med, torch.zeros_like(med)), count


def _consensus_root(far: torch.Tensor, near: torch.Tensor, ok: torch.Tensor, rel_tol: float = 0.1) -> torch.Tensor:
    """The root depth the bones agree on: of every usable bone's roots, the one nearest to a
    root of each other bone, each bone's relative distance counted up to ``rel_tol`` (so that
    one bad bone cannot outvote the rest). (*, B) -> (*,)."""
    cand = torch.cat([far, near], -1)                                  # (*, 2B)
    usable = torch.cat([ok & (far > 0), ok & (near > 0)], -1)
    c = cand[..., :, None]                                             # (*, 2B, 1)
    inf = torch.full_like(c, float("inf"))

    def dist(root):                                                    # (*, 2B, B)
        r = root[..., None, :]
        return torch.where(r > 0, (r - c).abs() / c.abs().clamp(min=1e-12), inf)
    residual = torch.minimum(dist(far), dist(near)).clamp(max=rel_tol)
    cost = torch.where(ok[..., None, :], residual, torch.zeros_like(residual)).sum(-1)
    cost = torch.where(usable, cost, torch.full_like(cost, float("inf")))
    return cand.gather(-1, cost.argmin(-1, keepdim=True))[..., 0]


def solve_root_depth_robust_torch(xn: torch.Tensor, z_rel_norm: torch.Tensor,
                                  bones: tuple[tuple[int, int], ...],
                                  lengths_norm: torch.Tensor):
    """Root depth as the median of the solutions from several bones.

    One bone carries all of its own 2.5D noise into the root depth; the median
    over bones of known proportion to the scale bone does not. Bones with two
    roots in front of the camera take the one nearer the median of the others, or,
    where every bone has two (wide-angle views), nearer the root most bones share:
    the median of the far roots picked the far root of each (0.4 m off, status OK).

    Args:
        xn: (*, 21, 2); z_rel_norm: (*, 21).
        bones: B keypoint pairs; lengths_norm: (B,) their lengths in units of the
            scale bone (C = 1).

    Returns:
        Z_root_norm (*,) (0 where no bone is usable), status (*,) int64: OK when
        at least one bone was usable, else the scale bone's status.
    """
    far, near, st = _root_depth_candidates_torch(xn, z_rel_norm, bones, lengths_norm)
    ok = st <= int(RootDepthStatus.CLAMPED)
    ambiguous = near > 0
    ref, ref_count = _masked_median(far, ok & ~ambiguous)
    ref = torch.where(ref_count > 0, ref, _consensus_root(far, near, ok))[..., None]
    pick = torch.where(ambiguous & ((near - ref).abs() < (far - ref).abs()), near, far)
    Z, count = _masked_median(pick, ok)
    # the scale bone's status explains a failure (it is the first robust bone)
    st_scale = st[..., 0] if tuple(bones[0]) == tuple(kp.SCALE_BONE) else solve_root_depth_torch(xn, z_rel_norm)[1]
    status = torch.where(count > 0, torch.zeros_like(st_scale), st_scale)
    return Z, status


def reconstruct_normalized_torch(xn: torch.Tensor, z_rel_norm: torch.Tensor,
                                 Z_root_norm: torch.Tensor) -> torch.Tensor:
    """Back-projection ``Z_k = Z_root + z_k``, ``X_k = x~_k Z_k``, ``Y_k = y~_k Z_k``.

    Args:
        xn: (*, 21, 2); z_rel_norm: (*, 21); Z_root_norm: (*,).

    Returns:
        (*, 21, 3) scale-normalised pose P^ (scale bone of length C).
    """
    Z = Z_root_norm[..., None] + z_rel_norm
    return torch.cat([xn * Z[..., None], Z[..., None]], dim=-1)


# ----------------------------------------------------------------------------- numpy

def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def normalize_points(uv_px, K) -> np.ndarray:
    """numpy :func:`normalize_points_torch`: (*, N, 2), (*, 3, 3) -> (*, N, 2)."""
    return normalize_points_torch(_t(uv_px), _t(K)).numpy()


def project_points(points, K) -> np.ndarray:
    """numpy :func:`project_points_torch`: (*, N, 3), (*, 3, 3) -> (*, N, 2)."""
    return project_points_torch(_t(points), _t(K)).numpy()


def pose_to_25d(points, K):
    """numpy :func:`pose_to_25d_torch`: returns uv_px (*, 21, 2), z_rel_norm (*, 21), s (*,)."""
    uv, z, s = pose_to_25d_torch(_t(points), _t(K))
    return uv.numpy(), z.numpy(), s.numpy()


def solve_root_depth(xn, z_rel_norm, bone=kp.SCALE_BONE, length_norm=kp.SCALE_C):
    """numpy :func:`solve_root_depth_torch`: returns Z_root_norm (*,), status (*,)."""
    Z, st = solve_root_depth_torch(_t(xn), _t(z_rel_norm), bone, length_norm)
    return Z.numpy(), st.numpy()


def reconstruct_normalized(xn, z_rel_norm, Z_root_norm) -> np.ndarray:
    """numpy :func:`reconstruct_normalized_torch`: -> (*, 21, 3)."""
    return reconstruct_normalized_torch(_t(xn), _t(z_rel_norm), _t(Z_root_norm)).numpy()


# The palm is the most rigid part of the hand: the bones the robust root-depth estimate
# votes with. On real labels (real_val_snap) these pairs vary 1-7% relative to the scale
# bone across poses, while the MCP-MCP and finger bones vary 10-16% (short bones, so
# label noise is a large fraction): benchmarks/root_depth_noise.py.
ROBUST_BONES: tuple[tuple[int, int], ...] = ((5, 0), (9, 0), (13, 0), (17, 0), (17, 5))


# the per-frame lift: its ~60 small tensor ops cost ~17% less without autograd's bookkeeping,
# which numpy in and out never needs
@torch.inference_mode()
def reconstruct_metric(uv_px, z_rel_norm, K, hand_size_m, method: str = "robust",
                       bone_ratios=None):
    """2.5D prediction -> metric 3D pose from the hand-size prior.

    Args:
        uv_px: (*, 21, 2) keypoints in the pixels of the image ``K`` describes.
        z_rel_norm: (*, 21) normalised root-relative depth.
        K: (*, 3, 3) intrinsics (rectified, or the distortion already removed from uv_px).
        hand_size_m: scalar or (*,) wrist -> index-MCP length in metres.
        method: ``"bone"`` (the scale bone alone, the paper's) or ``"robust"`` (median
            over :data:`ROBUST_BONES`, needs ``bone_ratios``).
        bone_ratios: (len(ROBUST_BONES),) lengths of those pairs in units of the scale bone.

    Returns:
        points_m (*, 21, 3), finite, zeros where unusable; status (*,) RootDepthStatus values.
    """
    uv = _t(uv_px)
    z = _t(z_rel_norm)
    # one non-finite keypoint makes the pose unusable (it was zeroed alone, on the optical axis)
    finite = torch.isfinite(uv).all(-1).all(-1) & torch.isfinite(z).all(-1)
    xn = normalize_points_torch(uv, _t(K))
    if method == "bone":
        Zr, status = solve_root_depth_torch(xn, z)
    elif method == "robust":
        if bone_ratios is None:
            raise ValueError("method='robust' needs bone_ratios, the lengths of ROBUST_BONES "
                             "relative to the scale bone")
        ratios = _t(bone_ratios)
        if ratios.shape != (len(ROBUST_BONES),):
            raise ValueError(f"bone_ratios must have shape ({len(ROBUST_BONES)},), got {tuple(ratios.shape)}")
        Zr, status = solve_root_depth_robust_torch(xn, z, ROBUST_BONES, ratios)
    else:
        raise ValueError(f"method must be 'bone' or 'robust', got {method!r}")
    P_norm = reconstruct_normalized_torch(xn, z, Zr)
    scale = _t(hand_size_m) / kp.SCALE_C
    P = P_norm * scale[..., None, None] if scale.ndim else P_norm * scale
    status = torch.where(finite, status, torch.full_like(status, int(RootDepthStatus.NONFINITE)))
    usable = status <= int(RootDepthStatus.CLAMPED)
    P = torch.where(usable[..., None, None] & torch.isfinite(P), P, torch.zeros_like(P))
    return P.numpy(), status.numpy()


def bone_ratios_from_poses(points) -> np.ndarray:
    """Mean length of each :data:`ROBUST_BONES` pair relative to the scale bone.

    Args:
        points: (N, 21, 3) poses.

    Returns:
        (len(ROBUST_BONES),) ratios.
    """
    P = np.asarray(points, dtype=np.float64)
    s = np.linalg.norm(P[:, kp.SCALE_BONE[0]] - P[:, kp.SCALE_BONE[1]], axis=-1)
    r = [np.linalg.norm(P[:, n] - P[:, m], axis=-1) / s for n, m in ROBUST_BONES]
    return np.median(np.stack(r, -1), axis=0)


UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)


def undistort_points(uv_px, K, D, distortion_model: str = "plumb_bob") -> np.ndarray:
    """Remove lens distortion from pixel coordinates (CameraInfo conventions).

    Args:
        uv_px: (N, 2) distorted pixels.
        K: (3, 3) camera matrix of the raw image.
        D: distortion coefficients as in CameraInfo.d: ``plumb_bob`` (k1 k2 t1 t2 k3),
            ``rational_polynomial`` (8 coefficients) or ``equidistant`` (k1..k4).
        distortion_model: the CameraInfo ``distortion_model`` string.

    Returns:
        (N, 2) undistorted pixels, in the image of the same K without distortion.
    """
    uv = check_array(uv_px, "uv_px", (None, 2)).astype(np.float64).reshape(-1, 1, 2)
    K = check_intrinsics(K)
    D = check_distortion(D, distortion_model, "D")
    if D.size == 0 or not np.any(D) or len(uv) == 0:
        return uv.reshape(-1, 2).copy()
    # OpenCV's undistortion reads fx, fy, cx, cy and drops K's skew, so a skewed K came out
    # shifted (5.6 px at skew 20 with D ~ 0); undistort in normalised coordinates instead,
    # through the whole K both ways
    xd = normalize_points(uv.reshape(-1, 2), K).reshape(-1, 1, 2)
    eye = np.eye(3)
    if distortion_model == "equidistant":
        xn = cv2.fisheye.undistortPoints(xd, eye, D, P=eye)
    else:
        # OpenCV's default is 5 fixed iterations: 1.25 px off at a wide lens' corners (k1 -0.45),
        # 22 mm in 3D for a hand inside the image; iterate to convergence instead
        xn = cv2.undistortPoints(xd, eye, D, None, None, eye, UNDISTORT_CRITERIA)
    return xn.reshape(-1, 2) @ K[:2, :2].T + K[:2, 2]

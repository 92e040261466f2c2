"""Training losses on the 2.5D outputs (L1, end-to-end, no ground-truth heatmaps)."""
from __future__ import annotations

import torch


def latent25d_loss(uv_pred_px: torch.Tensor, z_pred: torch.Tensor,
                   uv_gt_px: torch.Tensor, z_gt: torch.Tensor,
                   input_size_px: int, has_3d: torch.Tensor | None = None,
                   weight_2d: torch.Tensor | None = None, lambda_z: float = 1.0,
                   weight_z: torch.Tensor | None = None):
    """L1 on 2D keypoints (in units of the crop side) and on normalised depth.

    Args:
        uv_pred_px, uv_gt_px: (B, K, 2) keypoints in crop pixels.
        z_pred, z_gt: (B, K) normalised root-relative depth.
        input_size_px: crop side, to bring 2D errors to O(0.1) like the depth term.
        has_3d: (B,) bool; False for 2D-only samples, whose depth term is masked.
        weight_2d: (B, K) per-keypoint weight of the 2D term (e.g. 0 for unlabelled).
        lambda_z: weight of the depth term.
        weight_z: (B, K) per-keypoint weight of the depth term (0 for unlabelled), on top
            of ``has_3d``.

    Targets must be finite everywhere, weighted 0 or not: a NaN target makes a NaN
    gradient even at weight 0.

    Returns:
        total loss (scalar), and a dict of the two terms (detached) for logging.
    """
    err2d = (uv_pred_px - uv_gt_px).abs().sum(-1) / input_size_px          # (B, K)
    if weight_2d is None:
        weight_2d = torch.ones_like(err2d)
    loss2d = (err2d * weight_2d).sum() / weight_2d.sum().clamp(min=1.0)
    errz = (z_pred - z_gt).abs()
    if has_3d is None:
        has_3d = torch.ones(errz.shape[0], dtype=torch.bool, device=errz.device)
    mask = has_3d[:, None].to(errz.dtype).expand_as(errz)
    if weight_z is not None:
        mask = mask * weight_z
    lossz = (errz * mask).sum() / mask.sum().clamp(min=1.0)
    total = loss2d + lambda_z * lossz
    return total, {"loss_2d": loss2d.detach(), "loss_z": lossz.detach()}

"""Train-time augmentation of hand crops, keeping labels and intrinsics exact.

Geometric jitter is an affine of the crop: ``K' = [A; 0 0 1] K`` and ``uv' = A uv``,
so the 3D labels stay untouched; the photometric part follows what cheap webcams
do to skin (colour casts, blur, noise, JPEG).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .crop import crop_affine, crop_intrinsics, transform_points


@dataclass
class AugmentConfig:
    rotation_deg: float = 30.0
    scale_range: tuple = (0.85, 1.15)
    shift_frac: float = 0.06
    p_affine: float = 0.8
    brightness: float = 0.35
    contrast: float = 0.35
    saturation: float = 0.4
    hue_deg: float = 8.0
    p_blur: float = 0.25
    p_noise: float = 0.3
    p_jpeg: float = 0.3
    p_gray: float = 0.03
    # random convolution (Xu et al., ICLR 2021): a random 3->3 filter blended into the crop
    # keeps the shapes and scrambles local texture and colour, so that the network cannot
    # lean on the renderer's own texture; 0 leaves the random stream of older configs as is
    p_randconv: float = 0.0
    randconv_kernels_px: tuple = (1, 3, 5, 7)

    def __post_init__(self):
        # checked here, at config time, not first inside a DataLoader worker
        if not 0.0 <= float(self.p_randconv) <= 1.0:
            raise ValueError(f"data.augment.p_randconv must be in [0, 1], got {self.p_randconv}")
        ks = list(self.randconv_kernels_px)
        if not ks or any(int(k) != k or k < 1 or k % 2 == 0 for k in ks):
            raise ValueError("data.augment.randconv_kernels_px must be odd and positive, "
                             f"got {self.randconv_kernels_px}")


def augment_sample(image: np.ndarray, K: np.ndarray, uv_px: np.ndarray,
                   rng: np.random.Generator, cfg: AugmentConfig):
    """Augment one square crop.

    Args:
        image: (S, S, 3) uint8 RGB crop.
        K: (3, 3) intrinsics of the crop.
        uv_px: (21, 2) keypoints in crop pixels.

    Returns:
        image (S, S, 3) uint8, K (3, 3), uv_px (21, 2), inside (21,) bool (still in the crop).
    """
    S = image.shape[0]
    if rng.random() < cfg.p_affine:
        side = S / rng.uniform(*cfg.scale_range)
        centre = (S - 1) / 2.0 + rng.uniform(-cfg.shift_frac, cfg.shift_frac, 2) * S
        A = crop_affine(centre, side, S, np.deg2rad(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)))
        # reflect the border: a black frame would be a give-away the real crops never show
        image = cv2.warpAffine(image, A, (S, S), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        K = crop_intrinsics(K, A)
        uv_px = transform_points(A, uv_px)
    img = image.astype(np.float32) / 255.0
    # colour: contrast about the mean, brightness, per-channel gain (white balance)
    mean = img.mean()
    img = (img - mean) * (1.0 + rng.uniform(-cfg.contrast, cfg.contrast)) + mean
    img = img * (1.0 + rng.uniform(-cfg.brightness, cfg.brightness)) * rng.uniform(0.88, 1.12, 3)
    img = np.clip(img, 0.0, 1.0).astype(np.float32)
    if cfg.saturation or cfg.hue_deg:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-cfg.hue_deg, cfg.hue_deg)) % 360.0
        hsv[..., 1] = np.clip(hsv[..., 1] * (1.0 + rng.uniform(-cfg.saturation, cfg.saturation)), 0, 1)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if rng.random() < cfg.p_gray:
        img = np.repeat(img.mean(-1, keepdims=True), 3, -1)
    if cfg.p_randconv and rng.random() < cfg.p_randconv:
        img = random_convolution(img, rng, cfg.randconv_kernels_px)
    if rng.random() < cfg.p_blur:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.5))
    if rng.random() < cfg.p_noise:
        img = img + rng.normal(0.0, rng.uniform(0.005, 0.04), img.shape).astype(np.float32)
    out = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if rng.random() < cfg.p_jpeg:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 95))])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    inside = np.all((uv_px >= -0.5) & (uv_px <= S - 0.5), axis=-1)
    return out, K, uv_px, inside


def random_convolution(img: np.ndarray, rng: np.random.Generator,
                       kernels_px=(1, 3, 5, 7)) -> np.ndarray:
    """Blend a random convolution of the image into it.

    The filter (3 in, 3 out channels, odd side drawn from ``kernels_px``) has He-normal
    weights; its output is rescaled per channel to the input's mean and spread, so it
    stays an image, and mixed with the input by ``alpha ~ U(0, 1)``. The filter is centred,
    so keypoint labels stay exact.

    Args:
        img: (S, S, 3) float32 RGB in [0, 1].

    Returns:
        (S, S, 3) float32 in [0, 1].
    """
    k = int(rng.choice(np.asarray(kernels_px)))
    if k < 1 or k % 2 == 0:
        raise ValueError(f"randconv_kernels_px must be odd and positive, got {k}")
    w = rng.normal(0.0, 1.0 / np.sqrt(3 * k * k), (3, 3, k, k)).astype(np.float32)
    out = np.stack([sum(cv2.filter2D(img[..., i], -1, w[o, i], borderType=cv2.BORDER_REFLECT_101)
                        for i in range(3)) for o in range(3)], axis=-1)
    mu, sd = img.mean((0, 1)), img.std((0, 1))
    omu, osd = out.mean((0, 1)), out.std((0, 1))
    # a flat input channel (or a filter that cancels) has no spread to match: keep the mean
    out = (out - omu) / np.maximum(osd, 1e-6) * sd + mu
    alpha = rng.uniform(0.0, 1.0)
    return np.clip(alpha * img + (1.0 - alpha) * out, 0.0, 1.0).astype(np.float32)

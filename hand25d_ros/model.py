"""The latent 2.5D network: an encoder-decoder backbone and the latent 2.5D head.

``build_model(**arch)`` is the one constructor; its keyword arguments are stored in
the weights file so that a file rebuilds its own network (see ``weights.py``).
The network takes (B, 3, S, S) RGB in [0, 1] and returns, per keypoint,
``uv_px`` (B, 21, 2) in the pixels of its input, ``z_rel_norm`` (B, 21) and a
confidence (B, 21) in [0, 1].
"""
from __future__ import annotations

import math

import cv2
import torch
import torch.nn.functional as F
from torch import nn

from . import keypoints as kp

# ImageNet statistics: a common, harmless input normalisation
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class Latent25DHead(nn.Module):
    """2K latent maps -> 2D keypoints, normalised depth and confidence.

    ``H2D_k = softmax_p(beta_k H*2D_k(p))``, ``uv_k = sum_p H2D_k(p) p``,
    ``z_k = sum_p H2D_k(p) H*z_k(p)``. ``beta_k = softplus(beta_raw_k)`` is a learnable
    positive sharpness per keypoint. Heatmap cell (i, j) has its centre at input pixel
    ``((j + 0.5) stride - 0.5, (i + 0.5) stride - 0.5)``.

    The confidence is the heatmap mass within ``conf_radius_cells`` of the soft-argmax:
    1 for a sharp peak, about ``pi r^2 / (h w)`` for a flat map.
    """

    def __init__(self, num_keypoints: int, stride: int, beta_init: float = 4.0,
                 conf_radius_cells: float = 1.5):
        super().__init__()
        self.num_keypoints = num_keypoints
        self.stride = stride
        self.conf_radius_cells = conf_radius_cells
        # inverse softplus so that beta starts at beta_init: a beta near 1 over a 32x32 map
        # is near-uniform with vanishing gradients
        raw = math.log(math.expm1(beta_init))
        self.beta_raw = nn.Parameter(torch.full((num_keypoints,), raw))

    @property
    def beta(self) -> torch.Tensor:
        return F.softplus(self.beta_raw)

    def forward(self, latent: torch.Tensor):
        """(B, 2K, h, w) -> uv_px (B, K, 2), z_rel_norm (B, K), confidence (B, K), heatmaps (B, K, h, w)."""
        B, _, h, w = latent.shape
        K = self.num_keypoints
        h2d = latent[:, :K].reshape(B, K, h * w)
        hz = latent[:, K:].reshape(B, K, h * w)
        prob = torch.softmax(h2d * self.beta[None, :, None], dim=-1)
        # cumsum of ones for arange + 1: torch.jit.trace records arange's device as a constant, so
        # a TorchScript export traced on the CPU built this grid on the CPU under CUDA inputs
        ys = (latent.new_ones(h).cumsum(0) - 0.5) * self.stride - 0.5
        xs = (latent.new_ones(w).cumsum(0) - 0.5) * self.stride - 0.5
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)          # (h w, 2)
        uv = prob @ grid                                                   # (B, K, 2)
        z = (prob * hz).sum(-1)
        d2 = ((grid[None, None] - uv[:, :, None]) ** 2).sum(-1)            # (B, K, h w)
        near = (d2 <= (self.conf_radius_cells * self.stride) ** 2).to(prob.dtype)
        conf = (prob * near).sum(-1).clamp(0.0, 1.0)
        return uv, z, conf, prob.reshape(B, K, h, w)


def gaussian_kernel2d(sigma_px: float, channels: int) -> torch.Tensor:
    """(channels, 1, k, k) normalised Gaussian, k = 2 ceil(3 sigma) + 1; (channels, 1, 1, 1)
    ones (the identity) for sigma 0."""
    if sigma_px <= 0:
        return torch.ones(channels, 1, 1, 1)
    g = torch.from_numpy(cv2.getGaussianKernel(2 * max(1, math.ceil(3.0 * sigma_px)) + 1, sigma_px))
    return (g @ g.T).float().expand(channels, 1, -1, -1).contiguous()


def _conv_bn(cin, cout, k=3, s=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class ResBlock(nn.Module):
    """ResNet basic block (two 3x3 convs), with a projection when shape changes."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, 3, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        skip = x if self.proj is None else self.proj(x)
        return F.relu(self.conv2(self.conv1(x)) + skip)


class UpBlock(nn.Module):
    """Nearest 2x upsample, concatenate the encoder skip, fuse with a 3x3 conv."""

    def __init__(self, cin, cskip, cout):
        super().__init__()
        self.fuse = nn.Sequential(_conv_bn(cin + cskip, cout, 3), _conv_bn(cout, cout, 3))

    def forward(self, x, skip):
        x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.fuse(torch.cat([x, skip], 1))


class Hand25DNet(nn.Module):
    """U-Net style encoder-decoder with the latent 2.5D head at stride 4.

    Encoder strides 2-32 (channels ``widths``), decoder back to stride 4, where a
    32 x 32 map (128 px input) keeps the soft-argmax sub-pixel while costing a
    sixteenth of full-resolution maps.
    """

    def __init__(self, input_size: int = 128, widths=(24, 32, 64, 128, 192), dec_width: int = 64,
                 num_keypoints: int = kp.NUM_KEYPOINTS, beta_init: float = 4.0, crop_head: bool = False,
                 input_blur_sigma_px: float = 0.0):
        super().__init__()
        if not (math.isfinite(input_blur_sigma_px) and 0.0 <= input_blur_sigma_px <= 8.0):
            raise ValueError(f"input_blur_sigma_px must be in [0, 8], got {input_blur_sigma_px}")
        self.input_size = input_size
        self.input_blur_sigma_px = float(input_blur_sigma_px)
        self.num_keypoints = num_keypoints
        w = widths
        self.stem = _conv_bn(3, w[0], 3, 2)                                      # /2
        self.enc = nn.ModuleList([
            nn.Sequential(ResBlock(w[0], w[1], 2), ResBlock(w[1], w[1])),     # /4
            nn.Sequential(ResBlock(w[1], w[2], 2), ResBlock(w[2], w[2])),     # /8
            nn.Sequential(ResBlock(w[2], w[3], 2), ResBlock(w[3], w[3])),     # /16
            nn.Sequential(ResBlock(w[3], w[4], 2), ResBlock(w[4], w[4])),     # /32
        ])
        self.dec = nn.ModuleList([
            UpBlock(w[4], w[3], dec_width * 2),                                # /16
            UpBlock(dec_width * 2, w[2], dec_width),                           # /8
            UpBlock(dec_width, w[1], dec_width),                               # /4
        ])
        self.out = nn.Conv2d(dec_width, 2 * num_keypoints, 1)
        self.head = Latent25DHead(num_keypoints, stride=4, beta_init=beta_init)
        # Two logits about the whole crop from the pooled bottleneck: left hand, and hand
        # present. The full-frame detector sees hands too small to tell left from right, and
        # the heatmap confidence barely separates hands from empty crops.
        self.crop_head = nn.Linear(w[4], 2) if crop_head else None
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        # A fixed low-pass in front of the network (part of the model, so every caller and
        # export sees it): photos' fine skin detail is what the renders get least right, and
        # a network that never sees that band cannot learn cues from it.
        self.register_buffer("blur_kernel", gaussian_kernel2d(self.input_blur_sigma_px, 3), persistent=False)

    def _features(self, image: torch.Tensor):
        if self.input_blur_sigma_px > 0:
            r = self.blur_kernel.shape[-1] // 2
            image = F.conv2d(F.pad(image, (r, r, r, r), mode="replicate"),
                             self.blur_kernel.to(image.dtype), groups=image.shape[1])
        x = self.stem((image - self.mean) / self.std)
        skips = []
        for stage in self.enc:
            x = stage(x)
            skips.append(x)
        bottleneck = x
        for up, skip in zip(self.dec, reversed(skips[:-1])):
            x = up(x, skip)
        return self.out(x), bottleneck

    def latent(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) RGB in [0, 1] -> (B, 2K, S/4, S/4) latent maps."""
        return self._features(image)[0]

    def forward(self, image: torch.Tensor, crop_logits: bool = False):
        """(B, 3, S, S) RGB in [0, 1] -> (uv_px (B, K, 2), z_rel_norm (B, K), confidence (B, K)),
        and with ``crop_logits`` also (B, 2) logits [left hand, hand present] (zeros, p = 0.5,
        without the crop head). One forward for both, so that DDP sees every parameter used."""
        latent, bottleneck = self._features(image)
        uv, z, conf, _ = self._head_fp32(latent)
        if not crop_logits:
            return uv, z, conf
        if self.crop_head is None:
            return uv, z, conf, torch.zeros(image.shape[0], 2, dtype=uv.dtype, device=uv.device)
        return uv, z, conf, self.crop_head(bottleneck.mean((2, 3)))

    def forward_with_heatmaps(self, image: torch.Tensor):
        """As forward, plus the normalised 2D heatmaps (B, K, S/4, S/4)."""
        return self._head_fp32(self.latent(image))

    def _head_fp32(self, latent: torch.Tensor):
        # Under mixed precision the soft-argmax would run its matmul in half or bfloat16:
        # bfloat16 keeps 8 significant bits, a 0.5 px step at 127 px, so the head (a few
        # small ops) always runs in float32.
        with torch.autocast(latent.device.type, enabled=False):
            return self.head(latent.float())


# Named sizes; "small" is the default, sized for 30 Hz on a 2-core CPU.
ARCHS: dict[str, dict] = {
    "small": dict(input_size=128, widths=(24, 32, 64, 128, 192), dec_width=64),
    "tiny": dict(input_size=128, widths=(16, 24, 48, 96, 128), dec_width=48),
    "base": dict(input_size=128, widths=(32, 48, 96, 192, 256), dec_width=96),
}


def build_model(arch: str = "small", **overrides) -> Hand25DNet:
    """Construct a Hand25DNet from a named size, with keyword overrides."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(ARCHS)}")
    cfg = {**ARCHS[arch], **overrides}
    return Hand25DNet(**cfg)


def build_model_from_arch(arch: dict) -> Hand25DNet:
    """Construct the network an arch record describes, ``{"name": <ARCHS key>, **overrides}``,
    as training configs and weights files store it (no name: "small")."""
    overrides = dict(arch)
    return build_model(overrides.pop("name", "small"), **overrides)

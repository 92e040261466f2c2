"""Hand localisation in full camera frames: a small centre-point detector.

Why a second network rather than a coarse pass of the 2.5D network over windows: the
2.5D network's keypoint confidence barely separates hand crops from empty ones (the
heatmaps of the shipped weights are broad everywhere), and tiling a 640x480 frame takes
about 36 windows (100+ ms on 2 cores). One pass of this detector over the letterboxed
frame costs a few milliseconds and was trained for exactly the question "is there a hand
here, where, how big, which hand", with empty scenes and hand-coloured distractors.

The frame is letterboxed (top-left, black pad) into an ``input_size`` square; a ResNet-style
encoder to stride 32 and a two-step decoder to stride 8 give, per cell, a hand-centre
logit, the log side of the hand's keypoint box (input px), a sub-cell offset and a
left-hand logit (CenterNet, Zhou et al. 2019, with its penalty-reduced focal loss).
Peaks are local 3x3 maxima above a score threshold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .model import _MEAN, _STD, ResBlock, UpBlock, _conv_bn

STRIDE = 8
DETECTOR_FORMAT = "hand25d_ros.detector"
DETECTOR_VERSION = 1
DEFAULT_DETECTOR_NAME = "hand_detector.pt"


class HandDetectorNet(nn.Module):
    """(B, 3, S, S) RGB in [0, 1] -> (B, 5, S/8, S/8): centre logit, log side, dx, dy, left logit."""

    def __init__(self, input_size: int = 160, widths=(12, 16, 32, 64, 96), head_width: int = 32):
        super().__init__()
        self.input_size = input_size
        w = widths
        self.stem = _conv_bn(3, w[0], 3, 2)                                        # /2
        self.enc = nn.ModuleList([
            ResBlock(w[0], w[1], 2),                                              # /4
            nn.Sequential(ResBlock(w[1], w[2], 2), ResBlock(w[2], w[2])),         # /8
            nn.Sequential(ResBlock(w[2], w[3], 2), ResBlock(w[3], w[3])),         # /16
            nn.Sequential(ResBlock(w[3], w[4], 2), ResBlock(w[4], w[4])),         # /32
        ])
        self.up16 = UpBlock(w[4], w[3], head_width)
        self.up8 = UpBlock(head_width, w[2], head_width)
        self.head = nn.Sequential(_conv_bn(head_width, head_width, 3), nn.Conv2d(head_width, 5, 1))
        # CenterNet's prior: start with a low hand probability everywhere
        nn.init.constant_(self.head[-1].bias, 0.0)
        with torch.no_grad():
            self.head[-1].bias[0] = -4.0
            self.head[-1].bias[1] = math.log(40.0)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.stem((image - self.mean) / self.std)
        s4 = self.enc[0](x)
        s8 = self.enc[1](s4)
        s16 = self.enc[2](s8)
        s32 = self.enc[3](s16)
        return self.head(self.up8(self.up16(s32, s16), s8))


# ---------------------------------------------------------------------------- geometry

def letterbox(image_rgb: np.ndarray, input_size: int) -> tuple[np.ndarray, tuple[float, float]]:
    """(H, W, 3) uint8 -> (S, S, 3) uint8 with the frame resized into the top-left, and the
    scales (sx, sy) of what was drawn.

    Pixel-centre convention: input u_in = (u + 0.5) * sx - 0.5, v_in = (v + 0.5) * sy - 0.5.
    """
    H, W = image_rgb.shape[:2]
    scale = input_size / max(H, W)
    w, h = max(1, round(W * scale)), max(1, round(H * scale))
    small = cv2.resize(image_rgb, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.zeros((input_size, input_size, 3), np.uint8)
    out[:h, :w] = small
    # the resize rounds the size, so the axes' scales differ (2560 x 1080 is drawn 160 x 68 for
    # 67.5): one mean scale put a box at the right edge 9 px off
    return out, (w / W, h / H)


@dataclass
class Detection:
    """One hand found in a frame.

    Attributes:
        box: (x, y, w, h) square around the hand's keypoints, frame pixels (crop convention
            of ``crop.py``; the crop for the 2.5D network is this box times a margin).
        score: hand probability of the peak, [0, 1].
        is_left: left hand; None when unknown (the detector's own: ``left_prob >= 0.5``; from a
            pose: its label, ``HandPose.is_left``).
        left_prob: probability that it is a left hand (the detector's, or the pose's crop head's).
    """
    box: tuple
    score: float
    is_left: bool | None
    left_prob: float | None

    @property
    def centre(self) -> np.ndarray:
        x, y, w, h = self.box
        return np.array([x + w / 2.0, y + h / 2.0])

    @classmethod
    def from_pose(cls, pose) -> "Detection":
        """A found hand (``HandPose``) as a detection: the square around its keypoints, for
        scoring the whole pipeline with the detector's matching."""
        from .crop import keypoint_box
        return cls(keypoint_box(pose.keypoints_2d, 1.0), float(pose.detection_score or 0.0),
                   pose.is_left, pose.left_prob)


def decode(out: torch.Tensor, scale, score_threshold: float, max_hands: int) -> list[Detection]:
    """(5, h, w) network output of one letterboxed frame -> detections in frame pixels, best
    first; ``scale`` is :func:`letterbox`'s (sx, sy) (or one number for both axes)."""
    sx, sy = (float(scale), float(scale)) if np.isscalar(scale) else map(float, scale)
    heat = torch.sigmoid(out[0])
    peaks = (heat == F.max_pool2d(heat[None, None], 3, 1, 1)[0, 0]) & (heat >= score_threshold)
    ys, xs = torch.nonzero(peaks, as_tuple=True)
    scores = heat[ys, xs]
    order = torch.argsort(scores, descending=True)[:max_hands]
    dets = []
    for i in order.tolist():
        y, x = int(ys[i]), int(xs[i])
        cx = (x + 0.5 + float(out[2, y, x])) * STRIDE - 0.5
        cy = (y + 0.5 + float(out[3, y, x])) * STRIDE - 0.5
        side = math.exp(float(out[1, y, x]))
        # back to frame pixels
        u, v, s = (cx + 0.5) / sx - 0.5, (cy + 0.5) / sy - 0.5, side * 2.0 / (sx + sy)
        p_left = float(torch.sigmoid(out[4, y, x]))
        dets.append(Detection(box=(u - s / 2, v - s / 2, s, s), score=float(scores[i]),
                              is_left=p_left >= 0.5, left_prob=p_left))
    return dets


# ---------------------------------------------------------------------------- training targets

def make_targets(hands, input_size: int):
    """Training targets for one letterboxed image.

    Args:
        hands: list of (cx_px, cy_px, side_px, is_left) in input pixels.

    Returns:
        heat (h, w) float32 Gaussian peaks, reg (4, h, w) float32 [log side, dx, dy, left],
        mask (h, w) float32 (1 at each hand's centre cell), with h = w = input_size / 8.
    """
    g = input_size // STRIDE
    heat = np.zeros((g, g), np.float32)
    reg = np.zeros((4, g, g), np.float32)
    mask = np.zeros((g, g), np.float32)
    yy, xx = np.mgrid[0:g, 0:g]
    for cx, cy, side, is_left in hands:
        fx, fy = (cx + 0.5) / STRIDE - 0.5, (cy + 0.5) / STRIDE - 0.5
        ix, iy = int(round(fx)), int(round(fy))
        if not (0 <= ix < g and 0 <= iy < g):
            continue
        sigma = max(0.7, side / STRIDE / 5.0)
        heat = np.maximum(heat, np.exp(-((xx - ix) ** 2 + (yy - iy) ** 2) / (2 * sigma ** 2)).astype(np.float32))
        reg[:, iy, ix] = (math.log(max(side, 1.0)), fx - ix, fy - iy, float(is_left))
        mask[iy, ix] = 1.0
    return heat, reg, mask


def detector_loss(out: torch.Tensor, heat: torch.Tensor, reg: torch.Tensor, mask: torch.Tensor):
    """CenterNet loss: penalty-reduced focal loss on centres, L1 on size/offset, BCE on the hand side.

    Shapes: out (B, 5, h, w), heat (B, h, w), reg (B, 4, h, w), mask (B, h, w).
    """
    p = torch.sigmoid(out[:, 0]).clamp(1e-4, 1 - 1e-4)
    pos = (heat >= 0.999).float()
    n = pos.sum().clamp(min=1.0)
    focal = -(pos * (1 - p) ** 2 * torch.log(p) + (1 - pos) * (1 - heat) ** 4 * p ** 2 * torch.log(1 - p)).sum() / n
    m = mask[:, None]
    nm = mask.sum().clamp(min=1.0)
    l_size = (m[:, 0] * (out[:, 1] - reg[:, 0]).abs()).sum() / nm
    l_off = (m * (out[:, 2:4] - reg[:, 1:3]).abs()).sum() / nm
    l_side = (mask * F.binary_cross_entropy_with_logits(out[:, 4], reg[:, 3], reduction="none")).sum() / nm
    total = focal + l_size + l_off + 0.5 * l_side
    return total, {"focal": focal.detach(), "size": l_size.detach(), "offset": l_off.detach(),
                   "side": l_side.detach()}


# ---------------------------------------------------------------------------- weights files

def default_detector_path() -> Path:
    return Path(str(resources.files("hand25d_ros") / "weights" / DEFAULT_DETECTOR_NAME))


def save_detector(model: HandDetectorNet, path, arch: dict, meta: dict | None = None) -> None:
    """Write a detector with its constructor arguments and metadata (atomic)."""
    from .weights import write_blob
    write_blob(path, DETECTOR_FORMAT, DETECTOR_VERSION, arch, model, meta)


def load_detector(path=None) -> tuple[HandDetectorNet, dict]:
    """Load a detector weights file (None: the bundled one). Raises WeightsError naming the file."""
    from .weights import WeightsError, read_blob
    path = Path(path) if path is not None else default_detector_path()
    blob = read_blob(path, DETECTOR_FORMAT, DETECTOR_VERSION)
    try:
        model = HandDetectorNet(**dict(blob.get("arch", {})))
        model.load_state_dict(blob["state_dict"])
    except Exception as exc:
        raise WeightsError(f"{path} does not fit the hand detector network: "
                           f"{type(exc).__name__}: {str(exc)[:300]}") from None
    return model.eval(), dict(blob.get("meta", {}))


class HandDetector:
    """Find hands in full frames.

    Args:
        weights: detector weights file (None: bundled).
        device: torch device.
        score_threshold: minimum peak probability; the default is what kept false hands
            under 1% of empty synthetic frames (``meta["score_threshold"]`` of the file).
    """

    def __init__(self, weights=None, device: torch.device | str = "cpu", score_threshold: float | None = None):
        self.model, self.meta = load_detector(weights)
        self.device = torch.device(device)
        self.model.to(self.device)
        self.input_size = int(self.model.input_size)
        self.score_threshold = float(score_threshold if score_threshold is not None
                                     else self.meta.get("score_threshold", 0.3))

    @torch.inference_mode()
    def __call__(self, image_rgb: np.ndarray, max_hands: int = 2) -> list[Detection]:
        """Detections in ``image_rgb`` ((H, W, 3) uint8), best first, at most ``max_hands``."""
        inp, scale = letterbox(image_rgb, self.input_size)
        x = torch.from_numpy(inp).to(self.device).permute(2, 0, 1)[None].float().div_(255.0)
        out = self.model(x)[0].float().cpu()
        return decode(out, scale, self.score_threshold, max_hands)

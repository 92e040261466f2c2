"""Backgrounds for synthetic crops: public-domain photos and procedural clutter.

Photos are scikit-image's bundled sample images whose docstrings state public domain
or CC0: astronaut, camera, chelsea, coffee, coins, immunohistochemistry, rocket, text,
clock, retina, hubble_deep_field (public domain / CC0) and the CC0 textures brick,
grass, gravel. Procedural backgrounds imitate indoor clutter (shelves of coloured
boxes, stripes, gradients, blobs of skin colour like a face or arm behind the hand).
"""
from __future__ import annotations

import cv2
import numpy as np

PHOTO_NAMES = ("astronaut", "camera", "chelsea", "coffee", "coins", "immunohistochemistry", "rocket",
               "text", "clock", "retina", "hubble_deep_field", "brick", "grass", "gravel")

_PHOTOS: list[np.ndarray] | None = None


def photos() -> list[np.ndarray]:
    """The photo pool as RGB uint8 (loaded once per process)."""
    global _PHOTOS
    if _PHOTOS is None:
        import skimage.data
        out = []
        for name in PHOTO_NAMES:
            im = getattr(skimage.data, name)()
            if im.ndim == 2:
                im = np.repeat(im[..., None], 3, -1)
            out.append(np.ascontiguousarray(im[..., :3]).astype(np.uint8))
        _PHOTOS = out
    return _PHOTOS


def _noise(rng, size, cells):
    small = rng.random((cells, cells, 3)).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def procedural(rng: np.random.Generator, size: int) -> np.ndarray:
    kind = rng.integers(5)
    if kind == 0:      # shelves: rows of coloured boxes
        img = np.full((size, size, 3), rng.uniform(0.3, 0.9, 3), np.float32)
        y = 0
        while y < size:
            h = int(rng.integers(size // 10, size // 3))
            x = 0
            while x < size:
                w = int(rng.integers(size // 20, size // 5))
                img[y:y + h - 2, x:x + w - 1] = rng.uniform(0.05, 1.0, 3)
                x += w
            img[y + h - 3:y + h] = rng.uniform(0.2, 0.9, 3)
            y += h
    elif kind == 1:    # smooth colour noise
        img = _noise(rng, size, int(rng.integers(2, 12)))
    elif kind == 2:    # stripes
        t = np.linspace(0, rng.uniform(2, 20) * np.pi, size, dtype=np.float32)
        s = 0.5 + 0.5 * np.sin(t)[None, :, None]
        img = s * rng.uniform(0, 1, 3) + (1 - s) * rng.uniform(0, 1, 3)
        img = np.broadcast_to(img, (size, size, 3)).copy()
        M = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(0, 180), 1.5)
        img = cv2.warpAffine(img, M, (size, size), borderMode=cv2.BORDER_REFLECT)
    elif kind == 3:    # gradient
        a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
        img = np.broadcast_to(a * t + b * (1 - t), (size, size, 3)).copy()
    else:              # wall with skin-coloured blobs (a face or an arm behind the hand)
        img = np.full((size, size, 3), rng.uniform(0.2, 0.95, 3), np.float32)
        for _ in range(rng.integers(1, 4)):
            c = tuple(int(v) for v in rng.integers(0, size, 2))
            ax = tuple(int(v) for v in rng.integers(size // 8, size // 2, 2))
            cv2.ellipse(img, c, ax, rng.uniform(0, 180), 0, 360, tuple(float(v) for v in skin_tone(rng)), -1)
    img = img + (_noise(rng, size, 16) - 0.5) * rng.uniform(0, 0.15)
    return np.clip(img, 0, 1)


def skin_tone(rng: np.random.Generator) -> np.ndarray:
    """A skin albedo (RGB in [0, 1]) from light to dark."""
    light = np.array([0.94, 0.78, 0.67])
    mid = np.array([0.78, 0.57, 0.44])
    dark = np.array([0.40, 0.26, 0.18])
    t = rng.beta(2.0, 2.0)
    base = (1 - 2 * t) * light + 2 * t * mid if t < 0.5 else (2 - 2 * t) * mid + (2 * t - 1) * dark
    return np.clip(base * rng.normal(1.0, 0.04, 3), 0, 1)


def sample_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float32 RGB in [0, 1]."""
    if rng.random() < 0.55:
        pool = photos()
        im = pool[rng.integers(len(pool))]
        h, w = im.shape[:2]
        side = int(rng.uniform(0.25, 1.0) * min(h, w))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        patch = im[y:y + side, x:x + side]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        out = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        if rng.random() < 0.3:
            out = out * rng.uniform(0.5, 1.3, 3)
        return np.clip(out, 0, 1).astype(np.float32)
    return procedural(rng, size).astype(np.float32)

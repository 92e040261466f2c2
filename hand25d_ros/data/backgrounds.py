"""Backgrounds and occluder textures for synthetic crops: bundled photos and procedural scenes.

Photos ship inside PyPI packages already installed for the renderer; each one's licence
as stated in its package (checked in scikit-image 0.26's ``skimage.data`` docstrings and
matplotlib's sample data):

- ``skimage.data``: ``astronaut`` (NASA Great Images, public domain), ``camera`` (CC0,
  Lav Varshney), ``chelsea`` (CC0, Stefan van der Walt), ``coffee`` (CC0, Rachel
  Michetti), ``coins`` (Brooklyn Museum, no known copyright restrictions), ``rocket``
  (SpaceX, public domain), ``hubble_deep_field`` (NASA, public domain),
  ``immunohistochemistry`` (no known copyright restrictions), ``retina`` (CC0, Mikael
  Haggstrom), ``text`` (public domain), ``clock`` (public domain, Stefan van der Walt),
  ``brick`` and ``gravel`` (CC0Textures, CC0), ``grass`` (CC0).
- matplotlib ``mpl-data/sample_data/grace_hopper.jpg`` (official U.S. Navy photograph,
  public domain).

Photos are random crops (scale, aspect, flips, 90-degree turns, colour casts) of these.
Most backgrounds are procedural, built to resemble indoor scenes behind a hand held up
to a camera: shelves and fridges full of bottles and boxes, walls with doors and
frames, a person's torso and arm in a T-shirt, desks; plus generic clutter (noise,
gradients, stripes, random shapes) so that nothing in the background is a shortcut.
All functions return float32 RGB in [0, 1].
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

PHOTO_NAMES = ("astronaut", "camera", "chelsea", "coffee", "coins", "rocket", "hubble_deep_field",
               "immunohistochemistry", "retina", "text", "clock", "brick", "gravel", "grass")

_PHOTOS: list[np.ndarray] | None = None


def photos() -> list[np.ndarray]:
    """The photo pool, RGB uint8, loaded once per process (empty if the packages are missing)."""
    global _PHOTOS
    if _PHOTOS is None:
        out = []
        try:
            import skimage.data
            for name in PHOTO_NAMES:
                im = getattr(skimage.data, name)()
                if im.ndim == 2:
                    im = np.repeat(im[..., None], 3, -1)
                out.append(np.ascontiguousarray(im[..., :3]).astype(np.uint8))
        except ImportError:
            pass
        try:
            import matplotlib
            p = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
            im = cv2.imread(str(p))
            if im is not None:
                out.append(cv2.cvtColor(im, cv2.COLOR_BGR2RGB))
        except ImportError:
            pass
        _PHOTOS = out
    return _PHOTOS


def skin_tone(rng: np.random.Generator, hue_deg: tuple | None = None) -> np.ndarray:
    """A skin albedo (linear-ish RGB in [0, 1]), from very light to very dark.

    Interpolates a ladder of tones (roughly Fitzpatrick I-VI under white light). With
    ``hue_deg`` None the ladder's own hue (about 22 degrees) gets a little per-person noise
    (redder / yellower); with a (low, high) range the hue is drawn uniformly from it, the
    tone's lightest and darkest channels kept (so lightness and saturation stay the ladder's).
    """
    ladder = np.array([[0.96, 0.80, 0.70], [0.90, 0.70, 0.58], [0.82, 0.60, 0.47],
                       [0.70, 0.48, 0.35], [0.52, 0.34, 0.23], [0.34, 0.21, 0.14]])
    t = rng.beta(1.6, 2.0) * (len(ladder) - 1)
    i = min(int(t), len(ladder) - 2)
    base = ladder[i] * (1 - (t - i)) + ladder[i + 1] * (t - i)
    if hue_deg is None:
        hue = rng.normal(0, 0.035)
        base = base * np.array([1 + hue, 1.0, 1 - hue])
    else:
        # R > G > B: hue = 60 (G - B) / (R - B) degrees
        r, b = base[0], base[2]
        base = np.array([r, b + (r - b) * rng.uniform(*hue_deg) / 60.0, b])
    return np.clip(base * rng.normal(1.0, 0.03), 0.05, 1.0)


def _noise(rng, size, cells, channels=3):
    small = rng.random((cells, cells, channels)).astype(np.float32)
    out = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return out if channels > 1 else out[..., None]


def _color(rng, lo=0.0, hi=1.0):
    return tuple(float(x) for x in rng.uniform(lo, hi, 3))


def _desat(rng, col, lo=0.3, hi=0.9):
    """A colour pulled toward its grey by a random amount (real indoor scenes are muted)."""
    c = np.array(col)
    k = rng.uniform(lo, hi)
    return tuple(float(x) for x in c * k + c.mean() * (1 - k))


def _muted(rng):
    """An indoor colour: mostly greys, beiges and desaturated tones."""
    g = rng.uniform(0.25, 0.95)
    tint = rng.normal(0, 0.06, 3) + np.array([0.03, 0.01, -0.03]) * rng.uniform(0, 2)
    return tuple(float(x) for x in np.clip(g + tint, 0, 1))


def shelves(rng, size, fine: bool = False):
    """A shop fridge or shelf: rows of bottles/cans/boxes behind glass, with shelf edges.

    ``fine`` makes the rows 6-25% of the side instead of 15-40% (seen from farther away: many
    small sharp-edged items, as behind the hands in real photos).
    """
    img = np.empty((size, size, 3), np.float32)
    img[:] = _muted(rng)
    y = int(rng.integers(-size // 4, size // 8))
    row_h_base = (rng.uniform(0.06, 0.25) if fine else rng.uniform(0.15, 0.4)) * size
    while y < size:
        h = max(4, int(row_h_base * rng.uniform(0.85, 1.15)))
        x = int(rng.integers(-size // 8, 0))
        palette = [_desat(rng, _color(rng, 0.05, 1.0)) for _ in range(int(rng.integers(1, 4)))]
        # fine rows hold items in proportion, not the coarse rows' fixed widths
        w_base = (rng.uniform(0.25, 0.6) * h) if fine else (rng.uniform(0.05, 0.14) * size)
        while x < size:
            w = max(2, int(w_base * rng.uniform(0.8, 1.2)))
            col = palette[int(rng.integers(len(palette)))]
            top = y + int(h * rng.uniform(0.1, 0.35))
            if rng.random() < 0.6:      # bottle: body, neck, cap, highlight
                cv2.rectangle(img, (x + 1, top + h // 5), (x + w - 2, y + h - 3), col, -1)
                cv2.rectangle(img, (x + w // 3, top), (x + w - w // 3, top + h // 5), col, -1)
                cv2.rectangle(img, (x + w // 3, top - 2), (x + w - w // 3, top + 1), _color(rng), -1)
                cv2.rectangle(img, (x + w // 5, top + h // 4), (x + w // 5 + max(1, w // 8), y + h - 5),
                              tuple(min(1.0, c + 0.35) for c in col), -1)
                if rng.random() < 0.7:  # label
                    ly = top + int(h * 0.4)
                    cv2.rectangle(img, (x + 1, ly), (x + w - 2, ly + h // 6), _color(rng), -1)
            else:                       # can or box
                cv2.rectangle(img, (x + 1, top), (x + w - 2, y + h - 3), col, -1)
            x += w
        cv2.rectangle(img, (0, y + h - 3), (size, y + h + 1), _muted(rng), -1)   # shelf edge
        y += h
    if rng.random() < 0.6:              # fridge door frames / glass reflections
        for _ in range(int(rng.integers(1, 3))):
            x0 = int(rng.integers(0, size))
            cv2.rectangle(img, (x0, 0), (x0 + int(rng.uniform(0.02, 0.1) * size), size), _muted(rng), -1)
        img = img * 0.8 + 0.2 * _noise(rng, size, 3).mean(-1, keepdims=True)
    return img


def room(rng, size):
    """A wall with a door, picture frames, a lamp; sometimes a window's bright rectangle."""
    img = np.empty((size, size, 3), np.float32)
    img[:] = _muted(rng)
    g = np.linspace(rng.uniform(0.75, 1.0), rng.uniform(0.75, 1.0), size, dtype=np.float32)
    img *= g[:, None, None] if rng.random() < 0.5 else g[None, :, None]
    for _ in range(int(rng.integers(1, 5))):
        x0, y0 = (int(v) for v in rng.integers(-size // 4, size, 2))
        w, h = (int(v) for v in rng.integers(size // 8, size // 2, 2))
        col = _muted(rng) if rng.random() < 0.6 else _color(rng)
        cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), col, -1)
        if rng.random() < 0.5:
            cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), _muted(rng), int(rng.integers(1, 6)))
    if rng.random() < 0.3:              # window: bright and bluish-white
        x0, y0 = (int(v) for v in rng.integers(0, size, 2))
        cv2.rectangle(img, (x0, y0), (x0 + size // 3, y0 + size // 2), _color(rng, 0.85, 1.0), -1)
    return img


def person(rng, size, skin=None):
    """A T-shirted torso, maybe a face and the other arm: what sits behind a raised hand."""
    img = shelves(rng, size) if rng.random() < 0.5 else room(rng, size)
    shirt = _muted(rng) if rng.random() < 0.7 else _color(rng)
    skin = skin if skin is not None else skin_tone(rng)
    skin_t = tuple(float(c) * rng.uniform(0.8, 1.1) for c in skin)
    cx = int(rng.uniform(-0.3, 1.3) * size)
    cy = int(rng.uniform(0.4, 1.6) * size)
    cv2.ellipse(img, (cx, cy), (int(size * rng.uniform(0.4, 0.9)), int(size * rng.uniform(0.5, 1.0))),
                rng.uniform(-20, 20), 0, 360, shirt, -1)
    if rng.random() < 0.5:              # a fold / shadow on the shirt
        cv2.ellipse(img, (cx + int(rng.normal(0, size * 0.2)), cy), (size // 6, size // 2), rng.uniform(0, 180),
                    0, 360, tuple(c * 0.8 for c in shirt), -1)
    if rng.random() < 0.4:              # face / neck
        fx, fy = int(rng.uniform(0, 1) * size), int(rng.uniform(-0.3, 0.4) * size)
        cv2.ellipse(img, (fx, fy), (int(size * 0.18), int(size * 0.24)), rng.uniform(-15, 15), 0, 360, skin_t, -1)
        cv2.ellipse(img, (fx, fy - int(size * 0.2)), (int(size * 0.2), int(size * 0.12)), 0, 0, 360,
                    _color(rng, 0.0, 0.3), -1)
    if rng.random() < 0.5:              # the other arm
        p0 = (int(rng.uniform(0, 1) * size), size + 10)
        p1 = (int(rng.uniform(0, 1) * size), int(rng.uniform(0.2, 0.9) * size))
        cv2.line(img, p0, p1, skin_t, int(size * rng.uniform(0.12, 0.25)))
    return img


def clutter(rng, size):
    """Generic procedural textures: smooth noise, stripes, gradients, random shapes, checkers."""
    kind = int(rng.integers(5))
    if kind == 0:
        img = _noise(rng, size, int(rng.integers(2, 14)))
    elif kind == 1:
        t = np.linspace(0, rng.uniform(2, 24) * np.pi, size, dtype=np.float32)
        s = 0.5 + 0.5 * np.sin(t)[None, :, None]
        if rng.random() < 0.5:
            s = (s > 0.5).astype(np.float32)
        img = s * np.array(_color(rng), np.float32) + (1 - s) * np.array(_color(rng), np.float32)
        img = np.broadcast_to(img, (size, size, 3)).copy()
        M = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(0, 180), 1.5)
        img = cv2.warpAffine(img, M, (size, size), borderMode=cv2.BORDER_REFLECT)
    elif kind == 2:
        a, b = np.array(_color(rng), np.float32), np.array(_color(rng), np.float32)
        t = np.linspace(0, 1, size, dtype=np.float32)
        t = t[:, None, None] if rng.random() < 0.5 else t[None, :, None]
        img = np.broadcast_to(a * t + b * (1 - t), (size, size, 3)).copy()
    elif kind == 3:
        img = np.empty((size, size, 3), np.float32)
        img[:] = _color(rng)
        for _ in range(int(rng.integers(3, 15))):
            c = tuple(int(v) for v in rng.integers(0, size, 2))
            if rng.random() < 0.5:
                ax = tuple(int(v) for v in rng.integers(2, size // 3, 2))
                cv2.ellipse(img, c, ax, rng.uniform(0, 180), 0, 360, _color(rng), -1)
            else:
                pts = (np.array(c) + rng.integers(-size // 3, size // 3, (int(rng.integers(3, 6)), 2))).astype(np.int32)
                cv2.fillPoly(img, [pts], _color(rng))
    else:
        n = int(rng.integers(2, 12))
        yy, xx = np.mgrid[0:size, 0:size]
        s = (((yy * n) // size + (xx * n) // size) % 2).astype(np.float32)[..., None]
        img = s * np.array(_color(rng), np.float32) + (1 - s) * np.array(_color(rng), np.float32)
    return img


def photo(rng, size):
    """A random crop of a bundled photo (falls back to clutter without the packages)."""
    pool = photos()
    if not pool:
        return clutter(rng, size)
    im = pool[int(rng.integers(len(pool)))]
    h, w = im.shape[:2]
    side = int(rng.uniform(0.2, 1.0) * min(h, w))
    side = max(side, 8)
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    patch = im[y:y + side, x:x + side]
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    if rng.random() < 0.3:
        patch = np.rot90(patch, int(rng.integers(1, 4)))
    out = cv2.resize(np.ascontiguousarray(patch), (size, size), interpolation=cv2.INTER_AREA)
    out = out.astype(np.float32) * (1.0 / 255.0)
    if rng.random() < 0.4:
        out = out * rng.uniform(0.6, 1.25, 3).astype(np.float32)
    return out


KINDS = ("shelves", "room", "person", "photo", "clutter")
KIND_WEIGHTS = np.array([0.22, 0.16, 0.22, 0.22, 0.18])


def sample_background(rng: np.random.Generator, size: int, kind: str | None = None, skin=None,
                      p_defocus: float = 0.6, fine: bool = False) -> np.ndarray:
    """(size, size, 3) float32 RGB background in [0, 1].

    Args:
        kind: one of :data:`KINDS`, or None for a random one.
        skin: (3,) skin albedo for the person background (the hand's own, as in a selfie).
        p_defocus: probability that the background is blurred as if out of focus.
        fine: shelves may have small items (see :func:`shelves`).
    """
    if kind is None:
        kind = KINDS[int(rng.choice(len(KINDS), p=KIND_WEIGHTS / KIND_WEIGHTS.sum()))]
    if kind == "shelves":
        img = shelves(rng, size, fine)
    elif kind == "room":
        img = room(rng, size)
    elif kind == "person":
        img = person(rng, size, skin)
    elif kind == "photo":
        img = photo(rng, size)
    elif kind == "clutter":
        img = clutter(rng, size)
    else:
        raise ValueError(f"unknown background kind {kind!r}; choose one of {KINDS}")
    if rng.random() < p_defocus:
        k = float(rng.uniform(0.5, 2.5)) * size / 128.0
        img = cv2.GaussianBlur(img, (0, 0), k)
    img = img + (_noise(rng, size, 8, 1) - 0.5) * rng.uniform(0, 0.12)
    return np.clip(img, 0.0, 1.0).astype(np.float32)

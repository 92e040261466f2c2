"""Full-frame scenes for the hand detector: rendered hands pasted into backgrounds.

A *cutout bank* holds rendered hand crops with their coverage masks and keypoints
(``render_cutouts``); ``composite_scene`` pastes 0-3 of them into a frame of any size,
either cut out by the mask (a hand in the scene) or as their whole rectangle (a photo
patch with a hand, as the benchmark that pastes real crops into frames makes), next to
hand-free rectangles and skin-coloured blobs, so that neither a patch edge nor skin
colour alone means "hand". Labels per hand: the keypoints in frame pixels, the square
around them and the left/right flag.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import cv2
import numpy as np

from . import backgrounds
from .._files import remove_abandoned_parts, savez_replacing
from ..augment import AugmentConfig, augment_sample
from .synthetic import RENDER_VERSION

BANK_ARRAYS = ("images", "masks", "joints_2d_px", "is_left")


def _render_part(args):
    cfg_kwargs, seed, start, stop = args
    from .synthetic import SyntheticConfig, SyntheticHandGenerator
    os.environ.setdefault("LP_NUM_THREADS", "1")
    gen = SyntheticHandGenerator(SyntheticConfig(**cfg_kwargs), seed=seed)
    out = {k: [] for k in BANK_ARRAYS}
    for i in range(start, stop):
        s = gen.sample(i, with_mask=True)
        out["images"].append(s["image"])
        out["masks"].append((np.clip(s["mask"], 0, 1) * 255 + 0.5).astype(np.uint8))
        out["joints_2d_px"].append(s["joints_2d_px"].astype(np.float32))
        out["is_left"].append(bool(s["is_left"]))
    return {k: np.stack(v) for k, v in out.items()}


def render_cutouts(path, n: int, seed: int = 7000, size_px: int = 128, workers: int = 2) -> dict:
    """Render (or load, when ``path`` holds ``n`` cutouts of ``seed``) a cutout bank.

    Returns:
        dict of images (n, S, S, 3) uint8, masks (n, S, S) uint8 coverage, joints_2d_px
        (n, 21, 2) float32 crop pixels, is_left (n,) bool.
    """
    path = Path(path)
    if path.is_file():
        try:
            with np.load(path) as z:
                # the seed is in the file since a bank of another --bank-seed was taken for this
                # one's; banks written before it are taken as they were
                made_with = int(z["seed"]) if "seed" in z.files else seed
                # unrecorded: written before banks recorded it, by version 2's renderer or 1's,
                # which differ in visible labels only, and a bank keeps none
                version = int(z["render_version"]) if "render_version" in z.files else 2
                if version != RENDER_VERSION:
                    print(f"re-rendering {path}: renderer version {version}, this code renders version "
                          f"{RENDER_VERSION}", flush=True)
                elif len(z["images"]) == n and z["images"].shape[1] == size_px and made_with == seed:
                    return {k: z[k] for k in BANK_ARRAYS}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            # the bank is written whole (a temporary file renamed), so this is outside damage
            print(f"re-rendering {path}: unreadable ({type(exc).__name__}: {exc})", flush=True)
    # no occluders (they would be cut out with the hand) and a crop close around the hand
    cfg = dict(crop_size_px=size_px, p_occluder=0.0, crop_scale=(1.15, 1.4))
    chunk = 500
    jobs = [(cfg, seed, a, min(n, a + chunk)) for a in range(0, n, chunk)]
    try:
        from tqdm import tqdm
    except ImportError:                                   # pragma: no cover
        def tqdm(x, **_):
            return x
    parts = []
    if workers > 1:
        from .synthetic import render_pool
        with render_pool(workers) as pool:
            for p in tqdm(pool.imap(_render_part, jobs), total=len(jobs), desc="rendering cutouts"):
                parts.append(p)
    else:
        parts = [_render_part(j) for j in tqdm(jobs, desc="rendering cutouts")]
    bank = {k: np.concatenate([p[k] for p in parts]) for k in BANK_ARRAYS}
    path.parent.mkdir(parents=True, exist_ok=True)
    # a render killed while writing the bank (SIGKILL, the power) left its part file, as large as
    # the bank; a live run's writing the same bank stays
    remove_abandoned_parts(path.parent, lambda name: name == path.name)
    # by pid, as the shards: two detector runs sharing a bank wrote one part file at once
    savez_replacing(path, **bank, seed=np.int64(seed), render_version=np.int64(RENDER_VERSION))
    return bank


def _paste(frame, patch, mask, x0, y0):
    """Alpha-blend ``patch`` (h, w, 3 float) with ``mask`` (h, w float) at (x0, y0), clipped."""
    H, W = frame.shape[:2]
    h, w = patch.shape[:2]
    ax, ay = max(0, x0), max(0, y0)
    bx, by = min(W, x0 + w), min(H, y0 + h)
    if bx <= ax or by <= ay:
        return
    p = patch[ay - y0:by - y0, ax - x0:bx - x0]
    m = mask[ay - y0:by - y0, ax - x0:bx - x0, None]
    frame[ay:by, ax:bx] = p * m + frame[ay:by, ax:bx] * (1.0 - m)


def background_pool(n: int, size_px: int, seed: int) -> np.ndarray:
    """(n, S, S, 3) uint8 backgrounds rendered once, so that training composes scenes from
    crops of them instead of drawing a procedural background per scene (10x cheaper)."""
    rng = np.random.default_rng((seed, 99))
    return np.stack([(backgrounds.sample_background(rng, size_px) * 255 + 0.5).astype(np.uint8)
                     for _ in range(n)])


def _background(rng, W, H, pool=None):
    side = max(W, H)
    if pool is not None:
        src = pool[int(rng.integers(len(pool)))]
        k = int(rng.integers(4))
        src = np.rot90(src, k) if rng.random() < 0.5 else np.rot90(src[:, ::-1], k)
        S = src.shape[0]
        c = int(rng.uniform(0.6, 1.0) * S)
        x, y = int(rng.integers(0, S - c + 1)), int(rng.integers(0, S - c + 1))
        bg = cv2.resize(np.ascontiguousarray(src[y:y + c, x:x + c]), (side, side),
                        interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    else:
        bg = backgrounds.sample_background(rng, min(side, 384))
        if bg.shape[0] != side:
            bg = cv2.resize(bg, (side, side), interpolation=cv2.INTER_LINEAR)
    x = int(rng.integers(0, side - W + 1))
    y = int(rng.integers(0, side - H + 1))
    return np.ascontiguousarray(bg[y:y + H, x:x + W])


PHOTOMETRIC = AugmentConfig(p_affine=0.0, p_blur=0.3, p_noise=0.4, p_jpeg=0.4)


def composite_scene(rng: np.random.Generator, bank: dict, width: int, height: int,
                    n_hands: int | None = None, side_range_frac=(0.05, 0.9), p_rect: float = 0.35,
                    distractors: bool = True, pool: np.ndarray | None = None) -> tuple[np.ndarray, list[dict]]:
    """One frame with ``n_hands`` pasted hands (random 0-3 when None).

    Args:
        rng: the random generator (the scene is a function of its state).
        bank: a cutout bank (``render_cutouts``); None when ``n_hands`` is 0.
        width, height: frame size in pixels.
        side_range_frac: hand keypoint-box side, as a fraction of the frame's shorter side
            (log-uniform).
        p_rect: probability of pasting a hand with its whole rendered rectangle.
        pool: pre-rendered backgrounds (``background_pool``) to crop from instead of drawing new ones.

    Returns:
        image (H, W, 3) uint8 RGB, hands: list of dicts with ``joints_2d_px`` (21, 2) frame
        pixels, ``box`` (x, y, w, h) square around them and ``is_left``.
    """
    if n_hands is None:
        n_hands = int(rng.choice(4, p=[0.2, 0.5, 0.25, 0.05]))
    frame = _background(rng, width, height, pool)
    if distractors:
        for _ in range(int(rng.integers(0, 3))):
            # hand-free rectangles and skin-coloured blobs: neither alone means "hand"
            pw = int(rng.uniform(0.1, 0.5) * width)
            ph = int(rng.uniform(0.1, 0.5) * height)
            if rng.random() < 0.5:
                patch = _background(rng, max(pw, 4), max(ph, 4), pool)
                mask = np.ones(patch.shape[:2], np.float32)
            else:
                patch = np.broadcast_to(backgrounds.skin_tone(rng) * rng.uniform(0.5, 1.1), (max(ph, 4), max(pw, 4), 3)).astype(np.float32)
                mask = np.zeros(patch.shape[:2], np.float32)
                cv2.ellipse(mask, (pw // 2, ph // 2), (max(pw // 2 - 1, 1), max(ph // 4, 1)),
                            rng.uniform(0, 180), 0, 360, 1.0, -1)
                mask = cv2.GaussianBlur(mask, (0, 0), 2.0)
            _paste(frame, patch, mask, int(rng.integers(-pw // 4, width - pw // 2)),
                   int(rng.integers(-ph // 4, height - ph // 2)))
    hands = []
    short = min(width, height)
    S = bank["images"].shape[1] if n_hands else 0
    for _ in range(n_hands * 5):
        if len(hands) == n_hands:
            break
        j = int(rng.integers(len(bank["images"])))
        uv = bank["joints_2d_px"][j].astype(np.float64)
        lo, hi = uv.min(0), uv.max(0)
        side_crop = float(max(hi - lo))
        lo_f, hi_f = side_range_frac
        side = float(np.exp(rng.uniform(np.log(lo_f * short), np.log(hi_f * short))))
        f = side / max(side_crop, 1.0)
        size = max(2, int(round(S * f)))
        # keep the hand's centre inside the frame; a part may leave it
        c_crop = (lo + hi) / 2.0
        cx, cy = rng.uniform(0.05, 0.95) * width, rng.uniform(0.05, 0.95) * height
        x0, y0 = int(round(cx - (c_crop[0] + 0.5) * f)), int(round(cy - (c_crop[1] + 0.5) * f))
        uv_f = (uv + 0.5) * (size / S) - 0.5 + (x0, y0)
        lo_f2, hi_f2 = uv_f.min(0), uv_f.max(0)
        c = (lo_f2 + hi_f2) / 2.0
        s = float(max(hi_f2 - lo_f2))
        if any(np.linalg.norm(c - h["centre"]) < 0.45 * (s + h["side"]) for h in hands):
            continue
        interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
        patch = cv2.resize(bank["images"][j], (size, size), interpolation=interp).astype(np.float32) / 255.0
        if rng.random() < p_rect:
            mask = np.ones((size, size), np.float32)
        else:
            mask = cv2.resize(bank["masks"][j], (size, size), interpolation=interp).astype(np.float32) / 255.0
        _paste(frame, patch, mask, x0, y0)
        hands.append({"joints_2d_px": uv_f, "box": (c[0] - s / 2, c[1] - s / 2, s, s),
                      "is_left": bool(bank["is_left"][j]), "centre": c, "side": s})
    image = (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)
    image, _, _, _ = augment_sample(image, np.eye(3), np.zeros((21, 2)), rng, PHOTOMETRIC)
    for h in hands:
        h.pop("centre")
        h.pop("side")
    return image, hands

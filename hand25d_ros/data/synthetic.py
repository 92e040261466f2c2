"""Synthetic hand crops with exact labels: the generator, the shard writer and the Dataset.

    from hand25d_ros.data.synthetic import SyntheticConfig, SyntheticHandGenerator, write_shards, ShardDataset
    gen = SyntheticHandGenerator(SyntheticConfig(crop_size_px=128), seed=0)
    s = gen.sample(i)          # a deterministic function of (seed, i)

One sample: a hand (left or right, random shape, pose within joint limits, skin tone
and texture, often a forearm and a sleeve) placed 0.25-1.2 m in front of a random
pinhole camera (640 x 480, 60-90 degree horizontal FOV) in a random orientation
(weighted toward palm or back facing the camera, fingers up); then the crop exactly as
inference makes it: the square around the 2D keypoints' box, side x U(1.2, 1.7), centre
jitter, through :func:`hand25d_ros.crop.crop_affine` / ``crop_intrinsics``. The hand is
rendered straight into the crop with the crop's intrinsics (identical to rendering the
full frame and warping, without the cost), composited over a background, occluded,
blurred, noised, colour-jittered and JPEG-compressed. Crop pixels that fall outside the
camera image are black, as ``warp_crop`` makes them.

Labels: ``joints_3d_mm`` in the camera optical frame (mm), ``joints_2d_px`` their
projection through the crop's ``K`` (exactly), ``visible`` from the depth buffer. Label
positions follow the photo-dataset convention (wrist and fingertips on the skin):
:func:`hand25d_ros.data.hand_mesh.keypoint_labels`.

Shards: ``write_shards`` renders ``shard_00000.npz ...`` (uncompressed ``np.savez``) plus
``cache.json``; ``ShardDataset`` memory-maps the arrays straight out of the ``.npz`` files.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import threading
import warnings
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from .._checks import check_count
from ..crop import crop_affine, crop_intrinsics, invert_affine
from . import backgrounds
from .._files import remove_abandoned_parts, savez_replacing
from .hand_mesh import (KNUCKLE_LABELS, MIRROR_X, TIP_JOINTS, WEBXR_PARENTS, HandMesh, forward_kinematics,
                        keypoint_labels, packaged_hand, skin)
from .pose_sampler import family_probabilities, sample_pose, sample_shape
from .render import VERTEX_FLOATS, MeshRenderer, no_detail

__all__ = ["SyntheticConfig", "SyntheticHandGenerator", "write_shards", "ShardDataset"]

# Part ids in the renderer's part buffer: hand vertices carry 1 + their dominant WebXR joint
# (the segment distal of that joint), the forearm and sleeve FOREARM_PART, anything else 0.
FOREARM_PART = 26


def _own_parts() -> np.ndarray:
    """(21, 256) bool: which part ids count as keypoint k's own surface.

    A keypoint is visible where the surface seen at its pixel is one of the segments that
    meet at it (joint j: the segment distal of j and the one proximal of it), i.e. not
    another finger, an occluder or the background, and it lies at most ``visibility_tol_mm``
    behind that surface. Joint centres lie 5-25 mm under the skin (deepest under the palm),
    so a depth test alone cannot tell "seen through the palm" from "hidden behind a finger".
    """
    from .hand_mesh import KEYPOINT_FROM_WEBXR
    own = np.zeros((21, 256), bool)
    palm = [0, 1, 5, 10, 15, 20]
    for k, j in enumerate(KEYPOINT_FROM_WEBXR):
        if k == 0:
            parts = palm + [FOREARM_PART - 1]
        elif k == 1:
            parts = [0, 1, 2]
        else:
            parts = [j, WEBXR_PARENTS[j]] + ([0] if WEBXR_PARENTS[j] in palm else [])
        own[k, np.array(parts) + 1] = True
    return own


OWN_PARTS = _own_parts()


# settings added after caches were written without them, at the values those caches were made with
LEGACY_CONFIG = {"hand_detail": 0.0, "p_background_defocus": 0.6, "fine_backgrounds": False, "skin_hue_deg": None,
                 "hand_texture": 0.0, "pose_family_weights": None, "knuckle_labels": "joint",
                 "p_thumb_tucked": 0.0, "p_thumb_on_tips": 0.0}


@dataclass
class SyntheticConfig:
    """Every knob of the generator. Ranges are (low, high); probabilities are per sample."""
    crop_size_px: int = 128
    supersample: int = 2                  # render at crop x this, then area-downsample (anti-aliasing)
    image_size_px: tuple = (640, 480)     # (W, H) of the simulated camera
    hfov_deg: tuple = (60.0, 90.0)
    distance_m: tuple = (0.25, 1.2)       # camera -> hand (middle MCP), log-uniform
    principal_jitter_px: float = 8.0
    crop_scale: tuple = (1.2, 1.7)        # crop side / longer side of the keypoint box
    crop_shift_frac: float = 0.12         # centre jitter, fraction of the crop side
    crop_rotation_deg: float = 0.0        # in-plane crop rotation jitter (inference uses 0)
    p_left: float = 0.5
    p_upright: float = 0.75               # palm or back toward the camera, fingers roughly up
    p_palm_facing: float = 0.65           # of the upright ones: the palm (not the back) toward the camera
    p_indoor: float = 0.3                 # "like the validation photos": upright, 0.3-0.6 m, room light, person/shelves
    p_forearm: float = 0.9
    p_sleeve: float = 0.55
    p_shadow: float = 0.25                # the hand's soft shadow on the background
    p_occluder: float = 0.25
    p_motion_blur: float = 0.12
    p_blur: float = 0.25
    p_noise: float = 0.7
    p_jpeg: float = 0.6
    p_low_res: float = 0.15               # downscale/upscale (cheap cameras, digital zoom)
    color_jitter: float = 1.0             # 0 switches colour jitter off
    visibility_tol_mm: float = 35.0       # a label at most this far behind its own part's front surface is visible
    hand_detail: float = 1.0              # strength of the palm creases, knuckle wrinkles and nails (0: none)
    # sharper, busier backgrounds: behind real hands they are in focus and full of small edges
    # (benchmarks/render_vs_photo.py: high-pass 9.1 on real_val_snap, 4.0 on renders with the
    # legacy values, 5.3 with these)
    p_background_defocus: float = 0.15    # the background blurred as if out of focus
    fine_backgrounds: bool = True         # shelves with small sharp-edged items
    # skin albedo hue (degrees, drawn uniformly; None: the tone ladder's ~22 with a little
    # noise). Rendered skin measures 14-30 degrees with None and 8-28 with this range, photos'
    # 10-14 on real_val_snap (10th-90th percentile, benchmarks/render_vs_photo.py); real skin
    # runs from reddish to yellowish, so the range is wide rather than fitted to that one hand
    skin_hue_deg: tuple | None = (4.0, 24.0)
    # randomised look of the hand layer, 0 (off) to 1: skin mottling (band-passed albedo
    # noise), shading softened toward the local mean (diffuse light), and the hand alone
    # defocused. Blurring only a photo's hand lets the network read it far better
    # (benchmarks/domain_probes.py, blur_hand), so the renders' fine hand detail is a cue
    # photos do not share: randomising it teaches the network not to lean on it. Off by
    # default so that the recipes before it render what they rendered
    hand_texture: float = 0.0
    # how often each pose family is drawn: {family: relative weight} for the families named
    # (pose_sampler.POSE_FAMILIES), the others keeping pose_sampler.FAMILY_WEIGHTS; None: those.
    # A robot's task has its own poses (a teleoperator pinches, a counting game counts), and
    # the photos' worst keypoints are fingers bent in gestures
    pose_family_weights: dict | None = None
    # the finger MCP labels (hand_mesh.keypoint_labels): "joint", the rig's joint centres, or
    # "photo", where photo datasets mark the knuckles (hand_mesh.LABEL_KNUCKLE_OFFSET_MM).
    # "joint" by default so that the recipes before it render the labels they rendered
    knuckle_labels: str = "joint"
    # of the point and count poses, how often the thumb is held over the curled fingers (as
    # people count and make the V sign) rather than out or anywhere; the ring and little
    # fingers bent under a thumb are the poses whose fingertips the network reads worst.
    # 0 by default so that the recipes before it render what they rendered
    p_thumb_tucked: float = 0.0
    # of the point and count poses, how often (before p_thumb_tucked) the bent fingers are held
    # half-bent with the thumb tip on one's DIP or tip, as people hold them down by the nails:
    # on the photos the thumb touches the bent fingers in two frames of three, there, and those
    # frames hold most of the 2D error (docs/training_history.md, stage 29). 0 by default
    p_thumb_on_tips: float = 0.0

    def __post_init__(self):
        if int(self.crop_size_px) < 16:
            raise ValueError(f"crop_size_px must be >= 16, got {self.crop_size_px}")
        if int(self.supersample) < 1:
            raise ValueError(f"supersample must be >= 1, got {self.supersample}")
        for name in ("hfov_deg", "distance_m", "crop_scale"):
            v = getattr(self, name)
            if len(v) != 2 or not 0 < v[0] <= v[1]:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got {v}")
        # past 180 degrees the focal length turns negative: every hand lands behind the camera
        if not self.hfov_deg[1] < 180.0:
            raise ValueError(f"hfov_deg must be below 180 degrees, got {self.hfov_deg}")
        # a negative width rendered all-black crops with no keypoint visible, 0 a LinAlgError
        v = self.image_size_px
        if len(v) != 2 or not all(float(x) == int(x) >= 1 for x in v):
            raise ValueError(f"image_size_px must be (width, height), whole pixels >= 1, got {v}")
        if not 0.0 <= float(self.hand_texture) <= 1.0:
            raise ValueError(f"hand_texture must be in [0, 1], got {self.hand_texture}")
        h = self.skin_hue_deg
        if h is not None and (len(h) != 2 or not 0.0 <= h[0] <= h[1] <= 60.0):
            raise ValueError(f"skin_hue_deg must be None or (low, high) with 0 <= low <= high <= 60, got {h}")
        if self.pose_family_weights is not None and not isinstance(self.pose_family_weights, dict):
            raise ValueError("pose_family_weights must be None or a mapping {family: weight}, "
                             f"got {self.pose_family_weights!r}")
        family_probabilities(self.pose_family_weights)    # raises on an unknown family or a bad weight
        if self.knuckle_labels not in KNUCKLE_LABELS:
            raise ValueError(f"knuckle_labels must be one of {', '.join(KNUCKLE_LABELS)}, got {self.knuckle_labels!r}")
        for f in fields(self):
            if f.name.startswith("p_") and not 0.0 <= getattr(self, f.name) <= 1.0:
                raise ValueError(f"{f.name} is a probability, got {getattr(self, f.name)}")

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


# ----------------------------------------------------------------------------- appearance

def hand_layer_texture(rng: np.random.Generator, premul: np.ndarray, alpha: np.ndarray,
                       strength: float) -> tuple[np.ndarray, np.ndarray]:
    """Randomise the look of a rendered hand layer before it is composited.

    Each of three changes is drawn per sample (the draws are the same for every
    ``strength``, which scales the amounts): skin mottling, luminance and redness noise
    band-passed to 0.7-2.5 px at 128 px; shading pulled toward its local mean, as under
    diffuse light; and the hand layer alone defocused (colour and coverage together, so its
    edge softens as a defocused hand's does). Labels do not move: every change is local
    colour or a blur of at most 1.2 px at 128 px.

    Args:
        rng: the sample's random stream for this step.
        premul: (S, S, 3) float32 hand colour premultiplied by its coverage, 0-1.
        alpha: (S, S) float32 coverage.
        strength: 0-1.

    Returns:
        (premul, alpha), the same shapes and dtypes.
    """
    S = alpha.shape[0]
    px = S / 128.0
    mottle_sigma, mottle_amp, red_amp = rng.uniform(0.7, 2.5) * px, rng.uniform(0.0, 0.06), rng.uniform(0.0, 0.04)
    noise = rng.standard_normal((2, S, S)).astype(np.float32)
    soften, soften_w = rng.random() < 0.35, rng.uniform(0.2, 0.6)
    defocus, defocus_sigma = rng.random() < 0.5, rng.uniform(0.3, 1.2) * px
    n = np.stack([cv2.GaussianBlur(c, (0, 0), mottle_sigma) for c in noise])
    n /= n.reshape(2, -1).std(axis=1)[:, None, None] + 1e-6
    lum = 1.0 + strength * mottle_amp * n[0]
    red = strength * red_amp * n[1]
    # redness: more red, less green and blue, as blood under the skin shows
    gain = lum[..., None] * np.stack([1.0 + red, 1.0 - 0.5 * red, 1.0 - 0.5 * red], -1)
    premul = np.clip(premul * gain, 0.0, 1.0).astype(np.float32)
    if soften:
        big = 6.0 * px
        a_blur = cv2.GaussianBlur(alpha, (0, 0), big)[..., None]
        local = cv2.GaussianBlur(premul, (0, 0), big) / np.maximum(a_blur, 1e-4)
        w = np.float32(strength * soften_w)
        premul = (premul * (1.0 - w) + np.clip(local, 0.0, 1.0) * alpha[..., None] * w).astype(np.float32)
    if defocus:
        sigma = max(1e-3, strength * defocus_sigma)
        premul = cv2.GaussianBlur(premul, (0, 0), sigma)
        alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)
    return premul, alpha


class _MidRange:
    """Stands in for a random Generator to lay out the skin-detail lines without jitter:
    no noise, mid-range values, the most of a count."""

    @staticmethod
    def normal(loc=0.0, scale=1.0, size=None):
        return np.full(size, float(loc)) if size is not None else float(loc)

    @staticmethod
    def uniform(low=0.0, high=1.0, size=None):
        mid = (low + high) / 2.0
        return np.full(size, mid) if size is not None else mid

    @staticmethod
    def integers(low, high):
        return high - 1


class _HandAppearance:
    """Per-mesh masks for the skin colouring, computed once per process."""

    def __init__(self, mesh: HandMesh):
        v, n, J, R = mesh.vertices, mesh.normals, mesh.rest_joints, mesh.rest_global
        # palm side: rest normals facing -x (model space of the right rig)
        self.palm = np.clip(-n[:, 0] * 1.5, 0.0, 1.0)
        self.J, self.R = J, R
        # each triangle's part id (OpenGL's flat attributes come from its last vertex) and
        # bounding sphere: which parts a skin-detail line can touch
        tri = v[mesh.faces]
        self.tri_part = mesh.dominant_joint.astype(int)[mesh.faces[:, 2]] + 1
        self.tri_centre = tri.mean(1)
        self.tri_radius = np.linalg.norm(tri - self.tri_centre[:, None], axis=-1).max(1)
        self._line_parts = self._layout_parts()
        # nails: the back (+Y of the distal frame) of the last ~11 mm of each finger
        nail = np.zeros(len(v))
        crease = np.zeros(len(v))
        for tip in TIP_JOINTS:
            dip = WEBXR_PARENTS[tip]
            d = J[tip] - J[dip]
            d /= np.linalg.norm(d)
            rel = v - J[dip]
            along = rel @ d
            radial = rel - along[:, None] * d
            back = radial @ R[dip, :3, 1]
            rad = np.linalg.norm(radial, axis=1)
            m = (along > 0.004) & (along < 0.03) & (rad < 0.012) & (back > 0.45 * rad)
            nail = np.maximum(nail, m * np.clip((back / np.maximum(rad, 1e-6) - 0.45) * 4, 0, 1))
        # flexion creases on the palm side across the PIP, DIP and MCP joints
        for j in range(1, 25):
            if j in TIP_JOINTS or WEBXR_PARENTS[j] == 0 and j != 1:
                continue
            rel = v - J[j]
            along = rel @ (-R[j, :3, 2])
            near = np.exp(-(along / 0.0015) ** 2) * (np.linalg.norm(rel, axis=1) < 0.015)
            crease = np.maximum(crease, near * self.palm)
        self.nail = nail
        self.crease = crease
        # knuckle wrinkles on the back
        self.knuckle = np.zeros(len(v))
        for j in range(1, 25):
            if j in TIP_JOINTS:
                continue
            dist = np.linalg.norm(v - J[j], axis=1)
            self.knuckle = np.maximum(self.knuckle, np.exp(-(dist / 0.008) ** 2) * (1 - self.palm))

    def detail(self, rng, tone: np.ndarray, strength: float) -> dict:
        """Skin-detail uniforms for the renderer (``MeshRenderer.render``): the palm's
        creases, the fingers' flexion creases, knuckle wrinkles and nails, jittered per sample.

        Real photos show these at the sizes we render, and they are what tells a palm from
        the back of a hand, i.e. a left hand from a mirrored right one; the per-vertex
        colouring alone cannot draw them (the mesh's edges are ~7 mm long).
        """
        if strength <= 0:
            return no_detail()
        rows, keys = self._lines(rng)
        nail = np.clip(tone * 0.45 + np.array([0.52, 0.4, 0.4]) * rng.uniform(0.9, 1.1), 0.0, 1.0)
        a, b, n = (np.array(x) for x in zip(*rows))
        return {"detail": float(strength), "lines_a": a, "lines_b": b, "lines_n": n,
                "lines_parts": [self._line_parts[k] for k in keys], "nail_col": nail}

    def _lines(self, rng):
        """The skin-detail lines of one sample: rows (line_a, line_b, line_n) and a key per line."""
        J, R = self.J, self.R
        back, lat = R[:, :3, 1], R[:, :3, 0]
        rows, keys = [], []

        def line(key, a, b, n, side, half_width_m, darkness):
            rows.append((np.append(a, half_width_m), np.append(b, darkness), np.append(n, side)))
            keys.append(key)

        def jit(p, mm=1.5):
            return p + rng.normal(0.0, mm / 1000.0, 3) * np.array([0.0, 1.0, 1.0])

        # palm lines on the right rig's palm (normal -x; lateral +z toward the pinky)
        n_palm = back[0]
        lat0 = lat[0]
        W, T1, I, M, Rg, P = J[0], J[1], J[6], J[11], J[16], J[21]
        q1 = jit(I + 0.28 * (W - I) - 0.012 * lat0)                     # radial edge, thumb-index
        heart = [jit(P + 0.30 * (W - P) + 0.010 * lat0), jit(Rg + 0.27 * (W - Rg)), jit(M + 0.22 * (W - M)),
                 jit((I + M) / 2 + 0.06 * (W - I))]
        head = [q1, jit(M + 0.42 * (W - M)), jit(Rg + 0.52 * (W - Rg) + rng.uniform(-0.004, 0.004) * lat0)]
        life = [q1, jit(0.55 * I + 0.45 * W - 0.004 * lat0), jit(0.75 * W + 0.25 * T1 + 0.004 * lat0),
                jit(W + 0.15 * (M - W) + 0.006 * lat0)]
        for name, poly in (("heart", heart), ("head", head), ("life", life)):
            hw, dk = rng.uniform(0.0004, 0.0008), rng.uniform(0.25, 0.55)
            for k, (a, b) in enumerate(zip(poly[:-1], poly[1:])):
                line((name, k), a, b, n_palm, 1.0, hw, dk)
        for k in range(int(rng.integers(1, 3))):                          # wrist creases
            c = W + (0.006 + 0.008 * k) * R[0, :3, 2]                       # toward the forearm
            line(("wrist", k), jit(c - 0.02 * lat0), jit(c + 0.022 * lat0), n_palm, 1.0, rng.uniform(0.0003, 0.0006),
                 rng.uniform(0.15, 0.4))
        # (MCP, PIP, DIP, tip) of each finger; the thumb's IP stands in for a DIP, it has no PIP
        fingers = [(2, None, 3, 4), (6, 7, 8, 9), (11, 12, 13, 14), (16, 17, 18, 19), (21, 22, 23, 24)]
        radii_m = (0.0095, 0.0085, 0.0088, 0.0082, 0.0072)
        for f, ((mcp, pip, dip, tip), radius) in enumerate(zip(fingers, radii_m)):
            # flexion creases on the palm side: single at the DIP, double at the PIP, and the
            # palmar digital crease a third of the way up the proximal phalanx
            creases = [(dip, 0.0)]
            if pip is None:
                creases += [(mcp, -0.0008), (mcp, 0.0008)]
            else:
                creases += [(pip, -0.0008), (pip, 0.0008), (mcp, 0.3 * np.linalg.norm(J[pip] - J[mcp]))]
            for k, (j, along) in enumerate(creases):
                c = J[j] + along * (-R[j, :3, 2])
                line(("crease", f, k), c - radius * lat[j], c + radius * lat[j], back[j], 1.0,
                     rng.uniform(0.0003, 0.0006), rng.uniform(0.3, 0.6))
            knuckle = dip if pip is None else pip                             # wrinkles on the back
            for o in (-0.002, 0.0, 0.002):
                c = J[knuckle] + o * (-R[knuckle, :3, 2])
                line(("knuckle", f, o), c - 0.5 * radius * lat[knuckle], c + 0.5 * radius * lat[knuckle],
                     back[knuckle], -1.0, rng.uniform(0.0002, 0.0004), rng.uniform(0.08, 0.25))
            # the nail: the back of the distal phalanx's outer half
            a, b = J[dip], J[tip]
            line(("nail", f), a + 0.45 * (b - a), b + 0.05 * (b - a), back[dip], 2.0, radius * rng.uniform(0.5, 0.62),
                 rng.uniform(0.6, 0.95))
        return rows, keys

    def _layout_parts(self) -> dict:
        """Each line's key -> the part ids it can touch, from the lines without their jitter.

        Fixed per mesh, so that a sample's pixels never depend on the samples rendered before
        it. Reach, generous: a nail is at most 6 mm wide (2.5x that); a crease's profile is ~2
        mm, and the palm's lines jitter by up to ~9 mm, the fingers' not at all.
        """
        rows, keys = self._lines(_MidRange())
        a, b, n = (np.array(x) for x in zip(*rows))
        palm = np.array([k[0] in ("heart", "head", "life", "wrist") for k in keys])
        reach = np.where(n[:, 3] == 2.0, 2.5 * 0.0095, np.where(palm, 0.012, 0.007))
        return dict(zip(keys, self._parts_near(a[:, :3], b[:, :3], reach)))

    def _parts_near(self, a, b, reach_m) -> list:
        """For each segment a[i]-b[i] (rest pose), the part ids of the triangles within
        ``reach_m[i]`` of it.

        Shapes: a, b (L, 3), reach_m (L,) -> L int arrays.
        """
        ab = b - a
        rel = self.tri_centre[None] - a[:, None]                                      # (L, T, 3)
        h = np.clip((rel * ab[:, None]).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12)[:, None], 0.0, 1.0)
        d = np.linalg.norm(rel - h[..., None] * ab[:, None], axis=-1)
        near = d < reach_m[:, None] + self.tri_radius[None]
        return [np.unique(self.tri_part[m]) for m in near]

    def colors(self, rng, tone: np.ndarray) -> np.ndarray:
        """(V, 3) per-vertex albedo for a skin tone."""
        lightness = float(tone.mean())
        palm_tint = np.array([1.04, 0.98, 0.95]) * (1.0 + (0.55 - lightness) * rng.uniform(0.4, 0.9))
        c = tone[None, :] * (1.0 + self.palm[:, None] * (palm_tint - 1.0))
        nail_col = np.clip(tone * 0.35 + np.array([0.62, 0.5, 0.48]) * rng.uniform(0.8, 1.1), 0, 1)
        w = self.nail[:, None] * rng.uniform(0.5, 0.9)
        c = c * (1 - w) + nail_col * w
        c *= 1.0 - self.crease[:, None] * rng.uniform(0.1, 0.3)
        c *= 1.0 - self.knuckle[:, None] * rng.uniform(0.0, 0.15) * np.array([0.8, 1.0, 1.1])
        return np.clip(c, 0.0, 1.0)


def _tube(length_m, r_x, r_z, taper, bend_R, origin, n_ring=14, n_seg=7, sleeve_start=None,
          sleeve_grow=1.12):
    """Elliptic tapered tube along +y from ``origin`` (model space), bent by ``bend_R``.

    Returns vertices (N, 3), normals (N, 3), faces (M, 3), along (N,) in [0, 1],
    sleeve (N,) bool.
    """
    t = np.linspace(0.0, 1.0, n_seg)
    if sleeve_start is not None:
        t = np.sort(np.concatenate([t, [sleeve_start, sleeve_start]]))
    n_rings = len(t)
    ang = np.linspace(0, 2 * np.pi, n_ring, endpoint=False)
    scale = 1.0 + (taper - 1.0) * t
    sleeve = np.zeros(n_rings, bool)
    if sleeve_start is not None:
        k = int(np.searchsorted(t, sleeve_start, side="left")) + 1
        sleeve[k:] = True
        scale = np.where(sleeve, scale * sleeve_grow, scale)
    cx, sz = np.cos(ang), np.sin(ang)
    v = np.stack([np.outer(scale * r_x, cx), np.outer(t * length_m, np.ones(n_ring)),
                  np.outer(scale * r_z, sz)], -1).reshape(-1, 3)
    nrm = np.stack([np.outer(np.ones(n_rings), cx / r_x), np.zeros((n_rings, n_ring)),
                    np.outer(np.ones(n_rings), sz / r_z)], -1).reshape(-1, 3)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    i = np.arange(n_rings - 1)[:, None]
    j = np.arange(n_ring)[None, :]
    a = i * n_ring + j
    b = i * n_ring + (j + 1) % n_ring
    faces = np.stack([np.stack([a, b, a + n_ring], -1), np.stack([b, b + n_ring, a + n_ring], -1)], 2)
    faces = faces.reshape(-1, 3)
    # cap the far end
    far = (n_rings - 1) * n_ring
    cap = np.stack([np.full(n_ring - 2, far), far + np.arange(1, n_ring - 1), far + np.arange(2, n_ring)], -1)
    faces = np.concatenate([faces, cap]).astype(np.int32)
    v = origin + v @ bend_R.T
    nrm = nrm @ bend_R.T
    return v, nrm, faces, np.repeat(t, n_ring), np.repeat(sleeve, n_ring)


def _kelvin_rgb(k: float) -> np.ndarray:
    """Approximate white-balance colour of a black body at k kelvin, normalised to max 1."""
    t = k / 100.0
    r = 1.0 if t <= 66 else np.clip(1.292936 * (t - 60) ** -0.1332047592, 0, 1)
    g = np.clip(0.39008157 * np.log(t) - 0.63184144, 0, 1) if t <= 66 else np.clip(1.1298909 * (t - 60) ** -0.0755148492, 0, 1)
    b = 1.0 if t >= 66 else (0.0 if t <= 19 else np.clip(0.54320679 * np.log(t - 10) - 1.19625409, 0, 1))
    c = np.array([r, g, b], dtype=np.float64)
    return c / c.max()


# ----------------------------------------------------------------------------- generator

# The renders' version, recorded in a shard cache's cache.json. Bump it with every change that
# renders the same config and seed otherwise, images or labels (a new look behind a new config
# setting whose default keeps the old one needs none): a cache of another version is refused,
# never reused or extended with renders of this one (test_synthetic's RENDER_FINGERPRINT
# fails until both are updated). 1: caches written before it was recorded; 2: the visible labels'
# fix (a keypoint behind another finger is not visible: 115 of 2520 labels were)
RENDER_VERSION = 2


class SyntheticHandGenerator:
    """Deterministic synthetic samples: ``sample(i)`` depends only on ``(seed, i)`` and the config.

    Holds one GL context per process (created on first use); safe to pickle into workers.
    """

    def __init__(self, config: SyntheticConfig | None = None, seed: int = 0):
        self.cfg = config or SyntheticConfig()
        self.seed = int(seed)
        self._state = None

    def __getstate__(self):
        return {"cfg": self.cfg, "seed": self.seed, "_state": None}

    def _lazy(self):
        if self._state is None:
            mesh = packaged_hand("right")
            self._state = {"mesh": mesh, "look": _HandAppearance(mesh),
                           "renderer": MeshRenderer(self.cfg.crop_size_px * self.cfg.supersample)}
        return self._state

    def sample(self, index: int, with_mask: bool = False) -> dict:
        """The sample ``index``: dict of image, K, joints_3d_mm, joints_2d_px, visible, is_left.

        ``with_mask`` adds "mask": (S, S) float32 coverage of the hand and forearm in the
        crop (0-1, occluders removed) -- for tests and inspection; the image is unchanged.
        """
        st = self._lazy()
        rng = np.random.default_rng([self.seed, int(index)])
        # skin detail draws from its own stream, so that every other draw of a sample is the
        # same with and without it
        rng_detail = np.random.default_rng([self.seed, int(index), 1])
        rng_texture = np.random.default_rng([self.seed, int(index), 2])     # likewise hand_texture
        for _ in range(50):
            out = self._try(rng, st, with_mask, rng_detail, rng_texture)
            if out is not None:
                return out
        raise RuntimeError(f"could not place a hand for sample {index} (seed {self.seed}) in 50 attempts")

    # -- one attempt --------------------------------------------------------
    def _try(self, rng, st, with_mask, rng_detail, rng_texture) -> dict | None:
        cfg = self.cfg
        mesh: HandMesh = st["mesh"]
        indoor = rng.random() < cfg.p_indoor
        is_left = bool(rng.random() < cfg.p_left)
        bone_scale, width = sample_shape(rng)
        size = float(np.clip(rng.normal(1.0, 0.07), 0.8, 1.2))        # whole-hand size
        posed = forward_kinematics(mesh, sample_pose(rng, mesh=mesh, bone_scale=bone_scale,
                                                     family_p=family_probabilities(cfg.pose_family_weights),
                                                     p_thumb_tucked=cfg.p_thumb_tucked,
                                                     p_thumb_on_tips=cfg.p_thumb_on_tips),
                                   bone_scale)
        verts, normals = skin(mesh, posed, width)
        labels = keypoint_labels(mesh, posed, bone_scale, cfg.knuckle_labels)
        tone = backgrounds.skin_tone(rng, cfg.skin_hue_deg)
        cols = st["look"].colors(rng, tone)
        detail = st["look"].detail(rng_detail, tone, cfg.hand_detail)
        tex = mesh.vertices
        spec = rng.uniform(0.03, 0.25)
        mats = np.tile([1.0, spec], (len(verts), 1))
        parts = [(verts, normals, cols, tex, mats, mesh.dominant_joint + 1.0, mesh.faces)]
        if rng.random() < cfg.p_forearm:
            parts.append(self._forearm(rng, posed, width, tone, spec))
        # model -> camera
        R = self._orientation(rng, indoor or rng.random() < cfg.p_upright, cfg.p_palm_facing)
        if is_left:
            R = MIRROR_X @ R            # mirror in the camera frame: the right rig becomes a left hand
        W, H = cfg.image_size_px
        hfov = np.deg2rad(rng.uniform(60.0, 70.0) if indoor else rng.uniform(*cfg.hfov_deg))
        f = (W / 2.0) / np.tan(hfov / 2.0)
        K = np.array([[f, 0.0, (W - 1) / 2.0 + rng.normal(0, cfg.principal_jitter_px)],
                      [0.0, f * rng.normal(1.0, 0.003), (H - 1) / 2.0 + rng.normal(0, cfg.principal_jitter_px)],
                      [0.0, 0.0, 1.0]])
        lo_d, hi_d = (0.3, 0.6) if indoor else cfg.distance_m
        dist = float(np.exp(rng.uniform(np.log(lo_d), np.log(hi_d))))
        uv_c = np.array([rng.uniform(0.2, 0.8) * W, rng.uniform(0.2, 0.8) * H])
        ray = np.linalg.solve(K, np.array([uv_c[0], uv_c[1], 1.0]))
        t_cam = ray / ray[2] * dist
        centre = labels[9]                                            # middle MCP

        def to_cam(p):
            return ((p - centre) * size) @ R.T + t_cam

        L_cam = to_cam(labels)
        if L_cam[:, 2].min() < 0.12:
            return None
        uv = L_cam[:, :2] / L_cam[:, 2:] @ K[:2, :2].T + K[:2, 2]
        lo, hi = uv.min(0), uv.max(0)
        box = float(max(hi - lo))
        if box < 12.0:
            return None
        # the crop, exactly as inference makes it
        side = box * rng.uniform(*cfg.crop_scale)
        c_px = (lo + hi) / 2.0 + rng.uniform(-cfg.crop_shift_frac, cfg.crop_shift_frac, 2) * side
        rot = np.deg2rad(rng.uniform(-cfg.crop_rotation_deg, cfg.crop_rotation_deg)) if cfg.crop_rotation_deg else 0.0
        S = int(cfg.crop_size_px)
        A = crop_affine(c_px, side, S, rot)
        Kc = crop_intrinsics(K, A)
        ss = int(cfg.supersample)
        # supersampled render of the same crop: u_ss = ss u + (ss - 1) / 2 (pixel-centre convention)
        Kr = np.array([[ss, 0.0, (ss - 1) / 2.0], [0.0, ss, (ss - 1) / 2.0], [0.0, 0.0, 1.0]]) @ Kc
        Sr = S * ss
        # assemble the mesh in the camera frame
        V, N, C, T, M, P, F = [], [], [], [], [], [], []
        off = 0
        for v, n, c, tx, m, pid, fc in parts:
            V.append(to_cam(v))
            N.append(n @ R.T)
            C.append(c)
            T.append(tx)
            M.append(m)
            P.append(np.broadcast_to(pid, (len(v),)))
            F.append(fc + off)
            off += len(v)
        Vc = np.concatenate(V)
        if Vc[:, 2].min() < 0.05:
            return None
        buf = np.empty((off, VERTEX_FLOATS), np.float32)
        buf[:, 0:3] = Vc
        buf[:, 3:6] = np.concatenate(N)
        buf[:, 6:9] = np.concatenate(C)
        buf[:, 9:12] = np.concatenate(T)
        buf[:, 12:14] = np.concatenate(M)
        buf[:, 14] = np.concatenate(P)
        lights = self._lights(rng, indoor)
        rgb, alpha, depth, part = st["renderer"].render(buf, np.concatenate(F), Kr, lights, detail)
        # visibility: inside the crop and the camera image, its own part in front (within
        # +-1 crop pixel, so that fingertip labels on the silhouette count) and no other part
        # in front of it at its pixel
        uv_r = L_cam[:, :2] / L_cam[:, 2:] @ Kr[:2, :2].T + Kr[:2, 2]
        inside = np.all((uv_r >= -0.5) & (uv_r <= Sr - 0.5), axis=1)
        inside &= np.all((uv >= -0.5) & (uv <= np.array([W, H]) - 0.5), axis=1)
        ij = np.clip(np.round(uv_r).astype(int), 0, Sr - 1)
        visible = inside & self._own_surface(ij, L_cam[:, 2], part, depth, ss, cfg.visibility_tol_mm / 1000.0)
        # composite at the crop's resolution: area-downsampling is linear, so downsampling the
        # premultiplied hand and its coverage, then compositing, equals compositing first
        uv_c = L_cam[:, :2] / L_cam[:, 2:] @ Kc[:2, :2].T + Kc[:2, 2]
        premul = rgb * alpha[..., None]
        if ss > 1:
            premul = cv2.resize(premul, (S, S), interpolation=cv2.INTER_AREA)
            alpha = cv2.resize(alpha, (S, S), interpolation=cv2.INTER_AREA)
        alpha_shadow = alpha            # the shadow is cast by the hand, not its defocused image
        if cfg.hand_texture > 0:
            premul, alpha = hand_layer_texture(rng_texture, premul, alpha, float(cfg.hand_texture))
        bg = backgrounds.sample_background(
            rng, S, kind=("person" if rng.random() < 0.5 else "shelves") if indoor else None, skin=tone,
            p_defocus=cfg.p_background_defocus, fine=cfg.fine_backgrounds)
        if rng.random() < cfg.p_shadow:
            bg = self._shadow(rng, bg, alpha_shadow)
        img = premul + bg * (1.0 - alpha[..., None])
        if rng.random() < cfg.p_occluder:
            img, occ = self._occluder(rng, img, uv_c, tone)
            ijc = np.clip(np.round(uv_c).astype(int), 0, S - 1)
            visible &= ~occ[ijc[:, 1], ijc[:, 0]]
            alpha = alpha * ~occ
        # outside the camera image the crop is black, as warp_crop makes it
        img = self._black_outside(img, A, W, H)
        image = self._camera_effects(rng, img, indoor)
        out = {"image": image, "K": Kc, "joints_3d_mm": L_cam * 1000.0,
               "joints_2d_px": uv_c, "visible": visible, "is_left": is_left}
        if with_mask:
            out["mask"] = self._black_outside(alpha[..., None], A, W, H)[..., 0].astype(np.float32)
        return out

    # -- pieces -------------------------------------------------------------
    @staticmethod
    def _own_surface(ij, z_m, part, depth, r, tol_m) -> np.ndarray:
        """(21,) whether each keypoint's own part is the front surface near its pixel ij (x, y),
        and no other part lies in front of it at that pixel itself.

        The window (+-r render pixels) lets labels on the silhouette count, fingertips whose
        label lies just off their finger's pixels; it alone also counted a joint seen 1 px
        off the edge of a finger covering it (~5% of the labels in a crop).
        """
        S = part.shape[0]
        d = np.arange(-r, r + 1)
        xs = np.clip(ij[:, 0:1, None] + d[None, None, :], 0, S - 1)            # (21, 1, n)
        ys = np.clip(ij[:, 1:2, None] + d[None, :, None], 0, S - 1)            # (21, n, 1)
        p = part[ys, xs].reshape(len(ij), -1)
        z = depth[ys, xs].reshape(len(ij), -1)
        own = OWN_PARTS[np.arange(len(ij))[:, None], p]
        centre = part[ij[:, 1], ij[:, 0]]
        # depth without the tolerance: another part's surface in front of the label hides it
        covered = (centre > 0) & ~OWN_PARTS[np.arange(len(ij)), centre] & (depth[ij[:, 1], ij[:, 0]] < z_m)
        return np.any(own & (z_m[:, None] <= z + tol_m), axis=1) & ~covered

    @staticmethod
    def _orientation(rng, upright: bool, p_palm_facing: float) -> np.ndarray:
        """Model -> camera rotation of the right rig (fingers -y, back of the hand +x, thumb -z)."""
        if not upright:
            return Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
        # palm toward the camera, fingers up: model x -> camera z, model y -> camera y
        R0 = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
        if rng.random() > p_palm_facing:         # back of the hand toward the camera
            R0 = R0 @ np.diag([-1.0, 1.0, -1.0])
        roll = rng.normal(0, 35) if rng.random() < 0.85 else rng.uniform(-180, 180)   # in the image plane
        yaw = rng.normal(0, 30)          # about the image vertical: edge-on hands
        pitch = rng.normal(0, 25)        # fingers toward / away from the camera
        return Rotation.from_euler("zyx", [roll, yaw, pitch], degrees=True).as_matrix() @ R0

    @staticmethod
    def _forearm(rng, posed, width, tone, spec):
        """Forearm (and sleeve) hanging off the wrist, bent by wrist flexion and deviation."""
        Rw = posed[0, :3, :3]
        # the glb's wrist stump ends ~2 cm proximal of the wrist joint; its cross-section there
        # is centred 3 mm palmar-ish and is 31 x 52 mm: start the tube inside it
        origin = posed[0, :3, 3] + Rw @ np.array([0.001, -0.003, 0.004])
        bend = Rotation.from_euler("xy", [rng.normal(0, 22), rng.normal(0, 10)], degrees=True).as_matrix()
        # wrist frame: +Z toward the forearm, +Y back, +X toward the pinky. The tube's own
        # axes (x thickness, y length, z width) map to the wrist's (Y, Z, X)
        B = Rw @ bend @ np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        sleeve_at = rng.uniform(0.15, 0.8) if rng.random() < 0.55 else None
        v, n, f, t, sl = _tube(rng.uniform(0.16, 0.3), 0.0155 * width * rng.uniform(1.0, 1.15),
                               0.026 * width * rng.uniform(0.95, 1.1), rng.uniform(1.1, 1.3), B, origin,
                               sleeve_start=sleeve_at)
        c = np.tile(tone * rng.uniform(0.92, 1.05), (len(v), 1))
        m = np.tile([1.0, spec], (len(v), 1))
        if sleeve_at is not None:
            cloth = np.array(backgrounds._muted(rng) if rng.random() < 0.6 else backgrounds._color(rng))
            c[sl] = cloth
            m[sl] = (0.25, 0.02)
        tex = v * 0.7 + 1.0             # any smooth coordinate on the surface
        return v, n, c, tex, m, float(FOREARM_PART), f

    @staticmethod
    def _lights(rng, indoor: bool) -> dict:
        kelvin = rng.uniform(2800, 5500) if indoor else rng.uniform(2500, 8000)
        col = _kelvin_rgb(kelvin)
        dirs = rng.normal(0, 1, (2, 3))
        dirs[:, 2] = -np.abs(dirs[:, 2]) - rng.uniform(0.1, 0.8, 2)   # from the camera's side
        if indoor:
            dirs[0, 1] = -abs(dirs[0, 1]) - 0.5                       # ceiling light: from above
        key = rng.uniform(0.55, 1.0)
        fill = rng.uniform(0.0, 0.45)
        amb = rng.uniform(0.15, 0.5)
        return {"light_dir": dirs, "light_col": np.stack([col * key, _kelvin_rgb(rng.uniform(2800, 8000)) * fill]),
                "ambient_up": col * amb, "ambient_down": col * amb * rng.uniform(0.3, 0.9),
                "up_dir": np.array([0.0, -1.0, 0.0]), "shininess": rng.uniform(6, 40),
                "wrap": rng.uniform(0.15, 0.5), "tex_seed": rng.uniform(0, 100)}

    @staticmethod
    def _shadow(rng, bg, alpha):
        S = bg.shape[0]
        sh = np.ascontiguousarray(alpha)
        M = np.float32([[1, 0, rng.normal(0, 0.12) * S], [0, 1, rng.normal(0.05, 0.12) * S]])
        sh = cv2.warpAffine(sh, M, (S, S))
        sh = cv2.GaussianBlur(sh, (0, 0), rng.uniform(0.02, 0.08) * S)
        return bg * (1.0 - rng.uniform(0.2, 0.6) * sh[..., None])

    @staticmethod
    def _occluder(rng, img, uv_r, tone):
        """A textured blob (object, other hand's finger, sleeve) over part of the hand."""
        S = img.shape[0]
        mask = np.zeros((S, S), np.uint8)
        c = uv_r[int(rng.integers(len(uv_r)))] + rng.normal(0, S * 0.06, 2)
        if rng.random() < 0.5:
            axes = (int(rng.uniform(0.05, 0.2) * S), int(rng.uniform(0.03, 0.12) * S))
            cv2.ellipse(mask, (int(c[0]), int(c[1])), axes, rng.uniform(0, 180), 0, 360, 1, -1)
        else:
            n = int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            r = rng.uniform(0.04, 0.18, n) * S
            pts = np.stack([c[0] + r * np.cos(ang), c[1] + r * np.sin(ang)], -1).astype(np.int32)
            cv2.fillPoly(mask, [pts], 1)
        m = mask.astype(bool)
        if rng.random() < 0.3:
            tex = np.empty_like(img)
            tex[:] = tone * rng.uniform(0.7, 1.1)       # skin-coloured: another hand's finger
            tex *= (0.85 + 0.3 * backgrounds._noise(rng, S, 4, 1))
        else:
            tex = backgrounds.sample_background(rng, S)
        shade = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.03 * S)   # soft contact shadow
        out = img * (1.0 - 0.3 * shade[..., None])
        out[m] = tex[m]
        return out, m

    @staticmethod
    def _black_outside(img, A, W, H):
        S = img.shape[0]
        Ai = invert_affine(A)
        # corners of the crop in the camera image; skip the work when all are inside
        corners = np.array([[0, 0], [S - 1, 0], [0, S - 1], [S - 1, S - 1]], np.float64) @ Ai[:, :2].T + Ai[:, 2]
        if np.all((corners >= -0.5) & (corners <= np.array([W, H]) - 0.5)):
            return img
        ys, xs = np.mgrid[0:S, 0:S].astype(np.float32)
        x = Ai[0, 0] * xs + Ai[0, 1] * ys + Ai[0, 2]
        y = Ai[1, 0] * xs + Ai[1, 1] * ys + Ai[1, 2]
        inside = (x >= -0.5) & (x <= W - 0.5) & (y >= -0.5) & (y <= H - 0.5)
        return img * inside[..., None]

    def _camera_effects(self, rng, img, indoor) -> np.ndarray:
        cfg = self.cfg
        S = img.shape[0]
        if rng.random() < cfg.p_motion_blur:
            n = int(rng.integers(3, max(4, S // 14)))
            k = np.zeros((n, n), np.float32)
            k[n // 2] = 1.0
            Mr = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), rng.uniform(0, 180), 1.0)
            k = cv2.warpAffine(k, Mr, (n, n))
            img = cv2.filter2D(img, -1, k / max(float(k.sum()), 1e-6))
        if rng.random() < cfg.p_blur:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.3) * S / 128.0)
        if rng.random() < cfg.p_low_res:
            f = rng.uniform(0.35, 0.7)
            small = cv2.resize(img, (max(8, int(S * f)), max(8, int(S * f))), interpolation=cv2.INTER_AREA)
            img = cv2.resize(small, (S, S), interpolation=cv2.INTER_LINEAR)
        j = cfg.color_jitter
        if j > 0:
            gains = np.exp(rng.normal(0, 0.06 * j, 3)).astype(np.float32)                 # white balance
            expo = np.clip(np.exp(rng.normal(0.0, 0.15 * j)), 0.6, 1.5)                   # exposure
            img = img * (gains * np.float32(expo))
            mean = img.mean(axis=(0, 1), keepdims=True)
            img = (img - mean) * np.float32(np.clip(np.exp(rng.normal(0, 0.12 * j)), 0.7, 1.4)) + mean   # contrast
            grey = img.mean(-1, keepdims=True)
            img = grey + (img - grey) * np.float32(np.clip(rng.normal(1.0, 0.2 * j), 0.3, 1.6))        # saturation
            if rng.random() < 0.3 * j:      # hue rotation about the grey axis
                a = np.deg2rad(rng.normal(0, 6))
                Rh = Rotation.from_rotvec(np.ones(3) / np.sqrt(3) * a).as_matrix().astype(np.float32)
                img = (img - grey) @ Rh.T + grey
        img = np.clip(img, 0.0, 1.0)
        img = img ** np.float32(rng.uniform(0.85, 1.15))
        if rng.random() < cfg.p_noise:      # read noise + shot noise
            sigma = rng.uniform(0.002, 0.02)
            shot = rng.uniform(0.0, 0.002)
            noise = rng.standard_normal(img.shape).astype(np.float32)
            img = img + noise * np.sqrt(sigma ** 2 + shot * img).astype(np.float32)
        image = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        if rng.random() < cfg.p_jpeg:
            q = int(rng.uniform(30, 95))
            ok, enc = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, q])
            if ok:
                image = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED)
        return image


# ----------------------------------------------------------------------------- shards

SHARD_ARRAYS = ("images", "K", "joints_3d_mm", "joints_2d_px", "visible", "is_left")


def _shard_path(out_dir: Path, k: int) -> Path:
    return out_dir / f"shard_{k:05d}.npz"


def _cache_file(name: str) -> bool:
    """Whether ``name`` is one of a shard cache's own files: only their part files are its to remove."""
    return name == "cache.json" or re.fullmatch(r"shard_\d{5,}\.npz", name) is not None


def _render_shard(args) -> int:
    # the exception that removes a torn shard's part file, only while a shard is rendered,
    # when the main thread runs Python and sees the signal whichever thread takes it
    if _is_render_worker:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return _render_shard_now(args)
    finally:
        if _is_render_worker:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _render_shard_now(args) -> int:
    out_dir, k, start, count, cfg_json, seed = args
    final = _shard_path(Path(out_dir), k)
    if _shard_complete(final, count, cfg_json["crop_size_px"]):
        return k
    gen = SyntheticHandGenerator(SyntheticConfig(**cfg_json), seed)
    S = gen.cfg.crop_size_px
    arr = {"images": np.empty((count, S, S, 3), np.uint8), "K": np.empty((count, 3, 3), np.float32),
           "joints_3d_mm": np.empty((count, 21, 3), np.float32), "joints_2d_px": np.empty((count, 21, 2), np.float32),
           "visible": np.empty((count, 21), bool), "is_left": np.empty((count,), bool)}
    for r in range(count):
        s = gen.sample(start + r)
        arr["images"][r] = s["image"]
        arr["K"][r] = s["K"]
        arr["joints_3d_mm"][r] = s["joints_3d_mm"]
        arr["joints_2d_px"][r] = s["joints_2d_px"]
        arr["visible"][r] = s["visible"]
        arr["is_left"][r] = s["is_left"]
    # stopped while writing (Ctrl-C, the pool ended): a later run renders the shard again
    savez_replacing(final, **arr)
    return k


def _shard_complete(path: Path, count: int, size_px: int) -> bool:
    """Whether ``path`` holds at least the ``count`` samples a run needs, of ``size_px`` crops.
    More is complete: a cache's last shard is longer where a larger run extended it, and a
    smaller run rendering it again shorter would take samples from the larger run's readers.
    Crops of another size are another cache's shards (its cache.json deleted, not its folder)."""
    if not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if not all(f"{a}.npy" in names for a in SHARD_ARRAYS):
                return False
        arrays = _open_npz_mmap(path)
        return len(arrays["is_left"]) >= count and arrays["images"].shape[1:] == (size_px, size_px, 3)
    except Exception:  # noqa: BLE001 - a torn or foreign file is redone
        return False


class CacheError(ValueError):
    """A shard cache that cannot be used: another generator's, or its cache.json damaged."""


def _read_cache_meta(path: Path, text: str | None = None) -> dict:
    try:
        meta = json.loads(path.read_text() if text is None else text)
    except (OSError, ValueError) as exc:
        raise CacheError(f"{path} is damaged ({type(exc).__name__}: {exc}); delete the cache folder "
                         f"{path.parent} to render it again") from None
    if not isinstance(meta, dict):
        raise CacheError(f"{path} is not a shard cache's cache.json; delete {path.parent} to render it again")
    return meta


def _other_render_version(meta_path: Path, meta: dict) -> str | None:
    """What is wrong with a cache of another RENDER_VERSION than this code's, else None."""
    version = meta.get("render_version", 1)         # none recorded: written before version 2
    if version == RENDER_VERSION:
        return None
    return (f"{meta_path}: renderer version {version}, this code renders version {RENDER_VERSION} (the two "
            "render other images or labels for the same settings and seed)")


def write_shards(out_dir, num_samples: int, cfg: SyntheticConfig | None = None, seed: int = 0,
                 shard_size: int = 2048, workers: int = 1, progress: bool = True) -> Path:
    """Render samples ``0 .. num_samples-1`` of ``(cfg, seed)`` into ``.npz`` shards.

    Shard k holds samples ``k * shard_size ...``; arrays: images uint8 (N, S, S, 3), K float32
    (N, 3, 3), joints_3d_mm float32 (N, 21, 3), joints_2d_px float32 (N, 21, 2), visible bool
    (N, 21), is_left bool (N,). Resumable: complete shards are kept, torn ones redone
    (each shard is written to a temporary file and renamed). ``workers`` > 1 renders
    shards in that many processes (one GL context each). A folder made with another config,
    seed, shard size or :data:`RENDER_VERSION` is an error, never silently mixed; a larger
    ``num_samples`` extends it.

    Returns:
        ``out_dir`` as a Path.
    """
    cfg = cfg or SyntheticConfig()
    if num_samples < 1 or shard_size < 1:
        raise ValueError(f"num_samples and shard_size must be >= 1, got {num_samples}, {shard_size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"format": "hand25d-synthetic-shards/1", "seed": int(seed), "shard_size": int(shard_size),
            "config": cfg.to_json()}
    meta_path = out_dir / "cache.json"
    old_text = meta_path.read_text() if meta_path.exists() else None
    if old_text is not None:
        old = _read_cache_meta(meta_path, old_text)
        old["config"] = {**LEGACY_CONFIG, **old.get("config", {})}
        if {k: old.get(k) for k in meta} != meta:
            # what differs: naming the seed and shard size alone, the same in a cache of another
            # crop size or render setting, sent users looking for a difference that was not there
            before = {**{k: old.get(k) for k in meta if k != "config"},
                      **{f"config.{k}": v for k, v in old["config"].items()}}
            now = {**{k: v for k, v in meta.items() if k != "config"},
                   **{f"config.{k}": v for k, v in meta["config"].items()}}
            diff = [f"{k} {before.get(k)!r}, here {now.get(k)!r}" for k in sorted(set(before) | set(now))
                    if before.get(k) != now.get(k)]
            raise CacheError(f"{out_dir} holds synthetic shards made with other settings ({meta_path}: "
                             f"{'; '.join(diff[:6])}{' ...' if len(diff) > 6 else ''}); "
                             "use another folder or delete it")
        # checked after the settings: a cache of other settings is refused whatever its version
        problem = _other_render_version(meta_path, old)
        if problem:
            # reused, it trains on the old renders; extended, on a mix of old and new
            raise CacheError(f"{problem}; delete {out_dir} to render it again, or use another folder")
        num_total = max(int(num_samples), int(old.get("num_samples", 0)))
    else:
        num_total = int(num_samples)
    text = json.dumps(dict(meta, render_version=RENDER_VERSION, num_samples=num_total), indent=1)
    if text != old_text:
        # atomic: two training runs sharing a cache read it while the other one starts. Named by
        # pid as the shards are, not mkstemp's, whose 0600 kept other users from a shared cache
        tmp = out_dir / f".cache.json.{os.getpid()}.tmp"
        tmp.write_text(text)
        taken = False
        try:
            if old_text is None:
                # the folder's first run: a rename would take it from another run that began
                # on it a moment before with other settings, and both rendered into it. A
                # link, unlike a rename, fails where the name exists
                try:
                    os.link(tmp, meta_path)
                except FileExistsError:
                    taken = True
                except OSError:             # a file system without hard links
                    os.replace(tmp, meta_path)
            else:
                os.replace(tmp, meta_path)
        finally:
            tmp.unlink(missing_ok=True)
        if taken:                           # checked against the other run's settings
            return write_shards(out_dir, num_samples, cfg, seed, shard_size, workers, progress)
    # a render killed while writing (SIGKILL, the power) left its part file, as large as a
    # shard; only the folder's next run finds it. Those of a live run sharing the cache stay
    remove_abandoned_parts(out_dir, _cache_file)
    n_shards = (num_samples + shard_size - 1) // shard_size
    jobs = [(str(out_dir), k, k * shard_size, min(shard_size, num_samples - k * shard_size), cfg.to_json(), int(seed))
            for k in range(n_shards)]
    todo = [j for j in jobs if not _shard_complete(_shard_path(out_dir, j[1]), j[3], cfg.crop_size_px)]
    if todo:
        from tqdm import tqdm
        bar = tqdm(total=sum(j[3] for j in todo), unit="sample", desc=f"rendering {out_dir.name}",
                   disable=not progress)
        if workers > 1:
            with render_pool(workers) as pool:
                for k in pool.imap_unordered(_render_shard, todo):
                    bar.update(jobs[k][3])
        else:
            for j in todo:
                _render_shard(j)
                bar.update(j[3])
        bar.close()
    return out_dir


# True in a pool's render worker (_worker_init)
_is_render_worker = False


def _worker_init():
    global _is_render_worker
    _is_render_worker = True
    # one GL context per worker process; llvmpipe's own threads would oversubscribe the cores
    os.environ.setdefault("LP_NUM_THREADS", "1")
    # Pool.terminate ends workers with SIGTERM. Between shards a worker waits in C (the pool's
    # queue lock, a pipe read) on its main thread, and a signal that another thread of it took
    # (llvmpipe's, OpenBLAS's, OpenCV's) only flagged a Python handler, never ran it: the worker
    # waited on for ever, and so did the run stopping it. The default action ends the process
    # whichever thread takes the signal; _render_shard raises instead while a shard is written.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _exit_on_sigterm(signum, frame):
    """A render worker's SIGTERM while it renders a shard (the only time it is the handler):
    an exception, which removes the shard's part file. Outside a shard the default action
    ends the worker: the pool ends its workers with SIGTERM at the end of every render as well,
    often while one is already exiting, and an exception raised in its exit handlers (torch's
    among them) printed tracebacks ("Exception ignored in atexit callback ... SystemExit: 143").

    The exception can land inside a constructor (imageio's, as the first shard loads the
    background photos), and the half-built object's ``__del__`` then fails as the worker
    unwinds: Python printed its "Exception ignored ... Traceback" under the run's one-line
    message. The worker is ending, so such reports are dropped from here on."""
    sys.unraisablehook = _ignore_unraisable
    raise SystemExit(128 + signum)


def _ignore_unraisable(unraisable) -> None:
    """``sys.unraisablehook`` of a render worker that is being stopped (see _exit_on_sigterm)."""


@contextlib.contextmanager
def render_pool(workers: int):
    """A spawn ``multiprocessing.Pool`` of render workers that ignore SIGINT. Ctrl-C reaches
    the whole process group: the parent's KeyboardInterrupt ends the pool, and each worker
    would print its own traceback on top of the run's message (or a fatal error, caught while
    starting). Ignored from the parent at their start, which they inherit, not from an
    initializer, which runs after Python's own start-up."""
    import multiprocessing as mp
    main_thread = threading.current_thread() is threading.main_thread()   # signal.signal's rule
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread else None
    try:
        pool = mp.get_context("spawn").Pool(workers, initializer=_worker_init)
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
    with pool:
        yield pool


def _open_npz_mmap(path: Path) -> dict[str, np.ndarray]:
    """Memory-map every member of an uncompressed .npz (np.load cannot mmap inside a zip)."""
    out = {}
    with zipfile.ZipFile(path) as z, open(path, "rb") as fh:
        for info in z.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"{path}: member {info.filename} is compressed; shards must be written "
                                 "with np.savez (uncompressed)")
            fh.seek(info.header_offset)
            local = fh.read(30)
            if local[:4] != b"PK\x03\x04":
                raise ValueError(f"{path}: bad zip local header for {info.filename}")
            name_len = int.from_bytes(local[26:28], "little")
            extra_len = int.from_bytes(local[28:30], "little")
            start = info.header_offset + 30 + name_len + extra_len
            fh.seek(start)
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            out[info.filename[:-4]] = np.memmap(path, dtype=dtype, mode="r", offset=fh.tell(), shape=shape,
                                                order="F" if fortran else "C")
    return out


def _open_shard(path: Path) -> dict[str, np.ndarray]:
    """The memory-mapped arrays of one shard, or a CacheError naming it. Shards appear only
    whole (renamed into place), so one that does not open was damaged afterwards; skipping
    it served the shards before it alone, a run silently training on part of its data."""
    try:
        arrays = _open_npz_mmap(path)
        missing = [a for a in SHARD_ARRAYS if a not in arrays]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CacheError(f"{path} is damaged ({type(exc).__name__}: {exc}); write_shards (hand25d-train "
                         "on this cache) renders it again") from None
    return arrays


class ShardDataset:
    """The samples of a shard folder (``torch.utils.data.Dataset`` protocol), memory-mapped.

    Items are dicts as :meth:`SyntheticHandGenerator.sample` returns (numpy arrays; K and
    joints as float64). Safe to pickle into DataLoader workers (maps reopen lazily).
    ``num_samples`` keeps the first N (samples ``0 .. N-1`` of the folder's seed): a folder
    extended for a larger run still serves a smaller one exactly what it asked for.
    """

    def __init__(self, root, num_samples: int | None = None):
        if num_samples is not None:
            num_samples = check_count(num_samples, "num_samples")
        root = Path(root)
        meta = root / "cache.json"
        if not meta.is_file():
            raise FileNotFoundError(f"no synthetic shards at {root} ({meta} missing); render them with "
                                    "hand25d_ros.data.synthetic.write_shards")
        self.root = root
        self.meta = _read_cache_meta(meta)
        problem = _other_render_version(meta, self.meta)
        if problem:
            # a warning, not an error: its images are valid renders, worth looking at beside the
            # new ones (hand25d-render-sheet --cache), and hand25d-train, which would train on
            # the stale labels, refuses the cache in write_shards before it reads it
            warnings.warn(f"{problem}; its labels may not be this renderer's. write_shards (hand25d-train) "
                          f"refuses it: delete {root} to render it again", stacklevel=2)
        shard_size = int(self.meta["shard_size"])
        size_px = (self.meta.get("config") or {}).get("crop_size_px")
        shards = sorted(root.glob("shard_*.npz"))
        self.shards, self.counts = [], []
        for p in shards:
            k = int(p.stem.split("_")[1])
            if k != len(self.shards):
                break                               # only the complete prefix of shards is used
            arrays = _open_shard(p)
            if size_px is not None and arrays["images"].shape[1:3] != (size_px, size_px):
                raise CacheError(f"{p} holds {arrays['images'].shape[1]} px crops, {meta} says {size_px}: "
                                 f"another cache's shards; delete {root} to render it again")
            n = len(arrays["is_left"])
            self.shards.append(p)
            self.counts.append(n)
            if n != shard_size or (num_samples is not None and sum(self.counts) >= num_samples):
                break                               # the rest is not asked for: not opened
        if not self.shards:
            raise FileNotFoundError(f"synthetic folder {root} has no complete shard")
        if num_samples is not None:
            self.counts[-1] -= max(0, sum(self.counts) - num_samples)
        self.offsets = np.cumsum([0] + self.counts)
        self._maps: dict[int, dict] = {}

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_maps"] = {}
        return d

    def _shard(self, j: int) -> dict:
        if j not in self._maps:
            self._maps[j] = _open_shard(self.shards[j])
        return self._maps[j]

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        j = int(np.searchsorted(self.offsets, i, side="right") - 1)
        a = self._shard(j)
        r = i - int(self.offsets[j])
        return {"image": np.array(a["images"][r]), "K": np.array(a["K"][r], np.float64),
                "joints_3d_mm": np.array(a["joints_3d_mm"][r], np.float64),
                "joints_2d_px": np.array(a["joints_2d_px"][r], np.float64),
                "visible": np.array(a["visible"][r]), "is_left": bool(a["is_left"][r])}

"""Hand pose sampler with anatomical joint limits.

A pose is a (25, 3, 3) array of local joint rotations for the WebXR skeleton
(``hand_mesh.WEBXR_JOINTS``). Each finger joint flexes about its X axis and abducts
about its Y axis (WebXR frames: -Z along the bone, +Y out of the back of the hand),
so a positive flexion angle ``phi`` is ``R_x(-phi)``, curling toward the palm.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

# (flexion min, max), (abduction min, max) in degrees, per joint kind
FINGER_LIMITS = {
    "metacarpal": ((0.0, 12.0), (-4.0, 4.0)),
    "phalanx-proximal": ((-25.0, 90.0), (-22.0, 22.0)),      # MCP
    "phalanx-intermediate": ((-5.0, 110.0), (0.0, 0.0)),    # PIP
    "phalanx-distal": ((-10.0, 80.0), (0.0, 0.0)),          # DIP
}
THUMB_LIMITS = {
    "thumb-metacarpal": ((-20.0, 45.0), (-25.0, 35.0)),     # CMC
    "thumb-phalanx-proximal": ((-15.0, 60.0), (-8.0, 8.0)),  # MCP
    "thumb-phalanx-distal": ((-20.0, 85.0), (0.0, 0.0)),     # IP
}
FINGERS = ("index", "middle", "ring", "pinky")
# how much the metacarpals of ring and pinky may curl (a cupped palm)
META_CURL = {"index": 0.1, "middle": 0.2, "ring": 0.6, "pinky": 1.0}

POSE_FAMILIES = ("open", "fist", "pinch", "point", "grasp", "random", "relaxed", "count")


def _joint(name: str) -> int:
    from .hand_mesh import WEBXR_JOINTS
    return WEBXR_JOINTS.index(name)


def rot_flex_abd(flex_deg: float, abd_deg: float, twist_deg: float = 0.0) -> np.ndarray:
    """Local rotation: abduction about Y, then flexion about X, then twist about Z."""
    return Rotation.from_euler("YXZ", [abd_deg, -flex_deg, twist_deg], degrees=True).as_matrix()


def _finger_curl(rng, lo, hi):
    """(MCP, PIP, DIP) flexion for a curl level drawn in [lo, hi] (0 open, 1 fist)."""
    c = rng.uniform(lo, hi)
    mcp = c * 85 + rng.normal(0, 8)
    pip = c * 100 + rng.normal(0, 8)
    dip = 0.7 * pip + rng.normal(0, 6)   # DIP follows PIP (tendon coupling)
    return mcp, pip, dip


def sample_pose(rng: np.random.Generator, family: str | None = None) -> np.ndarray:
    """Sample local joint rotations (25, 3, 3) from a pose family (random if None)."""
    family = family or POSE_FAMILIES[rng.integers(len(POSE_FAMILIES))]
    flex = {}
    abd = {}
    spread = rng.uniform(-1, 1)  # fingers together (-1) .. spread (+1)
    for i, f in enumerate(FINGERS):
        if family in ("open", "relaxed"):
            lo, hi = (0.0, 0.12) if family == "open" else (0.1, 0.4)
            c = _finger_curl(rng, lo, hi)
        elif family == "fist":
            c = _finger_curl(rng, 0.8, 1.0)
        elif family == "point":
            c = _finger_curl(rng, 0.0, 0.1) if f == "index" else _finger_curl(rng, 0.75, 1.0)
        elif family == "pinch":
            c = _finger_curl(rng, 0.25, 0.55) if f == "index" else _finger_curl(rng, 0.0, 0.9)
        elif family == "grasp":
            c = _finger_curl(rng, 0.3, 0.7)
        elif family == "count":
            n_up = rng.integers(1, 5)
            c = _finger_curl(rng, 0.0, 0.1) if i < n_up else _finger_curl(rng, 0.8, 1.0)
        else:
            c = (rng.uniform(-20, 90), rng.uniform(-5, 110), rng.uniform(-10, 80))
        flex[f] = c
        abd[f] = (i - 1.5) * 7.0 * (spread + 1) + rng.normal(0, 4)
    R = np.tile(np.eye(3), (25, 1, 1))
    for f in FINGERS:
        mcp, pip, dip = flex[f]
        lim = FINGER_LIMITS
        R[_joint(f"{f}-finger-metacarpal")] = rot_flex_abd(
            np.clip(META_CURL[f] * max(0.0, mcp) * 0.12, *lim["metacarpal"][0]), 0.0)
        R[_joint(f"{f}-finger-phalanx-proximal")] = rot_flex_abd(
            np.clip(mcp, *lim["phalanx-proximal"][0]), np.clip(abd[f], *lim["phalanx-proximal"][1]))
        R[_joint(f"{f}-finger-phalanx-intermediate")] = rot_flex_abd(np.clip(pip, *lim["phalanx-intermediate"][0]), 0)
        R[_joint(f"{f}-finger-phalanx-distal")] = rot_flex_abd(np.clip(dip, *lim["phalanx-distal"][0]), 0)
    # thumb
    if family in ("fist",):
        t = (rng.uniform(15, 45), rng.uniform(-20, 10), rng.uniform(20, 60), rng.uniform(20, 70))
    elif family in ("pinch",):
        t = (rng.uniform(20, 45), rng.uniform(0, 30), rng.uniform(0, 40), rng.uniform(0, 50))
    elif family in ("open", "point", "count"):
        t = (rng.uniform(-20, 15), rng.uniform(-25, 30), rng.uniform(-10, 25), rng.uniform(-15, 30))
    else:
        t = (rng.uniform(-20, 45), rng.uniform(-25, 35), rng.uniform(-15, 60), rng.uniform(-20, 85))
    cmc_flex, cmc_abd, mcp_f, ip_f = t
    L = THUMB_LIMITS
    R[_joint("thumb-metacarpal")] = rot_flex_abd(np.clip(cmc_flex, *L["thumb-metacarpal"][0]),
                                                 np.clip(cmc_abd, *L["thumb-metacarpal"][1]), rng.normal(0, 8))
    R[_joint("thumb-phalanx-proximal")] = rot_flex_abd(np.clip(mcp_f, *L["thumb-phalanx-proximal"][0]),
                                                       rng.uniform(*L["thumb-phalanx-proximal"][1]))
    R[_joint("thumb-phalanx-distal")] = rot_flex_abd(np.clip(ip_f, *L["thumb-phalanx-distal"][0]), 0)
    return R


def sample_shape(rng: np.random.Generator):
    """Per-sample hand shape: (25,) bone-length scales and a width scale."""
    scale = np.full(25, 1.0)
    finger = {f: rng.normal(1.0, 0.05) for f in ("thumb",) + FINGERS}
    palm = rng.normal(1.0, 0.05)
    from .hand_mesh import WEBXR_JOINTS
    for j, name in enumerate(WEBXR_JOINTS):
        if name.endswith("metacarpal") and not name.startswith("thumb"):
            scale[j] = palm * rng.normal(1.0, 0.02)
        elif name != "wrist":
            key = name.split("-")[0]
            scale[j] = finger[key] * rng.normal(1.0, 0.03)
    return scale, float(np.clip(rng.normal(1.0, 0.08), 0.8, 1.25))

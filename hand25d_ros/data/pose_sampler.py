"""Hand poses within anatomical joint limits, and per-sample hand shapes.

A pose is a (25, 3, 3) array of local joint rotations of the right-hand WebXR rig
(:mod:`hand25d_ros.data.hand_mesh`), each in its joint's own rest frame. Every joint is
parameterised by three angles (degrees) applied as ``R_y(abd) @ R_x(-flex) @ R_z(twist)``:
``flex`` > 0 curls toward the palm (WebXR: -Z along the bone, +Y out of the back),
``abd`` > 0 moves the finger toward the thumb side (radial), ``twist`` rolls it about
its own axis. Left hands are rendered as the mirrored right rig, so one parameterisation
serves both.

Families (:data:`POSE_FAMILIES`) cover what cameras see people do: open and relaxed hands,
fists, pointing and counting (any subset of fingers up: V sign, pinky up, ...), pinches
and OK signs (the thumb tip brought to a fingertip by a small search), grasps of a round
object, and uniformly random articulations within the limits.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from .hand_mesh import NUM_JOINTS, PALM_JOINTS, PALM_SCALE, TIP_JOINTS, HandMesh, forward_kinematics

# WebXR joint indices
THUMB = (1, 2, 3)                                        # CMC (metacarpal), MCP (proximal), IP (distal)
FINGER_BASE = {"index": 5, "middle": 10, "ring": 15, "pinky": 20}   # the finger's metacarpal joint
FINGERS = tuple(FINGER_BASE)

# Anatomical limits, degrees: joint kind -> ((flex lo, hi), (abd lo, hi), (twist lo, hi))
LIMITS_DEG = {
    "metacarpal": ((-2.0, 15.0), (-3.0, 3.0), (-3.0, 3.0)),          # palm cupping (ring, pinky)
    "mcp": ((-30.0, 95.0), (-25.0, 25.0), (-8.0, 8.0)),
    "pip": ((-5.0, 115.0), (-3.0, 3.0), (-4.0, 4.0)),
    "dip": ((-15.0, 85.0), (-3.0, 3.0), (-3.0, 3.0)),
    "thumb_cmc": ((-25.0, 55.0), (-35.0, 40.0), (-25.0, 25.0)),
    "thumb_mcp": ((-15.0, 65.0), (-10.0, 10.0), (-8.0, 8.0)),
    "thumb_ip": ((-25.0, 85.0), (-3.0, 3.0), (-3.0, 3.0)),
}
# per-finger cupping of the metacarpals at full curl (the ring and pinky rays fold most)
META_CUP = {"index": 0.0, "middle": 0.15, "ring": 0.55, "pinky": 1.0}
# which bent finger the thumb holds by its DIP or tip in a counting gesture, relative weights:
# the ring finger most often (the V sign, "three"), the middle one when it is the first down
THUMB_HOLDS = {"index": 0.2, "middle": 0.25, "ring": 0.4, "pinky": 0.15}
# abduction of each finger (deg) per unit of "spread" (positive: toward the thumb)
SPREAD_DEG = {"index": 11.0, "middle": 2.0, "ring": -8.0, "pinky": -17.0}

POSE_FAMILIES = ("open", "relaxed", "fist", "point", "count", "pinch", "ok", "grasp", "random")
FAMILY_WEIGHTS = np.array([0.14, 0.16, 0.12, 0.09, 0.13, 0.10, 0.06, 0.10, 0.10])


def joint_kinds() -> list[str | None]:
    """Limit kind of each of the 25 joints (None: the wrist and the tips, never rotated)."""
    kinds: list[str | None] = [None] * NUM_JOINTS
    kinds[1], kinds[2], kinds[3] = "thumb_cmc", "thumb_mcp", "thumb_ip"
    for b in FINGER_BASE.values():
        kinds[b], kinds[b + 1], kinds[b + 2], kinds[b + 3] = "metacarpal", "mcp", "pip", "dip"
    return kinds


_KINDS = joint_kinds()
_LO = np.zeros((NUM_JOINTS, 3))
_HI = np.zeros((NUM_JOINTS, 3))
for _j, _k in enumerate(_KINDS):
    if _k is not None:
        _LO[_j] = [lim[0] for lim in LIMITS_DEG[_k]]
        _HI[_j] = [lim[1] for lim in LIMITS_DEG[_k]]


def clip_to_limits(angles_deg: np.ndarray) -> np.ndarray:
    """Clip (*, 25, 3) (flex, abd, twist) angles to :data:`LIMITS_DEG` (wrist and tips to 0)."""
    return np.clip(angles_deg, _LO, _HI)


def angles_to_rotations(angles_deg: np.ndarray) -> np.ndarray:
    """(*, 25, 3) (flex, abd, twist) in degrees -> (*, 25, 3, 3) local rotations.

    ``R = R_y(abd) @ R_x(-flex) @ R_z(twist)``.
    """
    a = np.asarray(angles_deg, dtype=np.float64)
    eul = np.stack([a[..., 1], -a[..., 0], a[..., 2]], -1).reshape(-1, 3)
    return Rotation.from_euler("YXZ", eul, degrees=True).as_matrix().reshape(a.shape[:-1] + (3, 3))


def _curl(rng, c: float) -> tuple[float, float, float]:
    """(MCP, PIP, DIP) flexion for a curl level c (0 straight, 1 fist), with coupling noise."""
    mcp = c * 88.0 + rng.normal(0, 7)
    pip = c * 105.0 + rng.normal(0, 7)
    dip = 0.65 * pip + rng.normal(0, 6)     # DIP follows PIP (shared tendon)
    return mcp, pip, dip


def _set_finger(A, rng, finger, c, abd):
    b = FINGER_BASE[finger]
    mcp, pip, dip = _curl(rng, c)
    A[b] = (META_CUP[finger] * max(c, 0.0) * 14.0 + rng.normal(0, 1.5), 0.0, 0.0)
    A[b + 1] = (mcp, abd, rng.normal(0, 3))
    A[b + 2] = (pip, 0.0, rng.normal(0, 1.5))
    A[b + 3] = (dip, 0.0, 0.0)


def _thumb_random(rng, kind: str):
    """(CMC flex, CMC abd, CMC twist, MCP flex, IP flex)."""
    if kind == "out":        # thumb away from the palm (open hand, pointing)
        return (rng.uniform(-25, 15), rng.uniform(-35, 20), rng.uniform(-15, 15),
                rng.uniform(-15, 25), rng.uniform(-25, 30))
    if kind == "tucked":     # thumb over the curled fingers (fist)
        return (rng.uniform(20, 55), rng.uniform(-10, 25), rng.uniform(-10, 20),
                rng.uniform(20, 60), rng.uniform(15, 70))
    return (rng.uniform(-25, 55), rng.uniform(-35, 40), rng.uniform(-25, 25),
            rng.uniform(-15, 65), rng.uniform(-25, 85))


def _set_thumb(A, t):
    A[1] = (t[0], t[1], t[2])
    A[2] = (t[3], 0.0, 0.0)
    A[3] = (t[4], 0.0, 0.0)


# The palm's slab in the rest wrist frame (mm; X toward the pinky, Y out of the back, Z toward
# the forearm), measured on the glb: the thumb's IP and tip must not enter it.
PALM_BOX_MM = ((-18.0, 38.0), (-30.0, 14.0), (-86.0, -12.0))


def _thumb_chain(mesh: HandMesh, bone_scale, thumb_rot: np.ndarray) -> np.ndarray:
    """Thumb IP (3) and tip (4) positions in the wrist's rest frame (mm) for (n, 3, 3, 3) rotations
    of the thumb's CMC, MCP and IP joints (batched FK of the thumb chain only)."""
    bs = np.ones(NUM_JOINTS) if bone_scale is None else np.asarray(bone_scale)
    L = mesh.rest_local[1:5].copy()
    L[:, :3, 3] *= bs[1:5, None]
    n = len(thumb_rot)
    G = np.broadcast_to(np.eye(4), (n, 4, 4)).copy()
    out = []
    for k in range(4):
        Lk = np.broadcast_to(L[k], (n, 4, 4)).copy()
        if k < 3:
            Lk[:, :3, :3] = Lk[:, :3, :3] @ thumb_rot[:, k]
        G = G @ Lk
        if k >= 2:
            out.append(G[:, :3, 3])
    return np.stack(out, 1) * 1000.0                                   # (n, 2, 3)


def _thumb_in_palm(pts_mm: np.ndarray) -> np.ndarray:
    """(n, m, 3) points in the wrist frame -> (n,) whether any lies inside the palm slab."""
    (x0, x1), (y0, y1), (z0, z1) = PALM_BOX_MM
    x, y, z = pts_mm[..., 0], pts_mm[..., 1], pts_mm[..., 2]
    return np.any((x > x0) & (x < x1) & (y > y0) & (y < y1) & (z > z0) & (z < z1), axis=-1)


def _bring_thumb_to(A, rng, mesh: HandMesh, bone_scale, target_joint: int, n: int = 64):
    """Choose thumb angles (of n random candidates) whose tip lands nearest a fingertip
    without passing through the palm."""
    cands = np.stack([np.array(_thumb_random(rng, "any")) for _ in range(n)])
    B = np.repeat(A[None], n, 0)
    B[:, 1] = cands[:, 0:3]
    B[:, 2] = np.stack([cands[:, 3], np.zeros(n), np.zeros(n)], -1)
    B[:, 3] = np.stack([cands[:, 4], np.zeros(n), np.zeros(n)], -1)
    B = clip_to_limits(B)
    pts = _thumb_chain(mesh, bone_scale, angles_to_rotations(B[:, 1:4]))
    # the target fingertip in the wrist's rest frame
    G = forward_kinematics(mesh, angles_to_rotations(A), bone_scale)
    W = G[0]
    target = (W[:3, :3].T @ (G[target_joint, :3, 3] - W[:3, 3])) * 1000.0
    d = np.linalg.norm(pts[:, 1] - target, axis=1) + 1e3 * _thumb_in_palm(pts)
    A[1:4] = B[int(np.argmin(d)), 1:4]


def thumb_penetrates_palm(mesh: HandMesh, angles_deg: np.ndarray, bone_scale=None) -> bool:
    """Whether the thumb's IP or tip lies inside the palm for these (25, 3) angles."""
    pts = _thumb_chain(mesh, bone_scale, angles_to_rotations(angles_deg[None, 1:4]))
    return bool(_thumb_in_palm(pts)[0])


def family_probabilities(weights: dict | None = None) -> np.ndarray:
    """(len(POSE_FAMILIES),) probabilities of drawing each family: ``FAMILY_WEIGHTS`` with the
    families that ``weights`` names given its weights instead (relative, >= 0), normalised.

    Raises:
        ValueError: an unknown family, a negative or non-finite weight, or all weights 0.
    """
    w = FAMILY_WEIGHTS.astype(np.float64)
    if weights:
        w = w.copy()
        for name, value in weights.items():
            if name not in POSE_FAMILIES:
                raise ValueError(f"unknown pose family {name!r} in the family weights; choose from {POSE_FAMILIES}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < np.inf:
                raise ValueError(f"pose family weight {name}={value!r} must be a finite number >= 0")
            w[POSE_FAMILIES.index(name)] = float(value)
        if w.sum() <= 0.0:
            raise ValueError(f"the pose family weights {weights} leave no family to draw")
    return w / w.sum()


def sample_angles(rng: np.random.Generator, family: str | None = None, mesh: HandMesh | None = None,
                  bone_scale: np.ndarray | None = None, family_p: np.ndarray | None = None,
                  p_thumb_tucked: float = 0.0, p_thumb_on_tips: float = 0.0) -> np.ndarray:
    """(25, 3) (flex, abd, twist) joint angles in degrees, within the limits.

    ``mesh`` is needed for the families that aim the thumb (pinch, ok); without it they
    fall back to a random thumb. ``family_p``: the probabilities of a random family
    (``family_probabilities``; None: the defaults). ``p_thumb_tucked``: how often a point or
    count pose holds its thumb over the curled fingers, as a fist does (counting "one" to
    "four" and the V sign are mostly made that way); 0 draws exactly what the sampler drew
    before the option existed. ``p_thumb_on_tips``: how often, instead (drawn first, needs
    ``mesh``), such a pose holds its bent fingers half-bent, the thumb tip on one's DIP or
    tip (:data:`THUMB_HOLDS`), as people hold them down by the nails; 0 as for the other.
    """
    for name, p in (("p_thumb_tucked", p_thumb_tucked), ("p_thumb_on_tips", p_thumb_on_tips)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} is a probability, got {p}")
    if family is None:
        p = family_probabilities() if family_p is None else family_p
        family = POSE_FAMILIES[rng.choice(len(POSE_FAMILIES), p=p)]
    if family not in POSE_FAMILIES:
        raise ValueError(f"unknown pose family {family!r}; choose one of {POSE_FAMILIES}")
    A = np.zeros((NUM_JOINTS, 3))
    spread = rng.uniform(-0.3, 1.2)
    up = {f: False for f in FINGERS}
    if family == "count":
        while not any(up.values()):
            up = {f: rng.random() < p for f, p in zip(FINGERS, (0.8, 0.6, 0.35, 0.35))}
    aim = None
    for f in FINGERS:
        abd = SPREAD_DEG[f] * spread + rng.normal(0, 3)
        if family == "open":
            c = rng.uniform(-0.15, 0.1)
        elif family == "relaxed":
            c = rng.uniform(0.05, 0.45) + {"index": 0, "middle": 0.03, "ring": 0.07, "pinky": 0.1}[f]
        elif family == "fist":
            c = rng.uniform(0.8, 1.05)
            abd = rng.normal(0, 3)
        elif family == "point":
            c = rng.uniform(-0.1, 0.1) if f == "index" else rng.uniform(0.75, 1.05)
        elif family == "count":
            c = rng.uniform(-0.1, 0.1) if up[f] else rng.uniform(0.75, 1.05)
        elif family in ("pinch", "ok"):
            aim = aim or ("index" if rng.random() < 0.75 else "middle")
            if f == aim:
                c = rng.uniform(0.3, 0.6)
            elif family == "ok":
                c = rng.uniform(-0.1, 0.3)
            else:
                c = rng.uniform(0.0, 0.9)
        elif family == "grasp":
            c = rng.uniform(0.3, 0.7)
        else:
            c = rng.uniform(-0.2, 1.05)
            abd = rng.uniform(-18, 18)
        _set_finger(A, rng, f, c, abd)
    # the draws only when asked for, so that the streams of the recipes before them are unchanged
    down = [f for f in FINGERS if (family == "point" and f != "index") or (family == "count" and not up[f])]
    on_tips = (bool(down) and mesh is not None and p_thumb_on_tips > 0.0 and rng.random() < p_thumb_on_tips)
    tucked = family == "fist" or (not on_tips and family in ("point", "count") and p_thumb_tucked > 0.0
                                  and rng.random() < p_thumb_tucked)
    if on_tips:
        for f in down:
            _set_finger(A, rng, f, rng.uniform(0.55, 0.85), SPREAD_DEG[f] * spread + rng.normal(0, 3))
        w = np.array([THUMB_HOLDS[f] for f in down])
        held = down[rng.choice(len(down), p=w / w.sum())]
        _bring_thumb_to(A, rng, mesh, bone_scale, FINGER_BASE[held] + (3 if rng.random() < 0.5 else 4))
    elif tucked:
        _set_thumb(A, _thumb_random(rng, "tucked"))
    elif family in ("open", "relaxed", "point", "count"):
        _set_thumb(A, _thumb_random(rng, "out" if rng.random() < 0.7 else "any"))
    elif family in ("pinch", "ok") and mesh is not None:
        _bring_thumb_to(A, rng, mesh, bone_scale, TIP_JOINTS[1 + FINGERS.index(aim)])
    elif family == "grasp" and mesh is not None:
        _bring_thumb_to(A, rng, mesh, bone_scale, FINGER_BASE["middle"] + 3)   # oppose the middle DIP
    else:
        _set_thumb(A, _thumb_random(rng, "any"))
    A = clip_to_limits(A)
    if mesh is not None and family not in ("pinch", "ok", "grasp") and not on_tips:
        kind = "tucked" if tucked else "any"
        for _ in range(10):                 # redraw a thumb that went through the palm
            if not thumb_penetrates_palm(mesh, A, bone_scale):
                break
            _set_thumb(A, _thumb_random(rng, kind))
            A = clip_to_limits(A)
    return A


def sample_pose(rng: np.random.Generator, family: str | None = None, mesh: HandMesh | None = None,
                bone_scale: np.ndarray | None = None, family_p: np.ndarray | None = None,
                p_thumb_tucked: float = 0.0, p_thumb_on_tips: float = 0.0) -> np.ndarray:
    """(25, 3, 3) local joint rotations from a pose family (random family, drawn with
    ``family_p``, if None); ``p_thumb_tucked`` and ``p_thumb_on_tips`` as in :func:`sample_angles`."""
    return angles_to_rotations(sample_angles(rng, family, mesh, bone_scale, family_p, p_thumb_tucked,
                                             p_thumb_on_tips))


def sample_shape(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Per-sample hand shape.

    Returns:
        bone_scale: (25,) scale of each joint's offset from its parent: one factor for the
            palm (around ``hand_mesh.PALM_SCALE``, the real palm/finger proportion), one per
            finger, and a little per bone (proportions vary between people).
        width_scale: thickness of fingers and palm around the bones.
    """
    scale = np.ones(NUM_JOINTS)
    palm = PALM_SCALE * rng.normal(1.0, 0.04)
    for j in PALM_JOINTS:
        scale[j] = palm * rng.normal(1.0, 0.02)
    fingers = [(2, 3, 4)] + [(b + 2, b + 3, b + 4) for b in FINGER_BASE.values()]
    for joints in fingers:
        f = rng.normal(1.0, 0.05)
        for j in joints:
            scale[j] = f * rng.normal(1.0, 0.04)
    width = float(np.clip(rng.normal(1.0, 0.08), 0.82, 1.25))
    return scale, width

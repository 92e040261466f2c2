"""The 21-keypoint hand model used everywhere in hand25d_ros.

Order (MediaPipe / FreiHAND order): 0 wrist; thumb 1-4 (CMC, MCP, IP, TIP);
index 5-8, middle 9-12, ring 13-16, pinky 17-20 (MCP, PIP, DIP, TIP).

The root keypoint is the wrist (0): it is the one joint every dataset marks, and
it keeps the root-relative depth of the whole palm small. The scale bone is
wrist (0) -> index MCP (5) with C = 1; the hand-size prior everywhere in this
package is the metric length of that bone (``hand_size_m``).
"""
from __future__ import annotations

import numpy as np

from ._checks import check_array

NUM_KEYPOINTS = 21

KEYPOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)

# parent of each keypoint along the kinematic tree; the wrist is its own root (-1)
PARENTS: tuple[int, ...] = (
    -1,
    0, 1, 2, 3,
    0, 5, 6, 7,
    0, 9, 10, 11,
    0, 13, 14, 15,
    0, 17, 18, 19,
)

# (child, parent) pairs: the 20 bones of the skeleton
BONES: tuple[tuple[int, int], ...] = tuple((k, p) for k, p in enumerate(PARENTS) if p >= 0)

FINGER_NAMES: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")
# keypoints of each finger, from its base to its tip
FINGERS: tuple[tuple[int, ...], ...] = (
    (1, 2, 3, 4),
    (5, 6, 7, 8),
    (9, 10, 11, 12),
    (13, 14, 15, 16),
    (17, 18, 19, 20),
)
TIPS: tuple[int, ...] = (4, 8, 12, 16, 20)

# index into FINGERS for each keypoint; the wrist belongs to no finger (-1)
FINGER_OF: tuple[int, ...] = (-1,) + tuple(f for f in range(5) for _ in range(4))

ROOT = 0
WRIST, THUMB_MCP, INDEX_MCP, MIDDLE_MCP, PINKY_MCP = 0, 2, 5, 9, 17
# the keypoints is_left_hand and palm_toward_camera read: without all of them (an annotation
# that leaves one unlabelled) a skeleton's hand and view are unknown
PALM_KEYPOINTS: tuple[int, ...] = (WRIST, THUMB_MCP, INDEX_MCP, MIDDLE_MCP, PINKY_MCP)
# scale bone (n, parent(n)) of the 2.5D normalisation, and its normalised length C
SCALE_BONE: tuple[int, int] = (INDEX_MCP, WRIST)
SCALE_C = 1.0

# Wrist -> index MCP of an adult hand; real_val_snap averages 87 mm. Used when no
# per-user hand size is given.
DEFAULT_HAND_SIZE_M = 0.087

# RGB colours in [0, 1] per finger (thumb red ... pinky magenta) and the palm/wrist grey;
# the same colours in the debug overlay, the RViz markers and the plots.
FINGER_COLORS_RGB: tuple[tuple[float, float, float], ...] = (
    (0.90, 0.20, 0.20),
    (0.95, 0.75, 0.10),
    (0.20, 0.80, 0.25),
    (0.15, 0.55, 0.95),
    (0.75, 0.25, 0.90),
)
PALM_COLOR_RGB: tuple[float, float, float] = (0.85, 0.85, 0.85)


def keypoint_color_rgb(k: int) -> tuple[float, float, float]:
    """Colour of keypoint ``k`` (and of the bone ending at it), RGB in [0, 1]."""
    f = FINGER_OF[k]
    return PALM_COLOR_RGB if f < 0 else FINGER_COLORS_RGB[f]


def bone_lengths(points: np.ndarray) -> np.ndarray:
    """Length of each of the 20 bones.

    Args:
        points: (*, 21, D) keypoints, D = 2 or 3.

    Returns:
        (*, 20) bone lengths, in the unit of ``points``, in ``BONES`` order.
    """
    # a list raised "list indices must be integers or slices, not tuple", 20 keypoints an IndexError
    points = check_array(points, "points", (Ellipsis, NUM_KEYPOINTS, None), finite=False)
    child = [c for c, _ in BONES]
    parent = [p for _, p in BONES]
    return np.linalg.norm(points[..., child, :] - points[..., parent, :], axis=-1)


# Left/right mirroring of a keypoint array is the identity on indices: the order is
# the same for both hands, only the geometry is mirrored.


def _skeleton_3d(points_3d) -> np.ndarray:
    p = np.asarray(points_3d, dtype=np.float64)
    if p.shape[-2:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"points_3d must be (*, {NUM_KEYPOINTS}, 3), got {p.shape}")
    return p


def _palm_normal_and_side(p: np.ndarray):
    """(*, 21, 3) -> (*, 3) (wrist -> index MCP) x (wrist -> pinky MCP), unnormalised, and
    (*,) True for a left hand (see :func:`is_left_hand`)."""
    w = p[..., WRIST, :]
    normal = np.cross(p[..., INDEX_MCP, :] - w, p[..., PINKY_MCP, :] - w)
    return normal, np.einsum("...i,...i->...", normal, p[..., THUMB_MCP, :] - p[..., MIDDLE_MCP, :]) < 0


def is_left_hand(points_3d: np.ndarray) -> np.ndarray:
    """Which hand a 3D skeleton is, from its chirality.

    The palm's normal (wrist -> index MCP) x (wrist -> pinky MCP) points out of the palm
    side of a right hand and out of the back of a left one, and the thumb MCP sits on the
    palm side of the palm plane in any pose: the sign of their dot product is the hand.
    On real_val_snap and the synthetic test set this agrees with the known hand on every
    frame, the thumb MCP at least 0.14 scale-bone lengths off the plane.

    Args:
        points_3d: (*, 21, 3) keypoints in a right-handed frame (any unit), e.g. the camera
            optical frame; a mirrored (left-handed) frame swaps the answer.

    Returns:
        (*,) bool, True for a left hand.
    """
    return _palm_normal_and_side(_skeleton_3d(points_3d))[1]


def annotated_hand_is_left(is_left, points_3d=None, labelled=None) -> bool | None:
    """The hand an annotation gives: its ``is_left`` where it has one, else the chirality of
    its 3D keypoints (:func:`is_left_hand`) where the palm keypoints that decide it are all
    labelled, else None (unknown). Training and evaluation read the truth alike.

    Args:
        is_left: the annotation's flag, or None.
        points_3d: (21, 3) keypoints, or None for a 2D-only annotation.
        labelled: (21,) bool, the keypoints with a truth; None: all of them.
    """
    if is_left is not None:
        return bool(is_left)
    if points_3d is None:
        return None
    if labelled is not None and not np.asarray(labelled, dtype=bool)[list(PALM_KEYPOINTS)].all():
        return None          # the chirality of NaN keypoints compares False: "right", wrongly
    return bool(is_left_hand(np.asarray(points_3d, dtype=np.float64)))


def palm_normal(points_3d: np.ndarray) -> np.ndarray:
    """The normal of the palm plane that leaves the hand through the palm, for either hand.

    Args:
        points_3d: (*, 21, 3) keypoints in a right-handed frame (any unit).

    Returns:
        (*, 3) (wrist -> index MCP) x (wrist -> pinky MCP), negated for a left hand; not
        normalised (its length is twice the wrist-index-pinky triangle's area).
    """
    normal, left = _palm_normal_and_side(_skeleton_3d(points_3d))
    # that cross product leaves a right hand through the palm and a left one through the back
    return np.where(left[..., None], -normal, normal)


def palm_toward_camera(points_3d: np.ndarray) -> np.ndarray:
    """How squarely the palm faces the camera: the cosine between the palm's outward normal
    and the direction from the middle MCP to the camera (+1 palm toward the camera, -1 the
    back of the hand, near 0 seen edge-on).

    What tells a left hand from a right one in an image is largely how a palm and the back
    of a hand look, so evaluation splits its left/right figures by this view.

    Args:
        points_3d: (*, 21, 3) keypoints in the camera optical frame (camera at the origin,
            any unit).

    Returns:
        (*,) cosines.
    """
    p = _skeleton_3d(points_3d)
    normal = palm_normal(p)
    to_camera = -p[..., MIDDLE_MCP, :]
    denom = np.linalg.norm(normal, axis=-1) * np.linalg.norm(to_camera, axis=-1)
    return np.einsum("...i,...i->...", normal, to_camera) / np.maximum(denom, 1e-12)

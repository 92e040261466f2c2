"""Orientations for a 3D hand pose: the palm frame and one frame per keypoint.

ROS-free numpy (rotations as 3x3 matrices, quaternions via scipy, ``x, y, z, w`` order as
in ``geometry_msgs/Quaternion``). Works on any batch shape ``(*, 21, 3)``; the points are
in any right-handed frame (the camera optical frame on ROS topics) and any unit.

Palm frame (``palm_frame``), from wrist (0), index MCP (5) and pinky MCP (17):
    origin  centroid of the three points (the middle of the palm)
    x       from the wrist towards the midpoint of index MCP and pinky MCP (along the hand,
            towards the fingers)
    y       across the palm, from the index side towards the pinky side: ``pinky - index``
            with its component along x removed
    z       ``x cross y``, the palm normal. For a right hand it points out of the palm
            (the side the palm faces); for a left hand out of the back of the hand
            (``keypoints.is_left_hand(points)``, the chirality of these points, says which;
            ``HandPose.is_left`` is that of an estimate's keypoints, but while tracking the
            track's vote, which one frame's mirror-image reading does not flip).

Joint frames (``hand_frames``), one per keypoint in ``keypoints.KEYPOINT_NAMES`` order:
    x       along the keypoint's bone towards its child: CMC/MCP -> next joint, ..., DIP -> tip.
            A tip has no child: its x continues the last bone (DIP -> tip). The wrist has five
            children: its frame is the palm frame's orientation.
    y       the palm's y (across the palm, roughly the flexion axis of the fingers) with its
            component along x removed. Where the bone runs within 10 degrees of the palm's y
            (a thumb folded across the palm), y is ``palm_z cross x`` instead.
    z       ``x cross y``: for a flat right hand the palm normal, so a flat hand's joint
            frames all coincide with the palm frame's orientation.

Degenerate input never gives NaN: a bone of (near) zero length or with a non-finite end
takes its parent's orientation (down to the palm), and a palm whose three points coincide,
are collinear or are not finite falls back to the identity orientation; both are flagged.
A coordinate beyond ``MAX_COORDINATE`` (1e150) counts as not finite.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.spatial.transform import Rotation

from . import keypoints as kp

# A bone shorter than this (in the unit of the points) has no direction.
MIN_BONE_LENGTH = 1e-6
# sin of the smallest angle between (wrist -> MCP midpoint) and (index MCP -> pinky MCP)
# that still defines a palm plane.
MIN_PALM_SIN = 1e-3
# |cos| between a bone and the palm's y beyond which the palm normal defines y instead
_MAX_COS_TO_PALM_Y = np.cos(np.deg2rad(10.0))

# CHILD[k]: the keypoint the bone of k points to; a tip points from its parent to itself
# (CHILD = -1), the wrist uses the palm (CHILD = -2).
CHILD: tuple[int, ...] = tuple(
    -2 if k == kp.WRIST else next((c for c, p in kp.BONES if p == k), -1)
    for k in range(kp.NUM_KEYPOINTS))
# start and end keypoint of each keypoint's bone (the wrist's is unused)
_BONE_START = np.array([k if c >= 0 else (kp.PARENTS[k] if c == -1 else 0) for k, c in enumerate(CHILD)])
_BONE_END = np.array([c if c >= 0 else (k if c == -1 else 0) for k, c in enumerate(CHILD)])


@dataclass
class HandFrames:
    """Palm frame and per-keypoint orientations of one or more hand poses.

    Attributes:
        palm_origin: (*, 3) origin of the palm frame, in the unit of the input points.
        palm_rotation: (*, 3, 3) palm axes as columns (x, y, z) in the input frame.
        palm_valid: (*,) bool; False where the identity fallback was used.
        joint_rotations: (*, 21, 3, 3) each keypoint's axes as columns.
        joint_valid: (*, 21) bool; False where a keypoint took its parent's orientation
            (or the identity) because its own bone was degenerate.
    """
    palm_origin: np.ndarray
    palm_rotation: np.ndarray
    palm_valid: np.ndarray
    joint_rotations: np.ndarray
    joint_valid: np.ndarray

    @cached_property
    def _quaternions(self) -> np.ndarray:
        """(*, 43, 4): the palm's, the 21 joints' and the 21 joints' relative to the palm, from
        one scipy call: a published hand needs all three (poses, palm, TF), and each call of
        ``Rotation.from_matrix`` costs far more than its handful of matrices. The frames are not
        modified after ``hand_frames`` built them, so computing them once is safe; the result is
        read-only so that no caller can change what the next one reads."""
        R_p, R_j = self.palm_rotation, self.joint_rotations
        R_rel = np.swapaxes(R_p, -1, -2)[..., None, :, :] @ R_j
        q = rotation_to_quaternion(np.concatenate([R_p[..., None, :, :], R_j, R_rel], axis=-3))
        q.setflags(write=False)
        return q

    @property
    def palm_quaternion(self) -> np.ndarray:
        """(*, 4) palm orientation as a unit quaternion ``(x, y, z, w)``."""
        return self._quaternions[..., 0, :]

    @property
    def joint_quaternions(self) -> np.ndarray:
        """(*, 21, 4) keypoint orientations as unit quaternions ``(x, y, z, w)``."""
        return self._quaternions[..., 1:1 + kp.NUM_KEYPOINTS, :]

    @property
    def joint_quaternions_in_palm(self) -> np.ndarray:
        """(*, 21, 4) keypoint orientations relative to the palm frame, ``R_palm^T R_joint``
        (the rotations of the TF tree's palm -> keypoint transforms)."""
        return self._quaternions[..., 1 + kp.NUM_KEYPOINTS:, :]

    @property
    def valid(self) -> np.ndarray:
        """(*,) bool: the palm and every keypoint have their own, non-fallback frame."""
        return np.asarray(self.palm_valid & np.all(self.joint_valid, axis=-1))


def rotation_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(*, 3, 3) rotation matrices -> (*, 4) unit quaternions ``(x, y, z, w)``, ``w >= 0``."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"R must be in the shape of (*, 3, 3). Got {R.shape}")
    q = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat()  # scalar last
    q = np.where(q[:, 3:4] < 0, -q, q)  # one of the two equal quaternions, for stable output
    return q.reshape(R.shape[:-2] + (4,))


# Coordinates beyond this count as not finite: from about 1e154 on their squares, and so the
# bones' lengths, overflow (no unit puts a hand there)
MAX_COORDINATE = 1e150


def _check_points(points) -> np.ndarray:
    P = np.asarray(points, dtype=np.float64)
    if P.ndim < 2 or P.shape[-2:] != (kp.NUM_KEYPOINTS, 3):
        raise ValueError(f"points must be in the shape of (*, {kp.NUM_KEYPOINTS}, 3). Got {np.shape(points)}")
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(P) <= MAX_COORDINATE, P, np.nan)


def _norm(v: np.ndarray) -> np.ndarray:
    return np.linalg.norm(v, axis=-1, keepdims=True)


def _unit(v: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """v / |v| where ``ok``, zeros elsewhere (never divides by zero)."""
    n = _norm(v)
    return np.where(ok[..., None], v / np.where(n > 0, n, 1.0), 0.0)


def palm_frame(points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Palm frame from wrist, index MCP and pinky MCP (axes in the module docstring).

    Args:
        points: (*, 21, 3) keypoints.

    Returns:
        origin (*, 3), rotation (*, 3, 3) with the axes as columns, valid (*,) bool.
        Where not valid the rotation is the identity; the origin is the centroid of
        the finite keypoints (zeros when none is finite).
    """
    P = _check_points(points)
    w, i, p = P[..., kp.WRIST, :], P[..., kp.INDEX_MCP, :], P[..., kp.PINKY_MCP, :]
    finite = np.all(np.isfinite(np.stack([w, i, p], axis=-2)), axis=(-2, -1))
    with np.errstate(invalid="ignore", over="ignore"):
        x_raw = np.where(finite[..., None], 0.5 * (i + p) - w, 0.0)
        across = np.where(finite[..., None], p - i, 0.0)
        ok_x = _norm(x_raw)[..., 0] > MIN_BONE_LENGTH
        x = _unit(x_raw, ok_x)
        y_raw = across - np.sum(across * x, axis=-1, keepdims=True) * x
        # y is defined when the MCP line is neither too short nor along x
        ok_y = (_norm(y_raw)[..., 0] > MIN_PALM_SIN * np.maximum(_norm(across)[..., 0], MIN_BONE_LENGTH)) \
            & (_norm(across)[..., 0] > MIN_BONE_LENGTH)
    valid = finite & ok_x & ok_y
    y = _unit(y_raw, valid)
    z = np.cross(x, y)
    R = np.stack([x, y, z], axis=-1)
    R = np.where(valid[..., None, None], R, np.eye(3))
    origin = np.mean(np.stack([w, i, p], axis=-2), axis=-2)
    fallback = _finite_centroid(P)
    origin = np.where(finite[..., None], origin, fallback)
    return origin, R, valid


def _finite_centroid(P: np.ndarray) -> np.ndarray:
    """(*, 21, 3) -> (*, 3) mean of the finite keypoints, zeros where none is."""
    ok = np.all(np.isfinite(P), axis=-1, keepdims=True)
    s = np.sum(np.where(ok, P, 0.0), axis=-2)
    n = np.sum(ok, axis=-2)
    return np.where(n > 0, s / np.maximum(n, 1), 0.0)


def hand_frames(points) -> HandFrames:
    """Palm frame and one orientation per keypoint (conventions in the module docstring).

    Args:
        points: (*, 21, 3) keypoints.

    Returns:
        HandFrames, NaN-free for any input of the right shape.
    """
    P = _check_points(points)
    origin, R_palm, palm_valid = palm_frame(P)
    y_palm, z_palm = R_palm[..., None, :, 1], R_palm[..., None, :, 2]   # (*, 1, 3)
    # every keypoint's bone at once (the wrist's is a placeholder, replaced by the palm)
    with np.errstate(invalid="ignore", over="ignore"):
        bone = P[..., _BONE_END, :] - P[..., _BONE_START, :]
        ok = np.all(np.isfinite(bone), axis=-1)
        bone = np.where(ok[..., None], bone, 0.0)
        ok &= _norm(bone)[..., 0] > MIN_BONE_LENGTH
    ok[..., kp.WRIST] = False
    x = _unit(bone, ok)
    # y: the palm's y without its component along x; near-parallel: palm_z cross x
    cos_y = np.sum(x * y_palm, axis=-1, keepdims=True)
    y_main = y_palm - cos_y * x
    y_alt = np.cross(np.broadcast_to(z_palm, x.shape), x)
    y = _unit(np.where(np.abs(cos_y) < _MAX_COS_TO_PALM_Y, y_main, y_alt), ok)
    rotations = np.stack([x, y, np.cross(x, y)], axis=-1)                # (*, 21, 3, 3)
    rotations[..., kp.WRIST, :, :] = R_palm
    joint_valid = ok.copy()
    joint_valid[..., kp.WRIST] = palm_valid
    if not np.all(ok[..., 1:]):
        # a degenerate bone takes its parent's orientation; parents come before children
        for k in range(1, kp.NUM_KEYPOINTS):
            bad = ~ok[..., k]
            if np.any(bad):
                rotations[..., k, :, :] = np.where(bad[..., None, None], rotations[..., kp.PARENTS[k], :, :],
                                                   rotations[..., k, :, :])
    return HandFrames(palm_origin=origin, palm_rotation=R_palm, palm_valid=np.asarray(palm_valid),
                      joint_rotations=rotations, joint_valid=joint_valid)

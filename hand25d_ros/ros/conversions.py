"""ROS message <-> numpy for the hand25d node: images, intrinsics, and the pose outputs.

Plain functions, no node: each one converts a message and validates it, or builds a
message from numpy. Bad input raises ``MessageError`` (a ValueError) that says what was
expected and what came, so the node can warn and drop the frame.

Output conventions (the node's topics):
- Keypoint order: ``hand25d_ros.keypoints.KEYPOINT_NAMES`` (0 wrist; thumb 1-4 CMC, MCP,
  IP, TIP; index 5-8, middle 9-12, ring 13-16, pinky 17-20 MCP, PIP, DIP, TIP).
- Positions in metres in the image's optical frame (z forward, x right, y down).
- Orientations: ``hand25d_ros.pose_frames`` (x along each bone towards the fingertip,
  y across the palm, z = x cross y; palm x towards the fingers, z the palm normal).
- Several hands: each has an id (the tracker's, stable while the hand is followed, never
  reused) and a left/right label (``is_left``: True, False or None for unknown). Messages that
  carry all hands list them in one order, 21 entries per hand (see ``hands_to_cloud``).
- External hand boxes (``rois_from_msg``): ``(x, y, w, h)`` with (x, y) the top-left corner in
  continuous pixel coordinates (pixel centres at integers: a W x H image spans
  ``(-0.5, -0.5, W, H)``), as ``hand25d_ros.crop``.
"""
from __future__ import annotations

import array
import math
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point, Pose, PoseArray, PoseStamped, Quaternion, TransformStamped, Vector3
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker, MarkerArray

from .. import keypoints as kp
from ..messages import (DEFAULT_MAX_PIXELS, ENCODING_CHANNELS, INTRINSICS_SOURCES, SIXTEEN_BIT_ENCODINGS,  # noqa: F401
                        YUV420_SEMI_PLANAR, YUV444_SEMI_PLANAR, MessageError, UnsupportedEncoding,
                        camera_info_to_intrinsics, compressed_to_rgb, expected_image_size, image_to_numpy,
                        image_to_rgb, is_uncalibrated)
from ..messages import DEFAULT_NODE_NAME, auto_frame_prefix, frame_prefix_of_topic  # noqa: F401
from ..pose_frames import HandFrames

# ---------------------------------------------------------------------------- time
def stamp_to_ns(stamp: Time) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    """Integer nanoseconds (>= 0) -> builtin_interfaces/Time."""
    ns = int(ns)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def seconds_to_duration(seconds: float) -> Duration:
    ns = int(round(max(0.0, float(seconds)) * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


# ---------------------------------------------------------------------------- images
def numpy_to_image(array_hwc: np.ndarray, encoding: str, header: Header | None = None,
                   step: int | None = None) -> Image:
    """(H, W, C) or (H, W) array -> sensor_msgs/Image.

    Args:
        array_hwc: the pixels, already in ``encoding``'s channel order: uint8, or uint16 for
            ``SIXTEEN_BIT_ENCODINGS`` (written little-endian, ``is_bigendian`` 0).
        encoding: one of ``ENCODING_CHANNELS`` but the semi-planar YUV ones, whose two planes
            are no (H, W, C) array.
        header: stamp and frame (default: empty).
        step: bytes per row, >= W * C * bytes per channel; the rows are zero-padded to it
            (default: no padding).
    """
    if encoding not in ENCODING_CHANNELS:
        raise MessageError(f"unsupported image encoding {encoding!r}; supported: {', '.join(ENCODING_CHANNELS)}")
    if encoding in YUV420_SEMI_PLANAR or encoding in YUV444_SEMI_PLANAR:
        raise MessageError(f"{encoding} is semi-planar (a luma plane, then a chroma plane): build its data "
                           "from the planes, not from an (H, W, C) array")
    a = np.asarray(array_hwc)
    c = ENCODING_CHANNELS[encoding]
    dtype = np.dtype(np.uint16 if encoding in SIXTEEN_BIT_ENCODINGS else np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.dtype != dtype or a.ndim != 3 or a.shape[2] != c:
        raise MessageError(f"{encoding} needs an (H, W, {c}) {dtype} array, got {a.shape} {a.dtype}")
    h, w = a.shape[:2]
    row = w * c * dtype.itemsize
    step = row if step is None else int(step)
    if step < row:
        raise MessageError(f"step {step} is shorter than a row of {row} bytes")
    rows = np.ascontiguousarray(a, dtype=dtype.newbyteorder("<")).view(np.uint8).reshape(h, row)
    if step == row:
        data = rows.tobytes()
    else:
        padded = np.zeros((h, step), dtype=np.uint8)
        padded[:, :row] = rows
        data = padded.tobytes()
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=0, step=step)
    if header is not None:
        msg.header = header
    msg.data = array.array("B", data)
    return msg


# ---------------------------------------------------------------------------- intrinsics
def intrinsics_to_camera_info(K, width: int, height: int, header: Header | None = None,
                              D=None, distortion_model: str = "plumb_bob") -> CameraInfo:
    """A CameraInfo for tests and the demo: K as both K and P[:, :3], no rectification."""
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    msg = CameraInfo(width=int(width), height=int(height), distortion_model=distortion_model)
    if header is not None:
        msg.header = header
    msg.k = K.ravel().tolist()
    msg.d = [] if D is None else np.asarray(D, dtype=np.float64).ravel().tolist()
    msg.r = np.eye(3).ravel().tolist()
    P = np.zeros((3, 4))
    P[:, :3] = K
    msg.p = P.ravel().tolist()
    return msg


# ---------------------------------------------------------------------------- keypoints
# PointCloud2 layout of ~/keypoints: one point per keypoint, little endian, 36 bytes (33 used,
# padded to a multiple of 4): x y z (m), u v (px), confidence (float32), id (uint32, keypoint
# index 0-20), hand_id (uint32), is_left (int8: 1 left, 0 right, -1 unknown).
KEYPOINT_CLOUD_DTYPE = np.dtype({
    "names": ["x", "y", "z", "u", "v", "confidence", "id", "hand_id", "is_left"],
    "formats": ["<f4", "<f4", "<f4", "<f4", "<f4", "<f4", "<u4", "<u4", "i1"],
    "offsets": [0, 4, 8, 12, 16, 20, 24, 28, 32], "itemsize": 36})
_POINTFIELD_TYPES = {np.dtype("<f4"): PointField.FLOAT32, np.dtype("<u4"): PointField.UINT32,
                     np.dtype("<i4"): PointField.INT32, np.dtype("<f8"): PointField.FLOAT64,
                     np.dtype("i1"): PointField.INT8}
_NUMPY_OF_POINTFIELD = {PointField.FLOAT32: "<f4", PointField.UINT32: "<u4", PointField.INT32: "<i4",
                        PointField.FLOAT64: "<f8", PointField.UINT8: "u1", PointField.INT8: "i1",
                        PointField.UINT16: "<u2", PointField.INT16: "<i2"}


@dataclass
class HandOutput:
    """One hand of one frame, as the node publishes it.

    Attributes:
        hand_id: the tracker's id (stable while the hand is followed).
        is_left: True left, False right, None unknown.
        xyz_m: (21, 3) keypoints (m); uv_px: (21, 2) pixels; confidence: (21,).
        frames: the hand's ``pose_frames.HandFrames``.
    """
    hand_id: int
    is_left: bool | None
    xyz_m: np.ndarray
    uv_px: np.ndarray
    confidence: np.ndarray
    frames: HandFrames

    @property
    def prefix(self) -> str:
        """What follows the node's frame prefix in this hand's TF frame names: ``<id>_``."""
        return f"{int(self.hand_id)}_"

    @property
    def side(self) -> str:
        return "unknown" if self.is_left is None else ("left" if self.is_left else "right")


def is_left_code(is_left) -> int:
    """The ``is_left`` cloud field: 1 left, 0 right, -1 unknown."""
    return -1 if is_left is None else int(bool(is_left))


def keypoints_to_cloud(header: Header, xyz_m, uv_px, confidence, hand_id=0, is_left=None) -> PointCloud2:
    """Keypoints of one or more hands -> PointCloud2 (layout ``KEYPOINT_CLOUD_DTYPE``).

    Args:
        header: the image's stamp and optical frame.
        xyz_m: (21 N, 3) positions; uv_px: (21 N, 2) pixels; confidence: (21 N,), hand after hand,
            each in keypoint order.
        hand_id: one id for all points, or (21 N,) ids.
        is_left: one label (True, False, None) for all points, or (21 N,) ``is_left_code`` values.
    """
    xyz = np.asarray(xyz_m, dtype=np.float64).reshape(-1, 3)
    n = xyz.shape[0]
    uv = np.asarray(uv_px, dtype=np.float64).reshape(n, 2)
    conf = np.asarray(confidence, dtype=np.float64).reshape(n)
    pts = np.zeros(n, dtype=KEYPOINT_CLOUD_DTYPE)
    with np.errstate(over="ignore"):   # past float32's range is inf, which is_dense then says
        pts["x"], pts["y"], pts["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    pts["u"], pts["v"] = uv[:, 0], uv[:, 1]
    pts["confidence"] = conf
    pts["id"] = np.arange(n, dtype=np.uint32) % kp.NUM_KEYPOINTS
    pts["hand_id"] = np.broadcast_to(np.asarray(hand_id, dtype=np.uint32), (n,))
    codes = is_left_code(is_left) if is_left is None or isinstance(is_left, (bool, np.bool_)) else is_left
    pts["is_left"] = np.broadcast_to(np.asarray(codes, dtype=np.int8), (n,))
    fields = [PointField(name=name, offset=KEYPOINT_CLOUD_DTYPE.fields[name][1],
                         datatype=_POINTFIELD_TYPES[KEYPOINT_CLOUD_DTYPE.fields[name][0]], count=1)
              for name in KEYPOINT_CLOUD_DTYPE.names]
    msg = PointCloud2(header=header, height=1, width=n, fields=fields, is_bigendian=False,
                      point_step=KEYPOINT_CLOUD_DTYPE.itemsize, row_step=KEYPOINT_CLOUD_DTYPE.itemsize * n,
                      is_dense=bool(all(np.all(np.isfinite(pts[c])) for c in "xyz")))   # as sent: float32
    msg.data = array.array("B", pts.tobytes())
    return msg


def hands_to_cloud(header: Header, hands: list[HandOutput]) -> PointCloud2:
    """All hands of a frame in one cloud: 21 points per hand, hands in the order given."""
    if not hands:
        return keypoints_to_cloud(header, np.zeros((0, 3)), np.zeros((0, 2)), np.zeros(0))
    return keypoints_to_cloud(
        header, np.concatenate([h.xyz_m for h in hands]), np.concatenate([h.uv_px for h in hands]),
        np.concatenate([h.confidence for h in hands]),
        np.repeat([int(h.hand_id) for h in hands], kp.NUM_KEYPOINTS),
        np.repeat([is_left_code(h.is_left) for h in hands], kp.NUM_KEYPOINTS))


def cloud_to_array(msg: PointCloud2) -> np.ndarray:
    """PointCloud2 -> structured numpy array (height * width,) with one field per PointField
    (count 1 fields; little endian). For consumers and tests."""
    if msg.is_bigendian:
        raise MessageError("big-endian PointCloud2 is not supported")
    names, formats, offsets = [], [], []
    for f in msg.fields:
        if f.datatype not in _NUMPY_OF_POINTFIELD or f.count != 1:
            raise MessageError(f"PointField {f.name!r}: datatype {f.datatype} count {f.count} not supported")
        names.append(f.name)
        formats.append(_NUMPY_OF_POINTFIELD[f.datatype])
        offsets.append(f.offset)
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": msg.point_step})
    n = int(msg.width) * int(msg.height)
    if len(msg.data) < n * msg.point_step:
        raise MessageError(f"PointCloud2 data has {len(msg.data)} bytes, expected {n * msg.point_step}")
    if msg.height > 1 and msg.row_step != msg.width * msg.point_step:
        rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.row_step)
        data = np.ascontiguousarray(rows[:, : msg.width * msg.point_step]).tobytes()
    else:
        data = bytes(msg.data)[: n * msg.point_step]
    return np.frombuffer(data, dtype=dtype, count=n)


# ---------------------------------------------------------------------------- poses and TF
def _pose(p, q) -> Pose:
    # fill the Point and Quaternion that Pose() builds anyway: passing new ones builds each twice
    # (a message's __init__ makes its defaults before taking the arguments), 40% of the cost
    msg = Pose()
    pos, rot = msg.position, msg.orientation
    pos.x, pos.y, pos.z = float(p[0]), float(p[1]), float(p[2])
    rot.x, rot.y, rot.z, rot.w = float(q[0]), float(q[1]), float(q[2]), float(q[3])
    return msg


def keypoints_to_pose_array(header: Header, xyz_m, frames: HandFrames) -> PoseArray:
    """21 poses in keypoint order: position of each keypoint, orientation of its frame."""
    xyz = np.asarray(xyz_m, dtype=np.float64).reshape(kp.NUM_KEYPOINTS, 3)
    quats = frames.joint_quaternions
    # .tolist(): Python floats at once, much cheaper than a float() per numpy scalar
    return PoseArray(header=header, poses=[_pose(p, q) for p, q in zip(xyz.tolist(), quats.tolist())])


def palm_to_pose_stamped(header: Header, frames: HandFrames) -> PoseStamped:
    """The palm frame (origin and orientation) as a PoseStamped."""
    return PoseStamped(header=header, pose=_pose(frames.palm_origin, frames.palm_quaternion))


def hands_to_pose_array(header: Header, hands: list[HandOutput]) -> PoseArray:
    """21 poses per hand (``keypoints_to_pose_array``), hands in the order given."""
    msg = PoseArray(header=header)
    for h in hands:
        msg.poses.extend(keypoints_to_pose_array(header, h.xyz_m, h.frames).poses)
    return msg


def palms_to_pose_array(header: Header, hands: list[HandOutput]) -> PoseArray:
    """One palm pose per hand, in the order given."""
    return PoseArray(header=header, poses=[_pose(h.frames.palm_origin, h.frames.palm_quaternion) for h in hands])


def palm_frame_name(prefix: str) -> str:
    return f"{prefix}palm"


def keypoint_frame_names(prefix: str) -> list[str]:
    """TF frame of each keypoint, in keypoint order: ``<prefix><keypoint name>``."""
    return [f"{prefix}{name}" for name in kp.KEYPOINT_NAMES]


def _transform(header: Header, child: str, t, q) -> TransformStamped:
    msg = TransformStamped(header=header, child_frame_id=child)
    # filled in place, as in _pose
    tr, rot = msg.transform.translation, msg.transform.rotation
    tr.x, tr.y, tr.z = float(t[0]), float(t[1]), float(t[2])
    rot.x, rot.y, rot.z, rot.w = float(q[0]), float(q[1]), float(q[2]), float(q[3])
    return msg


def hand_to_tf(header: Header, xyz_m, frames: HandFrames, prefix: str = "hand_") -> TFMessage:
    """TF tree ``header.frame_id -> <prefix>palm -> <prefix><keypoint name>`` (21 of them).

    Each keypoint's transform is relative to the palm frame: ``t = R_palm^T (p - o_palm)``,
    ``R = R_palm^T R_joint``, so composing it with the palm's gives the keypoint in the
    camera frame.
    """
    xyz = np.asarray(xyz_m, dtype=np.float64).reshape(kp.NUM_KEYPOINTS, 3)
    R_p, o_p = frames.palm_rotation, frames.palm_origin
    palm = palm_frame_name(prefix)
    out = [_transform(header, palm, o_p.tolist(), frames.palm_quaternion.tolist())]
    t_rel = (xyz - o_p) @ R_p  # rows: R_p^T (p - o)
    q_rel = frames.joint_quaternions_in_palm
    child_header = Header(stamp=header.stamp, frame_id=palm)
    for name, t, q in zip(keypoint_frame_names(prefix), t_rel.tolist(), q_rel.tolist()):
        out.append(_transform(child_header, name, t, q))
    return TFMessage(transforms=out)


def hands_to_tf(header: Header, hands: list[HandOutput], prefix: str = "hand_") -> TFMessage:
    """One TFMessage for all hands: ``<prefix><id>_palm -> <prefix><id>_<keypoint>`` each."""
    out = []
    for h in hands:
        out.extend(hand_to_tf(header, h.xyz_m, h.frames, prefix + h.prefix).transforms)
    return TFMessage(transforms=out)


# ---------------------------------------------------------------------------- markers
MARKER_NS_JOINTS, MARKER_NS_BONES, MARKER_NS_PALM, MARKER_NS_LABEL = "joints", "bones", "palm", "label"
MARKER_NAMESPACES = (MARKER_NS_JOINTS, MARKER_NS_BONES, MARKER_NS_PALM, MARKER_NS_LABEL)
LABEL_HEIGHT_M = 0.02       # text height of the label marker
LABEL_OFFSET_M = 0.05       # the label sits this far behind the palm origin (towards the forearm)


def marker_namespace(hand_id: int) -> str:
    """Namespace prefix of a hand's markers: ``hand<id>/`` (``hand3/joints``, ...)."""
    return f"hand{int(hand_id)}/"
# LINE_LIST vertices: parent, child of each bone
_BONE_VERTICES = np.array([k for child, parent in kp.BONES for k in (parent, child)])


def _color(rgb, alpha: float = 1.0) -> ColorRGBA:
    return ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=float(alpha))


_COLOR_CACHE: dict[float, tuple[list, list]] = {}


def _skeleton_colors(alpha: float) -> tuple[list, list]:
    """Joint colours (21) and bone-vertex colours (40), built once per alpha: the messages
    are serialised at publish time, so sharing these read-only objects is safe."""
    if alpha not in _COLOR_CACHE:
        joints = [_color(kp.keypoint_color_rgb(k), alpha) for k in range(kp.NUM_KEYPOINTS)]
        bones = [c for child, _ in kp.BONES for c in (joints[child], joints[child])]
        _COLOR_CACHE[alpha] = (joints, bones)
    return _COLOR_CACHE[alpha]


def _point(p) -> Point:
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))


def hand_to_markers(header: Header, xyz_m, frames: HandFrames, joint_radius_m: float = 0.008,
                    bone_width_m: float = 0.004, palm_arrow_length_m: float = 0.05,
                    lifetime_s: float = 0.5, alpha: float = 1.0, ns_prefix: str = "",
                    label: str | None = None) -> MarkerArray:
    """RViz markers: joint spheres (SPHERE_LIST), bones (LINE_LIST) coloured by finger,
    an arrow along the palm normal from the palm origin and, with ``label``, a text
    (TEXT_VIEW_FACING) behind the palm. Namespaces ``<ns_prefix>joints``, ``bones``, ``palm``,
    ``label``, each marker id 0. ``lifetime_s`` 0 = forever."""
    xyz = np.asarray(xyz_m, dtype=np.float64).reshape(kp.NUM_KEYPOINTS, 3)
    life = seconds_to_duration(lifetime_s)
    ident = Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)

    joints = Marker(header=header, ns=ns_prefix + MARKER_NS_JOINTS, id=0, type=Marker.SPHERE_LIST, action=Marker.ADD,
                    lifetime=life, frame_locked=False)
    joints.pose.orientation = ident
    d = 2.0 * float(joint_radius_m)
    joints.scale = Vector3(x=d, y=d, z=d)
    joint_colors, bone_colors = _skeleton_colors(float(alpha))
    joints.points = [_point(p) for p in xyz.tolist()]
    joints.colors = list(joint_colors)
    joints.color = _color((1.0, 1.0, 1.0), alpha)

    bones = Marker(header=header, ns=ns_prefix + MARKER_NS_BONES, id=0, type=Marker.LINE_LIST, action=Marker.ADD,
                   lifetime=life)
    bones.pose.orientation = ident
    bones.scale = Vector3(x=float(bone_width_m), y=0.0, z=0.0)
    pts = [_point(p) for p in xyz[_BONE_VERTICES].tolist()]
    bones.points, bones.colors = pts, list(bone_colors)
    bones.color = _color((1.0, 1.0, 1.0), alpha)

    palm = Marker(header=header, ns=ns_prefix + MARKER_NS_PALM, id=0, type=Marker.ARROW, action=Marker.ADD,
                  lifetime=life)
    palm.pose.orientation = ident
    o = frames.palm_origin
    n = frames.palm_rotation[:, 2]
    palm.points = [_point(o), _point(o + float(palm_arrow_length_m) * n)]
    w = max(float(bone_width_m), 1e-4)
    palm.scale = Vector3(x=w, y=2.0 * w, z=3.0 * w)  # shaft diameter, head diameter, head length
    palm.color = _color(kp.PALM_COLOR_RGB, alpha)
    markers = [joints, bones, palm]
    if label is not None:
        text = Marker(header=header, ns=ns_prefix + MARKER_NS_LABEL, id=0, type=Marker.TEXT_VIEW_FACING,
                      action=Marker.ADD, lifetime=life, text=str(label))
        text.pose.position = _point(o - LABEL_OFFSET_M * frames.palm_rotation[:, 0])
        text.pose.orientation = ident
        text.scale = Vector3(x=0.0, y=0.0, z=LABEL_HEIGHT_M)
        text.color = _color((1.0, 1.0, 1.0), alpha)
        markers.append(text)
    return MarkerArray(markers=markers)


def hand_label(hand: HandOutput) -> str:
    """Marker and debug-image text of a hand: ``hand 3 left``, ``hand 3 right``, ``hand 3``."""
    return f"hand {int(hand.hand_id)}" + ("" if hand.is_left is None else (" left" if hand.is_left else " right"))


def hands_to_markers(header: Header, hands: list[HandOutput], gone_ids=(), **style) -> MarkerArray:
    """Markers of all hands (``hand_to_markers`` in namespaces ``hand<id>/...``, with the
    label) and a DELETE of each namespace of the hands in ``gone_ids`` (lost since the last
    frame). ``style``: the keyword arguments of ``hand_to_markers``."""
    out = []
    for h in hands:
        out.extend(hand_to_markers(header, h.xyz_m, h.frames, ns_prefix=marker_namespace(h.hand_id),
                                   label=hand_label(h), **style).markers)
    for hand_id in sorted(gone_ids):
        out.extend(Marker(header=header, ns=marker_namespace(hand_id) + ns, id=0, action=Marker.DELETE)
                   for ns in MARKER_NAMESPACES)
    return MarkerArray(markers=out)


def delete_all_markers(header: Header) -> MarkerArray:
    """One DELETEALL marker: clears this node's hands from RViz (all hands lost)."""
    return MarkerArray(markers=[Marker(header=header, action=Marker.DELETEALL)])


# ---------------------------------------------------------------------------- hand boxes (external ROIs)
# Smallest side (px) of a usable box after clipping it to the image.
MIN_ROI_SIDE_PX = 4.0


def roi_message_type():
    """The message type of the node's ``rois`` input: vision_msgs/Detection2DArray when
    vision_msgs is importable, else geometry_msgs/PolygonStamped (see ``rois_from_msg``)."""
    try:
        from vision_msgs.msg import Detection2DArray
        return Detection2DArray
    except ImportError:
        from geometry_msgs.msg import PolygonStamped
        return PolygonStamped


def rois_from_msg(msg):
    """Hand boxes of a ROI message -> list of ``((x, y, w, h), score)``, score NaN when the
    message has none. Values are returned as they came (``clean_rois`` checks them).

    - vision_msgs/Detection2DArray: one box per detection, ``bbox.center`` (vision_msgs 4:
      ``center.position.x/y``; 3: ``center.x/y``) and ``size_x``/``size_y`` in pixels; the
      score is the best of ``results`` (``hypothesis.score`` or ``score``).
    - geometry_msgs/PolygonStamped: the points in pairs, two opposite corners of each box
      (x, y in pixels, z ignored); a last unpaired point is returned as a NaN box.
    """
    if hasattr(msg, "detections"):
        out = []
        for d in msg.detections:
            bb = d.bbox
            c = getattr(bb.center, "position", bb.center)
            w, h = float(bb.size_x), float(bb.size_y)
            scores = [float(getattr(getattr(r, "hypothesis", r), "score", math.nan)) for r in getattr(d, "results", [])]
            scores = [v for v in scores if math.isfinite(v)]
            out.append(((float(c.x) - w / 2.0, float(c.y) - h / 2.0, w, h), max(scores) if scores else math.nan))
        return out
    pts = [(float(p.x), float(p.y)) for p in msg.polygon.points]
    out = []
    for i in range(0, len(pts) - 1, 2):
        (x0, y0), (x1, y1) = pts[i], pts[i + 1]
        out.append(((min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0)), math.nan))
    if len(pts) % 2:
        out.append(((math.nan,) * 4, math.nan))
    return out


def boxes_to_polygon(header: Header, boxes) -> "PolygonStamped":
    """``(x, y, w, h)`` boxes -> geometry_msgs/PolygonStamped in the ``rois`` layout (for
    detectors without vision_msgs, tests and examples)."""
    from geometry_msgs.msg import Point32, PolygonStamped

    msg = PolygonStamped(header=header)
    for x, y, w, h in boxes:
        msg.polygon.points.extend([Point32(x=float(x), y=float(y), z=0.0),
                                   Point32(x=float(x + w), y=float(y + h), z=0.0)])
    return msg


@dataclass
class RoiCheck:
    """``clean_rois``' result: usable boxes and how many were rejected, by reason."""
    boxes: list
    bad: int = 0            # non-finite, zero or negative size, or under MIN_ROI_SIDE_PX
    outside: int = 0        # no (usable) overlap with the image
    extra: int = 0          # beyond max_hands
    example: dict | None = None   # reason -> one rejected box, for the warning


def clean_rois(candidates, width: int, height: int, max_hands: int) -> RoiCheck:
    """Check boxes against a width x height image: clip each to the image, reject the
    unusable ones, keep at most ``max_hands`` (the best scores when every box has one,
    else the largest)."""
    res = RoiCheck(boxes=[], example={})
    kept = []
    for box, score in candidates:
        x, y, w, h = (float(v) for v in box)
        if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
            res.bad += 1
            res.example.setdefault("bad", (x, y, w, h))
            continue
        x0, y0 = max(x, -0.5), max(y, -0.5)
        x1, y1 = min(x + w, width - 0.5), min(y + h, height - 0.5)
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            res.outside += 1
            res.example.setdefault("outside", (x, y, w, h))
            continue
        if x1 - x0 < MIN_ROI_SIDE_PX or y1 - y0 < MIN_ROI_SIDE_PX:
            res.bad += 1
            res.example.setdefault("bad", (x, y, w, h))
            continue
        kept.append(((x0, y0, x1 - x0, y1 - y0), score))
    if len(kept) > max_hands:
        res.extra = len(kept) - max_hands
        if all(math.isfinite(s) for _, s in kept):
            kept.sort(key=lambda bs: -bs[1])
        else:
            kept.sort(key=lambda bs: -bs[0][2] * bs[0][3])
        kept = kept[:max_hands]
    res.boxes = [b for b, _ in kept]
    return res

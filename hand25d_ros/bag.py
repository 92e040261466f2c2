"""hand25d on ROS 2 bags, offline and without ROS: a camera's images in, the node's outputs out.

    hand25d bag INPUT_BAG --out OUTPUT_BAG --image-topic /camera/color/image_raw

Bags are read and written with the ``rosbags`` library (``pip install 'hand25d_ros[bags]'``):
mcap and sqlite3 storage, a bag folder or a single ``.mcap``/``.db3`` file as input; no ROS
install and no rclpy. Messages are built as rosbags typestore objects and serialised with
``typestore.serialize_cdr``; their content comes from the same pure functions the node uses
(``pose_frames.hand_frames``, ``keypoints`` names and colours) and has the layout of
``ros/conversions.py`` (``test/test_bag.py`` compares the two where ROS is importable).

Input
    image topic     sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8, YUV 4:2:2 yuyv/yuv422_yuy2
                    and uyvy/yuv422, semi-planar YUV nv12/nv21/nv24, bayer_rggb8/_bggr8/_gbrg8/
                    _grbg8, and the 16-bit rgb16, bgr16, rgba16, bgra16, mono16, bayer_*16 scaled
                    to 8 bit, as the node; any row padding) or
                    sensor_msgs/CompressedImage (anything OpenCV decodes), by the topic's type.
    intrinsics      the first that applies:
                    1. ``calibration`` (``--calib``, a camera_info_manager YAML: raw K and D);
                       it overrides the default CameraInfo topic;
                    2. a CameraInfo topic (``--camera-info-topic``; default the image topic's
                       sibling ``camera_info``, e.g. /camera/color/camera_info), paired by stamp:
                       the CameraInfo of the image's own stamp, else the nearest one within
                       ``sync_tolerance_s``, else, as the node's latched CameraInfo, one recorded
                       once (the topic's only message) or from a transient-local publisher,
                       whatever its stamp (the newest recorded by the image's time), unless a
                       CameraInfo stream that is not latched runs within 1 s of the image.
                       ``intrinsics_source`` as in the node: "rectified" uses P, "raw" uses K
                       and D. An uncalibrated CameraInfo (K all zeros, as webcam drivers publish
                       without a calibration file) gets the ``hfov_deg`` guess when
                       ``hfov_deg`` is given (warned about), else its frames are skipped, as
                       the node does;
                    3. without any CameraInfo topic, a guess from ``hfov_deg`` (default 60),
                       said loudly on stderr.

Output: a new bag folder (storage of the input unless ``storage`` says otherwise) with
    - the image topic and the CameraInfo topic copied byte for byte (same log times, type
      definitions and QoS), so that it replays into RViz by itself;
    - for each processed frame, at the image's log time, with the image's header stamp and
      frame id (``camera_frame_id`` overrides the frame):
        <ns>/keypoints   sensor_msgs/PointCloud2, the node's layout (``CLOUD_DTYPE``): 21 points
                         per hand, hands in track-id order; fields x y z (m) u v (px) confidence
                         (float32), id (uint32, keypoint index), hand_id (uint32, the track id),
                         is_left (int8: 1 left, 0 right, -1 unknown); point_step 36 bytes.
                         No points for a frame without hands (the fields as ever).
        <ns>/poses       geometry_msgs/PoseArray: the 21 joint frames of each hand, in the
                         cloud's order; empty for a frame without hands.
        <ns>/palm_poses  geometry_msgs/PoseArray: one palm frame per hand, in the cloud's order;
                         empty for a frame without hands.
      and for each frame with hands:
        <ns>/palm_pose   geometry_msgs/PoseStamped: the palm frame of the first hand (lowest id).
        /tf              tf2_msgs/TFMessage, one per frame:
                         <camera frame> -> <prefix><id>_palm -> <prefix><id>_<keypoint name>
                         (``frame_prefix`` empty, the default: the node's default for the
                         namespace, ``messages.frame_prefix_of_topic``: hand_0_palm,
                         hand_0_index_tip, ... for /hand25d, cam2/hand_0_palm for /cam2/hand25d).
        <ns>/markers     visualization_msgs/MarkerArray: per hand, in namespaces hand<id>/, the
                         node's joints, bones, palm arrow and label ("hand 0 right") markers,
                         then a DELETE of each namespace of a hand lost since the previous frame.
      A frame without hands gets the empty arrays and a DELETEALL marker when markers may be
      up (hands before it, or it is the first frame); the run's first hand markers are preceded
      by a DELETEALL. All as the node does.

Frames that cannot be used are skipped, not fatal: unsupported encoding (the warning names
it and the supported ones), data that does not match its header, no CameraInfo within the
tolerance, an uncalibrated CameraInfo without ``hfov_deg``, an unusable CameraInfo (NaN, a
malformed matrix), an image size the CameraInfo does not
describe, an empty frame id or one with whitespace (a leading '/' is dropped, with a warning,
as tf2 refuses it), a stamp of 0 (an unstamped driver), a stamp not after the previous used
image's (a skipped image sets none, so a glitch stamped ahead holds nothing back). The image is still
copied through; the first of each kind is warned about on stderr, and the summary counts
them. A run in which no frame could be processed fails and writes nothing. Bad input that
concerns the whole run (no such bag, not a bag, missing topic, output exists, a calibration
for another image size) raises ``BagError`` before anything is written. ``overwrite`` replaces
only an earlier output: a bag folder holding nothing but its ``metadata.yaml`` and the files
that lists; any other file or folder there is refused, with or without it.

The output is written into a hidden temporary folder next to it and renamed when complete;
on any error or KeyboardInterrupt the temporary folder is removed.
"""
from __future__ import annotations

import re
import shutil
import sys
import tempfile
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import keypoints as kp
from . import messages
from .messages import (FRAME_ID_PATTERN, FRAME_PREFIX_PATTERN, NAMESPACE_PATTERN, MessageError, NoFrameId,
                       output_frame_id)
from .intrinsics import Calibration, K_from_fov
from .pose_frames import HandFrames, hand_frames

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
STORAGES = ("mcap", "sqlite3")
INTRINSICS_SOURCES = messages.INTRINSICS_SOURCES
DEFAULT_NAMESPACE = "/hand25d"
DEFAULT_FRAME_PREFIX = ""   # as the node's frame_prefix: the node's own for the namespace (hand_ for /hand25d)
MAX_PIXELS = messages.DEFAULT_MAX_PIXELS      # the node's default max_image_pixels
DEFAULT_HFOV_DEG = 60.0   # the guess for a bag without any CameraInfo when --hfov-deg is not given

# the node's ~/keypoints (conversions.KEYPOINT_CLOUD_DTYPE): one point per keypoint, 36 bytes
# (33 used): x y z (m), u v (px), confidence (float32), id (uint32, keypoint index 0-20),
# hand_id (uint32, the track id), is_left (int8: 1 left, 0 right, -1 unknown)
CLOUD_DTYPE = np.dtype({
    "names": ["x", "y", "z", "u", "v", "confidence", "id", "hand_id", "is_left"],
    "formats": ["<f4", "<f4", "<f4", "<f4", "<f4", "<f4", "<u4", "<u4", "i1"],
    "offsets": [0, 4, 8, 12, 16, 20, 24, 28, 32], "itemsize": 36})
# sensor_msgs/PointField FLOAT32, UINT32, INT8
_POINTFIELD_DATATYPE = {np.dtype("<f4"): 7, np.dtype("<u4"): 6, np.dtype("i1"): 1}
# the node's marker namespaces (per hand: hand<id>/joints, ...) and label placement
MARKER_NAMESPACES = ("joints", "bones", "palm", "label")
LABEL_HEIGHT_M = 0.02
LABEL_OFFSET_M = 0.05
# LINE_LIST vertices of the bones marker: parent, child of each bone (as the node)
_BONE_VERTICES = np.array([k for child, parent in kp.BONES for k in (parent, child)])


class BagError(RuntimeError):
    """The run cannot go on (bad input bag, topic, output path); the text says why."""


class FrameSkip(ValueError):
    """One frame cannot be used; it is skipped and counted under ``reason``."""

    def __init__(self, reason: str, text: str):
        super().__init__(text)
        self.reason = reason


def _warn(msg: str) -> None:
    from tqdm import tqdm
    tqdm.write(f"hand25d: WARNING: {msg}", file=sys.stderr)


def _rosbags():
    try:
        import rosbags.rosbag2 as rosbag2
        from rosbags.typesys import Stores, get_typestore
    except ImportError as exc:
        raise BagError(f"reading bags needs the rosbags library ({exc}); "
                       "install it with: pip install 'hand25d_ros[bags]'") from None
    return rosbag2, Stores, get_typestore


_TYPESTORE = None


def typestore():
    """The rosbags typestore the outputs are built with (ROS 2 Kilted, as the node's wheels)."""
    global _TYPESTORE
    if _TYPESTORE is None:
        _, Stores, get_typestore = _rosbags()
        _TYPESTORE = get_typestore(getattr(Stores, "ROS2_KILTED", Stores.LATEST))
    return _TYPESTORE


# ---------------------------------------------------------------------------- messages
_BASE_DTYPES = {"bool": np.bool_, "byte": np.uint8, "char": np.uint8, "octet": np.uint8,
                "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16,
                "int32": np.int32, "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64,
                "float32": np.float32, "float64": np.float64}


# defaults that .msg files declare and rosbags' typestore does not carry
_MSG_DEFAULTS = {"geometry_msgs/msg/Quaternion": {"w": 1.0}}


def new_message(msgtype: str, ts=None, **values):
    """A typestore message with every field not in ``values`` at its ROS default (zeros, empty
    strings and sequences, nested defaults, ``_MSG_DEFAULTS``): rosbags' classes have none."""
    from rosbags.interfaces import Nodetype

    ts = ts or typestore()

    def default(node):
        kind, spec = node
        if kind == Nodetype.BASE:
            return "" if spec[0] in ("string", "wstring") else _BASE_DTYPES[spec[0]](0).item()
        if kind == Nodetype.NAME:
            return new_message(spec, ts)
        sub, n = spec
        if sub[0] == Nodetype.BASE and sub[1][0] in _BASE_DTYPES:
            return np.zeros(n if kind == Nodetype.ARRAY else 0, dtype=_BASE_DTYPES[sub[1][0]])
        return [default(sub) for _ in range(n)] if kind == Nodetype.ARRAY else []

    fields = ts.fielddefs[msgtype][1]
    unknown = set(values) - {name for name, _ in fields}
    if unknown:
        raise TypeError(f"{msgtype} has no field(s) {sorted(unknown)}")
    values = {**_MSG_DEFAULTS.get(msgtype, {}), **values}
    args = {name: values[name] if name in values else default(node) for name, node in fields}
    return ts.types[msgtype](**args)


@dataclass
class MarkerStyle:
    """RViz marker sizes, as the node's ``marker_*`` parameters (same defaults)."""
    joint_radius_m: float = 0.008
    bone_width_m: float = 0.004
    palm_arrow_length_m: float = 0.05
    lifetime_s: float = 0.5
    alpha: float = 1.0


@dataclass
class HandOutput:
    """One hand of one frame as the outputs carry it (the node's ``conversions.HandOutput``)."""
    hand_id: int
    is_left: bool | None     # None: unknown
    xyz: np.ndarray          # (21, 3) m, camera optical frame
    uv: np.ndarray           # (21, 2) px
    confidence: np.ndarray   # (21,)
    frames: HandFrames

    @classmethod
    def from_tracked(cls, hand) -> "HandOutput":
        """From a ``tracking.TrackedHand`` (``is_left`` where the tracker gives one)."""
        pose, is_left = hand.pose, getattr(hand, "is_left", None)
        xyz = np.asarray(pose.keypoints_3d, dtype=np.float64).reshape(kp.NUM_KEYPOINTS, 3)
        return cls(int(hand.track_id), None if is_left is None else bool(is_left), xyz,
                   np.asarray(pose.keypoints_2d, dtype=np.float64).reshape(kp.NUM_KEYPOINTS, 2),
                   np.asarray(pose.confidence, dtype=np.float64).reshape(kp.NUM_KEYPOINTS), hand_frames(xyz))

    @property
    def label(self) -> str:
        """Marker text: ``hand 3 left``, ``hand 3 right``, ``hand 3``."""
        return f"hand {self.hand_id}" + ("" if self.is_left is None else (" left" if self.is_left else " right"))


def frame_names(prefix: str, hand_id: int) -> tuple[str, list[str]]:
    """TF frames of a hand: ``<prefix><id>_palm`` and ``<prefix><id>_<keypoint name>``."""
    p = f"{prefix}{int(hand_id)}_"
    return f"{p}palm", [f"{p}{name}" for name in kp.KEYPOINT_NAMES]


def hand_transforms(xyz, frames: HandFrames, parent: str, palm: str, names) -> list:
    """``(parent, child, translation (3,), quaternion xyzw (4,))`` of the TF tree of one hand:
    ``parent -> palm`` (the palm frame in the camera frame) and ``palm -> name[k]`` with
    ``t = R_palm^T (p - o_palm)``, ``R = R_palm^T R_joint`` (as the node's ``hand_to_tf``)."""
    R_p, o_p = frames.palm_rotation, frames.palm_origin
    out = [(parent, palm, np.asarray(o_p), np.asarray(frames.palm_quaternion))]
    t_rel = (np.asarray(xyz) - o_p) @ R_p
    out += [(palm, name, t, q) for name, t, q in zip(names, t_rel, frames.joint_quaternions_in_palm)]
    return out


class MessageBuilder:
    """The output messages of one frame as rosbags typestore objects, with the content of the
    node's ``conversions.hands_to_*`` (hands in the order given: the caller sorts by id)."""

    def __init__(self, ts=None, frame_prefix: str = "hand_", style: MarkerStyle | None = None):
        self.ts = ts or typestore()
        self.T = self.ts.types
        self.prefix = frame_prefix
        self.style = style or MarkerStyle()

    def new(self, msgtype: str, **values):
        return new_message(msgtype, self.ts, **values)

    def header(self, stamp, frame_id: str):
        return self.T["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def _vec(self, msgtype, p):
        return self.T[msgtype](x=float(p[0]), y=float(p[1]), z=float(p[2]))

    def _quat(self, q):
        return self.T["geometry_msgs/msg/Quaternion"](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))

    def _pose(self, p, q):
        return self.T["geometry_msgs/msg/Pose"](position=self._vec("geometry_msgs/msg/Point", p),
                                                orientation=self._quat(q))

    def _color(self, rgb, alpha: float):
        return self.T["std_msgs/msg/ColorRGBA"](r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=float(alpha))

    def cloud(self, header, hands: list[HandOutput]):
        """``<ns>/keypoints``: 21 points per hand, layout ``CLOUD_DTYPE``."""
        n = kp.NUM_KEYPOINTS
        pts = np.zeros(n * len(hands), dtype=CLOUD_DTYPE)
        for i, h in enumerate(hands):
            p = pts[i * n:(i + 1) * n]
            with np.errstate(over="ignore"):   # past float32's range is inf, which is_dense then says
                p["x"], p["y"], p["z"] = h.xyz[:, 0], h.xyz[:, 1], h.xyz[:, 2]
            p["u"], p["v"] = h.uv[:, 0], h.uv[:, 1]
            p["confidence"] = h.confidence
            p["id"] = np.arange(n)
            p["hand_id"] = h.hand_id
            p["is_left"] = -1 if h.is_left is None else int(h.is_left)
        PointField = self.T["sensor_msgs/msg/PointField"]
        fields = [PointField(name=name, offset=CLOUD_DTYPE.fields[name][1],
                             datatype=_POINTFIELD_DATATYPE[CLOUD_DTYPE.fields[name][0]], count=1)
                  for name in CLOUD_DTYPE.names]
        finite = all(np.all(np.isfinite(pts[c])) for c in "xyz")   # as written: float32
        return self.T["sensor_msgs/msg/PointCloud2"](
            header=header, height=1, width=len(pts), fields=fields, is_bigendian=False,
            point_step=CLOUD_DTYPE.itemsize, row_step=CLOUD_DTYPE.itemsize * len(pts),
            data=np.frombuffer(pts.tobytes(), dtype=np.uint8), is_dense=bool(finite))

    def poses(self, header, hands: list[HandOutput]):
        """``<ns>/poses``: the 21 joint frames of each hand."""
        poses = [self._pose(p, q) for h in hands
                 for p, q in zip(h.xyz.tolist(), h.frames.joint_quaternions.tolist())]
        return self.T["geometry_msgs/msg/PoseArray"](header=header, poses=poses)

    def palms(self, header, hands: list[HandOutput]):
        """``<ns>/palm_poses``: one palm frame per hand."""
        return self.T["geometry_msgs/msg/PoseArray"](
            header=header, poses=[self._pose(h.frames.palm_origin, h.frames.palm_quaternion) for h in hands])

    def palm(self, header, hand: HandOutput):
        """``<ns>/palm_pose``: one hand's palm frame (the node's: the first hand)."""
        return self.T["geometry_msgs/msg/PoseStamped"](
            header=header, pose=self._pose(hand.frames.palm_origin, hand.frames.palm_quaternion))

    def tf(self, header, hands: list[HandOutput]):
        """``/tf``: ``<camera frame> -> <prefix><id>_palm -> <prefix><id>_<keypoint>`` per hand."""
        transforms = []
        for h in hands:
            palm, names = frame_names(self.prefix, h.hand_id)
            for parent, child, t, q in hand_transforms(h.xyz, h.frames, header.frame_id, palm, names):
                tr = self.T["geometry_msgs/msg/Transform"](translation=self._vec("geometry_msgs/msg/Vector3", t),
                                                           rotation=self._quat(q))
                transforms.append(self.T["geometry_msgs/msg/TransformStamped"](
                    header=self.header(header.stamp, parent), child_frame_id=child, transform=tr))
        return self.T["tf2_msgs/msg/TFMessage"](transforms=transforms)

    def markers(self, header, hands: list[HandOutput], gone_ids=()):
        """``<ns>/markers``: per hand, in namespaces ``hand<id>/``, the node's joints (SPHERE_LIST),
        bones (LINE_LIST, finger colours), palm-normal ARROW and label (TEXT_VIEW_FACING
        behind the palm), each id 0; then a DELETE of each namespace of the hands in
        ``gone_ids`` (lost since the previous frame)."""
        M = self.T["visualization_msgs/msg/Marker"]
        s = self.style
        life_ns = int(round(max(0.0, float(s.lifetime_s)) * 1e9))
        life = self.T["builtin_interfaces/msg/Duration"](sec=life_ns // 1_000_000_000,
                                                         nanosec=life_ns % 1_000_000_000)
        white = self._color((1.0, 1.0, 1.0), s.alpha)
        joint_colors = [self._color(kp.keypoint_color_rgb(k), s.alpha) for k in range(kp.NUM_KEYPOINTS)]
        bone_colors = [joint_colors[child] for child, _ in kp.BONES for _ in range(2)]
        d, w = 2.0 * float(s.joint_radius_m), max(float(s.bone_width_m), 1e-4)
        out = []
        for h in hands:
            ns = marker_namespace(h.hand_id)

            def marker(name, type_, scale, color, points=(), colors=(), position=(0.0, 0.0, 0.0), text=""):
                return self.new("visualization_msgs/msg/Marker", header=header, ns=ns + name, id=0, type=type_,
                                action=M.ADD, pose=self._pose(position, (0.0, 0.0, 0.0, 1.0)),
                                scale=self._vec("geometry_msgs/msg/Vector3", scale), color=color, lifetime=life,
                                points=[self._vec("geometry_msgs/msg/Point", p) for p in points],
                                colors=list(colors), text=text)
            o, R = h.frames.palm_origin, h.frames.palm_rotation
            out += [marker("joints", M.SPHERE_LIST, (d, d, d), white, h.xyz.tolist(), joint_colors),
                    marker("bones", M.LINE_LIST, (float(s.bone_width_m), 0.0, 0.0), white,
                           h.xyz[_BONE_VERTICES].tolist(), bone_colors),
                    marker("palm", M.ARROW, (w, 2.0 * w, 3.0 * w), self._color(kp.PALM_COLOR_RGB, s.alpha),
                           [o, o + float(s.palm_arrow_length_m) * R[:, 2]]),
                    marker("label", M.TEXT_VIEW_FACING, (0.0, 0.0, LABEL_HEIGHT_M), white,
                           position=o - LABEL_OFFSET_M * R[:, 0], text=h.label)]
        for hand_id in sorted(gone_ids):
            out += [self.new("visualization_msgs/msg/Marker", header=header, ns=marker_namespace(hand_id) + name,
                             id=0, action=M.DELETE) for name in MARKER_NAMESPACES]
        return self.T["visualization_msgs/msg/MarkerArray"](markers=out)

    def delete_all(self, header):
        """One DELETEALL marker: no hand left (and the first markers of a run, as the node)."""
        M = self.T["visualization_msgs/msg/Marker"]
        return self.T["visualization_msgs/msg/MarkerArray"](
            markers=[self.new("visualization_msgs/msg/Marker", header=header, action=M.DELETEALL)])


def marker_namespace(hand_id: int) -> str:
    """Namespace prefix of a hand's markers: ``hand<id>/`` (``hand3/joints``, ...)."""
    return f"hand{int(hand_id)}/"


# ---------------------------------------------------------------------------- images and intrinsics
def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def image_to_rgb(msg, msgtype: str = IMAGE, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A deserialised sensor_msgs/Image or CompressedImage -> (H, W, 3) uint8 RGB, with the
    node's checks (``hand25d_ros.messages``). Raises FrameSkip."""
    try:
        if msgtype == COMPRESSED_IMAGE:
            return messages.compressed_to_rgb(msg, max_pixels)
        return messages.image_to_rgb(msg, max_pixels)
    except messages.UnsupportedEncoding as exc:
        raise FrameSkip("unsupported_encoding", f"{exc} (or a CompressedImage topic)") from None
    except messages.MessageError as exc:
        raise FrameSkip("bad_image", str(exc)) from None


def camera_info_intrinsics(msg, source: str = "rectified", image_size=None):
    """A deserialised CameraInfo -> ``(K, D, distortion_model, (width, height) or None)`` of the
    image it describes, with the node's checks and binning/ROI handling
    (``hand25d_ros.messages``; ``image_size``, (width, height) of the image, judges K where the
    CameraInfo gives no size, as the node's). Raises FrameSkip."""
    try:
        K, D, model = messages.camera_info_to_intrinsics(msg, source, image_size)
    except messages.MessageError as exc:
        raise FrameSkip("bad_camera_info", f"{exc}; or pass --calib") from None
    return K, D, model, messages.expected_image_size(msg)


class CameraInfoIndex:
    """CameraInfo messages by stamp: an image takes the one of its own stamp, else the
    nearest one within ``tolerance_ns`` (the whole bag is known offline, so later ones count),
    else, as the node, a latched one (``latched``: ``(log time, CameraInfo)``) whatever its
    stamp, unless a CameraInfo stream that is not latched runs within ``live_window_ns`` of
    the image (its own CameraInfo is then missing, not replaced by another calibration)."""

    def __init__(self, items, tolerance_ns: int, latched=(),
                 live_window_ns: int = messages.LIVE_CAMERA_INFO_WINDOW_NS):
        by_stamp = dict(sorted(items, key=lambda x: x[0]))   # a repeated stamp: the later message
        self.stamps = list(by_stamp)
        self.infos = list(by_stamp.values())
        self.tolerance_ns = int(tolerance_ns)
        latched = sorted(latched, key=lambda x: x[0])
        self.latched_times = [t for t, _ in latched]
        self.latched = [info for _, info in latched]
        latched_ids = {id(info) for info in self.latched}
        self.live_stamps = sorted(s for s, info in items if id(info) not in latched_ids)
        self.live_window_ns = int(live_window_ns)

    def __len__(self) -> int:
        return len(self.stamps)

    def match(self, stamp: int, t_log: int | None = None):
        i = bisect_left(self.stamps, stamp)
        near = [j for j in (i - 1, i) if 0 <= j < len(self.stamps)]
        if near:
            j = min(near, key=lambda j: abs(self.stamps[j] - stamp))
            if abs(self.stamps[j] - stamp) <= self.tolerance_ns:
                return self.infos[j]
        if not self.latched:
            return None
        k = bisect_left(self.live_stamps, stamp - self.live_window_ns)
        if k < len(self.live_stamps) and self.live_stamps[k] <= stamp + self.live_window_ns:
            return None
        # the newest latched one recorded by the image's time (the node has no later one); one
        # recorded just after the first images (a recorder's subscriptions start one by one)
        # still serves them, as offline the whole bag is known
        n = len(self.latched_times) if t_log is None else bisect_left(self.latched_times, t_log + 1)
        return self.latched[max(n - 1, 0)]


def default_camera_info_topic(image_topic: str, compressed: bool = False) -> str:
    """The CameraInfo topic beside an image topic: /camera/color/image_raw -> /camera/color/camera_info
    (a CompressedImage topic's ``/compressed`` is dropped first)."""
    t = image_topic.rstrip("/")
    if compressed and t.endswith("/compressed"):
        t = t[: -len("/compressed")]
    head = t.rsplit("/", 1)[0] if "/" in t else None
    return "camera_info" if head is None else f"{head}/camera_info"


# ---------------------------------------------------------------------------- bags
def open_bag(path):
    """An open rosbags Reader for a bag folder, an .mcap or a .db3 file. Raises BagError."""
    rosbag2, _, _ = _rosbags()
    path = Path(path)
    if not path.exists():
        raise BagError(f"no such bag: {path}")
    try:
        reader = rosbag2.Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises several kinds for "not a bag"
        raise BagError(f"{path} is not a readable ROS 2 bag ({type(exc).__name__}: {exc}); expected a bag "
                       "folder with metadata.yaml, or an .mcap or .db3 file") from None
    return reader


def bag_storage(reader) -> str:
    """'mcap' or 'sqlite3': the storage of an open Reader."""
    parts = getattr(reader.storage, "storages", None) or [reader.storage]
    return "sqlite3" if "sqlite" in type(parts[0]).__name__.lower() else "mcap"


def _topic_list(reader, types) -> str:
    found = sorted({(c.topic, c.msgtype) for c in reader.connections if c.msgtype in types})
    return ", ".join(f"{t} ({ty})" for t, ty in found) or "none"


def _connections(reader, topic: str, types, what: str, path) -> list:
    conns = [c for c in reader.connections if c.topic == topic]
    if not conns:
        raise BagError(f"no topic {topic!r} in {path}; {what} topics in the bag: {_topic_list(reader, types)}")
    got = sorted({c.msgtype for c in conns})
    if len(got) > 1:
        raise BagError(f"topic {topic!r} in {path} carries several message types ({', '.join(got)}): publishers "
                       "of different types were recorded on it; this needs one type per topic")
    if got[0] not in types:
        raise BagError(f"topic {topic!r} in {path} is {', '.join(got)}, not {' or '.join(types)}; "
                       f"{what} topics in the bag: {_topic_list(reader, types)}")
    return conns


@dataclass
class BagSummary:
    """What a run did."""
    output: Path
    storage: str
    intrinsics: str
    frames: int = 0            # messages on the image topic
    processed: int = 0         # frames that went through the tracker
    with_hands: int = 0
    hands: int = 0             # hands summed over frames
    skipped: Counter = field(default_factory=Counter)
    skip_examples: dict = field(default_factory=dict)
    written: Counter = field(default_factory=Counter)  # messages per output topic

    def describe(self) -> str:
        text = (f"wrote {self.output} ({self.storage}): {self.processed} of {self.frames} frames processed, "
                f"{self.with_hands} with hands ({self.hands} hands); intrinsics: {self.intrinsics}")
        if self.skipped:
            text += "; skipped: " + ", ".join(f"{n} {r}" for r, n in sorted(self.skipped.items()))
        return text


class _Intrinsics:
    """Intrinsics of each frame: calibration file, CameraInfo by stamp, or a guess."""

    def __init__(self, calibration, index, source, hfov_deg, info_topic=""):
        # hfov_deg None: not given; a bag without CameraInfo still gets the default guess (said
        # loudly), but an uncalibrated CameraInfo is skipped, as the node drops it without hfov_deg
        self.cal, self.index, self.source, self.hfov = calibration, index, source, hfov_deg
        self.info_topic = info_topic
        self._fov: dict = {}
        self.guessed_for_uncalibrated = False

    def describe(self) -> str:
        if self.cal is not None:
            return f"calibration {self.cal.source}"
        if self.index is not None:
            return f"CameraInfo on {self.info_topic} ({self.source})"
        return f"guess from a {self._hfov} degree horizontal field of view"

    @property
    def _hfov(self) -> float:
        return DEFAULT_HFOV_DEG if self.hfov is None else self.hfov

    def _guess(self, width: int, height: int):
        if (width, height) not in self._fov:
            self._fov[(width, height)] = K_from_fov(width, height, self._hfov)
        return self._fov[(width, height)]

    def __call__(self, stamp: int, width: int, height: int, t_log: int | None = None):
        if self.cal is not None:
            cal = self.cal
            if cal.width and (cal.width, cal.height) != (width, height):
                raise BagError(f"calibration {cal.source} is for {cal.width}x{cal.height} images, "
                               f"the bag's are {width}x{height}")
            D = cal.D if cal.D.size and np.any(cal.D) else None
            K, model = cal.K, cal.distortion_model or "plumb_bob"
        elif self.index is not None:
            info = self.index.match(stamp, t_log)
            if info is None:
                raise FrameSkip("no_camera_info", f"no CameraInfo within {self.index.tolerance_ns / 1e9} s of the "
                                                  f"image stamp {stamp / 1e9:.6f}")
            try:
                K, D, model, size = camera_info_intrinsics(info, self.source, (width, height))
            except FrameSkip:
                # as the node: only K all zeros (a camera without calibration) gets the guess;
                # NaN or a malformed matrix is a bug upstream that a guess would hide
                if not messages.is_uncalibrated(info):
                    raise
                if self.hfov is None:
                    raise FrameSkip("uncalibrated", f"its CameraInfo on {self.info_topic} is uncalibrated (K all "
                                                    "zeros): pass --calib, or --hfov-deg with the camera's "
                                                    "horizontal field of view for approximate 3D")
                K, D, size = None, None, messages.expected_image_size(info)
            if size is not None and size != (width, height):
                raise FrameSkip("size_mismatch", f"image of {width} x {height}: its CameraInfo describes "
                                                 f"{size[0]} x {size[1]} images")
            if K is None:   # uncalibrated, with --hfov-deg
                K = self._guess(width, height)
                if not self.guessed_for_uncalibrated:
                    self.guessed_for_uncalibrated = True
                    _warn(f"CameraInfo on {self.info_topic} is uncalibrated (K all zeros): using fx = fy = "
                          f"{K[0, 0]:.1f} px from --hfov-deg {self.hfov:g} for {width} x {height} images; the 3D "
                          "is approximate (depth scales with the focal length): calibrate the camera for metric "
                          "accuracy")
                return K, None, {}
            if D is not None and not np.any(D):
                D = None
        else:
            return self._guess(width, height), None, {}
        return K, D, ({"distortion_model": model} if D is not None else {})


def _transient_local(conn) -> bool:
    """Whether a connection was recorded from a latched (transient-local) publisher."""
    qos = getattr(conn.ext, "offered_qos_profiles", None) or []
    return bool(qos) and all(getattr(getattr(q, "durability", None), "name", "") == "TRANSIENT_LOCAL" for q in qos)


def _temp_output(out: Path) -> tuple[Path, Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    return tmpdir, tmpdir / out.name  # the bag's files are named after the folder: keep its final name


def _check_paths(inp: Path, out: Path, overwrite: bool) -> None:
    if out.suffix in (".mcap", ".db3"):
        raise BagError(f"--out names the bag folder to create (as 'ros2 bag record -o'), got a file name: {out}")
    ri, ro = inp.resolve(), out.resolve()
    if ri == ro or ro in ri.parents:
        raise BagError(f"the output {out} would replace the input bag {inp}")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise BagError(f"output {out} exists; pass --overwrite to replace it")
        _check_replaceable(out)


def not_a_bag_output(path: Path) -> str | None:
    """Why ``path`` (which exists) is not a bag folder as this tool or ``ros2 bag record`` writes
    them, or None where it is: a real folder holding a rosbag2 ``metadata.yaml`` and only the
    files that metadata lists. --overwrite deletes what it replaces, so anything else (a user's
    folder, a text file, a link whose target would be in doubt) must not qualify."""
    import yaml

    if path.is_symlink():
        return "it is a symbolic link"
    if not path.is_dir():
        return "it is a file, not a bag folder (the output is always a folder)"
    meta = path / "metadata.yaml"
    if not meta.is_file() or meta.is_symlink():
        return "it is a folder without a rosbag2 metadata.yaml"
    try:
        info = (yaml.safe_load(meta.read_text()) or {})["rosbag2_bagfile_information"]
        listed = {str(f) for f in info.get("relative_file_paths") or []}
    except Exception:  # unreadable, not YAML, not a mapping, no rosbag2 section
        return "its metadata.yaml is not a rosbag2 bag's"
    stray = sorted(p.name for p in path.iterdir()
                   if p.name != "metadata.yaml" and (p.name not in listed or p.is_symlink() or not p.is_file()))
    if stray:
        shown = ", ".join(stray[:5]) + (f" and {len(stray) - 5} more" if len(stray) > 5 else "")
        return f"it holds files that are not part of the bag: {shown}"
    return None


def _check_replaceable(out: Path) -> None:
    why = not_a_bag_output(out)
    if why is not None:
        raise BagError(f"output {out} exists and is not a ROS 2 bag folder this tool would replace: {why}; "
                       "--overwrite only replaces an earlier output bag (remove it yourself or choose another --out)")


def convert(input_bag, output_bag, tracker, *, image_topic: str, camera_info_topic: str | None = None,
            calibration: Calibration | None = None, hfov_deg: float | None = None,
            intrinsics_source: str = "rectified", sync_tolerance_s: float = 0.02, hand_size_m: float | None = None,
            storage: str | None = None, overwrite: bool = False, namespace: str = DEFAULT_NAMESPACE,
            frame_prefix: str = DEFAULT_FRAME_PREFIX, camera_frame_id: str = "",
            marker_style: MarkerStyle | None = None, progress: bool = True) -> BagSummary:
    """Run ``tracker`` (a ``tracking.HandTracker``) on a bag's images and write the outputs
    (module docstring) to a new bag: the hands whose mean confidence reaches the tracker's
    ``min_confidence``, as the node publishes those reaching its ``confidence_threshold``.
    Raises BagError; writes nothing unless it succeeds."""
    rosbag2, _, _ = _rosbags()
    from tqdm import tqdm

    if intrinsics_source not in INTRINSICS_SOURCES:
        raise BagError(f"intrinsics source must be one of {INTRINSICS_SOURCES}, got {intrinsics_source!r}")
    if storage is not None and storage not in STORAGES:
        raise BagError(f"storage must be one of {STORAGES}, got {storage!r}")
    if calibration is not None and camera_info_topic:
        raise BagError("give either a CameraInfo topic or a calibration file, not both")
    if hfov_deg is not None and not (0 < hfov_deg < 180):
        raise BagError(f"horizontal field of view must be in (0, 180) degrees, got {hfov_deg}")
    for what, value, pattern in (("namespace", namespace, NAMESPACE_PATTERN),
                                 ("frame prefix", frame_prefix, FRAME_PREFIX_PATTERN),
                                 ("camera frame id", camera_frame_id.lstrip("/"), FRAME_ID_PATTERN)):
        if not re.fullmatch(pattern, value):
            raise BagError(f"{what} {value!r} is not a valid ROS name (letters, digits and '_', in parts "
                           "separated by '/')")
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    # the node's default: its TF frames carry its namespace and name, so that two never share one
    frame_prefix = frame_prefix or messages.frame_prefix_of_topic(f"{ns}/keypoints")
    inp, out = Path(input_bag), Path(output_bag)
    ts = typestore()
    reader = open_bag(inp)
    try:
        image_conns = _connections(reader, image_topic, IMAGE_TYPES, "image", inp)
        msgtype = image_conns[0].msgtype
        info_topic = camera_info_topic or default_camera_info_topic(image_topic, msgtype == COMPRESSED_IMAGE)
        has_info = any(c.topic == info_topic for c in reader.connections)
        info_conns = []
        if camera_info_topic or has_info:
            info_conns = _connections(reader, info_topic, (CAMERA_INFO,), "CameraInfo", inp)
        _check_paths(inp, out, overwrite)
        index = None
        if calibration is not None:
            if has_info:
                _warn(f"--calib {calibration.source} overrides the bag's CameraInfo on {info_topic} "
                      "(still copied to the output)")
        elif info_conns:
            items, latched = [], []
            # recorded once (a latched CameraInfo, often stamped long before the images), or by a
            # transient-local publisher: the node's latched CameraInfo
            once = sum(c.msgcount for c in info_conns) == 1
            for conn, t_log, raw in reader.messages(connections=info_conns):
                try:
                    info = ts.deserialize_cdr(raw, CAMERA_INFO)
                except Exception:  # a corrupt message: it pairs with nothing
                    continue
                items.append((stamp_ns(info.header.stamp), info))
                if once or _transient_local(conn):
                    latched.append((t_log, info))
            index = CameraInfoIndex(items, int(round(sync_tolerance_s * 1e9)), latched)
        else:
            _warn(f"no CameraInfo topic {info_topic} in {inp} (CameraInfo topics there: "
                  f"{_topic_list(reader, (CAMERA_INFO,))}) and no --calib: guessing intrinsics from a "
                  f"{DEFAULT_HFOV_DEG if hfov_deg is None else hfov_deg} "
                  "degree field of view; the 3D output's depth is only as good as that guess")
        intrinsics = _Intrinsics(calibration, index, intrinsics_source, hfov_deg, info_topic)
        storage = storage or bag_storage(reader)
        summary = BagSummary(output=out, storage=storage, intrinsics=intrinsics.describe())
        tmpdir, tmp_bag = _temp_output(out)
        try:
            plugin = rosbag2.StoragePlugin.MCAP if storage == "mcap" else rosbag2.StoragePlugin.SQLITE3
            with rosbag2.Writer(tmp_bag, version=9, storage_plugin=plugin) as writer:
                _run(reader, writer, ts, tracker, image_conns, info_conns, intrinsics, summary, tqdm,
                     ns=ns, hand_size_m=hand_size_m, camera_frame_id=camera_frame_id,
                     builder=MessageBuilder(ts, frame_prefix, marker_style), progress=progress)
            if summary.processed == 0:
                reasons = "; ".join(f"{n} x {r}: {summary.skip_examples[r]}" for r, n in summary.skipped.items())
                raise BagError(f"no frame of {image_topic} in {inp} could be processed "
                               f"({summary.frames} messages{'; ' + reasons if reasons else ''}); nothing written")
            old = None
            if out.exists() or out.is_symlink():
                # again: the run can take long, and something else may stand there by now
                _check_paths(inp, out, overwrite)
                old = tmpdir / (out.name + ".old")
                out.rename(old)          # keep the old output until the new one is in place
            try:
                tmp_bag.rename(out)
            except BaseException:
                if old is not None:
                    old.rename(out)
                raise
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    finally:
        reader.close()
    return summary


def _run(reader, writer, ts, tracker, image_conns, info_conns, intrinsics, summary, tqdm, *, ns, hand_size_m,
         camera_frame_id, builder: MessageBuilder, progress) -> None:
    """The message loop: copy the inputs through, track, write the outputs."""
    copies = {}
    for c in image_conns + info_conns:
        key = (c.topic, c.msgtype)
        if key not in copies:
            # the input's type definition and hash where it has them (older bags lack one or both)
            msgdef = c.msgdef.data or ts.generate_msgdef(c.msgtype, ros_version=2)[0]
            rihs01 = c.digest if c.digest.startswith("RIHS01_") else ts.hash_rihs01(c.msgtype)
            qos = getattr(c.ext, "offered_qos_profiles", [])
            copies[key] = writer.add_connection(c.topic, c.msgtype, msgdef=msgdef, rihs01=rihs01,
                                                offered_qos_profiles=qos)
    topics = {"tf": ("/tf", "tf2_msgs/msg/TFMessage"),
              "keypoints": (f"{ns}/keypoints", "sensor_msgs/msg/PointCloud2"),
              "poses": (f"{ns}/poses", "geometry_msgs/msg/PoseArray"),
              "palm_poses": (f"{ns}/palm_poses", "geometry_msgs/msg/PoseArray"),
              "palm_pose": (f"{ns}/palm_pose", "geometry_msgs/msg/PoseStamped"),
              "markers": (f"{ns}/markers", "visualization_msgs/msg/MarkerArray")}
    outs = {k: (topic, mt, writer.add_connection(topic, mt, typestore=ts)) for k, (topic, mt) in topics.items()}

    def write(kind, t_log, msg):
        topic, mt, conn = outs[kind]
        writer.write(conn, t_log, ts.serialize_cdr(msg, mt))
        summary.written[topic] += 1

    conns = image_conns + info_conns
    last_stamp, shown = None, set()
    marker_ids: set | None = None   # hands with markers up; None: no markers written yet (as the node)
    bar = tqdm(total=sum(c.msgcount for c in conns) or None, unit="msg", desc="hand25d bag", disable=not progress)
    try:
        for conn, t_log, raw in reader.messages(connections=conns):
            bar.update(1)
            writer.write(copies[(conn.topic, conn.msgtype)], t_log, raw)
            if conn.msgtype == CAMERA_INFO:
                continue
            summary.frames += 1
            try:
                try:
                    msg = ts.deserialize_cdr(raw, conn.msgtype)
                except Exception as exc:
                    raise FrameSkip("bad_image", f"cannot deserialize the {conn.msgtype}: {exc}") from None
                stamp = stamp_ns(msg.header.stamp)
                if stamp == 0:
                    raise FrameSkip("unstamped", "image header stamp 0: its driver does not stamp images, and "
                                                 "without a stamp no CameraInfo pairs and no order holds")
                if last_stamp is not None and stamp <= last_stamp:
                    if last_stamp - stamp > messages.STAMP_RESET_NS:
                        _warn(f"image stamps jumped back by {(last_stamp - stamp) / 1e9:.3f} s: assuming a restarted "
                              "recording, starting the tracker over")
                        tracker.reset()
                        # as the node: the old timeline holds nothing back, even if this frame is skipped
                        last_stamp = None
                    else:
                        raise FrameSkip("out_of_order", f"image stamp {stamp / 1e9:.6f} is not after the previous "
                                                        f"image's {last_stamp / 1e9:.6f}")
                rgb = image_to_rgb(msg, conn.msgtype)
                K, D, extra = intrinsics(stamp, rgb.shape[1], rgb.shape[0], t_log)
                try:
                    frame, slash_dropped = output_frame_id(msg.header.frame_id, camera_frame_id)
                except NoFrameId:
                    raise FrameSkip("no_frame_id", "image with an empty header.frame_id; pass --camera-frame-id") \
                        from None
                except MessageError as exc:
                    raise FrameSkip("bad_frame_id", f"{exc}; pass --camera-frame-id") from None
                if slash_dropped and "frame_id_slash" not in shown:
                    shown.add("frame_id_slash")
                    _warn(f"image frame_id {msg.header.frame_id!r} starts with '/', which tf2 rejects: writing "
                          f"{frame!r} (or pass --camera-frame-id)")
                # as the node: only an image used sets the stamp later ones must beat, so one
                # stamped ahead and then skipped does not hold back the rest
                last_stamp = stamp
                try:
                    tracked = tracker.update(rgb, K, stamp / 1e9, hand_size_m=hand_size_m, D=D, **extra)
                except (ValueError, TypeError) as exc:
                    raise FrameSkip("estimate_failed", str(exc)) from None
            except FrameSkip as skip:
                summary.skipped[skip.reason] += 1
                summary.skip_examples.setdefault(skip.reason, str(skip))
                if skip.reason not in shown:
                    shown.add(skip.reason)
                    _warn(f"skipped a frame of {conn.topic} ({skip.reason}): {skip}; further ones are counted")
                continue
            summary.processed += 1
            # as the node: hands by id, valid, finite and at least as confident as its
            # confidence_threshold, which is the tracker's min_confidence in both
            hands = [HandOutput.from_tracked(h) for h in sorted(tracked, key=lambda h: h.track_id)
                     if h.pose.valid and h.pose.mean_confidence >= tracker.min_confidence
                     and np.all(np.isfinite(h.pose.keypoints_3d)) and np.all(np.isfinite(h.pose.keypoints_2d))]
            header = builder.header(msg.header.stamp, frame)
            if hands:
                summary.with_hands += 1
                summary.hands += len(hands)
                write("tf", t_log, builder.tf(header, hands))  # TF first, as the node
            # as the node: the arrays for every processed frame, empty without a hand
            write("keypoints", t_log, builder.cloud(header, hands))
            write("poses", t_log, builder.poses(header, hands))
            write("palm_poses", t_log, builder.palms(header, hands))
            if hands:
                write("palm_pose", t_log, builder.palm(header, hands[0]))
                ids = {h.hand_id for h in hands}
                if marker_ids is None:  # the first markers: clear what an earlier replay left in RViz
                    write("markers", t_log, builder.delete_all(header))
                write("markers", t_log, builder.markers(header, hands, (marker_ids or set()) - ids))
                marker_ids = ids
            elif marker_ids != set():
                write("markers", t_log, builder.delete_all(header))
                marker_ids = set()
            bar.set_postfix(hands=len(hands), refresh=False)
    finally:
        bar.close()

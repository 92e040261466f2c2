"""hand25d_node: 3D hand poses from a camera's images and CameraInfo (ROS 2), several hands.

Subscriptions (remappable; sensor-data QoS: best effort, keep last 1; ``rois`` keep last 10):
    image                sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8; webcams' YUV 4:2:2
                         yuyv/yuv422_yuy2 and uyvy/yuv422; semi-planar YUV nv12, nv21 (4:2:0,
                         even width and height) and nv24 (4:4:4); raw bayer_rggb8, _bggr8,
                         _gbrg8, _grbg8, demosaiced bilinearly; 16 bit rgb16, bgr16, rgba16,
                         bgra16, mono16, bayer_*16, either byte order, scaled to 8 bit (the
                         full range, as the network was trained on 8-bit images); any row padding)
    image/compressed     sensor_msgs/CompressedImage, instead of ``image`` when
                         ``use_compressed`` (the name follows ``image``'s remapping)
    camera_info          sensor_msgs/CameraInfo, paired by stamp (``sync_tolerance_s``); one of an
                         uncalibrated camera (K all zeros) is dropped unless ``hfov_deg`` gives
                         its field of view (approximate 3D, warned about). With ``hfov_deg``,
                         images get the same guess once no CameraInfo at all has come for 1 s
                         while images did (a camera that publishes none, or a stream that
                         stopped; the images before are dropped
                         as ``no_camera_info``); without it they wait and are dropped. Also subscribed
                         transient-local (reliable, or best effort where a latched publisher is
                         best effort, which a reliable one would not match): a CameraInfo a
                         camera publishes once, latched, even before the node starts, serves
                         every image without a CameraInfo of its own stamp, whatever its stamp
                         (the newest latched one counts), while a live stream (a CameraInfo
                         stamped within 1 s before the image, or after it) is not there;
                         subscribed only while such a publisher is there, so that ordinary
                         volatile drivers meet no incompatible subscription; its CameraInfo is
                         forgotten when it goes. A transient-local publisher's CameraInfo is a
                         latched one however it comes (published after the node started, the
                         ordinary subscription gets it too), never a live stream, as in
                         ``hand25d bag``
    rois                 only with ``localization: external``: the hand boxes of each image,
                         paired by exact stamp; vision_msgs/Detection2DArray when vision_msgs is
                         importable (one box per detection, ``bbox`` in pixels), else
                         geometry_msgs/PolygonStamped (points in pairs: two opposite corners of
                         each box, pixels). An image waits for its boxes; an empty message means
                         no hand in that image.

Where the hands come from (``localization``): ``track`` finds hands in the full frame and
follows them (``hand25d_ros.tracking.HandTracker``); ``whole_image``: the image is one hand
crop; ``external``: the boxes on ``rois``. Each hand gets an id that stays while it is
followed (a hand lost and found again gets a new one; ids are never reused) and a left/right
label where the tracker gives one. Up to ``max_hands`` hands; with ``smoothing`` the 3D
keypoints of each hand are One Euro filtered (the 2D keypoints u, v are not).

Publications, stamped with the image's stamp, in its optical frame (reliable). Hands are
listed in ascending id order, 21 entries per hand, the same order in every message of a frame:
    ~/keypoints          sensor_msgs/PointCloud2, 21 points per hand: x y z (m) u v (px)
                         confidence (float32), id (uint32, keypoint index in
                         ``keypoints.KEYPOINT_NAMES`` order), hand_id (uint32), is_left (int8:
                         1 left, 0 right, -1 unknown); point_step 36
    ~/poses              geometry_msgs/PoseArray: 21 poses per hand, orientations of ``pose_frames``
    ~/palm_poses         geometry_msgs/PoseArray: one palm frame per hand (hand i = points
                         21 i .. 21 i + 20 of ~/keypoints, which carry its hand_id and is_left)
    ~/palm_pose          geometry_msgs/PoseStamped: the palm frame of the first hand (lowest id:
                         the one followed longest), for single-hand consumers
    /tf                  tf2_msgs/TFMessage, per hand: <camera frame> -> <prefix><id>_palm ->
                         <prefix><id>_<keypoint> (``hand_3_palm``, ``hand_3_index_tip``, ...);
                         ``frame_prefix`` empty (the default): ``hand_`` behind the node's
                         namespace and name (``cam2/hand_3_palm`` for /cam2/hand25d), unique per node
    ~/markers            visualization_msgs/MarkerArray, namespaces ``hand<id>/joints``, ``/bones``,
                         ``/palm``, ``/label`` (text ``hand <id> left|right``); a lost hand's
                         namespaces get DELETE, and DELETEALL when no hand is left
    ~/debug_image        sensor_msgs/Image rgb8 with the skeletons and labels, when ``publish_debug_image``
    /diagnostics         diagnostic_msgs/DiagnosticArray: input and processing rates (Hz),
                         latency_ms (publication time - image stamp), processing_ms (callback),
                         node_overhead_ms (callback less the estimator and tracker), hands and
                         their ids, intrinsics (``camera_info`` or the ``hfov_deg`` guess),
                         dropped inputs by reason; every ``diagnostics_period_s`` of the
                         steady clock, so also while a simulated clock (``use_sim_time``) stands still

Images stamped 0 (a publisher that does not stamp) are dropped as ``unstamped``: without a
capture time they cannot be ordered, paired or filtered. A CameraInfo stamped 0 is another
matter: ``sync_tolerance_s`` can accept it.

A hand is published when its 3D is valid and its mean confidence reaches
``confidence_threshold``. Every processed frame gets its ~/keypoints, ~/poses and
~/palm_poses, without points or poses when it has no such hand: "no hand in view", which
silence cannot say (a stalled node, or frames dropped, are silent too; /diagnostics counts
why). A frame without a hand gets no ~/palm_pose (a PoseStamped cannot be empty) and no TF,
and its markers are deleted; the debug image comes without a skeleton. Bad input (images, CameraInfo, boxes outside the
image, zero-size or non-finite boxes, boxes without an image, more boxes than ``max_hands``)
is dropped with a rate-limited warning and counted; the node keeps running. Missing or corrupt
weights, an invalid parameter, or CUDA requested where there is none (unless
``allow_cpu_fallback``) stop it at start-up with the reason.

Parameters: ``PARAMETERS`` below (one place: default, description, range, read-only);
``config/hand25d.yaml`` lists them all.

Images of 640x480 and more over Fast DDS to a best-effort subscriber get lost with Fast DDS'
default transports; ``export FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds_large_data.xml``
for the camera driver and this node fixes that (see the file).
"""
from __future__ import annotations

import copy
import math
import re
import sys
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseArray, PoseStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import InvalidQosOverridesError, QoSOverridingOptions
from rclpy.subscription import RCLError   # re-exported there: the exception of rclpy's C layer
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from .. import keypoints as kp
from .._checks import MAX_HAND_SIZE_M, MIN_HAND_SIZE_M
from ..crop import DEFAULT_TTA, HAND_SIDES, TTA_MODES, whole_image_box
from ..intrinsics import K_from_fov
from ..messages import (FRAME_ID_PATTERN, FRAME_PREFIX_PATTERN, LIVE_CAMERA_INFO_WINDOW_NS, STAMP_RESET_NS,
                        MessageError, NoFrameId, output_frame_id)
from ..pose_frames import hand_frames
from . import conversions as conv

# Subscriptions: the sensor-data profile with a queue of one (always the newest frame).
SENSOR_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
# Outputs: reliable, so that reliable and best-effort subscribers (RViz, tools) both match.
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
# /tf: the profile of tf2_ros' TransformBroadcaster (DynamicBroadcasterQoS).
TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
# Hand boxes and CameraInfo: best effort like the images, but a few deep so that a burst is
# not lost. With a queue of one, the next frame's CameraInfo replaced an image's own while the
# node was busy (0.7-1 image a second dropped as "no CameraInfo" at 30 Hz).
ROI_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.BEST_EFFORT,
                     durability=DurabilityPolicy.VOLATILE)
INFO_QOS = ROI_QOS
# A camera that publishes its calibration once, latched (transient local, reliable), before
# the node starts: only a transient-local subscriber gets that sample, and only a reliable one
# matches a reliable transient-local publisher. It cannot replace INFO_QOS, which has to
# match best-effort volatile drivers (a reliable subscriber matches no best-effort publisher,
# a transient-local one no volatile publisher), so it is a second subscription.
LATCHED_INFO_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.TRANSIENT_LOCAL)
# The standard ROS 2 QoS overrides (read-only parameters qos_overrides.<topic>.<publisher or
# subscription>.<policy>): the inputs' reliability (a camera over a lossy link may want
# reliable images) and the outputs' reliability, depth and durability. The image queue stays
# one deep (stale frames are skipped, never queued); /tf and /diagnostics keep their standard
# profiles, and the latched CameraInfo subscription its own.
INPUT_QOS_OVERRIDES = (QoSPolicyKind.RELIABILITY,)
OUTPUT_QOS_OVERRIDES = (QoSPolicyKind.RELIABILITY, QoSPolicyKind.DEPTH, QoSPolicyKind.DURABILITY)
QOS_OVERRIDE_PREFIX = "qos_overrides."
# what rclpy raises for an override's bad value or type
_QOS_OVERRIDE_ERRORS = (RuntimeError, ValueError, TypeError, ParameterException, InvalidQosOverridesError)
# This many images in a row, each behind the newest image used and newer than the one before,
# are a new timeline (a bag shorter than STAMP_RESET_NS replayed in a loop, a clock stepped
# back), not reordered frames: the stream starts over, as after a longer jump back. Before, every
# later frame of such a loop was dropped as out of order, for good.
RESTART_AFTER_BEHIND = 3
LATCHED_INFO_WATCH_S = 0.5    # how often the graph is checked for a latched CameraInfo publisher
# With hfov_deg: images without a CameraInfo take the hfov_deg guess once no CameraInfo at all
# has come for this long while images did. Long enough that a camera's CameraInfo publisher,
# discovered a little after its image publisher, wins; short beside a start-up.
NO_CAMERA_INFO_WAIT_S = 1.0
LOCALIZATIONS = ("track", "whole_image", "external")
DEFAULT_NODE_NAME = conv.DEFAULT_NODE_NAME
# How long (wall time) a superseded image's CameraInfo may take to come before the image
# counts as dropped for the lack of it rather than skipped: a queued one comes within
# milliseconds once the node is free.
INFO_DUE_WAIT_S = 0.5


class StartupError(RuntimeError):
    """The node cannot start; the text says why and what to change."""


# ---------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class ParamSpec:
    """One parameter: default (its type is the parameter's type), meaning, constraints."""
    name: str
    default: object
    description: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    read_only: bool = False      # needs a restart: rejected by ``ros2 param set``
    pattern: str | None = None   # regular expression a string must match
    empty_is_default: bool = False   # "" (a launch argument left empty) means the default

    def descriptor(self) -> ParameterDescriptor:
        # rclpy's own type check says "expected '3' got '2'" and refuses 1 for a float; with
        # dynamic typing every value reaches validate_parameter, which says what it wanted
        d = ParameterDescriptor(name=self.name, description=self.description, read_only=self.read_only,
                                dynamic_typing=True)
        if self.choices:
            d.additional_constraints = "one of: " + ", ".join(map(str, self.choices))
        elif self.pattern:
            d.additional_constraints = f"matches {self.pattern}"
        if self.low is not None and isinstance(self.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(self.low), to_value=float(self.high), step=0.0)]
        elif self.low is not None and isinstance(self.default, int) and not isinstance(self.default, bool):
            d.integer_range = [IntegerRange(from_value=int(self.low), to_value=int(self.high), step=1)]
        return d


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("weights", "", "weights file (.pt); empty: the weights bundled with the package", read_only=True),
    ParamSpec("detector_weights", "", "hand detector weights file (.pt) for localization 'track'; empty: the "
              "bundled detector", read_only=True),
    ParamSpec("device", "auto", "'auto' (CUDA when there is one), 'cpu', 'cuda' or 'cuda:N'", read_only=True,
              pattern=r"^(auto|cpu|cuda(:\d+)?)$"),
    ParamSpec("allow_cpu_fallback", True, "CUDA requested but not available: true runs on the CPU with a "
              "warning, false stops at start-up", read_only=True),
    ParamSpec("fp16", False, "half-precision network on CUDA (ignored on the CPU)", read_only=True),
    ParamSpec("tta", DEFAULT_TTA, "test-time augmentation: 'flip' averages each hand crop with its mirror image "
              "(more accurate, twice the network time); 'none' runs the network once per crop; 'flip_rotate' also "
              "runs copies rotated by +-15 degrees (more accurate still, three times the network time of 'flip')",
              choices=TTA_MODES, read_only=True),
    ParamSpec("hand_side", "auto", "'auto': read each hand from the image; 'left' or 'right': every hand is that "
              "one (one known hand, e.g. a teleoperator's): of the tta views, those on that hand are kept, and "
              "a crop no view shows as that hand runs on 8 more views", choices=HAND_SIDES),
    ParamSpec("follow_hand", True, "once a followed hand's left/right vote is settled (5 frames), estimate its "
              "crops as that hand, as hand_side would; false reads every frame's hand afresh"),
    ParamSpec("cpu_threads", 1, "torch CPU threads (0: torch's default, one per core). One is the default: "
              "with other busy processes on the cores, more threads made the network 100x slower here",
              low=0, high=256, read_only=True),
    ParamSpec("hand_size_m", kp.DEFAULT_HAND_SIZE_M, "wrist to index-MCP length of the user's hand in metres; "
              "the absolute depth scales with it", low=MIN_HAND_SIZE_M, high=MAX_HAND_SIZE_M),
    ParamSpec("confidence_threshold", 0.05, "mean keypoint confidence below which the hand counts as absent "
              "(its frame gets empty arrays, no palm pose or TF; markers are deleted)", low=0.0, high=1.0),
    ParamSpec("localization", "track", "where the hands are: 'track' finds and follows them in the full frame; "
              "'whole_image': the image is one hand crop; 'external': the boxes on the rois topic",
              choices=LOCALIZATIONS, read_only=True),
    ParamSpec("max_hands", 2, "most hands published per image", low=1, high=10, read_only=True),
    ParamSpec("smoothing", True, "One Euro filter on each hand's 3D keypoints (less jitter, a little lag)",
              read_only=True),
    ParamSpec("smoothing_min_cutoff_hz", 1.5, "One Euro cut-off at rest (Hz): lower is smoother and lags more",
              low=0.001, high=1000.0, read_only=True),
    ParamSpec("smoothing_beta", 0.5, "One Euro speed coefficient (s/m): higher lags less in fast motion",
              low=0.0, high=1000.0, read_only=True),
    ParamSpec("track_max_gap_s", 0.5, "a gap between image stamps longer than this drops the tracks and finds "
              "the hands afresh (0: every image afresh, for unrelated stills)", low=0.0, high=1e6, read_only=True),
    ParamSpec("intrinsics_source", "rectified", "'rectified': the image is rectified, use CameraInfo P; "
              "'raw': use K and the distortion D", choices=conv.INTRINSICS_SOURCES),
    ParamSpec("hfov_deg", 0.0, "horizontal field of view (degrees) of a camera whose CameraInfo is "
              "uncalibrated (K all zeros, as webcam drivers publish without a calibration file): K is made "
              "from it and the image size, and the 3D is approximate (warned about); the same for a camera "
              "that publishes no CameraInfo at all, once none has come for 1 s while images do; 0 or empty: "
              "such images are dropped", low=0.0, high=179.0, empty_is_default=True),
    ParamSpec("sync_tolerance_s", 0.02, "pair an image with the CameraInfo of the same stamp, else the newest "
              "one within this many seconds (a large value, up to 1e12, accepts any CameraInfo, one stamped 0 "
              "among them)", low=0.0, high=1e12),
    ParamSpec("use_compressed", False, "subscribe to <image>/compressed (CompressedImage) instead of image",
              read_only=True),
    ParamSpec("camera_frame_id", "", "frame of the outputs; empty: the image's header.frame_id",
              pattern=FRAME_ID_PATTERN),
    ParamSpec("frame_prefix", "", "prefix of the TF frames: <prefix><hand id>_palm, "
              "<prefix><hand id>_<keypoint name>; empty: hand_ behind the node's namespace and name "
              "(hand_ for /hand25d, cam2/hand_ for /cam2/hand25d; see messages.auto_frame_prefix)",
              pattern=FRAME_PREFIX_PATTERN),
    ParamSpec("publish_tf", True, "broadcast the palm and keypoint frames on /tf"),
    ParamSpec("publish_markers", True, "publish ~/markers for RViz"),
    ParamSpec("marker_lifetime_s", 0.5, "marker lifetime in seconds (0: until deleted)", low=0.0, high=3600.0),
    ParamSpec("marker_joint_radius_m", 0.008, "radius of the joint spheres (m)", low=1e-4, high=0.1),
    ParamSpec("marker_bone_width_m", 0.004, "width of the bone lines (m)", low=1e-4, high=0.1),
    ParamSpec("marker_palm_arrow_length_m", 0.05, "length of the palm-normal arrow (m)", low=0.0, high=1.0),
    ParamSpec("publish_debug_image", False, "publish ~/debug_image (the input with the skeleton drawn)"),
    ParamSpec("max_image_pixels", 4096 * 4096, "larger images are dropped with a warning", low=1, high=2**31 - 1),
    ParamSpec("warning_period_s", 5.0, "at most one warning per kind of bad input in this period", low=0.0, high=3600.0),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics (s)", low=0.05, high=3600.0, read_only=True),
)
PARAMETER_SPECS = {p.name: p for p in PARAMETERS}


def validate_parameter(name: str, value) -> str | None:
    """Why ``value`` is not acceptable for parameter ``name``, or None when it is."""
    spec = PARAMETER_SPECS.get(name)
    if spec is None:
        return None  # rclpy's own (use_sim_time, ...)
    want = type(spec.default)
    value = _as_declared(name, value)
    if not isinstance(value, want) or (want is int and isinstance(value, bool)):
        article = "an" if want.__name__[0] in "aeiou" else "a"
        return f"{name} must be {article} {want.__name__}, got {type(value).__name__} {value!r}"
    if spec.choices and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}; got {value!r}"
    if spec.pattern and not re.fullmatch(spec.pattern, value):
        return f"{name} {value!r} is not valid ({spec.description}; must match {spec.pattern})"
    if spec.low is not None:
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name} must be finite, got {value}"
        if not spec.low <= value <= spec.high:
            return f"{name} must be in [{spec.low}, {spec.high}], got {value}"
    return None


def _as_declared(name: str, value):
    """A valid value in its parameter's own type: 1 for a float parameter is 1.0."""
    spec = PARAMETER_SPECS.get(name)
    if spec is not None and spec.empty_is_default and value == "":
        return spec.default
    if spec is not None and isinstance(spec.default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def command_line_overrides(argv, node_name: str) -> dict:
    """The ``-p name:=value`` (``--param``) values of ``argv``'s ``--ros-args`` sections for a
    node called ``node_name``, parsed as YAML as rcl does: {name: (text, value)}, the last
    one given for a name."""
    found, in_ros = {}, False
    args = list(argv or [])
    for i, arg in enumerate(args):
        if arg == "--ros-args":
            in_ros = True
        elif arg == "--":
            in_ros = False
        elif in_ros and arg in ("-p", "--param") and i + 1 < len(args) and ":=" in args[i + 1]:
            name, text = args[i + 1].split(":=", 1)
            if ":" in name:      # node_name:parameter applies to that node only
                node, name = name.rsplit(":", 1)
                if node not in (node_name, "*", "**"):
                    continue
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError:
                value = text
            found[name] = (text, value)
    return found


def dropped_overrides(argv, node_name: str, cfg: dict) -> list[str]:
    """Why each of ``argv``'s ``-p`` values for a known parameter is not the value the node
    got: rcl silently keeps a params file's value when a ``-p`` value has another type
    (``-p max_hands:=1.5`` beside ``--params-file`` started the node with 2)."""
    problems = []
    for name, (text, value) in command_line_overrides(argv, node_name).items():
        value = _as_declared(name, value)   # what the value means: "" for hfov_deg is its default
        if name not in cfg or (value == cfg[name] and isinstance(value, bool) == isinstance(cfg[name], bool)):
            continue
        reason = validate_parameter(name, value)
        problems.append(f"-p {name}:={text} was not applied (ROS kept {cfg[name]!r}: it drops a command-line "
                        f"value whose type differs from the params file's)" + (f": {reason}" if reason else ""))
    return problems


# ---------------------------------------------------------------------------- plain helpers
class CameraInfoSync:
    """Pairs images with CameraInfo by stamp.

    An image takes the CameraInfo of its own stamp, else the newest one (by stamp) within
    ``tolerance_ns``, else, unless a live CameraInfo stream is there (one stamped within
    ``live_window_ns`` before the image, or after it; a latched one that also came on the
    ordinary subscription, stored with ``live=False``, pairs by stamp but is no stream), the
    latched one (``set_latched``) whatever its stamp. An image with no match yet waits (one at most: the newest) for a
    CameraInfo that arrives after it.
    """

    def __init__(self, tolerance_ns: int, history: int = 30,
                 live_window_ns: int = LIVE_CAMERA_INFO_WINDOW_NS):
        self.live_window_ns = int(live_window_ns)
        self.tolerance_ns = int(tolerance_ns)
        self._infos: deque = deque(maxlen=history)   # (stamp_ns, CameraInfo, live), arrival order
        self.pending = None                          # (stamp_ns, image msg)
        self.latched = None                          # the newest latched CameraInfo

    def match(self, stamp_ns: int):
        """The CameraInfo for an image of ``stamp_ns``, or None."""
        best = None
        for s, info, _ in self._infos:
            if s == stamp_ns:
                return info
            if abs(s - stamp_ns) <= self.tolerance_ns and (best is None or s > best[0]):
                best = (s, info)
        if best is not None:
            return best[1]
        newest = self.newest_stamp_ns(live_only=True)
        # beside a live stream an image's own CameraInfo may be on its way (or missing, which
        # the node counts): the latched one would stand in for it with another calibration
        if newest is not None and newest >= stamp_ns - self.live_window_ns:
            return None
        return self.latched

    def set_latched(self, info) -> None:
        """A CameraInfo published once and kept for late joiners: the camera's calibration
        from then on, for every image without one of its own stamp. Its stamp is the time it
        was published (often long before the images, or 0), so tolerance cannot apply to it."""
        self.latched = info

    def hold(self, stamp_ns: int, image):
        """Keep ``image`` until its CameraInfo comes; returns the image it replaces (dropped)."""
        dropped, self.pending = self.pending, (stamp_ns, image)
        return dropped

    def drop_pending(self):
        dropped, self.pending = self.pending, None
        return dropped

    def store_info(self, stamp_ns: int, info, live: bool = True) -> None:
        """Store a CameraInfo without pairing it (the node pairs when the boxes are there too).
        ``live=False``: a latched one, published once and stamped when it was published. It
        pairs with an image of that stamp, but no stream follows it: counted as one, it made
        every image of the next ``live_window_ns`` wait for a CameraInfo that never came."""
        self._infos.append((stamp_ns, info, live))

    def add_info(self, stamp_ns: int, info, live: bool = True):
        """Store a CameraInfo; returns ``(image_stamp_ns, image, info)`` when it pairs the
        waiting image, else None."""
        self.store_info(stamp_ns, info, live)
        if self.pending is not None:
            s, image = self.pending
            match = self.match(s)
            if match is not None:
                self.pending = None
                return s, image, match
        return None

    def newest_stamp_ns(self, live_only: bool = False):
        """The newest stored CameraInfo's stamp (``live_only``: of a live stream's), or None."""
        return max((s for s, _, live in self._infos if live or not live_only), default=None)

    def restart_at(self, stamp_ns: int) -> None:
        """A restarted source (stamps jumped back): forget the waiting image and the CameraInfo
        of the old timeline, keeping those that can pair with ``stamp_ns`` and after it (a
        looping bag's CameraInfo comes just before its image; clearing it all dropped that
        image for want of one)."""
        self.pending = None
        self._infos = deque((e for e in self._infos if e[0] <= stamp_ns + self.tolerance_ns),
                            maxlen=self._infos.maxlen)


class RoiBuffer:
    """Hand-box messages waiting for the image of their stamp (exact stamps: a detector copies
    the image's header). Boxes older than the newest image can no longer pair."""

    def __init__(self, history: int = 30):
        self.history = history
        self._sets: dict[int, object] = {}   # stamp_ns -> message

    def add(self, stamp_ns: int, msg) -> list[int]:
        """Store; returns the stamps pushed out by the history limit (never paired)."""
        self._sets[stamp_ns] = msg
        evicted = []
        while len(self._sets) > self.history:
            oldest = min(self._sets)
            del self._sets[oldest]
            evicted.append(oldest)
        return evicted

    def has(self, stamp_ns: int) -> bool:
        return stamp_ns in self._sets

    def take(self, stamp_ns: int):
        return self._sets.pop(stamp_ns, None)

    def expire_before(self, stamp_ns: int) -> list[int]:
        """Forget the sets older than ``stamp_ns``; returns their stamps."""
        old = sorted(s for s in self._sets if s < stamp_ns)
        for s in old:
            del self._sets[s]
        return old

    def restart_at(self, stamp_ns: int) -> list[int]:
        """A restarted source: forget the boxes of the old timeline, not those of ``stamp_ns``;
        returns the stamps forgotten."""
        gone = sorted(s for s in self._sets if s > stamp_ns)
        self._sets = {s: m for s, m in self._sets.items() if s <= stamp_ns}
        return gone


class SkippedFrames:
    """Frames a subscription never took, from each publisher's sequence numbers: the image
    queue keeps only the newest while the node works (and best effort may lose some on the
    way), so without this a 30 Hz camera feeding a 15 Hz node looks like a 15 Hz camera."""

    def __init__(self):
        self._last: dict[bytes, int] = {}    # publisher gid -> its last sequence number taken

    def count(self, msg_info) -> int:
        """Frames skipped before this one from its publisher (0 where the middleware gives no
        sequence numbers, for a publisher's first frame, or after it restarted)."""
        seq = (msg_info or {}).get("publication_sequence_number")
        gid = (msg_info or {}).get("publisher_gid") or {}
        if not seq:
            return 0
        key = bytes(gid.get("data", b""))
        last, self._last[key] = self._last.get(key), int(seq)
        return int(seq) - last - 1 if last is not None and seq > last else 0


class RateWindow:
    """Event times and values in a sliding window: rate (Hz) and mean value."""

    def __init__(self, window_s: float = 2.0):
        self.window_s = window_s
        self._events: deque = deque()

    def add(self, t_s: float, value: float = 0.0) -> None:
        self._events.append((t_s, value))
        self._trim(t_s)

    def _trim(self, now_s: float) -> None:
        while self._events and self._events[0][0] < now_s - self.window_s:
            self._events.popleft()

    def rate_hz(self, now_s: float) -> float:
        self._trim(now_s)
        return len(self._events) / self.window_s

    def mean(self, now_s: float) -> float:
        self._trim(now_s)
        return float(np.mean([v for _, v in self._events])) if self._events else float("nan")


class WarningThrottle:
    """At most one warning per key and period; counts what it held back."""

    def __init__(self, period_s: float):
        self.period_s = period_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def __call__(self, key: str, now_s: float) -> int | None:
        """None: stay quiet; else the number of warnings of this key held back since the last."""
        last = self._last.get(key)
        if last is not None and now_s - last < self.period_s:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now_s
        return self._held.pop(key, 0)


# ---------------------------------------------------------------------------- the node
class HandPoseNode(Node):
    """The hand25d node (see the module docstring)."""

    def __init__(self, node_name: str = DEFAULT_NODE_NAME, argv=None, **kwargs):
        super().__init__(node_name, **kwargs)
        try:
            self._set_up(sys.argv if argv is None else argv)
        except BaseException:
            # a half-made node otherwise waits for the garbage collector, which may come after
            # rclpy's shutdown at exit; its handles go now, while the context is up
            self.destroy_node()
            raise

    def _set_up(self, argv) -> None:
        self._declare_parameters(argv)
        self.estimator = self._make_estimator()
        self.tracker = self._make_tracker()

        self.sync = CameraInfoSync(int(self.cfg["sync_tolerance_s"] * 1e9))
        self.rois = RoiBuffer()
        self.external = self.cfg["localization"] == "external"
        self.throttle = WarningThrottle(self.cfg["warning_period_s"])
        self.stats_in, self.stats_done, self.stats_found = RateWindow(), RateWindow(), RateWindow()
        self.stats_latency, self.stats_overhead, self.stats_processing = RateWindow(), RateWindow(), RateWindow()
        self.dropped: dict[str, int] = {}
        self.skipped = SkippedFrames()
        self.info_due: list[tuple[int, float]] = []   # (stamp, monotonic s): images superseded before
                                                      # their CameraInfo came
        self.last_stamp_ns: int | None = None
        self.behind_run: list[int] = []           # the rising stamps of the images in a row behind it
        self.info_wait_since: float | None = None   # monotonic s: images came, no CameraInfo since
        self.hand_ids: list[int] = []             # the hands of the last processed frame
        self.intrinsics_used = "none"             # where the last processed frame's K came from
        self.marker_ids: set[int] | None = None   # hands with markers up; None: nothing published yet
        self.marker_header = Header()             # the header of the markers up

        self.pub_cloud = self._output(PointCloud2, "~/keypoints")
        self.pub_poses = self._output(PoseArray, "~/poses")
        self.pub_palm = self._output(PoseStamped, "~/palm_pose")
        self.pub_palms = self._output(PoseArray, "~/palm_poses")
        self.pub_markers = self._output(MarkerArray, "~/markers")
        self.pub_debug = self._output(Image, "~/debug_image")
        self.pub_tf = self.create_publisher(TFMessage, "/tf", TF_QOS)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", OUTPUT_QOS)

        if self.cfg["use_compressed"]:
            topic = self.resolve_topic_name("image") + "/compressed"
            self.sub_image = self._input(CompressedImage, topic, self.on_image, SENSOR_QOS)
        else:
            topic = "image"
            self.sub_image = self._input(Image, topic, self.on_image, SENSOR_QOS)
        self.sub_info = self._input(CameraInfo, "camera_info", self.on_camera_info, INFO_QOS)
        # the latched subscription is made only once a transient-local publisher is there: made
        # at start, it is incompatible with every ordinary (volatile) driver, whose rclpy then
        # warns "requesting incompatible QoS" in the driver's log, once per node
        self.sub_info_latched = None
        self.info_publisher_latched: dict[bytes, bool] = {}   # CameraInfo publisher gid -> transient local
        # the node's own chores run on the steady clock: on ROS time (use_sim_time) a paused or
        # not yet started bag stopped /diagnostics and the watch for a latched CameraInfo
        steady_clock = Clock(clock_type=ClockType.STEADY_TIME)
        self.timer_latched = self.create_timer(LATCHED_INFO_WATCH_S, self.watch_latched_camera_info,
                                               clock=steady_clock)
        inputs = f"{self.resolve_topic_name(topic)} + {self.resolve_topic_name('camera_info')}"
        self.sub_rois = None
        if self.external:
            roi_type = conv.roi_message_type()
            self.sub_rois = self._input(roi_type, "rois", self.on_rois, ROI_QOS)
            self.roi_type_name = f"{roi_type.__module__.split('.')[0]}/{roi_type.__name__}"
            inputs += f" + {self.resolve_topic_name('rois')} ({self.roi_type_name})"
        self.timer_diag = self.create_timer(self.cfg["diagnostics_period_s"], self.publish_diagnostics,
                                            clock=steady_clock)
        self._warn_unused_qos_overrides()
        self.get_logger().info(
            f"ready: {inputs} -> {self.resolve_topic_name('~/keypoints')} ...; localization "
            f"{self.cfg['localization']}, up to {self.cfg['max_hands']} hands, device {self.estimator.device}, "
            f"weights {self.estimator.weights_path}, hand size {self.cfg['hand_size_m']} m, "
            f"hand side {self.cfg['hand_side']}, TF frames {self.frame_prefix}<hand id>_palm ...")

    # -------------------------------------------------------------- set-up
    def _declare_parameters(self, argv) -> None:
        self.declare_parameters("", [(s.name, s.default, s.descriptor()) for s in PARAMETERS])
        self.cfg = {s.name: self.get_parameter(s.name).value for s in PARAMETERS}
        for name, value in self.cfg.items():
            reason = validate_parameter(name, value)
            if reason:
                raise StartupError(f"invalid parameter: {reason}")
            self.cfg[name] = _as_declared(name, value)
        dropped = dropped_overrides(argv, self.get_name(), self.cfg)
        if dropped:
            raise StartupError("; ".join(dropped))
        unknown = sorted(n for n in set(getattr(self, "_parameter_overrides", {})) - set(PARAMETER_SPECS) - {"use_sim_time"}
                         if not n.startswith(QOS_OVERRIDE_PREFIX))
        if unknown:
            self.get_logger().warning(f"ignoring unknown parameters (typos?): {', '.join(unknown)}")
        self.add_on_set_parameters_callback(self.on_set_parameters)

    def _input(self, msg_type, topic: str, callback, qos: QoSProfile):
        try:
            # a copy: rclpy writes the overrides into the profile it is given
            return self.create_subscription(msg_type, topic, callback, copy.copy(qos),
                                            qos_overriding_options=QoSOverridingOptions(INPUT_QOS_OVERRIDES))
        except _QOS_OVERRIDE_ERRORS as exc:
            raise self._qos_override_error(topic, "subscription", exc) from None

    def _output(self, msg_type, topic: str):
        try:
            return self.create_publisher(msg_type, topic, copy.copy(OUTPUT_QOS),
                                         qos_overriding_options=QoSOverridingOptions(OUTPUT_QOS_OVERRIDES))
        except _QOS_OVERRIDE_ERRORS as exc:
            raise self._qos_override_error(topic, "publisher", exc) from None

    def _qos_override_error(self, topic: str, entity: str, exc: Exception) -> StartupError:
        # rclpy's message names the policy, not the parameter that holds the bad value
        prefix = f"{QOS_OVERRIDE_PREFIX}{self.resolve_topic_name(topic)}.{entity}."
        names = sorted(n for n in getattr(self, "_parameter_overrides", {}) if n.startswith(prefix)) or [prefix + "*"]
        return StartupError(f"invalid QoS override {', '.join(names)}: {exc}")

    def _warn_unused_qos_overrides(self) -> None:
        """rclpy ignores an override that names no topic or policy of the node's: a typo would
        leave the profile as it was without a word."""
        given = {n for n in getattr(self, "_parameter_overrides", {}) if n.startswith(QOS_OVERRIDE_PREFIX)}
        taken = sorted(QOS_OVERRIDE_PREFIX + n for n in self.get_parameters_by_prefix(QOS_OVERRIDE_PREFIX.rstrip(".")))
        unused = sorted(given - set(taken))
        if unused:
            self.get_logger().warning(f"ignoring QoS overrides that name no topic or policy this node lets change: "
                                      f"{', '.join(unused)} (it takes: {', '.join(taken)})")

    @property
    def frame_prefix(self) -> str:
        """The TF frame prefix: ``frame_prefix``, else the node's own (``messages.auto_frame_prefix``)."""
        return self.cfg["frame_prefix"] or conv.auto_frame_prefix(self.get_namespace(), self.get_name())

    def _make_estimator(self):
        import torch

        from ..estimator import DeviceError, HandPoseEstimator
        from ..weights import WeightsError

        if self.cfg["cpu_threads"] > 0:
            torch.set_num_threads(self.cfg["cpu_threads"])
        device = self.cfg["device"]
        if device.startswith("cuda") and not torch.cuda.is_available():
            if not self.cfg["allow_cpu_fallback"]:
                raise StartupError(f"device {device!r} requested but CUDA is not available; use device:=auto "
                                   "or cpu, or allow_cpu_fallback:=true")
            self.get_logger().warning(f"device {device!r} requested but CUDA is not available: running on the CPU")
            device = "cpu"
        try:
            return HandPoseEstimator(weights=self.cfg["weights"] or None, device=device, fp16=self.cfg["fp16"],
                                     detector=self.cfg["detector_weights"] or None, tta=self.cfg["tta"],
                                     hand_side=self.cfg["hand_side"])
        except WeightsError as exc:
            raise StartupError(f"cannot load weights: {exc}") from None
        except DeviceError as exc:   # a GPU index past the machine's GPUs (no CUDA is handled above)
            raise StartupError(str(exc)) from None

    def _make_tracker(self):
        from ..tracking import HandTracker

        p = self.cfg
        tracker = HandTracker(self.estimator, max_hands=p["max_hands"], min_confidence=p["confidence_threshold"],
                              smoothing=p["smoothing"], min_cutoff_hz=p["smoothing_min_cutoff_hz"],
                              beta=p["smoothing_beta"], max_gap_s=p["track_max_gap_s"],
                              follow_hand=p["follow_hand"])
        if p["localization"] == "track":
            # one frame now: what the hand search needs (e.g. the detector's weights, loaded on first
            # use) fails here with the reason, not on the first camera frame
            try:
                K = np.array([[300.0, 0.0, 159.5], [0.0, 300.0, 119.5], [0.0, 0.0, 1.0]])
                tracker.update(np.zeros((240, 320, 3), np.uint8), K, 0.0)
            except Exception as exc:  # noqa: BLE001 - any failure here means the node cannot work
                raise StartupError(f"localization 'track' cannot run: {type(exc).__name__}: {exc}") from None
            tracker.reset()
        return tracker

    def on_set_parameters(self, params) -> SetParametersResult:
        """The one validation point for ``ros2 param set`` (read-only ones rclpy rejects itself)."""
        for prm in params:
            reason = validate_parameter(prm.name, prm.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        for prm in params:
            if prm.name in self.cfg:
                value = self.cfg[prm.name] = _as_declared(prm.name, prm.value)
                if prm.name == "sync_tolerance_s":
                    self.sync.tolerance_ns = int(value * 1e9)
                elif prm.name == "warning_period_s":
                    self.throttle.period_s = value
                elif prm.name == "hand_side":
                    self.estimator.hand_side = value
                elif prm.name == "follow_hand":
                    self.tracker.follow_hand = value
                elif prm.name == "confidence_threshold":
                    self.tracker.min_confidence = value
                elif prm.name == "publish_markers" and not value and self.marker_ids:
                    # switched off with hands shown: take them down now, or RViz keeps the last
                    # skeleton until its lifetime ends (never, with marker_lifetime_s 0)
                    # (stamped as they were: the image's time base, which may be a bag's or sim time)
                    self.pub_markers.publish(conv.delete_all_markers(self.marker_header))
                    self.marker_ids = None
        return SetParametersResult(successful=True)

    # -------------------------------------------------------------- callbacks
    def count_dropped(self, key: str, count: int = 1) -> None:
        """Count ``count`` inputs not processed, under ``key`` (``/diagnostics``: dropped_<key>)."""
        self.dropped[key] = self.dropped.get(key, 0) + count

    def warn(self, key: str, text: str, count: int = 1) -> None:
        """Count ``count`` dropped inputs under ``key`` and warn, at most once per warning period."""
        self.count_dropped(key, count)
        held = self.throttle(key, time.monotonic())
        if held is not None:
            more = f" ({held} more since the last warning)" if held else ""
            self.get_logger().warning(f"{text}{more}")

    def on_camera_info(self, msg: CameraInfo, msg_info) -> None:
        # A CameraInfo latched after the node started comes here too (a volatile subscription
        # matches a transient-local publisher), stamped when it was published: taken for a live
        # stream, it made the images of the next second wait for CameraInfo of their own and
        # dropped them. Its publisher's durability tells it apart (the message carries none);
        # it is then the latched one at once, not when the latched subscription, made up to
        # LATCHED_INFO_WATCH_S later, gets it again. As hand25d bag, which counts a
        # transient-local connection's CameraInfo as latched.
        latched = self.from_latched_publisher(msg_info)
        self.sync.store_info(conv.stamp_to_ns(msg.header.stamp), msg, live=not latched)
        if latched:
            self.on_latched_camera_info(msg)
            return
        self.info_wait_since = None
        self.settle_info_due()
        self.try_pending()

    def camera_info_publishers(self) -> list:
        """The CameraInfo topic's publishers (graph), noting which are transient local by gid."""
        found = self.get_publishers_info_by_topic(self.sub_info.topic_name)
        self.info_publisher_latched = {
            bytes(i.endpoint_gid): i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in found}
        return found

    def from_latched_publisher(self, msg_info) -> bool:
        """Whether a CameraInfo came from a transient-local publisher (False where unknown: an
        ordinary stream, as before the check)."""
        gid = ((msg_info or {}).get("publisher_gid") or {}).get("data")
        if gid is None:
            return False
        gid = bytes(gid)
        if gid not in self.info_publisher_latched:
            # new since the last watch: the graph has it by now (discovery comes before matching,
            # and matching before data), so one look per new publisher
            self.camera_info_publishers()
        # one the graph does not show (gone already) counts as live until the next watch
        # rebuilds the table: not a graph query on each of its messages at the camera's rate
        return self.info_publisher_latched.setdefault(gid, False)

    def watch_latched_camera_info(self) -> None:
        """Keep a transient-local subscription while a CameraInfo publisher offers it."""
        latched = [i for i in self.camera_info_publishers()
                   if i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL]
        reliability = None
        if latched:   # a reliable subscription would not match a best-effort latched publisher
            reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in latched)
            reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        current = None if self.sub_info_latched is None else self.sub_info_latched.qos_profile.reliability
        if reliability != current:
            if self.sub_info_latched is not None:
                self.destroy_subscription(self.sub_info_latched)
                self.sub_info_latched = None
            if reliability is not None:
                qos = QoSProfile(history=LATCHED_INFO_QOS.history, depth=LATCHED_INFO_QOS.depth,
                                 durability=LATCHED_INFO_QOS.durability, reliability=reliability)
                # a volatile publisher on the same topic beside the latched one is incompatible with
                # this subscription by design (the volatile subscription has it): no warning here
                self.sub_info_latched = self.create_subscription(
                    CameraInfo, self.sub_info.topic_name, self.on_latched_camera_info, qos,
                    event_callbacks=SubscriptionEventCallbacks(incompatible_qos=lambda _event: None))
        if reliability is None and self.sync.latched is not None:
            # its calibration went with it, as a new subscriber would no longer get it: a restarted
            # driver (another resolution, say) publishes its own. Apart from the subscription: a
            # latched CameraInfo can come on the ordinary one, from a publisher gone before this
            # watch saw it. Said once the subscription is gone too, the node's whole answer.
            self.get_logger().info(f"the latched CameraInfo publisher on {self.sub_info.topic_name} is gone: "
                                   "its CameraInfo is no longer used")
            self.sync.set_latched(None)

    def on_latched_camera_info(self, msg: CameraInfo) -> None:
        if self.sync.latched is None:
            self.get_logger().info(
                f"latched CameraInfo on {self.sub_info.topic_name} "
                f"(stamp {conv.stamp_to_ns(msg.header.stamp) / 1e9:.6f}): "
                "used for every image without a CameraInfo within sync_tolerance_s of its stamp while no live "
                "CameraInfo stream runs")
        self.info_wait_since = None
        self.sync.set_latched(msg)
        self.settle_info_due()
        self.try_pending()

    def on_rois(self, msg) -> None:
        stamp = conv.stamp_to_ns(msg.header.stamp)
        pending = self.sync.pending[0] if self.sync.pending is not None else None
        if self.last_stamp_ns is not None and stamp <= self.last_stamp_ns and stamp != pending \
                and self.last_stamp_ns - stamp <= STAMP_RESET_NS:
            # its image is gone: processed (a repeated message), dropped, or never came. Boxes far
            # behind it are a restarted source's (a looping bag), whose image may come next and
            # start over (on_image): kept, as its CameraInfo is; dropping them dropped that image
            self.warn_orphan_rois([stamp])
            return
        self.warn_orphan_rois(self.rois.add(stamp, msg))
        self.try_pending()

    def warn_orphan_rois(self, stamps) -> None:
        if stamps:
            newest = "none yet" if self.last_stamp_ns is None else f"{self.last_stamp_ns / 1e9:.6f}"
            self.warn("rois_without_image", f"dropped hand boxes of stamp {stamps[-1] / 1e9:.6f} on "
                                            f"{self.sub_rois.topic_name}: no image of that stamp to pair with "
                                            f"(newest image {newest})", len(stamps))

    def on_image(self, msg, msg_info) -> None:
        now = time.monotonic()
        skipped = self.skipped.count(msg_info)
        if skipped:
            self.count_dropped("skipped", skipped)
        for _ in range(skipped + 1):    # the input rate is the camera's, taken or not
            self.stats_in.add(now)
        stamp = conv.stamp_to_ns(msg.header.stamp)
        if stamp == 0:
            # No acquisition time: nothing orders it (each would repeat the last, so only the first
            # ever got through, after resetting the tracker as a "restarted source"), the filter and
            # the track gap need time steps, tf2 listeners discard transforms of a repeated stamp, and
            # outputs restamped on arrival could not be paired with their image. As the bag tool.
            self.warn("unstamped", f"dropped an image with header stamp 0 on {self.sub_image.topic_name}: its "
                                   "publisher does not stamp images; set header.stamp to the capture time "
                                   "(e.g. node.get_clock().now())")
            return
        if self.sync.pending is not None and stamp == self.sync.pending[0]:
            self.warn("out_of_order", f"dropped an image: its stamp {stamp / 1e9:.6f} repeats the waiting image's")
            return
        # against the newest image used, not the newest come: an image that is dropped later
        # (unusable, or no CameraInfo ever) must not hold back the ones after it
        if self.last_stamp_ns is not None and stamp <= self.last_stamp_ns:
            how = self.restart_reason(stamp)
            if how is None:
                what = "repeats" if stamp == self.last_stamp_ns else "is older than"
                self.warn("out_of_order", f"dropped an image: its stamp {stamp / 1e9:.6f} {what} the previous "
                                          f"image's {self.last_stamp_ns / 1e9:.6f}")
                return
            self.get_logger().warning(f"image stamps jumped back {how}: assuming a restarted source, starting over")
            self.start_over(stamp)
        else:
            self.behind_run = []
        if self.info_wait_since is None:
            self.info_wait_since = now
        if self.external:
            self.warn_orphan_rois(self.rois.expire_before(stamp))
        dropped = self.sync.hold(stamp, msg)   # the image waits here until it has what it needs
        if dropped is not None:
            self.warn_unpaired(dropped[0])
        self.try_pending()

    def restart_reason(self, stamp: int) -> str | None:
        """For an image at or behind the newest used: why it starts a new timeline (a jump back
        past ``STAMP_RESET_NS``, or ``RESTART_AFTER_BEHIND`` rising images in a row behind), else
        None (an out-of-order image). Keeps the run of rising stamps behind."""
        if stamp == self.last_stamp_ns:
            self.behind_run = []              # a repeat starts no timeline
        elif self.behind_run and stamp > self.behind_run[-1]:
            self.behind_run.append(stamp)
        else:
            self.behind_run = [stamp]
        jump_ns = self.last_stamp_ns - stamp
        if jump_ns > STAMP_RESET_NS:
            return f"by {jump_ns / 1e9:.3f} s"
        if len(self.behind_run) >= RESTART_AFTER_BEHIND:
            return f"{len(self.behind_run)} images in a row behind the newest, each newer than the last"
        return None

    def start_over(self, stamp: int) -> None:
        """A restarted source from ``stamp`` on: what waited is counted, the old timeline's
        CameraInfo and boxes forgotten, the tracks dropped."""
        self.behind_run = []
        self.abandon_waiting_images()
        self.sync.restart_at(stamp)
        if self.external:
            self.warn_orphan_rois(self.rois.restart_at(stamp))
        self.tracker.reset()
        self.last_stamp_ns = None

    def abandon_waiting_images(self) -> None:
        """A restarted source: the image still waiting for its CameraInfo (or boxes), and those
        superseded while their CameraInfo was due, will never get it (what comes now belongs to
        the new timeline). Count them now by what they lacked; forgotten, they were neither
        published nor counted."""
        pending = self.sync.drop_pending()
        if pending is not None:
            self.warn_unpaired(pending[0])
        self.settle_info_due(final=True)

    def warn_unpaired(self, stamp: int) -> None:
        """An image that waited and a newer one replaced: count it by what it lacked (external,
        with its intrinsics, a CameraInfo or the overdue hfov_deg guess as try_pending takes
        them: boxes). Without boxes to wait for, it lacked a CameraInfo, even where the guess
        became due after it came."""
        if self.external and (self.sync.match(stamp) is not None or self.camera_info_overdue()):
            self.warn("no_rois", f"dropped an image at {stamp / 1e9:.6f}: no hand boxes of its stamp on "
                                 f"{self.sub_rois.topic_name} ({self.roi_type_name}) before the next image "
                                 "(localization: external; publish an empty message for an image without hands)")
            return
        newest = self.sync.newest_stamp_ns()
        if newest is None or newest > stamp + self.sync.tolerance_ns:
            self.warn_no_camera_info(stamp)
        else:
            # its CameraInfo may be still on its way (a node behind its camera takes the newest
            # image before the queued CameraInfo): the next CameraInfo messages or INFO_DUE_WAIT_S decide
            self.info_due.append((stamp, time.monotonic()))

    def settle_info_due(self, final: bool = False) -> None:
        """Superseded images whose CameraInfo has come now count as skipped (the node had no
        time for them); those passed by later CameraInfo messages, or waiting longer than
        ``INFO_DUE_WAIT_S``, never had one, nor, ``final``, those still waiting."""
        newest, now = self.sync.newest_stamp_ns(), time.monotonic()
        for due in list(self.info_due):
            stamp, since = due
            if self.sync.match(stamp) is not None:
                self.count_dropped("skipped")
            elif final or (newest is not None and newest > stamp + self.sync.tolerance_ns) \
                    or now - since > INFO_DUE_WAIT_S:
                self.warn_no_camera_info(stamp)
            else:
                continue
            self.info_due.remove(due)

    def warn_no_camera_info(self, stamp: int) -> None:
        newest = self.sync.newest_stamp_ns()
        seen = "none received yet" if newest is None else f"newest at {newest / 1e9:.6f}"
        self.warn("no_camera_info", f"dropped an image at {stamp / 1e9:.6f}: no CameraInfo within "
                                    f"{self.cfg['sync_tolerance_s']} s of its stamp ({seen}) on "
                                    f"{self.sub_info.topic_name}")

    def try_pending(self) -> None:
        """Process the waiting image when its CameraInfo (and, external, its boxes) are there."""
        if self.sync.pending is None:
            return
        stamp, image = self.sync.pending
        info = self.sync.match(stamp)
        if (info is None and not self.camera_info_overdue()) or (self.external and not self.rois.has(stamp)):
            return
        self.sync.drop_pending()
        self.process(image, info, self.rois.take(stamp) if self.external else None)

    def camera_info_overdue(self) -> bool:
        """No CameraInfo at all for ``NO_CAMERA_INFO_WAIT_S`` while images came, and ``hfov_deg``
        set: a camera without one, whose images take the guess (``process`` with info None)."""
        return bool(self.cfg["hfov_deg"]) and self.info_wait_since is not None \
            and time.monotonic() - self.info_wait_since > NO_CAMERA_INFO_WAIT_S

    # -------------------------------------------------------------- the work
    def process(self, msg, info: CameraInfo | None, rois_msg=None) -> None:
        """Convert, localise, estimate, publish (info None: no CameraInfo came, ``hfov_deg``
        gives K). Bad input: warn and publish nothing for this frame."""
        t0 = time.perf_counter()
        p = self.cfg
        try:
            if isinstance(msg, CompressedImage):
                rgb = conv.compressed_to_rgb(msg, p["max_image_pixels"])
            else:
                rgb = conv.image_to_rgb(msg, p["max_image_pixels"])
        except conv.MessageError as exc:
            self.warn("bad_image", f"dropped an image: {exc}")
            return
        try:
            if info is None:
                raise conv.MessageError("none came")
            K, D, model = conv.camera_info_to_intrinsics(info, p["intrinsics_source"], (rgb.shape[1], rgb.shape[0]))
            intrinsics = "camera_info"
        except conv.MessageError as exc:
            # only an uncalibrated camera or none gets the guess: NaN or a malformed matrix is a bug
            # upstream that a guess would hide
            if info is not None and not conv.is_uncalibrated(info):
                self.warn("bad_camera_info", f"dropped an image: its CameraInfo is unusable: {exc}")
                return
            if not p["hfov_deg"]:
                self.warn("uncalibrated", f"dropped an image: its CameraInfo on {self.sub_info.topic_name} is "
                                          "uncalibrated (K all zeros): calibrate the camera, or set hfov_deg "
                                          "to its horizontal field of view for approximate 3D")
                return
            K, D, model = K_from_fov(rgb.shape[1], rgb.shape[0], p["hfov_deg"]), None, ""
            intrinsics = f"guess from hfov_deg {p['hfov_deg']:g}"
            if self.throttle("guessed_intrinsics", time.monotonic()) is not None:
                why = (f"no CameraInfo on {self.sub_info.topic_name} for {NO_CAMERA_INFO_WAIT_S:g} s" if info is None
                       else f"CameraInfo on {self.sub_info.topic_name} is uncalibrated (K all zeros)")
                self.get_logger().warning(
                    f"{why}: using fx = fy = "
                    f"{K[0, 0]:.1f} px from hfov_deg {p['hfov_deg']:g} for {rgb.shape[1]} x {rgb.shape[0]} images; "
                    "the 3D is approximate (depth scales with the focal length): calibrate the camera for "
                    "metric accuracy")
        size = None if info is None else conv.expected_image_size(info)
        if size is not None and size != (rgb.shape[1], rgb.shape[0]):
            self.warn("size_mismatch", f"dropped an image of {rgb.shape[1]} x {rgb.shape[0]}: its CameraInfo "
                                       f"describes {size[0]} x {size[1]} images")
            return
        try:
            frame, slash_dropped = output_frame_id(msg.header.frame_id, p["camera_frame_id"])
        except NoFrameId:
            self.warn("no_frame_id", "dropped an image with an empty header.frame_id; set camera_frame_id")
            return
        except MessageError as exc:
            self.warn("bad_frame_id", f"dropped an image: its {exc}; set camera_frame_id")
            return
        if slash_dropped and self.throttle("frame_id_slash", time.monotonic()) is not None:
            self.get_logger().warning(f"image frame_id {msg.header.frame_id!r} starts with '/', which tf2 rejects: "
                                      f"publishing in {frame!r} (or set camera_frame_id)")
        header = Header(stamp=msg.header.stamp, frame_id=frame)
        stamp_ns = self.last_stamp_ns = conv.stamp_to_ns(msg.header.stamp)   # used: later images must be newer
        self.intrinsics_used = intrinsics
        height, width = rgb.shape[:2]
        kwargs = {}
        if p["localization"] == "whole_image":
            kwargs["rois"] = [whole_image_box(height, width)]
        elif p["localization"] == "external":
            kwargs["rois"] = self.check_rois(rois_msg, width, height)
        if D is not None and model:
            kwargs["distortion_model"] = model
        t1 = time.perf_counter()
        try:
            tracked = self.tracker.update(rgb, K, stamp_ns / 1e9, p["hand_size_m"],
                                          D=D, **kwargs)
        except (ValueError, TypeError) as exc:
            self.warn("estimate_failed", f"dropped an image: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - a bug or a broken model must not take the node down
            self.warn("estimate_error", f"dropped an image: the estimator failed: {type(exc).__name__}: {exc}")
            return
        t2 = time.perf_counter()
        hands = []
        for t in sorted(tracked, key=lambda t: t.track_id)[: p["max_hands"]]:
            pose = t.pose
            if (pose.valid and pose.mean_confidence >= p["confidence_threshold"]
                    and np.all(np.isfinite(pose.keypoints_3d)) and np.all(np.isfinite(pose.keypoints_2d))):
                is_left = getattr(t, "is_left", None)
                hands.append(conv.HandOutput(int(t.track_id), None if is_left is None else bool(is_left),
                                             pose.keypoints_3d, pose.keypoints_2d, pose.confidence,
                                             hand_frames(pose.keypoints_3d)))
        self.publish_arrays(header, hands)
        if hands:
            self.publish_hands(header, hands)
        elif p["publish_markers"] and self.marker_ids != set():
            self.pub_markers.publish(conv.delete_all_markers(header))
            self.marker_ids = set()
        self.hand_ids = [h.hand_id for h in hands]
        if p["publish_debug_image"]:
            self.publish_debug(header, rgb, hands)
        t3 = time.perf_counter()
        now = time.monotonic()
        self.stats_done.add(now)
        if hands:
            self.stats_found.add(now)
        stamp_age = self.get_clock().now().nanoseconds - stamp_ns
        self.stats_latency.add(now, stamp_age / 1e6)
        self.stats_processing.add(now, (t3 - t0) * 1e3)
        self.stats_overhead.add(now, ((t3 - t0) - (t2 - t1)) * 1e3)

    def check_rois(self, rois_msg, width: int, height: int) -> list:
        """The usable boxes of a ``rois`` message for a width x height image (warns about the rest)."""
        try:
            candidates = conv.rois_from_msg(rois_msg)
        except (AttributeError, TypeError, ValueError) as exc:
            self.warn("bad_roi", f"ignored the hand boxes of an image: {type(exc).__name__}: {exc}")
            return []
        res = conv.clean_rois(candidates, width, height, self.cfg["max_hands"])
        if res.bad:
            self.warn("bad_roi", f"ignored {res.bad} hand box(es) with a zero, negative, tiny (under "
                                 f"{conv.MIN_ROI_SIDE_PX:g} px) or non-finite size, e.g. (x, y, w, h) = "
                                 f"{res.example['bad']}", res.bad)
        if res.outside:
            self.warn("roi_outside_image", f"ignored {res.outside} hand box(es) outside the {width} x {height} "
                                           f"image, e.g. (x, y, w, h) = {res.example['outside']}", res.outside)
        if res.extra:
            self.warn("too_many_rois", f"ignored {res.extra} hand box(es) beyond max_hands = "
                                       f"{self.cfg['max_hands']} (kept the best-scored, else the largest)", res.extra)
        return res.boxes

    def publish_arrays(self, header: Header, hands: list) -> None:
        """The array outputs, for every processed frame: empty ones say "no hand in this
        frame", which silence cannot (a stalled node or lost frames are silent too)."""
        # TF first: a consumer reacting to the other topics finds the frames of this stamp more often
        # (the order between topics is not guaranteed, see example_consumer.py)
        if hands and self.cfg["publish_tf"]:
            self.pub_tf.publish(conv.hands_to_tf(header, hands, self.frame_prefix))
        self.pub_cloud.publish(conv.hands_to_cloud(header, hands))
        self.pub_poses.publish(conv.hands_to_pose_array(header, hands))
        self.pub_palms.publish(conv.palms_to_pose_array(header, hands))

    def publish_hands(self, header: Header, hands: list) -> None:
        p = self.cfg
        self.pub_palm.publish(conv.palm_to_pose_stamped(header, hands[0].frames))
        if p["publish_markers"]:
            ids = {h.hand_id for h in hands}
            gone = (self.marker_ids or set()) - ids
            if self.marker_ids is None:
                # first markers since start (or since markers were switched back on): clear leftovers
                self.pub_markers.publish(conv.delete_all_markers(header))
            self.pub_markers.publish(conv.hands_to_markers(
                header, hands, gone, joint_radius_m=p["marker_joint_radius_m"],
                bone_width_m=p["marker_bone_width_m"], palm_arrow_length_m=p["marker_palm_arrow_length_m"],
                lifetime_s=p["marker_lifetime_s"]))
            self.marker_ids = ids
            self.marker_header = header

    def publish_debug(self, header: Header, rgb: np.ndarray, hands: list) -> None:
        import cv2

        from ..draw import draw_skeleton

        image = rgb
        for h in hands:
            image = draw_skeleton(image, h.uv_px, h.confidence, self.cfg["confidence_threshold"])
            x, y = np.min(h.uv_px, 0)
            scale = max(0.4, min(image.shape[:2]) / 600.0)
            cv2.putText(image, conv.hand_label(h), (int(x), max(12, int(y) - 6)), cv2.FONT_HERSHEY_SIMPLEX,
                        scale, (255, 255, 255), max(1, int(round(2 * scale))), cv2.LINE_AA)
        self.pub_debug.publish(conv.numpy_to_image(image, "rgb8", header))

    def publish_diagnostics(self) -> None:
        self.settle_info_due()     # so that a stream that stopped gets its last counts too
        self.try_pending()         # an image that has waited long enough for a CameraInfo that never came
        now = time.monotonic()
        rate_in, rate_done = self.stats_in.rate_hz(now), self.stats_done.rate_hz(now)
        status = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}: hand pose", hardware_id=str(self.estimator.device))
        # the last processed frame's hands, while frames are processed: not a stopped camera's
        hand_ids = self.hand_ids if rate_done > 0 else []
        n = len(hand_ids)
        if rate_in == 0:
            status.level, status.message = DiagnosticStatus.WARN, "no images"
        elif rate_done == 0:
            status.level, status.message = DiagnosticStatus.WARN, "images arrive but none is processed"
        else:
            status.level = DiagnosticStatus.OK
            status.message = "no hand" if n == 0 else f"{n} hand{'s' if n > 1 else ''} visible"

        def fmt(x):   # no sample in the window: a word, not a NaN a monitor would parse as a number
            return "none" if not math.isfinite(x) else f"{x:.3f}"
        values = {"input_rate_hz": fmt(rate_in), "processing_rate_hz": fmt(rate_done),
                  "hand_rate_hz": fmt(self.stats_found.rate_hz(now)),
                  "latency_ms": fmt(self.stats_latency.mean(now)),
                  "processing_ms": fmt(self.stats_processing.mean(now)),
                  "node_overhead_ms": fmt(self.stats_overhead.mean(now)),
                  "hands": str(n), "hand_ids": ",".join(map(str, hand_ids)),
                  "localization": self.cfg["localization"],
                  "intrinsics": self.intrinsics_used,
                  "hand_size_m": str(self.cfg["hand_size_m"]), "hand_side": self.estimator.hand_side,
                  "follow_hand": str(self.tracker.follow_hand).lower(),
                  "device": str(self.estimator.device)}
        values.update({f"dropped_{k}": str(v) for k, v in sorted(self.dropped.items())})
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(msg)


def main(args=None) -> int:
    """Console script ``hand25d_node``: ``hand25d_node --ros-args --params-file config/hand25d.yaml``."""
    rclpy.init(args=args if args is not None else sys.argv)
    node = None
    try:
        node = HandPoseNode()
    except (StartupError, ParameterException) as exc:
        rclpy.logging.get_logger("hand25d").fatal(f"cannot start: {exc}")
        rclpy.try_shutdown()
        return 1
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        # SIGTERM (docker stop, systemd) shuts the context down under a running callback,
        # whose next publish then fails: that is the shutdown asked for, not an error
        if rclpy.ok():
            raise
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""hand25d_node: 3D hand pose from a camera's images and CameraInfo (ROS 2).

Subscriptions (remappable; sensor-data QoS: best effort, keep last 1):
    image                sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8; any row padding)
    image/compressed     sensor_msgs/CompressedImage, instead of ``image`` when
                         ``use_compressed`` (the name follows ``image``'s remapping)
    camera_info          sensor_msgs/CameraInfo, paired by stamp (``sync_tolerance_s``)

Publications, stamped with the image's stamp, in its optical frame (reliable):
    ~/keypoints          sensor_msgs/PointCloud2: x y z (m) u v (px) confidence (float32),
                         id (uint32); one point per keypoint in ``keypoints.KEYPOINT_NAMES`` order
    ~/poses              geometry_msgs/PoseArray: 21 poses, orientations of ``pose_frames``
    ~/palm_pose          geometry_msgs/PoseStamped: the palm frame
    /tf                  tf2_msgs/TFMessage: <camera frame> -> <prefix>palm -> <prefix><keypoint>
    ~/markers            visualization_msgs/MarkerArray (DELETEALL when the hand is lost)
    ~/debug_image        sensor_msgs/Image rgb8 with the skeleton, when ``publish_debug_image``
    /diagnostics         diagnostic_msgs/DiagnosticArray: input and processing rates (Hz),
                         latency_ms (publication time - image stamp), processing_ms (callback),
                         node_overhead_ms (callback less the estimator), dropped frames by reason

Nothing is published for a frame without a trustworthy hand (invalid 3D or mean confidence
below ``confidence_threshold``) except the DELETEALL markers when the hand is lost, and the
plain debug image. Bad input is dropped with a rate-limited warning; the node keeps running.
Missing or corrupt weights, an invalid parameter, or CUDA requested where there is none
(unless ``allow_cpu_fallback``) stop it at start-up with the reason.

Parameters: ``PARAMETERS`` below (one place: default, description, range, read-only);
``config/hand25d.yaml`` lists them all.

Images of 640x480 and more over Fast DDS to a best-effort subscriber get lost with Fast DDS'
default transports; ``export FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds_large_data.xml``
for the camera driver and this node fixes that (see the file).
"""
from __future__ import annotations

import math
import re
import sys
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseArray, PoseStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from .. import keypoints as kp
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

# an image stamp this far behind the newest one means a restarted source (a looping bag),
# not a reordered frame: start over instead of dropping everything from now on
STAMP_RESET_NS = 1_000_000_000


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

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(name=self.name, description=self.description, read_only=self.read_only)
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
    ParamSpec("device", "auto", "'auto' (CUDA when there is one), 'cpu', 'cuda' or 'cuda:N'", read_only=True,
              pattern=r"^(auto|cpu|cuda(:\d+)?)$"),
    ParamSpec("allow_cpu_fallback", True, "CUDA requested but not available: true runs on the CPU with a "
              "warning, false stops at start-up", read_only=True),
    ParamSpec("fp16", False, "half-precision network on CUDA (ignored on the CPU)", read_only=True),
    ParamSpec("cpu_threads", 1, "torch CPU threads (0: torch's default, one per core). One is the default: "
              "with other busy processes on the cores, more threads made the network 100x slower here",
              low=0, high=256, read_only=True),
    ParamSpec("hand_size_m", kp.DEFAULT_HAND_SIZE_M, "wrist to index-MCP length of the user's hand in metres; "
              "the absolute depth scales with it", low=0.03, high=0.2),
    ParamSpec("confidence_threshold", 0.05, "mean keypoint confidence below which the hand counts as absent "
              "(nothing is published, markers are deleted)", low=0.0, high=1.0),
    ParamSpec("intrinsics_source", "rectified", "'rectified': the image is rectified, use CameraInfo P; "
              "'raw': use K and the distortion D", choices=conv.INTRINSICS_SOURCES),
    ParamSpec("sync_tolerance_s", 0.02, "pair an image with the CameraInfo of the same stamp, else the newest "
              "one within this many seconds (a large value accepts any CameraInfo)", low=0.0, high=1e9),
    ParamSpec("use_compressed", False, "subscribe to <image>/compressed (CompressedImage) instead of image",
              read_only=True),
    ParamSpec("camera_frame_id", "", "frame of the outputs; empty: the image's header.frame_id",
              pattern=r"^[A-Za-z0-9_][A-Za-z0-9_/]*$|^$"),
    ParamSpec("frame_prefix", "hand_", "prefix of the TF frames: <prefix>palm, <prefix><keypoint name>",
              pattern=r"^([A-Za-z0-9_][A-Za-z0-9_/]*)?$"),
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
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, want) or (want is int and isinstance(value, bool)):
        return f"{name} must be a {want.__name__}, got {type(value).__name__} {value!r}"
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


# ---------------------------------------------------------------------------- plain helpers
class CameraInfoSync:
    """Pairs images with CameraInfo by stamp.

    An image takes the CameraInfo of its own stamp, else the newest one (by stamp) within
    ``tolerance_ns``. An image with no match yet waits (one at most: the newest) for a
    CameraInfo that arrives after it.
    """

    def __init__(self, tolerance_ns: int, history: int = 30):
        self.tolerance_ns = int(tolerance_ns)
        self._infos: deque = deque(maxlen=history)   # (stamp_ns, CameraInfo), arrival order
        self.pending = None                          # (stamp_ns, image msg)

    def match(self, stamp_ns: int):
        """The CameraInfo for an image of ``stamp_ns``, or None."""
        best = None
        for s, info in self._infos:
            if s == stamp_ns:
                return info
            if abs(s - stamp_ns) <= self.tolerance_ns and (best is None or s > best[0]):
                best = (s, info)
        return None if best is None else best[1]

    def hold(self, stamp_ns: int, image):
        """Keep ``image`` until its CameraInfo comes; returns the image it replaces (dropped)."""
        dropped, self.pending = self.pending, (stamp_ns, image)
        return dropped

    def drop_pending(self):
        dropped, self.pending = self.pending, None
        return dropped

    def add_info(self, stamp_ns: int, info):
        """Store a CameraInfo; returns ``(image_stamp_ns, image, info)`` when it pairs the
        waiting image, else None."""
        self._infos.append((stamp_ns, info))
        if self.pending is not None:
            s, image = self.pending
            match = self.match(s)
            if match is not None:
                self.pending = None
                return s, image, match
        return None

    def newest_stamp_ns(self):
        return max((s for s, _ in self._infos), default=None)

    def clear(self):
        self._infos.clear()
        self.pending = None


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

    def __init__(self, node_name: str = "hand25d", **kwargs):
        super().__init__(node_name, **kwargs)
        self._declare_parameters()
        self.estimator = self._make_estimator()

        self.sync = CameraInfoSync(int(self.cfg["sync_tolerance_s"] * 1e9))
        self.throttle = WarningThrottle(self.cfg["warning_period_s"])
        self.stats_in, self.stats_done, self.stats_found = RateWindow(), RateWindow(), RateWindow()
        self.stats_latency, self.stats_overhead, self.stats_processing = RateWindow(), RateWindow(), RateWindow()
        self.dropped: dict[str, int] = {}
        self.last_stamp_ns: int | None = None
        self.hand_visible: bool | None = None   # None: nothing published yet

        self.pub_cloud = self.create_publisher(PointCloud2, "~/keypoints", OUTPUT_QOS)
        self.pub_poses = self.create_publisher(PoseArray, "~/poses", OUTPUT_QOS)
        self.pub_palm = self.create_publisher(PoseStamped, "~/palm_pose", OUTPUT_QOS)
        self.pub_markers = self.create_publisher(MarkerArray, "~/markers", OUTPUT_QOS)
        self.pub_debug = self.create_publisher(Image, "~/debug_image", OUTPUT_QOS)
        self.pub_tf = self.create_publisher(TFMessage, "/tf", TF_QOS)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", OUTPUT_QOS)

        if self.cfg["use_compressed"]:
            topic = self.resolve_topic_name("image") + "/compressed"
            self.sub_image = self.create_subscription(CompressedImage, topic, self.on_image, SENSOR_QOS)
        else:
            topic = "image"
            self.sub_image = self.create_subscription(Image, topic, self.on_image, SENSOR_QOS)
        self.sub_info = self.create_subscription(CameraInfo, "camera_info", self.on_camera_info, SENSOR_QOS)
        self.timer_diag = self.create_timer(self.cfg["diagnostics_period_s"], self.publish_diagnostics)
        self.get_logger().info(
            f"ready: {self.resolve_topic_name(topic)} + {self.resolve_topic_name('camera_info')} -> "
            f"{self.resolve_topic_name('~/keypoints')} ...; device {self.estimator.device}, "
            f"weights {self.estimator.weights_path}, hand size {self.cfg['hand_size_m']} m")

    # -------------------------------------------------------------- set-up
    def _declare_parameters(self) -> None:
        self.declare_parameters("", [(s.name, s.default, s.descriptor()) for s in PARAMETERS])
        self.cfg = {s.name: self.get_parameter(s.name).value for s in PARAMETERS}
        for name, value in self.cfg.items():
            reason = validate_parameter(name, value)
            if reason:
                raise StartupError(f"invalid parameter: {reason}")
        unknown = sorted(set(getattr(self, "_parameter_overrides", {})) - set(PARAMETER_SPECS) - {"use_sim_time"})
        if unknown:
            self.get_logger().warning(f"ignoring unknown parameters (typos?): {', '.join(unknown)}")
        self.add_on_set_parameters_callback(self.on_set_parameters)

    def _make_estimator(self):
        import torch

        from ..estimator import HandPoseEstimator
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
            return HandPoseEstimator(weights=self.cfg["weights"] or None, device=device, fp16=self.cfg["fp16"])
        except WeightsError as exc:
            raise StartupError(f"cannot load weights: {exc}") from None

    def on_set_parameters(self, params) -> SetParametersResult:
        """The one validation point for ``ros2 param set`` (read-only ones rclpy rejects itself)."""
        for prm in params:
            reason = validate_parameter(prm.name, prm.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        for prm in params:
            if prm.name in self.cfg:
                self.cfg[prm.name] = prm.value
                if prm.name == "sync_tolerance_s":
                    self.sync.tolerance_ns = int(prm.value * 1e9)
                elif prm.name == "warning_period_s":
                    self.throttle.period_s = prm.value
                elif prm.name == "publish_markers" and not prm.value and self.hand_visible:
                    self.hand_visible = None
        return SetParametersResult(successful=True)

    # -------------------------------------------------------------- callbacks
    def warn(self, key: str, text: str) -> None:
        """Count a dropped frame under ``key`` and warn, at most once per warning period."""
        self.dropped[key] = self.dropped.get(key, 0) + 1
        held = self.throttle(key, time.monotonic())
        if held is not None:
            more = f" ({held} more since the last warning)" if held else ""
            self.get_logger().warning(f"{text}{more}")

    def on_camera_info(self, msg: CameraInfo) -> None:
        paired = self.sync.add_info(conv.stamp_to_ns(msg.header.stamp), msg)
        if paired is not None:
            self.process(paired[1], paired[2])

    def on_image(self, msg) -> None:
        now = time.monotonic()
        self.stats_in.add(now)
        stamp = conv.stamp_to_ns(msg.header.stamp)
        if self.last_stamp_ns is not None and stamp <= self.last_stamp_ns:
            if self.last_stamp_ns - stamp > STAMP_RESET_NS:
                self.get_logger().warning(f"image stamps jumped back by {(self.last_stamp_ns - stamp) / 1e9:.3f} s: "
                                          "assuming a restarted source, starting over")
                self.sync.clear()
            else:
                what = "repeats" if stamp == self.last_stamp_ns else "is older than"
                self.warn("out_of_order", f"dropped an image: its stamp {stamp / 1e9:.6f} {what} the previous "
                                          f"image's {self.last_stamp_ns / 1e9:.6f}")
                return
        self.last_stamp_ns = stamp
        info = self.sync.match(stamp)
        if info is None:
            dropped = self.sync.hold(stamp, msg)
        else:
            dropped = self.sync.drop_pending()
        if dropped is not None:
            newest = self.sync.newest_stamp_ns()
            seen = "none received yet" if newest is None else f"newest at {newest / 1e9:.6f}"
            self.warn("no_camera_info", f"dropped an image at {dropped[0] / 1e9:.6f}: no CameraInfo within "
                                        f"{self.cfg['sync_tolerance_s']} s of its stamp ({seen}) on "
                                        f"{self.sub_info.topic_name}")
        if info is not None:
            self.process(msg, info)

    # -------------------------------------------------------------- the work
    def process(self, msg, info: CameraInfo) -> None:
        """Convert, estimate, publish. Any bad input: warn and publish nothing for this frame."""
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
            K, D, model = conv.camera_info_to_intrinsics(info, p["intrinsics_source"])
        except conv.MessageError as exc:
            self.warn("bad_camera_info", f"dropped an image: its CameraInfo is unusable: {exc}")
            return
        size = conv.expected_image_size(info)
        if size is not None and size != (rgb.shape[1], rgb.shape[0]):
            self.warn("size_mismatch", f"dropped an image of {rgb.shape[1]} x {rgb.shape[0]}: its CameraInfo "
                                       f"describes {size[0]} x {size[1]} images")
            return
        frame = p["camera_frame_id"] or msg.header.frame_id
        if not frame:
            self.warn("no_frame_id", "dropped an image with an empty header.frame_id; set camera_frame_id")
            return
        header = Header(stamp=msg.header.stamp, frame_id=frame)
        t1 = time.perf_counter()
        try:
            pose = self.estimator.estimate(rgb, K, p["hand_size_m"], D=D, distortion_model=model or "plumb_bob")
        except (ValueError, TypeError) as exc:
            self.warn("estimate_failed", f"dropped an image: {exc}")
            return
        t2 = time.perf_counter()
        found = bool(pose.valid and pose.mean_confidence >= p["confidence_threshold"]
                     and np.all(np.isfinite(pose.keypoints_3d)))
        if found:
            self.publish_hand(header, pose)
        elif self.hand_visible is not False:
            if p["publish_markers"]:
                self.pub_markers.publish(conv.delete_all_markers(header))
            self.hand_visible = False
        if p["publish_debug_image"]:
            self.publish_debug(header, rgb, pose if found else None)
        t3 = time.perf_counter()
        now = time.monotonic()
        self.stats_done.add(now)
        if found:
            self.stats_found.add(now)
        stamp_age = self.get_clock().now().nanoseconds - conv.stamp_to_ns(msg.header.stamp)
        self.stats_latency.add(now, stamp_age / 1e6)
        self.stats_processing.add(now, (t3 - t0) * 1e3)
        self.stats_overhead.add(now, ((t3 - t0) - (t2 - t1)) * 1e3)

    def publish_hand(self, header: Header, pose) -> None:
        p = self.cfg
        xyz = pose.keypoints_3d
        frames = hand_frames(xyz)
        # TF first: a consumer reacting to the other topics finds the frames of this stamp more often
        # (the order between topics is not guaranteed, see example_consumer.py)
        if p["publish_tf"]:
            self.pub_tf.publish(conv.hand_to_tf(header, xyz, frames, p["frame_prefix"]))
        self.pub_cloud.publish(conv.keypoints_to_cloud(header, xyz, pose.keypoints_2d, pose.confidence))
        self.pub_poses.publish(conv.keypoints_to_pose_array(header, xyz, frames))
        self.pub_palm.publish(conv.palm_to_pose_stamped(header, frames))
        if p["publish_markers"]:
            self.pub_markers.publish(conv.hand_to_markers(
                header, xyz, frames, p["marker_joint_radius_m"], p["marker_bone_width_m"],
                p["marker_palm_arrow_length_m"], p["marker_lifetime_s"]))
        self.hand_visible = True

    def publish_debug(self, header: Header, rgb: np.ndarray, pose) -> None:
        from ..draw import draw_skeleton

        image = rgb if pose is None else draw_skeleton(rgb, pose.keypoints_2d, pose.confidence,
                                                       self.cfg["confidence_threshold"])
        self.pub_debug.publish(conv.numpy_to_image(image, "rgb8", header))

    def publish_diagnostics(self) -> None:
        now = time.monotonic()
        rate_in, rate_done = self.stats_in.rate_hz(now), self.stats_done.rate_hz(now)
        status = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}: hand pose", hardware_id=str(self.estimator.device))
        if rate_in == 0:
            status.level, status.message = DiagnosticStatus.WARN, "no images"
        elif rate_done == 0:
            status.level, status.message = DiagnosticStatus.WARN, "images arrive but none is processed"
        else:
            status.level, status.message = DiagnosticStatus.OK, "hand visible" if self.hand_visible else "no hand"

        def fmt(x):
            return "nan" if not math.isfinite(x) else f"{x:.3f}"
        values = {"input_rate_hz": fmt(rate_in), "processing_rate_hz": fmt(rate_done),
                  "hand_rate_hz": fmt(self.stats_found.rate_hz(now)),
                  "latency_ms": fmt(self.stats_latency.mean(now)),
                  "processing_ms": fmt(self.stats_processing.mean(now)),
                  "node_overhead_ms": fmt(self.stats_overhead.mean(now)),
                  "hand_size_m": str(self.cfg["hand_size_m"]), "device": str(self.estimator.device)}
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
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

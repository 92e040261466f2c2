"""Example consumer of hand25d_node: follows the index fingertip through TF and the palm pose.

    python -m hand25d_ros.ros.example_consumer --ros-args -p frame_prefix:=hand_ \
        -r palm_pose:=/hand25d/palm_pose

It listens to /tf and ``palm_pose`` (geometry_msgs/PoseStamped) and, for every palm pose,
looks up ``<prefix>index_tip`` and ``<prefix>thumb_tip`` at the palm pose's stamp along the
TF chain ``<camera frame> -> <prefix>palm -> <prefix>index_tip``, and logs (at most twice a
second) the fingertip in the camera frame, where it points (its frame's x axis), its height
above the palm plane (z in the palm frame), and the thumb-index pinch distance.

The TF lookup here is a small stand-in for tf2_ros.Buffer (not on PyPI): it keeps the
transforms of the last few stamps per frame and composes a chain up to the target frame.
With a ROS install, use tf2_ros.Buffer/TransformListener instead; the frames are the same.
"""
from __future__ import annotations

import sys
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from scipy.spatial.transform import Rotation
from tf2_msgs.msg import TFMessage

from .conversions import stamp_to_ns

TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)


def transform_matrix(t) -> np.ndarray:
    """geometry_msgs/Transform -> 4x4 homogeneous matrix (child -> parent)."""
    M = np.eye(4)
    q = t.rotation
    M[:3, :3] = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    M[:3, 3] = (t.translation.x, t.translation.y, t.translation.z)
    return M


class TfChain:
    """Latest transforms per (child frame, stamp); ``lookup`` composes a chain to a target."""

    def __init__(self, stamps_per_frame: int = 10):
        self.stamps_per_frame = stamps_per_frame
        self._frames: dict[str, OrderedDict] = {}   # child -> {stamp_ns: (parent, 4x4)}

    def add(self, msg: TFMessage) -> None:
        for t in msg.transforms:
            hist = self._frames.setdefault(t.child_frame_id, OrderedDict())
            hist[stamp_to_ns(t.header.stamp)] = (t.header.frame_id, transform_matrix(t.transform))
            while len(hist) > self.stamps_per_frame:
                hist.popitem(last=False)

    def lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray | None:
        """4x4 pose of ``source`` in ``target`` at exactly ``stamp_ns``, or None when a link
        of the chain is missing (no interpolation: hand25d stamps every link alike)."""
        M, frame = np.eye(4), source
        for _ in range(64):
            if frame == target:
                return M
            link = self._frames.get(frame, {}).get(stamp_ns)
            if link is None:
                return None
            parent, T = link
            M = T @ M
            frame = parent
        return None


@dataclass
class Fingertip:
    stamp_ns: int
    camera_frame: str
    tip_in_camera: np.ndarray      # (3,) m
    pointing: np.ndarray           # (3,) unit, camera frame
    height_above_palm_m: float
    pinch_m: float


class FingertipFollower(Node):
    """Logs the index fingertip of the hand that hand25d_node publishes."""

    def __init__(self, node_name: str = "hand25d_fingertip", **kwargs):
        super().__init__(node_name, **kwargs)
        self.prefix = self.declare_parameter("frame_prefix", "hand_").value
        self.tf = TfChain()
        self.latest: Fingertip | None = None
        self._palm: PoseStamped | None = None   # newest palm pose not yet matched with its TF
        self._last_log = 0.0
        self.create_subscription(TFMessage, "/tf", self.on_tf, TF_QOS)
        self.create_subscription(PoseStamped, "palm_pose", self.on_palm, 5)

    # the palm pose and the TF of one frame come on two topics, in either order
    def on_tf(self, msg: TFMessage) -> None:
        self.tf.add(msg)
        if self._palm is not None:
            self.follow(self._palm)

    def on_palm(self, palm: PoseStamped) -> None:
        self._palm = palm
        self.follow(palm)

    def follow(self, palm: PoseStamped) -> None:
        stamp, camera = stamp_to_ns(palm.header.stamp), palm.header.frame_id
        index = self.tf.lookup(camera, f"{self.prefix}index_tip", stamp)
        thumb = self.tf.lookup(camera, f"{self.prefix}thumb_tip", stamp)
        in_palm = self.tf.lookup(f"{self.prefix}palm", f"{self.prefix}index_tip", stamp)
        if index is None or thumb is None or in_palm is None:
            return  # the TF of this stamp is not here yet
        self._palm = None
        self.latest = Fingertip(stamp, camera, index[:3, 3].copy(), index[:3, 0].copy(),
                                float(in_palm[2, 3]), float(np.linalg.norm(index[:3, 3] - thumb[:3, 3])))
        now = time.monotonic()
        if now - self._last_log >= 0.5:
            self._last_log = now
            f = self.latest
            self.get_logger().info(
                f"index tip in {camera}: {np.round(f.tip_in_camera, 3).tolist()} m, pointing "
                f"{np.round(f.pointing, 2).tolist()}, {f.height_above_palm_m * 100:.1f} cm off the palm plane, "
                f"pinch {f.pinch_m * 100:.1f} cm")


def main(args=None) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=args if args is not None else sys.argv)
    node = FingertipFollower()
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

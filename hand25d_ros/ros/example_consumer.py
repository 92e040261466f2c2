"""Example consumer of hand25d_node: follows one hand's index fingertip through TF.

    python -m hand25d_ros.ros.example_consumer --ros-args -r keypoints:=/hand25d/keypoints \
        [-p frame_prefix:=hand_] [-p hand_id:=3]

``frame_prefix`` is the node's; empty (the default): the node's default one, read off the
``keypoints`` topic (``hand_`` for /hand25d/keypoints, ``cam2/hand_`` for /cam2/hand25d/keypoints).
Give it where the node has its own ``frame_prefix`` (the node logs its frames at start-up).

It listens to /tf and ``keypoints`` (sensor_msgs/PointCloud2, 21 points per hand with the
fields ``hand_id`` and ``is_left``). For each cloud it picks a hand: the one of id ``hand_id``,
or with ``hand_id`` -1 (the default) the first one (the lowest id, the hand followed longest,
the same as ~/palm_pose), looks up ``<prefix><id>_index_tip`` and ``<prefix><id>_thumb_tip`` at
the cloud's stamp along the TF chain ``<camera frame> -> <prefix><id>_palm ->
<prefix><id>_index_tip``, and logs (at most twice a second) the fingertip in the camera frame,
where it points (its frame's x axis), its height above the palm plane (z in the palm frame),
and the thumb-index pinch distance. A cloud without that hand (the node sends an empty one for
a frame without hands) means it is gone: ``latest`` becomes None and that is logged once.

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
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import PointCloud2
from tf2_msgs.msg import TFMessage

from .conversions import cloud_to_array, frame_prefix_of_topic, stamp_to_ns

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
    hand_id: int
    side: str                      # "left", "right" or "unknown"
    tip_in_camera: np.ndarray      # (3,) m
    pointing: np.ndarray           # (3,) unit, camera frame
    height_above_palm_m: float
    pinch_m: float


SIDES = {1: "left", 0: "right", -1: "unknown"}


class FingertipFollower(Node):
    """Logs the index fingertip of one hand that hand25d_node publishes."""

    def __init__(self, node_name: str = "hand25d_fingertip", **kwargs):
        super().__init__(node_name, **kwargs)
        self.hand_id = self.declare_parameter("hand_id", -1).value
        # the node's frames carry its namespace: a fixed hand_ found nothing beside a node in /cam2
        self.prefix = (self.declare_parameter("frame_prefix", "").value
                       or frame_prefix_of_topic(self.resolve_topic_name("keypoints")))
        self.tf = TfChain()
        self.latest: Fingertip | None = None
        self._hand = None   # (stamp_ns, camera frame, hand id, side) not yet matched with its TF
        self._last_log = 0.0
        self.create_subscription(TFMessage, "/tf", self.on_tf, TF_QOS)
        self.create_subscription(PointCloud2, "keypoints", self.on_keypoints, 5)
        self.get_logger().info(f"following {self.resolve_topic_name('keypoints')} and the TF frames "
                               f"{self.prefix}<hand id>_index_tip, ...")

    # the keypoints and the TF of one frame come on two topics, in either order
    def on_tf(self, msg: TFMessage) -> None:
        self.tf.add(msg)
        if self._hand is not None:
            self.follow(*self._hand)

    def on_keypoints(self, cloud: PointCloud2) -> None:
        pts = cloud_to_array(cloud)
        ids = pts["hand_id"].astype(int)
        hand = (int(ids[0]) if ids.size else -1) if self.hand_id < 0 else int(self.hand_id)
        mine = pts[ids == hand]
        if mine.size == 0:
            # the node sends a cloud for every frame it processed, empty when it saw no hand:
            # the hand is gone now, not merely late (a fingertip kept here would go stale unnoticed)
            if self.latest is not None:
                self.get_logger().info(f"no hand{'' if self.hand_id < 0 else f' {self.hand_id}'} in "
                                       f"{cloud.header.frame_id} at {stamp_to_ns(cloud.header.stamp) / 1e9:.3f}")
            self.latest, self._hand = None, None
            return
        self._hand = (stamp_to_ns(cloud.header.stamp), cloud.header.frame_id, hand,
                      SIDES.get(int(mine["is_left"][0]), "unknown"))
        self.follow(*self._hand)

    def follow(self, stamp: int, camera: str, hand: int, side: str) -> None:
        p = f"{self.prefix}{hand}_"
        index = self.tf.lookup(camera, f"{p}index_tip", stamp)
        thumb = self.tf.lookup(camera, f"{p}thumb_tip", stamp)
        in_palm = self.tf.lookup(f"{p}palm", f"{p}index_tip", stamp)
        if index is None or thumb is None or in_palm is None:
            return  # the TF of this stamp is not here yet
        self._hand = None
        self.latest = Fingertip(stamp, camera, hand, side, index[:3, 3].copy(), index[:3, 0].copy(),
                                float(in_palm[2, 3]), float(np.linalg.norm(index[:3, 3] - thumb[:3, 3])))
        now = time.monotonic()
        if now - self._last_log >= 0.5:
            self._last_log = now
            f = self.latest
            self.get_logger().info(
                f"hand {hand} ({side}): index tip in {camera}: {np.round(f.tip_in_camera, 3).tolist()} m, pointing "
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

"""Test harness for hand25d_node as its own process over real DDS (used by test_node.py and
benchmarks/bench_node.py).

- ``ros_env()``: environment that isolates one run: a random ROS_DOMAIN_ID, localhost-only
  discovery, a private ROS_LOG_DIR, and config/fastdds_large_data.xml (images over shared
  memory without loss).
- ``NodeProcess``: the installed ``hand25d_node`` console script with ``--ros-args``.
- ``Probe``: an rclpy node in this process (own context, spun in a thread) that publishes
  images and CameraInfo and records everything the node publishes.
- ``FAKE_CNN_SITECUSTOMIZE``: a ``sitecustomize.py`` that replaces the network's forward
  pass (``HandPoseEstimator.predict_crops``) by a fixed, geometrically exact 2.5D hand, so
  the rest of the pipeline (crop, lifting with the CameraInfo intrinsics and the hand-size
  prior, frames, messages) runs for real and gives valid poses without trained weights.
  Crops darker than 20/255 on average get confidence 0.01 (no hand). ``HAND25D_FAKE_CNN_DELAY_S``
  in the node's environment makes each pass take that long (a node busy when a signal comes).
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PARAMS_FILE = REPO / "config" / "hand25d.yaml"
# large images over Fast DDS without loss (see the file)
DDS_PROFILE = REPO / "config" / "fastdds_large_data.xml"


def fake_hand_crop(size: int = 128):
    """A flat-ish hand 0.5 m in front of a virtual crop camera: (uv (21, 2) crop px,
    z_rel_norm (21,), bone ratios of geometry.ROBUST_BONES)."""
    from hand25d_ros import keypoints as kp
    from hand25d_ros.geometry import ROBUST_BONES

    P = np.zeros((21, 3))
    for f, x in zip(range(1, 5), (-0.03, -0.01, 0.01, 0.03)):
        for j in range(4):
            P[kp.FINGERS[f][j]] = (x, -0.09 - 0.028 * j, 0.01 * j)
    for j in range(4):
        P[1 + j] = (-0.045 - 0.015 * j, -0.02 - 0.025 * j, 0.005 * j)
    P += (0.0, 0.06, 0.5)
    f_c = 1.6 * size
    uv = f_c * P[:, :2] / P[:, 2:] + (size - 1) / 2.0
    s = np.linalg.norm(P[5] - P[0])
    z = (P[:, 2] - P[0, 2]) / s
    ratios = [float(np.linalg.norm(P[a] - P[b]) / s) for a, b in ROBUST_BONES]
    return uv, z, ratios


FAKE_CNN_SITECUSTOMIZE = '''
# Written by test/ros_harness.py: replaces the CNN by a fixed 2.5D hand (tests only).
import numpy as _np
from hand25d_ros import estimator as _est

_UV = _np.array({uv!r})
_Z = _np.array({z!r})


def _fake_predict_crops(self, crops_rgb, hand_is_left=None):
    import os, time
    time.sleep(float(os.environ.get("HAND25D_FAKE_CNN_DELAY_S", "0")))   # a slow network, where a test asks
    crops = _np.asarray(crops_rgb)
    B, S = crops.shape[0], crops.shape[1]
    uv = _np.repeat((_UV * S / {size}.0)[None], B, 0)
    z = _np.repeat(_Z[None], B, 0)
    bright = crops.reshape(B, -1).mean(1) >= 20
    conf = _np.where(bright[:, None], 0.9, 0.01) * _np.ones((B, 21))
    return uv, z, conf


_est.HandPoseEstimator.predict_crops = _fake_predict_crops
'''


def write_fake_cnn(directory: Path) -> Path:
    uv, z, _ = fake_hand_crop(128)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(
        FAKE_CNN_SITECUSTOMIZE.format(uv=uv.round(6).tolist(), z=z.round(9).tolist(), size=128))
    return directory


def write_test_weights(path: Path, exact_ratios: bool = True) -> Path:
    """Small untrained weights ('tiny'); bone ratios of the fake hand when ``exact_ratios``."""
    import torch

    from hand25d_ros.geometry import ROBUST_BONES
    from hand25d_ros.model import build_model
    from hand25d_ros.weights import save_weights

    torch.manual_seed(0)
    ratios = fake_hand_crop()[2] if exact_ratios else [1.0] * len(ROBUST_BONES)
    save_weights(build_model("tiny"), path, {"name": "tiny"}, {"bone_ratios": ratios, "note": "untrained, tests"})
    return path


def ros_env(log_dir: Path, domain_id: int | None = None, extra_pythonpath: Path | None = None) -> dict:
    """Environment for one isolated run (child processes and this process's context)."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(random.randint(1, 100) if domain_id is None else domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_LOG_DIR"] = str(log_dir)
    env["PYTHONUNBUFFERED"] = "1"
    env["RCUTILS_LOGGING_BUFFERED_STREAM"] = "0"
    env.pop("ROS_STATIC_PEERS", None)
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(DDS_PROFILE))
    if extra_pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_pythonpath)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def node_command() -> list[str] | None:
    """The installed console script: venv bin/ (pip) or lib/hand25d_ros/ (colcon)."""
    for cand in (Path(sys.executable).parent / "hand25d_node",
                 Path(sys.prefix) / "lib" / "hand25d_ros" / "hand25d_node"):
        if cand.is_file():
            return [str(cand)]
    found = shutil.which("hand25d_node")
    return [found] if found else None


class NodeProcess:
    """``hand25d_node --ros-args --params-file config/hand25d.yaml -r __ns:=NS -p k:=v ...``."""

    def __init__(self, env: dict, namespace: str, params: dict, log_path: Path, params_file: Path = PARAMS_FILE):
        cmd = node_command()
        if cmd is None:
            raise RuntimeError("console script hand25d_node not installed (pip install -e . or scripts/setup.sh)")
        args = cmd + ["--ros-args", "--params-file", str(params_file), "-r", f"__ns:={namespace}"]
        for k, v in params.items():
            v = str(v).lower() if isinstance(v, bool) else v
            args += ["-p", f"{k}:={v}"]
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


class Probe:
    """rclpy side of a test: publishes inputs, records the node's outputs (own context)."""

    def __init__(self, domain_id: int, node_ns: str, node_name: str = "hand25d", compressed: bool = False,
                 rois: bool = False):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseArray, PoseStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
        from tf2_msgs.msg import TFMessage
        from visualization_msgs.msg import MarkerArray

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain_id)
        self.node = rclpy.create_node("hand25d_probe", context=self.ctx)
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        base = f"{node_ns.rstrip('/')}/{node_name}"
        self.pub_image = self.node.create_publisher(CompressedImage if compressed else Image,
                                                    f"{node_ns.rstrip('/')}/image" + ("/compressed" if compressed else ""), qos)
        self.pub_info = self.node.create_publisher(CameraInfo, f"{node_ns.rstrip('/')}/camera_info", qos)
        self.pub_rois = None
        if rois:  # the node's external hand boxes (localization: external)
            from hand25d_ros.ros.conversions import roi_message_type
            self.pub_rois = self.node.create_publisher(roi_message_type(), f"{node_ns.rstrip('/')}/rois",
                                                       QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.lock = threading.Lock()
        self.received: dict[str, list] = {}
        self.receive_times: dict[str, list] = {}   # time.monotonic() of each message
        out_qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        topics = {"keypoints": (PointCloud2, f"{base}/keypoints"), "poses": (PoseArray, f"{base}/poses"),
                  "palm_pose": (PoseStamped, f"{base}/palm_pose"), "palm_poses": (PoseArray, f"{base}/palm_poses"),
                  "markers": (MarkerArray, f"{base}/markers"),
                  "debug_image": (Image, f"{base}/debug_image"), "tf": (TFMessage, "/tf"),
                  "diagnostics": (DiagnosticArray, "/diagnostics")}
        self.subs = []
        for key, (typ, topic) in topics.items():
            self.received[key] = []
            self.receive_times[key] = []
            self.subs.append(self.node.create_subscription(typ, topic, self._recorder(key), out_qos))
        self.base = base
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self._stop = False
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _recorder(self, key):
        def cb(msg):
            t = time.monotonic()
            with self.lock:
                self.received[key].append(msg)
                self.receive_times[key].append(t)
        return cb

    def _spin(self):
        while not self._stop and self.ctx.ok():
            self.executor.spin_once(timeout_sec=0.02)

    def messages(self, key: str) -> list:
        with self.lock:
            return list(self.received[key])

    def wait_for(self, predicate, timeout: float = 10.0, poll: float = 0.02) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(poll)
        return predicate()

    def wait_connected(self, timeout: float = 20.0) -> bool:
        """Until the node subscribes to the inputs and publishes the main outputs."""
        return self.wait_for(lambda: self.pub_image.get_subscription_count() > 0
                             and self.pub_info.get_subscription_count() > 0
                             and (self.pub_rois is None or self.pub_rois.get_subscription_count() > 0)
                             and self.node.count_publishers(f"{self.base}/keypoints") > 0, timeout)

    def diagnostics_value(self, key: str):
        """The latest value of ``key`` in the node's /diagnostics (None: none yet)."""
        for msg in reversed(self.messages("diagnostics")):
            for st in msg.status:
                if st.name.startswith(self.base):
                    for kv in st.values:
                        if kv.key == key:
                            return kv.value
                    return None
        return None

    def dropped(self, reason: str) -> int:
        v = self.diagnostics_value(f"dropped_{reason}")
        return 0 if v is None else int(v)

    def close(self):
        self._stop = True
        self.thread.join(5)
        self.executor.shutdown()
        self.node.destroy_node()
        self.ctx.try_shutdown()


def temp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))

"""The README's demo: hand25d_node as its own process on sample frames, over real DDS.

    scripts/demo.sh                       # bundled sample frames and weights
    python -m hand25d_ros.ros.demo --images my_photos/ --calib camera.yaml --out out/demo

It starts ``hand25d_node`` (the installed console script, else ``python -m
hand25d_ros.ros.node``) with ``config/hand25d.yaml`` in a private ROS domain with
localhost-only discovery, publishes each frame as sensor_msgs/Image with its CameraInfo,
receives what the node publishes (~/keypoints, ~/palm_pose, /tf, ~/debug_image), prints
the keypoints and saves, per frame, an overlay drawn from the received 2D keypoints
(``<name>_overlay.png``), the node's debug image (``<name>_debug.png``) and the received
outputs (``<name>.json``). Where an ``annotations.json`` lies beside the images (the bundled
samples), each frame's intrinsics come from it and the error against the true pose is
printed. Exit code 0 when the node answered every frame.

The bundled frames are full 640x480 camera frames (a rendered hand composited into an
indoor scene, intrinsics carried exactly), so the node finds the hand itself
(``localization: track``), without smoothing since the frames are unrelated stills, not a
video; ``--localization whole_image`` is for images that already are hand crops.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from .. import keypoints as kp
from ..image_files import read_image_file, write_image_file

NODE_NAMESPACE = "/hand25d_demo"


def _find_share_file(*parts: str) -> Path | None:
    """A file of the package's share/: the source tree's, a colcon install's (the ament index),
    or a pip install's (``<prefix>/share/hand25d_ros``, found with no ROS environment sourced)."""
    here = Path(__file__).resolve().parents[2].joinpath(*parts)
    if here.is_file():
        return here
    try:
        from ament_index_python.packages import get_package_share_directory

        p = Path(get_package_share_directory("hand25d_ros")).joinpath(*parts)
        if p.is_file():
            return p
    except Exception:  # noqa: BLE001 - no ament index here: the pip layout below
        pass
    p = Path(sys.prefix, "share", "hand25d_ros", *parts)
    return p if p.is_file() else None


def bundled_samples_dir() -> Path:
    from importlib import resources

    return Path(str(resources.files("hand25d_ros") / "samples"))


def list_images(paths) -> list[Path]:
    from ..cli import list_images as list_image_files
    return list_image_files(paths, prog="demo")


def load_annotations(images) -> dict:
    """``annotations.json`` beside the images (the bundled samples have one): image path ->
    its record (``K``, ``joints_3d_mm``, ``joints_2d_px``)."""
    out = {}
    for folder in {p.parent for p in images}:
        f = folder / "annotations.json"
        if f.is_file():
            try:
                for rec in json.loads(f.read_text()).get("samples", []):
                    out[(folder / rec["image"]).resolve()] = rec
            except (ValueError, KeyError, TypeError) as exc:
                print(f"demo: ignoring {f}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return out


def _truth_rows(value, dim: int):
    """An annotation's keypoints as (21, dim), NaN rows where it writes null (a keypoint not
    labelled, as the annotated-folder loader allows); None where it has none."""
    if value is None:
        return None
    rows = [[np.nan] * dim if row is None else row for row in value]
    return np.asarray(rows, dtype=np.float64).reshape(kp.NUM_KEYPOINTS, dim)


def errors_against_truth(xyz_mm, uv, annotation) -> dict:
    """Mean errors of a hand against its annotation, over the keypoints it labels: an
    unlabelled one has no truth to miss, and counting it would make every mean NaN. The
    wrist-relative error needs the wrist; the 2D error needs ``joints_2d_px``."""
    out = {}
    gt3 = _truth_rows(annotation.get("joints_3d_mm"), 3)
    if gt3 is not None:
        m = ~np.isnan(gt3).any(axis=1)
        out["mean_3d_mm"] = float(np.mean(np.linalg.norm(xyz_mm[m] - gt3[m], axis=1)))
        if m[0]:
            out["mean_3d_wrist_relative_mm"] = float(np.mean(np.linalg.norm(
                (xyz_mm[m] - xyz_mm[0]) - (gt3[m] - gt3[0]), axis=1)))
        out["labelled_3d"] = int(m.sum())
    gt2 = _truth_rows(annotation.get("joints_2d_px"), 2)
    if gt2 is not None:
        m = ~np.isnan(gt2).any(axis=1)
        out["mean_2d_px"] = float(np.mean(np.linalg.norm(uv[m] - gt2[m], axis=1)))
        out["labelled_2d"] = int(m.sum())
    return out


def describe_errors(err: dict) -> str:
    parts = []
    if "mean_3d_mm" in err:
        rel = err.get("mean_3d_wrist_relative_mm")
        parts.append(f"{err['mean_3d_mm']:.1f} mm mean 3D error"
                     + (f" ({rel:.1f} mm wrist-relative)" if rel is not None else " (wrist not labelled)"))
    if "mean_2d_px" in err:
        parts.append(f"{err['mean_2d_px']:.1f} px mean 2D error")
    n = min(err.get("labelled_3d", kp.NUM_KEYPOINTS), err.get("labelled_2d", kp.NUM_KEYPOINTS))
    more = f" (over the {n} of {kp.NUM_KEYPOINTS} keypoints labelled)" if n < kp.NUM_KEYPOINTS else ""
    return "  against the true pose: " + ", ".join(parts) + more


def intrinsics_for(calib, width: int, height: int, hfov_deg: float, annotation=None):
    """(K, D, model) for an image of width x height: from the calibration, the image's
    annotation, or a FOV guess."""
    from ..intrinsics import K_from_fov

    if calib is None and annotation is not None and "K" in annotation:
        return np.asarray(annotation["K"], dtype=np.float64), None, "plumb_bob"
    if calib is None:
        return K_from_fov(width, height, hfov_deg), None, "plumb_bob"
    if calib.width and (calib.width, calib.height) != (width, height):
        raise SystemExit(f"demo: calibration {calib.source} is for {calib.width} x {calib.height} images, "
                         f"got one of {width} x {height}")
    D = calib.D if calib.D.size and np.any(calib.D) else None
    return calib.K, D, calib.distortion_model


def node_command() -> list[str]:
    script = Path(sys.executable).parent / "hand25d_node"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "hand25d_ros.ros.node"]


class DemoClient:
    """Publishes frames and collects the node's outputs (own rclpy context, spun in a thread)."""

    def __init__(self, domain_id: int):
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        from tf2_msgs.msg import TFMessage

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain_id)
        self.node = rclpy.create_node("hand25d_demo_client", context=self.ctx)
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_image = self.node.create_publisher(Image, f"{NODE_NAMESPACE}/image", qos)
        self.pub_info = self.node.create_publisher(CameraInfo, f"{NODE_NAMESPACE}/camera_info", qos)
        base = f"{NODE_NAMESPACE}/hand25d"
        self.lock = threading.Lock()
        self.got: dict[str, dict] = {"keypoints": {}, "palm_pose": {}, "tf": {}, "debug_image": {}}
        out_qos = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        for key, typ, topic in (("keypoints", PointCloud2, f"{base}/keypoints"),
                                ("palm_pose", PoseStamped, f"{base}/palm_pose"),
                                ("tf", TFMessage, "/tf"), ("debug_image", Image, f"{base}/debug_image")):
            self.node.create_subscription(typ, topic, self._keeper(key), out_qos)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self._stop = False
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _keeper(self, key):
        from .conversions import stamp_to_ns

        def cb(msg):
            stamp = msg.transforms[0].header.stamp if key == "tf" else msg.header.stamp
            with self.lock:
                self.got[key][stamp_to_ns(stamp)] = msg
        return cb

    def _spin(self):
        while not self._stop and self.ctx.ok():
            self.executor.spin_once(timeout_sec=0.02)

    def output(self, key: str, stamp_ns: int):
        with self.lock:
            return self.got[key].get(stamp_ns)

    def wait(self, key: str, stamp_ns: int, timeout: float):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.output(key, stamp_ns) is not None:
                return self.output(key, stamp_ns)
            time.sleep(0.01)
        return None

    def connected(self) -> bool:
        return (self.pub_image.get_subscription_count() > 0 and self.pub_info.get_subscription_count() > 0
                and self.node.count_publishers(f"{NODE_NAMESPACE}/hand25d/debug_image") > 0)

    def close(self):
        self._stop = True
        self.thread.join(5)
        self.executor.shutdown()
        self.node.destroy_node()
        self.ctx.try_shutdown()


def print_keypoints(name: str, arr, palm) -> None:
    print(f"\n{name}: hand found; palm at {[round(v, 3) for v in palm]} m (camera optical frame)")
    print(f"  {'id':>2} {'keypoint':<11} {'u px':>7} {'v px':>7} {'x m':>7} {'y m':>7} {'z m':>7} {'conf':>5}")
    for r in arr:
        print(f"  {int(r['id']):>2} {kp.KEYPOINT_NAMES[int(r['id'])]:<11} {r['u']:7.1f} {r['v']:7.1f} "
              f"{r['x']:7.3f} {r['y']:7.3f} {r['z']:7.3f} {r['confidence']:5.2f}")


def run(args) -> int:
    from ..draw import draw_skeleton
    from ..intrinsics import load_camera_yaml
    from .conversions import cloud_to_array, image_to_rgb, intrinsics_to_camera_info, ns_to_stamp, numpy_to_image

    from std_msgs.msg import Header

    images = list_images(args.images) if args.images else []
    calib_path = args.calib
    if not images:
        samples = bundled_samples_dir()
        images = list_images([samples]) if samples.is_dir() else []
        if calib_path is None and (samples / "camera.yaml").is_file():
            calib_path = samples / "camera.yaml"
        if not images:
            print(f"demo: no bundled sample frames in {samples}; pass --images PATH...", file=sys.stderr)
            return 2
    calib = load_camera_yaml(calib_path) if calib_path else None
    truth = load_annotations(images)
    if calib is None and not all(p.resolve() in truth for p in images):
        print(f"demo: WARNING: no calibration given: intrinsics guessed from a {args.hfov_deg} degree "
              "horizontal field of view; depths are only as right as that guess", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    params_file = _find_share_file("config", "hand25d.yaml")
    dds_profile = _find_share_file("config", "fastdds_large_data.xml")
    domain = args.domain_id if args.domain_id is not None else random.randint(1, 100)
    log_dir = Path(tempfile.mkdtemp(prefix="hand25d_demo_log_"))
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               ROS_LOG_DIR=str(log_dir), PYTHONUNBUFFERED="1")
    if dds_profile and "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(dds_profile)
    # the same settings for this process's participant
    for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR", "FASTDDS_DEFAULT_PROFILES_FILE"):
        if k in env:
            os.environ[k] = env[k]

    any_distortion = calib is not None and calib.D.size and np.any(calib.D)
    cmd = node_command() + ["--ros-args"]
    if params_file:
        cmd += ["--params-file", str(params_file)]
    cmd += ["-r", f"__ns:={NODE_NAMESPACE}", "-p", "publish_debug_image:=true", "-p", f"device:={args.device}",
            "-p", f"intrinsics_source:={'raw' if any_distortion else 'rectified'}",
            "-p", f"localization:={args.localization}", "-p", "smoothing:=false",
            # unrelated stills: no frame is a prior for the next
            "-p", "track_max_gap_s:=0.0"]
    if args.weights:
        cmd += ["-p", f"weights:={Path(args.weights).resolve()}"]
    if args.hand_size_m:
        cmd += ["-p", f"hand_size_m:={args.hand_size_m}"]
    node_log = out / "node.log"
    print(f"demo: starting {' '.join(cmd)}  (ROS_DOMAIN_ID={domain}, log {node_log})")
    with open(node_log, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = None
    answered = 0
    try:
        client = DemoClient(domain)
        end = time.monotonic() + args.timeout
        while not client.connected():
            if proc.poll() is not None:
                print(f"demo: the node exited ({proc.returncode}):\n{node_log.read_text()[-3000:]}", file=sys.stderr)
                return 1
            if time.monotonic() > end:
                print(f"demo: the node did not come up in {args.timeout} s:\n{node_log.read_text()[-3000:]}",
                      file=sys.stderr)
                return 1
            time.sleep(0.05)
        for path in images:
            try:
                bgr = read_image_file(path)
            except ValueError:
                bgr = None
            if bgr is None:
                print(f"demo: cannot read {path}, skipped", file=sys.stderr)
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            h, w = rgb.shape[:2]
            ann = truth.get(path.resolve())
            K, D, model = intrinsics_for(calib, w, h, args.hfov_deg, ann)
            debug = None
            for _ in range(3):  # the first frames can meet a DDS match still settling: re-send
                stamp = time.time_ns()
                header = Header(stamp=ns_to_stamp(stamp), frame_id="camera_optical_frame")
                client.pub_info.publish(intrinsics_to_camera_info(K, w, h, header, D, model))
                client.pub_image.publish(numpy_to_image(rgb, "rgb8", header))
                debug = client.wait("debug_image", stamp, args.timeout / 3)
                if debug is not None:
                    break
            if debug is None:
                print(f"demo: no answer for {path.name}", file=sys.stderr)
                continue
            answered += 1
            # every processed frame has its cloud, empty without a hand: None is a lost message
            cloud = client.wait("keypoints", stamp, args.timeout / 3)
            palm = client.output("palm_pose", stamp)
            write_image_file(out / f"{path.stem}_debug.png", cv2.cvtColor(image_to_rgb(debug), cv2.COLOR_RGB2BGR))
            hand = cloud is not None and cloud.width * cloud.height > 0
            record = {"image": str(path), "stamp_ns": stamp, "K": np.asarray(K).tolist(), "hand": hand}
            if cloud is None:
                print(f"\n{path.name}: the keypoints of this frame did not come", file=sys.stderr)
            elif not hand:
                print(f"\n{path.name}: no hand (confidence below the threshold or no valid 3D)")
            else:
                arr = cloud_to_array(cloud)
                if len(np.unique(arr["hand_id"])) > 1:
                    print(f"\n{path.name}: {len(arr) // kp.NUM_KEYPOINTS} hands, ids "
                          f"{sorted(set(arr['hand_id'].tolist()))}; the first is shown and saved")
                arr = arr[arr["hand_id"] == arr["hand_id"][0]]   # the first hand, the one on ~/palm_pose
                uv = np.stack([arr["u"], arr["v"]], 1)
                p = palm.pose.position if palm is not None else None
                palm_xyz = [p.x, p.y, p.z] if p is not None else [float("nan")] * 3
                print_keypoints(path.name, arr, palm_xyz)
                if ann is not None:
                    xyz_mm = 1000.0 * np.stack([arr["x"], arr["y"], arr["z"]], 1).astype(np.float64)
                    try:
                        err = errors_against_truth(xyz_mm, uv.astype(np.float64), ann)
                    except (ValueError, TypeError) as exc:   # a malformed annotation: no comparison
                        print(f"demo: ignoring the true pose of {path.name}: {exc}", file=sys.stderr)
                        err = {}
                    if err:
                        print(describe_errors(err))
                        record["error"] = err
                overlay = draw_skeleton(rgb, uv, arr["confidence"])
                write_image_file(out / f"{path.stem}_overlay.png", cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
                record["keypoints"] = [{"name": kp.KEYPOINT_NAMES[int(r["id"])], "uv_px": [float(r["u"]), float(r["v"])],
                                        "xyz_m": [float(r["x"]), float(r["y"]), float(r["z"])],
                                        "confidence": float(r["confidence"])} for r in arr]
                record["palm_xyz_m"] = palm_xyz
                record["hand_id"] = int(arr["hand_id"][0])
                tf = client.output("tf", stamp)
                record["tf_frames"] = [t.child_frame_id for t in tf.transforms] if tf is not None else []
            (out / f"{path.stem}.json").write_text(json.dumps(record, indent=1))
        print(f"\ndemo: {answered} of {len(images)} frames answered by the node; outputs in {out}/")
        return 0 if answered == len(images) else 1
    finally:
        if client is not None:
            client.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", nargs="+", help="images or folders (default: the bundled sample frames)")
    ap.add_argument("--calib", help="camera_info_manager YAML (default: each image's K from an annotations.json "
                                    "beside it, as the bundled samples have, else a FOV guess)")
    ap.add_argument("--hfov-deg", type=float, default=60.0, help="FOV guess when there is no calibration")
    ap.add_argument("--weights", help="weights file (default: the bundled weights)")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--hand-size-m", type=float, help="wrist to index-MCP length (m)")
    ap.add_argument("--localization", default="track", choices=("whole_image", "track"),
                    help="track: full camera frames (the bundled samples); whole_image: each image is a hand crop")
    ap.add_argument("--out", default="out/demo", help="folder for overlays and JSON")
    ap.add_argument("--domain-id", type=int, help="ROS domain (default: a random one)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the node")
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

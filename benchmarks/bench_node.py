"""End-to-end benchmark of hand25d_node as a process over real DDS (localhost, own domain).

    python benchmarks/bench_node.py                      # fake CNN: what the node adds
    python benchmarks/bench_node.py --network real       # with the network (--weights PATH)
    python benchmarks/bench_node.py --soak 180           # 3 minutes at 30 Hz: memory growth
    python benchmarks/bench_node.py --inprocess          # the callback's cost, stage by stage

Per image size it reports
- latency: publish of the Image (this process) -> arrival of ~/keypoints (this process),
  one frame in flight at a time (median, p90, max);
- throughput: frames/s with one frame in flight (ping-pong) and the share of a 30 Hz stream
  the node keeps up with;
- the node's own figures from /diagnostics: processing_ms (its image callback) and
  node_overhead_ms (that callback less the estimator).
With ``--network fake`` the CNN forward pass is replaced by a fixed hand (test/ros_harness.py),
so processing_ms is the node's overhead beyond the network: conversions, crop, lifting,
frames, messages, publishing. Source ``scripts/ros_env.sh`` first.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
import ros_harness as h  # noqa: E402
from hand25d_ros.ros import conversions as cv  # noqa: E402
from std_msgs.msg import Header  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def camera(w: int, h: int):
    f = 0.8 * w
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])


class Stream:
    _base_s = 1_000

    def __init__(self, probe, w, h):
        self.probe, self.w, self.h = probe, w, h
        self.K = camera(w, h)
        rng = np.random.default_rng(0)
        self.rgb = rng.integers(40, 220, (h, w, 3), dtype=np.uint8)
        Stream._base_s += 10_000  # stamps of one stream never meet another's
        self.stamp_ns = Stream._base_s * 10**9
        self.sent: dict[int, float] = {}

    def send(self):
        self.stamp_ns += 10**9 // 30
        hd = Header(stamp=cv.ns_to_stamp(self.stamp_ns), frame_id="camera_optical_frame")
        img = cv.numpy_to_image(self.rgb, "rgb8", hd)
        info = cv.intrinsics_to_camera_info(self.K, self.w, self.h, hd)
        self.probe.pub_info.publish(info)
        self.sent[self.stamp_ns] = time.monotonic()
        self.probe.pub_image.publish(img)
        return self.stamp_ns

    def arrivals(self, key="keypoints"):
        with self.probe.lock:
            msgs, times = list(self.probe.received[key]), list(self.probe.receive_times[key])
        return {cv.stamp_to_ns(m.header.stamp): t for m, t in zip(msgs, times)}


def ms_stats(values):
    v = sorted(values)
    if not v:
        return {"n": 0}
    return {"n": len(v), "median": round(statistics.median(v), 2), "p90": round(v[int(0.9 * (len(v) - 1))], 2),
            "max": round(v[-1], 2)}


def run_size(probe, node, w, h, frames, key):
    s = Stream(probe, w, h)
    # warm up until outputs flow
    for _ in range(60):
        st = s.send()
        if probe.wait_for(lambda: st in s.arrivals(key), 1.0):
            break
    else:
        raise RuntimeError(f"no output from the node at {w}x{h}:\n{node.output()[-2000:]}")
    for _ in range(5):
        st = s.send()
        probe.wait_for(lambda: st in s.arrivals(key), 2.0)
    # ping-pong: one frame in flight
    lat, t0 = [], time.monotonic()
    for _ in range(frames):
        st = s.send()
        if probe.wait_for(lambda: st in s.arrivals(key), 2.0, poll=0.0005):
            lat.append((s.arrivals(key)[st] - s.sent[st]) * 1e3)
    pingpong_fps = len(lat) / (time.monotonic() - t0)
    processing = probe.diagnostics_value("processing_ms")
    overhead = probe.diagnostics_value("node_overhead_ms")
    # a 30 Hz stream
    first, n30 = s.stamp_ns, 0
    t_next = time.monotonic()
    for _ in range(frames):
        t_next += 1 / 30
        s.send()
        n30 += 1
        time.sleep(max(0.0, t_next - time.monotonic()))
    time.sleep(0.5)
    got = sum(1 for st in s.arrivals(key) if st > first)
    return {"size": f"{w}x{h}", "latency_ms": ms_stats(lat), "pingpong_fps": round(pingpong_fps, 1),
            "kept_up_at_30hz": round(got / n30, 3), "node_processing_ms": processing,
            "node_overhead_ms": overhead}


def soak(probe, node, seconds, w=640, h=480, key="keypoints"):
    s = Stream(probe, w, h)
    for _ in range(60):
        st = s.send()
        if probe.wait_for(lambda: st in s.arrivals(key), 1.0):
            break
    pid = node.proc.pid
    samples, t0 = [], time.monotonic()
    t_next, last_sample = t0, -1e9
    while time.monotonic() - t0 < seconds:
        t_next += 1 / 30
        s.send()
        now = time.monotonic()
        if now - last_sample >= 10:
            samples.append((round(now - t0, 1), round(rss_mb(pid), 1)))
            last_sample = now
            with probe.lock:  # keep this process's memory flat too
                for k in probe.received:
                    del probe.received[k][:-10]
                    del probe.receive_times[k][:-10]
            s.sent = {k: v for k, v in s.sent.items() if k > s.stamp_ns - 10**10}
        time.sleep(max(0.0, t_next - time.monotonic()))
    samples.append((round(time.monotonic() - t0, 1), round(rss_mb(pid), 1)))
    ts, rss = np.array(samples).T
    half = len(rss) // 2
    # too short a soak for a slope (under 4 samples, 10 s apart): null, not NaN, in the JSON
    slope = round(float(np.polyfit(ts[half:], rss[half:], 1)[0]) * 60, 3) if len(rss) >= 4 else None
    return {"seconds": seconds, "rss_mb": samples, "rss_growth_mb_per_min_second_half": slope,
            "processed_rate_hz": probe.diagnostics_value("processing_rate_hz")}


def inprocess_breakdown(sizes, frames, weights):
    """The node's image callback in this process (no DDS), with the fake CNN: per-frame
    milliseconds of the whole callback, of the estimator (crop, fake network, lifting), and
    of the rest (conversions, frames, messages, publishing)."""
    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    from hand25d_ros import estimator as est_mod
    from hand25d_ros.ros.node import HandPoseNode

    uv, z, _ = h.fake_hand_crop()
    real_predict = est_mod.HandPoseEstimator.predict_crops
    est_mod.HandPoseEstimator.predict_crops = lambda self, c, hand_is_left=None: (
        np.repeat(uv[None] * c.shape[1] / 128, len(c), 0), np.repeat(z[None], len(c), 0), np.full((len(c), 21), 0.9))
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=h.random.randint(101, 200))
    node = HandPoseNode(context=ctx, parameter_overrides=[Parameter("weights", value=str(weights)),
                                                          Parameter("device", value="cpu"),
                                                          Parameter("localization", value="whole_image")])
    out = []
    try:
        for size in sizes:
            w, hh = map(int, size.split("x"))
            K = camera(w, hh)
            hd = Header(stamp=cv.ns_to_stamp(10**9), frame_id="camera_optical_frame")
            rgb = np.random.default_rng(0).integers(40, 220, (hh, w, 3), dtype=np.uint8)
            img = deserialize_message(serialize_message(cv.numpy_to_image(rgb, "bgr8", hd)), Image)
            info = cv.intrinsics_to_camera_info(K, w, hh, hd)
            times = {"callback": [], "estimate": []}
            for i in range(frames + 5):
                t0 = time.perf_counter()
                node.process(img, info)
                t1 = time.perf_counter()
                node.estimator.estimate(cv.image_to_rgb(img), K, roi="image")
                t2 = time.perf_counter()
                if i >= 5:
                    times["callback"].append((t1 - t0) * 1e3)
                    times["estimate"].append((t2 - t1) * 1e3)
            cnn = []
            x = np.zeros((1, node.estimator.input_size, node.estimator.input_size, 3), np.uint8)
            for i in range(20):
                t0 = time.perf_counter()
                real_predict(node.estimator, x)
                cnn.append((time.perf_counter() - t0) * 1e3)
            med = {k: statistics.median(v) for k, v in times.items()}
            out.append({"size": f"{w}x{hh}", "encoding": "bgr8", "callback_ms": round(med["callback"], 3),
                        "estimator_without_cnn_ms": round(med["estimate"], 3),
                        "node_own_ms": round(med["callback"] - med["estimate"], 3),
                        "cnn_forward_ms (weights' network, batch 1)": round(statistics.median(cnn[5:]), 2)})
    finally:
        est_mod.HandPoseEstimator.predict_crops = real_predict
        node.destroy_node()
        ctx.try_shutdown()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--network", choices=("fake", "real"), default="fake")
    ap.add_argument("--weights", help="weights for --network real (default: untrained tiny; the node then "
                                      "finds no hand, so only the debug image marks a processed frame)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", default="640x480,1280x720")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--soak", type=float, default=0.0, help="seconds of a 30 Hz soak run (no latency runs)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--inprocess", action="store_true", help="only the callback breakdown in this process")
    args = ap.parse_args(argv)

    tmp = h.temp_dir("hand25d_bench_")
    weights = args.weights or str(h.write_test_weights(tmp / "weights.pt"))
    if args.inprocess:
        res = inprocess_breakdown(args.sizes.split(","), args.frames, weights)
        print(json.dumps(res, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1))
        return
    shim = h.write_fake_cnn(tmp / "fake_cnn") if args.network == "fake" else None
    env = h.ros_env(tmp / "ros_log", extra_pythonpath=shim)
    # the whole image is the hand crop: the figures measure the node and one crop, not the hand search
    params = {"weights": weights, "device": args.device, "diagnostics_period_s": 0.5, "localization": "whole_image"}
    key = "keypoints"
    if args.network == "real" and not args.weights:
        params.update(publish_debug_image=True)  # no hand from untrained weights: time the debug image
        key = "debug_image"
    import os
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR",
                                           "FASTDDS_DEFAULT_PROFILES_FILE")})
    node = h.NodeProcess(env, "/bench", params, tmp / "node.log")
    probe = h.Probe(int(env["ROS_DOMAIN_ID"]), "/bench")
    results = {"network": args.network, "device": args.device, "runs": []}
    try:
        if not probe.wait_connected(60):
            raise RuntimeError(node.output())
        if args.soak > 0:
            results["soak"] = soak(probe, node, args.soak, key=key)
        else:
            for size in args.sizes.split(","):
                w, hh = map(int, size.split("x"))
                r = run_size(probe, node, w, hh, args.frames, key)
                results["runs"].append(r)
                print(json.dumps(r), flush=True)
    finally:
        probe.close()
        node.stop()
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

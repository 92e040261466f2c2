"""``hand25d bag``: ROS 2 bags in (mcap, sqlite3), the node's outputs out, without ROS.

Fixture bags are written with rosbags (Humble typestore, as a Humble camera would record)
from the bundled sample frames pasted into 640x480 images with matching CameraInfo. The
real pipeline (shipped weights, HandTracker) runs once in-process on an mcap bag and once
as a subprocess on a sqlite3 bag; a reference HandTracker on the same frames says what the
outputs must hold. The loop's bookkeeping (several hands, lost hands, intrinsics choice,
overwrite, interruption) runs with a scripted tracker, and the message content is compared
with the node's ``ros/conversions.py`` where ROS is importable.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

pytest.importorskip("rosbags")
from rosbags.rosbag2 import Reader, StoragePlugin, Writer  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from hand25d_ros import bag as hb  # noqa: E402
from hand25d_ros import keypoints as kp  # noqa: E402
from hand25d_ros.cli import main  # noqa: E402
from hand25d_ros.intrinsics import K_from_fov  # noqa: E402

import raw_encodings as raw  # noqa: E402
from conftest import sample_hand  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The reference tracker, the in-process command and the installed one all run on one
    torch thread: float32 convolutions round differently with another thread count, and the
    tracker carries the difference from frame to frame (0.03 px after a test that had changed
    the thread count)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "hand25d_ros" / "samples"
TS = get_typestore(Stores.ROS2_HUMBLE)
T = TS.types
IMG_TOPIC, INFO_TOPIC = "/camera/color/image_raw", "/camera/color/camera_info"
FRAME = "camera_color_optical_frame"
W, H, SIDE = 640, 480, 224
NS = "/hand25d"
OUT_TOPICS = ("/tf", f"{NS}/keypoints", f"{NS}/poses", f"{NS}/palm_poses", f"{NS}/palm_pose", f"{NS}/markers")

# (encoding, extra row padding in bytes, with CameraInfo); frames 2 and 4 are skipped
MAIN_FRAMES = [("rgb8", 0, True), ("bgr8", 64, True), ("32FC1", 0, True), ("bgra8", 0, True),
               ("rgb8", 0, False), ("rgba8", 12, True), ("mono8", 3, True)]
PROCESSED = [0, 1, 3, 5, 6]


# ---------------------------------------------------------------------------- fixtures
def _sample(index=5):
    """The bundled sample's hand as a 256 px crop with its K (the samples are full frames)."""
    crop, K, uv = sample_hand(index)
    ann = json.loads((SAMPLES / "annotations.json").read_text())["samples"][index]
    return crop, K, {"joints_2d_px": uv, "joints_3d_mm": ann["joints_3d_mm"]}


def frame_rgb(i: int):
    """Frame i: the sample hand resized to 224 px, pasted moving right; K of the pasted image."""
    rgb, K, _ = _sample()
    ox, oy, a = 150 + 6 * i, 120 + 2 * i, SIDE / rgb.shape[0]
    img = np.full((H, W, 3), (70, 90, 110), np.uint8)
    img[oy:oy + SIDE, ox:ox + SIDE] = cv2.resize(rgb, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    K2 = np.array([[a * K[0, 0], 0, a * (K[0, 2] + 0.5) - 0.5 + ox],
                   [0, a * K[1, 1], a * (K[1, 2] + 0.5) - 0.5 + oy], [0, 0, 1]])
    return img, K2


def expected_rgb(i: int, encoding: str) -> np.ndarray:
    img, _ = frame_rgb(i)
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) if encoding == "mono8" else img


def stamp(i: int) -> int:
    return 100 * 10**9 + i * 100_000_000 + 7


def _header(ns: int, frame=FRAME):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                    frame_id=frame)


def image_msg(i: int, encoding: str, pad: int = 0, frame=FRAME):
    img, _ = frame_rgb(i)
    chans = {"rgb8": img, "bgr8": img[:, :, ::-1], "rgba8": np.dstack([img, np.full((H, W), 255, np.uint8)]),
             "bgra8": np.dstack([img[:, :, ::-1], np.full((H, W), 9, np.uint8)]),
             "mono8": cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None],
             "32FC1": np.zeros((H, W, 4), np.uint8)}.get(encoding)
    big_endian = encoding in BIG_ENDIAN
    if chans is None:   # a camera encoding, built from its definition
        if encoding in ("nv12", "nv21", "nv24"):   # two planes, not rows of pixels
            data, step = raw.pad_planes(*raw.encode_semi_planar(img, encoding), pad)
            return T["sensor_msgs/msg/Image"](header=_header(stamp(i), frame), height=H, width=W, encoding=encoding,
                                              is_bigendian=0, step=step, data=np.frombuffer(data, np.uint8))
        # 16 bit: the frame's 8-bit values times 257 (full range to full range), which decode exactly
        base = img.astype(np.uint16) * 257 if encoding.endswith("16") else img
        if encoding.startswith("bayer_"):
            rows = raw.encode_bayer(base, encoding[6:10])
        elif encoding in ("rgb16", "bgr16"):
            rows = base if encoding == "rgb16" else base[:, :, ::-1]
        else:
            rows = raw.encode_yuv422(img, "uyvy" if encoding in ("uyvy", "yuv422") else "yuyv")
        if encoding.endswith("16"):
            rows = raw.samples16(rows, big_endian)
        chans = rows.reshape(H, W, -1)
    row = W * chans.shape[2]
    data = np.zeros((H, row + pad), np.uint8)
    data[:, :row] = chans.reshape(H, row)
    return T["sensor_msgs/msg/Image"](header=_header(stamp(i), frame), height=H, width=W, encoding=encoding,
                                      is_bigendian=int(big_endian), step=row + pad, data=data.ravel())


def info_msg(ns: int, K, width=W, height=H):
    P = np.zeros((3, 4))
    P[:, :3] = K
    roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return T["sensor_msgs/msg/CameraInfo"](header=_header(ns), height=height, width=width,
                                           distortion_model="plumb_bob", d=np.zeros(5), k=np.asarray(K, float).ravel(),
                                           r=np.eye(3).ravel(), p=P.ravel(), binning_x=0, binning_y=0, roi=roi)


def write_bag(path: Path, frames, storage="mcap", with_info=True, image_topic=IMG_TOPIC, frame=FRAME):
    """Images (log time = stamp + 1 ms) and CameraInfo *after* them (stamp + 2 ms)."""
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        ci = w.add_connection(image_topic, "sensor_msgs/msg/Image", typestore=TS)
        cc = w.add_connection(INFO_TOPIC, "sensor_msgs/msg/CameraInfo", typestore=TS) if with_info else None
        for i, (enc, pad, info) in frames:
            w.write(ci, stamp(i) + 10**6, TS.serialize_cdr(image_msg(i, enc, pad, frame), "sensor_msgs/msg/Image"))
            if info and cc is not None:
                w.write(cc, stamp(i) + 2 * 10**6, TS.serialize_cdr(info_msg(stamp(i), frame_rgb(i)[1]),
                                                                   "sensor_msgs/msg/CameraInfo"))
    return path


def read_bag(path: Path) -> dict:
    """topic -> [(log time, message)]"""
    out: dict = {}
    with Reader(path) as r:
        for conn, t, raw in r.messages():
            out.setdefault(conn.topic, []).append((t, TS.deserialize_cdr(raw, conn.msgtype)))
    return out


def cloud_array(msg) -> np.ndarray:
    dtype = np.dtype({"names": [f.name for f in msg.fields], "offsets": [f.offset for f in msg.fields],
                      "formats": [{7: "<f4", 6: "<u4", 1: "i1"}[f.datatype] for f in msg.fields],
                      "itemsize": msg.point_step})
    return np.frombuffer(bytes(msg.data), dtype=dtype, count=msg.width * msg.height)


def ns_of(m) -> int:
    return hb.stamp_ns(m.header.stamp)


@pytest.fixture(scope="module")
def main_bag(tmp_path_factory):
    return write_bag(tmp_path_factory.mktemp("in") / "cam_mcap", list(enumerate(MAIN_FRAMES)))


@pytest.fixture(scope="module")
def reference():
    """What HandTracker gives on the processed frames: {frame index: sorted hands}."""
    from hand25d_ros import HandPoseEstimator
    from hand25d_ros.tracking import HandTracker
    from hand25d_ros.weights import WeightsError
    tracker = HandTracker(HandPoseEstimator(), max_hands=2)
    out = {}
    for i in PROCESSED:
        try:
            hands = tracker.update(expected_rgb(i, MAIN_FRAMES[i][0]), frame_rgb(i)[1], stamp(i) / 1e9)
        except WeightsError as exc:  # a tracker whose weights are not shipped yet
            pytest.skip(f"the tracker cannot run here: {exc}")
        out[i] = [(h.track_id, h.pose.keypoints_3d.copy(), h.pose.keypoints_2d.copy(), h.pose.confidence.copy(),
                   getattr(h, "is_left", None)) for h in sorted(hands, key=lambda h: h.track_id)]
    assert any(out.values()), "the shipped weights found no hand in the fixture frames"
    return out


@pytest.fixture(scope="module")
def main_run(main_bag, reference, tmp_path_factory):
    """``hand25d bag`` on the mcap bag, through cli.main: (output bag, stdout, stderr)."""
    import contextlib
    import io
    out, stdout, stderr = tmp_path_factory.mktemp("out") / "hands", io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        assert main(["bag", str(main_bag), "--out", str(out), "--image-topic", IMG_TOPIC, "--quiet"]) == 0
    return out, stdout.getvalue(), stderr.getvalue()


def check_against_reference(out: Path, reference: dict, frames: list[int], atol=1e-5):
    msgs = read_bag(out)
    topics = set(msgs)
    assert {IMG_TOPIC, INFO_TOPIC} <= topics <= {IMG_TOPIC, INFO_TOPIC, *OUT_TOPICS}
    with_hands = [i for i in frames if reference[i]]
    # the arrays for every processed frame (empty without hands), as the node
    clouds = msgs.get(f"{NS}/keypoints", [])
    assert [ns_of(m) for _, m in clouds] == [stamp(i) for i in frames]
    assert [t for t, _ in clouds] == [stamp(i) + 10**6 for i in frames]   # the image's log time
    for (_, cloud), i in zip(clouds, frames):
        hands = reference[i]
        assert cloud.header.frame_id == FRAME
        assert [f.name for f in cloud.fields] == ["x", "y", "z", "u", "v", "confidence", "id", "hand_id", "is_left"]
        a = cloud_array(cloud)
        assert len(a) == 21 * len(hands)
        xyz = np.concatenate([h[1] for h in hands])
        np.testing.assert_allclose(np.stack([a["x"], a["y"], a["z"]], 1), xyz, atol=atol)
        np.testing.assert_allclose(np.stack([a["u"], a["v"]], 1), np.concatenate([h[2] for h in hands]),
                                   atol=100 * atol)
        np.testing.assert_allclose(a["confidence"], np.concatenate([h[3] for h in hands]), atol=atol)
        assert a["id"].tolist() == list(range(21)) * len(hands)
        assert a["hand_id"].tolist() == [h[0] for h in hands for _ in range(21)]
        assert a["is_left"].tolist() == [-1 if h[4] is None else int(h[4]) for h in hands for _ in range(21)]
    poses = msgs.get(f"{NS}/poses", [])
    assert [(ns_of(m), len(m.poses)) for _, m in poses] == [(stamp(i), 21 * len(reference[i])) for i in frames]
    palms = msgs.get(f"{NS}/palm_poses", [])
    assert [(ns_of(m), len(m.poses)) for _, m in palms] == [(stamp(i), len(reference[i])) for i in frames]
    assert [ns_of(m) for _, m in msgs.get(f"{NS}/palm_pose", [])] == [stamp(i) for i in with_hands]
    tfs = msgs.get("/tf", [])
    assert len(tfs) == len(with_hands)
    for (_, tf), i in zip(tfs, with_hands):
        children = [t.child_frame_id for t in tf.transforms]
        want = [n for tid, *_ in reference[i]
                for n in [f"hand_{tid}_palm"] + [f"hand_{tid}_{k}" for k in kp.KEYPOINT_NAMES]]
        assert children == want
        assert tf.transforms[0].header.frame_id == FRAME and tf.transforms[1].header.frame_id == children[0]
        assert all(hb.stamp_ns(t.header.stamp) == stamp(i) for t in tf.transforms)
    return msgs


# ---------------------------------------------------------------------------- the real pipeline
def test_mcap_bag_holds_inputs_and_the_trackers_outputs(main_bag, main_run, reference):
    out, _, _ = main_run
    msgs = check_against_reference(out, reference, PROCESSED)
    assert [p.suffix for p in out.iterdir() if p.name != "metadata.yaml"] == [".mcap"]
    # inputs copied byte for byte: every image and CameraInfo, at the same log times
    with Reader(main_bag) as rin:
        src = {(c.topic, t): bytes(raw) for c, t, raw in rin.messages()}
    with Reader(out) as rout:
        copied = {(c.topic, t): bytes(raw) for c, t, raw in rout.messages() if c.topic in (IMG_TOPIC, INFO_TOPIC)}
        types = {c.topic: c.msgtype for c in rout.connections}
    assert copied == src and len(msgs[IMG_TOPIC]) == len(MAIN_FRAMES)
    assert types[f"{NS}/keypoints"] == "sensor_msgs/msg/PointCloud2" and types["/tf"] == "tf2_msgs/msg/TFMessage"
    # nothing left beside the output
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_mcap_run_reports_skipped_frames(main_run):
    _, stdout, stderr = main_run
    assert "unsupported image encoding '32FC1'" in stderr and "no CameraInfo within" in stderr
    assert "guess" not in stderr
    assert "5 of 7 frames processed" in stdout and "1 no_camera_info" in stdout
    assert "1 unsupported_encoding" in stdout and f"CameraInfo on {INFO_TOPIC}" in stdout


def test_sqlite3_bag_through_the_installed_command(tmp_path, reference):
    frames = [0, 1, 3]
    src = write_bag(tmp_path / "cam_db3", [(i, MAIN_FRAMES[i]) for i in frames], storage="sqlite3")
    out = tmp_path / "hands_db3"
    exe = Path(sys.executable).parent / "hand25d"
    proc = subprocess.run([str(exe), "bag", str(src), "--out", str(out), "--image-topic", IMG_TOPIC],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "3 of 3 frames processed" in proc.stdout
    assert any(p.suffix == ".db3" for p in out.iterdir())
    # the tracker is deterministic: the first frames of the reference run
    check_against_reference(out, reference, frames, atol=1e-4)


# ---------------------------------------------------------------------------- a scripted tracker
class ScriptedTracker:
    """HandTracker's interface; hands by frame from a script, the calls recorded."""

    def __init__(self, script, interrupt_at=None, min_confidence=0.05):
        self.min_confidence = min_confidence
        _, _, ann = _sample()
        xyz = np.array(ann["joints_3d_mm"]) / 1000.0
        uv = np.array(ann["joints_2d_px"], float)
        self.pose = lambda tid: SimpleNamespace(keypoints_3d=xyz + 0.1 * tid, keypoints_2d=uv + 10 * tid,
                                                confidence=np.linspace(0.1, 0.9, 21), valid=True,
                                                mean_confidence=0.5)
        self.script, self.interrupt_at, self.calls = script, interrupt_at, []

    def update(self, image_rgb, K, t_s, hand_size_m=None, D=None, distortion_model="plumb_bob"):
        n = len(self.calls)
        if n == self.interrupt_at:
            raise KeyboardInterrupt
        self.calls.append(SimpleNamespace(shape=image_rgb.shape, K=np.array(K), t_s=t_s, D=D, size=hand_size_m))
        # odd ids are left hands; even ones have no label (a tracker without is_left)
        return [SimpleNamespace(track_id=t, pose=self.pose(t), **({"is_left": True} if t % 2 else {}))
                for t in self.script[n % len(self.script)]]

    def reset(self):
        pass


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory):
    return write_bag(tmp_path_factory.mktemp("small") / "cam", [(i, ("rgb8", 0, True)) for i in range(4)])


def test_several_hands_lost_hands_and_pairing(small_bag, tmp_path):
    tr = ScriptedTracker([[0], [0, 1], [1], []])
    summary = hb.convert(small_bag, tmp_path / "o", tr, image_topic=IMG_TOPIC, hand_size_m=0.09, progress=False,
                         namespace="hands/", frame_prefix="h")
    assert (summary.processed, summary.with_hands, summary.hands) == (4, 3, 4)
    assert summary.storage == "mcap"
    # CameraInfo paired by stamp although it comes after its image
    for i, c in enumerate(tr.calls):
        np.testing.assert_allclose(c.K, frame_rgb(i)[1])
        assert c.t_s == pytest.approx(stamp(i) / 1e9) and c.D is None and c.size == 0.09 and c.shape == (H, W, 3)
    msgs = read_bag(tmp_path / "o")
    clouds = [cloud_array(m) for _, m in msgs["/hands/keypoints"]]   # the last frame's: empty, no hand
    assert [c["hand_id"].tolist() for c in clouds] == [[0] * 21, [0] * 21 + [1] * 21, [1] * 21, []]
    assert [c["is_left"].tolist() for c in clouds] == [[-1] * 21, [-1] * 21 + [1] * 21, [1] * 21, []]
    np.testing.assert_allclose(clouds[1]["z"][21:], tr.pose(1).keypoints_3d[:, 2], atol=1e-6)
    assert [len(m.poses) for _, m in msgs["/hands/poses"]] == [21, 42, 21, 0]
    assert [len(m.poses) for _, m in msgs["/hands/palm_poses"]] == [1, 2, 1, 0]
    assert [ns_of(m) for _, m in msgs["/hands/keypoints"]] == [stamp(i) for i in range(4)]
    palm = [m for _, m in msgs["/hands/palm_pose"]]   # the first hand's
    assert [ns_of(m) for m in palm] == [stamp(0), stamp(1), stamp(2)]
    assert palm[2].pose.position.z == pytest.approx(msgs["/hands/palm_poses"][2][1].poses[0].position.z)
    tf_children = [[t.child_frame_id for t in m.transforms] for _, m in msgs["/tf"]]
    assert tf_children[1][0] == "h0_palm" and tf_children[1][22] == "h1_palm" and tf_children[1][-1] == "h1_pinky_tip"
    M = T["visualization_msgs/msg/Marker"]
    hand = lambda i, action=M.ADD: [(f"hand{i}/{n}", action) for n in ("joints", "bones", "palm", "label")]  # noqa
    markers = [[(mk.ns, mk.action) for mk in m.markers] for _, m in msgs["/hands/markers"]]
    assert markers == [[("", M.DELETEALL)], hand(0),      # the run's first markers clear RViz first
                       hand(0) + hand(1),
                       hand(1) + hand(0, M.DELETE),        # hand 0 lost
                       [("", M.DELETEALL)]]                # all lost
    labels = [mk.text for _, m in msgs["/hands/markers"] for mk in m.markers
              if mk.ns.endswith("label") and mk.action == M.ADD]
    assert labels == ["hand 0", "hand 0", "hand 1 left", "hand 1 left"]
    assert [t for t, _ in msgs["/hands/markers"]] == [stamp(i) + 10**6 for i in (0, 0, 1, 2, 3)]


def test_hands_under_the_confidence_threshold_are_not_written_as_the_node_does(small_bag, tmp_path):
    """--confidence-threshold is the node's confidence_threshold: a hand under it is not
    published live, so it must not appear in the replay either (it only made the tracker
    look again)."""
    tr = ScriptedTracker([[0]], min_confidence=0.6)          # the scripted hands' mean is 0.5
    summary = hb.convert(small_bag, tmp_path / "o", tr, image_topic=IMG_TOPIC, progress=False)
    assert (summary.processed, summary.with_hands) == (4, 0)
    msgs = read_bag(tmp_path / "o")
    assert [m.width for _, m in msgs[f"{NS}/keypoints"]] == [0] * 4 and f"{NS}/palm_pose" not in msgs


def test_intrinsics_from_calibration_or_a_loud_guess(tmp_path, capsys):
    no_info = write_bag(tmp_path / "noinfo", [(i, ("bgr8", 0, False)) for i in range(2)], with_info=False)
    tr = ScriptedTracker([[]])
    s = hb.convert(no_info, tmp_path / "a", tr, image_topic=IMG_TOPIC, hfov_deg=70, progress=False)
    assert "guessing intrinsics from a 70 degree field of view" in capsys.readouterr().err
    np.testing.assert_allclose(tr.calls[0].K, K_from_fov(W, H, 70))
    assert "guess" in s.intrinsics and set(read_bag(tmp_path / "a")) == {
        IMG_TOPIC, f"{NS}/markers", f"{NS}/keypoints", f"{NS}/poses", f"{NS}/palm_poses"}
    # --calib: K and D of the file, and it overrides the bag's CameraInfo (said on stderr)
    calib = tmp_path / "cam.yaml"
    calib.write_text(f"image_width: {W}\nimage_height: {H}\ncamera_matrix:\n  rows: 3\n  cols: 3\n"
                     "  data: [500, 0, 320, 0, 501, 240, 0, 0, 1]\ndistortion_model: plumb_bob\n"
                     "distortion_coefficients:\n  rows: 1\n  cols: 5\n  data: [0.1, 0, 0, 0, 0]\n")
    from hand25d_ros.intrinsics import load_camera_yaml
    with_info = write_bag(tmp_path / "info", [(0, ("rgb8", 0, True))])
    tr = ScriptedTracker([[]])
    hb.convert(with_info, tmp_path / "b", tr, image_topic=IMG_TOPIC, calibration=load_camera_yaml(calib),
               progress=False)
    assert "overrides the bag's CameraInfo" in capsys.readouterr().err
    assert tr.calls[0].K[1, 1] == 501 and tr.calls[0].D.tolist() == [0.1, 0, 0, 0, 0]
    # a calibration for another size stops the run; nothing written
    calib.write_text(calib.read_text().replace(f"image_width: {W}", "image_width: 320"))
    with pytest.raises(SystemExit, match="is for 320x480 images"):
        main(["bag", str(with_info), "--out", str(tmp_path / "c"), "--image-topic", IMG_TOPIC, "--calib", str(calib)])
    assert not (tmp_path / "c").exists()


def test_storage_overwrite_and_interrupt(small_bag, tmp_path):
    out = tmp_path / "o"
    hb.convert(small_bag, out, ScriptedTracker([[0]]), image_topic=IMG_TOPIC, storage="sqlite3", progress=False)
    assert any(p.suffix == ".db3" for p in out.iterdir())
    with pytest.raises(hb.BagError, match="exists; pass --overwrite"):
        hb.convert(small_bag, out, ScriptedTracker([[0]]), image_topic=IMG_TOPIC, progress=False)
    # interrupted: the old output stays as it was, nothing half-written beside it
    with pytest.raises(KeyboardInterrupt):
        hb.convert(small_bag, out, ScriptedTracker([[0]], interrupt_at=2), image_topic=IMG_TOPIC, overwrite=True,
                   progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"] and any(p.suffix == ".db3" for p in out.iterdir())
    hb.convert(small_bag, out, ScriptedTracker([[]]), image_topic=IMG_TOPIC, overwrite=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"] and any(p.suffix == ".mcap" for p in out.iterdir())
    # no hands: empty arrays for each frame and the one DELETEALL of a first frame without hands (as the node)
    assert {t: len(v) for t, v in read_bag(out).items()} == {
        IMG_TOPIC: 4, INFO_TOPIC: 4, f"{NS}/markers": 1, f"{NS}/keypoints": 4, f"{NS}/poses": 4,
        f"{NS}/palm_poses": 4}
    with pytest.raises(hb.BagError, match="would replace the input"):
        hb.convert(small_bag, small_bag, ScriptedTracker([[]]), image_topic=IMG_TOPIC, overwrite=True, progress=False)


def test_overwrite_replaces_only_an_earlier_output_bag(small_bag, tmp_path):
    """--overwrite deletes what stands at --out: a user's folder, a text file, a bag folder with
    a user's file in it or a folder with a metadata.yaml of something else must survive, named
    in the error; an earlier output (mcap or sqlite3) is still replaced."""
    user = tmp_path / "mydir"
    user.mkdir()
    (user / "keep.txt").write_text("mine")
    text = tmp_path / "notes.txt"
    text.write_text("mine")
    added = tmp_path / "bag_plus"
    hb.convert(small_bag, added, ScriptedTracker([[0]]), image_topic=IMG_TOPIC, progress=False)
    (added / "keep.txt").write_text("mine")
    other = tmp_path / "other_meta"
    other.mkdir()
    (other / "metadata.yaml").write_text("name: my project\n")
    link = tmp_path / "link"
    link.symlink_to(user, target_is_directory=True)
    cases = {user: "folder without a rosbag2 metadata.yaml", text: "it is a file, not a bag folder",
             added: "holds files that are not part of the bag: keep.txt", other: "metadata.yaml is not a rosbag2",
             link: "symbolic link"}
    before = {p: sorted(q.name for q in p.iterdir()) if p.is_dir() else p.read_text() for p in cases}
    for path, why in cases.items():
        refused = rf"output {re.escape(str(path))} exists and is not a ROS 2 bag folder .*{why}"
        with pytest.raises(hb.BagError, match=refused):
            hb.convert(small_bag, path, ScriptedTracker([[0]]), image_topic=IMG_TOPIC, overwrite=True, progress=False)
        with pytest.raises(SystemExit, match=refused):
            _bag_cli(small_bag, "--out", path, "--image-topic", IMG_TOPIC, "--overwrite")
    assert {p: sorted(q.name for q in p.iterdir()) if p.is_dir() else p.read_text() for p in cases} == before
    assert (user / "keep.txt").read_text() == "mine" and link.is_symlink()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]     # no partial output left
    for first, second in (("sqlite3", "mcap"), ("mcap", "sqlite3")):
        out = tmp_path / f"earlier_{first}"
        hb.convert(small_bag, out, ScriptedTracker([[0]]), image_topic=IMG_TOPIC, storage=first, progress=False)
        _bag_cli(small_bag, "--out", out, "--image-topic", IMG_TOPIC, "--overwrite", "--storage", second)
        assert sorted(p.name for p in out.iterdir()) == sorted(
            ["metadata.yaml", f"{out.name}.{'db3' if second == 'sqlite3' else 'mcap'}"])


def test_an_output_that_appears_during_the_run_is_not_replaced(small_bag, tmp_path):
    """The output is checked again when the new bag is renamed into place: a folder made there
    meanwhile, or a user's file put into the earlier output, stays."""
    new, earlier = tmp_path / "new", tmp_path / "earlier"
    hb.convert(small_bag, earlier, ScriptedTracker([[0]]), image_topic=IMG_TOPIC, progress=False)

    class AddsAFile(ScriptedTracker):
        def __init__(self, folder):
            super().__init__([[0]])
            self.folder = folder

        def update(self, *args, **kwargs):
            self.folder.mkdir(exist_ok=True)
            (self.folder / "keep.txt").write_text("mine")
            return super().update(*args, **kwargs)

    with pytest.raises(hb.BagError, match="exists; pass --overwrite"):
        hb.convert(small_bag, new, AddsAFile(new), image_topic=IMG_TOPIC, progress=False)
    with pytest.raises(hb.BagError, match="not part of the bag: keep.txt"):
        hb.convert(small_bag, earlier, AddsAFile(earlier), image_topic=IMG_TOPIC, overwrite=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier", "new"]
    assert (new / "keep.txt").read_text() == "mine" and (earlier / "keep.txt").read_text() == "mine"
    assert (earlier / "metadata.yaml").is_file()


def test_compressed_images_from_a_single_mcap_file(tmp_path, capsys):
    """A CompressedImage topic (its CameraInfo found beside it), the bag's .mcap file as input,
    a repeated stamp and an undecodable frame skipped."""
    topic = IMG_TOPIC + "/compressed"
    with Writer(tmp_path / "cam", version=9, storage_plugin=StoragePlugin.MCAP) as w:
        ci = w.add_connection(topic, "sensor_msgs/msg/CompressedImage", typestore=TS)
        cc = w.add_connection(INFO_TOPIC, "sensor_msgs/msg/CameraInfo", typestore=TS)
        for n, (i, ok) in enumerate([(0, True), (1, True), (1, True), (2, False)]):
            jpeg = cv2.imencode(".jpg", frame_rgb(i)[0][:, :, ::-1])[1] if ok else np.frombuffer(b"junk", np.uint8)
            msg = T["sensor_msgs/msg/CompressedImage"](header=_header(stamp(i)), format="jpeg", data=jpeg.ravel())
            w.write(ci, stamp(i) + n, TS.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage"))
            info = info_msg(stamp(i), frame_rgb(i)[1])
            w.write(cc, stamp(i) + n, TS.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
    (mcap_file,) = (tmp_path / "cam").glob("*.mcap")
    tr = ScriptedTracker([[0]])
    s = hb.convert(mcap_file, tmp_path / "o", tr, image_topic=topic, progress=False)
    assert (s.frames, s.processed, dict(s.skipped)) == (4, 2, {"out_of_order": 1, "bad_image": 1})
    assert "cannot decode compressed image" in capsys.readouterr().err
    assert [c.shape for c in tr.calls] == [(H, W, 3)] * 2
    np.testing.assert_allclose(tr.calls[1].K, frame_rgb(1)[1])
    msgs = read_bag(tmp_path / "o")
    assert len(msgs[topic]) == 4 and len(msgs[INFO_TOPIC]) == 4 and len(msgs[f"{NS}/keypoints"]) == 2


# ---------------------------------------------------------------------------- bad input through the CLI
def _bag_cli(*args):
    return main(["bag", *map(str, args), "--quiet"])


def test_bad_input_bags(tmp_path):
    with pytest.raises(SystemExit, match="no such bag"):
        _bag_cli(tmp_path / "missing", "--out", tmp_path / "o", "--image-topic", IMG_TOPIC)
    (tmp_path / "folder").mkdir()
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"this is not an mcap file" * 10)
    for not_a_bag in (tmp_path / "folder", junk):
        with pytest.raises(SystemExit, match="is not a readable ROS 2 bag"):
            _bag_cli(not_a_bag, "--out", tmp_path / "o", "--image-topic", IMG_TOPIC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "junk.mcap"]


def test_bad_topics_name_what_is_there(small_bag, tmp_path):
    with pytest.raises(SystemExit, match=rf"no topic '/camera/image'.*image topics in the bag: {IMG_TOPIC} "
                                         r"\(sensor_msgs/msg/Image\)"):
        _bag_cli(small_bag, "--out", tmp_path / "o", "--image-topic", "/camera/image")
    with pytest.raises(SystemExit, match=r"is sensor_msgs/msg/CameraInfo, not sensor_msgs/msg/Image"):
        _bag_cli(small_bag, "--out", tmp_path / "o", "--image-topic", INFO_TOPIC)
    with pytest.raises(SystemExit, match=rf"no topic '/other/camera_info'.*CameraInfo topics in the bag: {INFO_TOPIC}"):
        _bag_cli(small_bag, "--out", tmp_path / "o", "--image-topic", IMG_TOPIC, "--camera-info-topic",
                 "/other/camera_info")
    assert not any(tmp_path.iterdir())


def test_unsupported_encoding_everywhere_writes_nothing(tmp_path, capsys):
    src = write_bag(tmp_path / "float", [(i, ("32FC1", 0, True)) for i in range(3)])
    with pytest.raises(SystemExit, match=r"no frame of .* could be processed \(3 messages; 3 x unsupported_encoding: "
                                         r"unsupported image encoding '32FC1'; supported: rgb8, bgr8"):
        _bag_cli(src, "--out", tmp_path / "o", "--image-topic", IMG_TOPIC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["float"]
    (tmp_path / "exists").mkdir()
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        _bag_cli(src, "--out", tmp_path / "exists", "--image-topic", IMG_TOPIC)
    with pytest.raises(SystemExit, match="names the bag folder"):
        _bag_cli(src, "--out", tmp_path / "x.mcap", "--image-topic", IMG_TOPIC)


def test_helpers():
    assert hb.default_camera_info_topic("/camera/color/image_raw") == "/camera/color/camera_info"
    assert hb.default_camera_info_topic("/cam/image_raw/compressed", compressed=True) == "/cam/camera_info"
    assert hb.default_camera_info_topic("image") == "camera_info"
    idx = hb.CameraInfoIndex([(100, "a"), (200, "b"), (130, "c")], tolerance_ns=20)
    assert [idx.match(s) for s in (100, 115, 125, 200, 221, 160)] == ["a", "a", "c", "b", None, None]
    with pytest.raises(TypeError, match="no field"):
        hb.new_message("std_msgs/msg/Header", frame_id="a", nope=1)


def test_a_keypoint_beyond_float32_makes_the_cloud_not_dense():
    """The cloud's float32 cannot hold 1e39: it holds inf, and is_dense, computed from the
    float64 input, said True (every point valid) for a cloud with an inf in it."""
    from hand25d_ros.pose_frames import hand_frames
    xyz = np.zeros((21, 3)) + np.linspace(0.0, 0.1, 21)[:, None] + (0.0, 0.0, 0.5)
    hand = hb.HandOutput(1, None, xyz, np.zeros((21, 2)), np.ones(21), hand_frames(xyz))
    b = hb.MessageBuilder()
    rh = b.header(b.ts.types["builtin_interfaces/msg/Time"](sec=5, nanosec=6), FRAME)
    assert b.cloud(rh, [hand]).is_dense
    hand.xyz = xyz.copy()
    hand.xyz[8, 2] = 1e39
    msg = b.cloud(rh, [hand])
    z = np.frombuffer(bytes(msg.data), dtype=hb.CLOUD_DTYPE)["z"]
    assert np.isinf(z[8]) and not msg.is_dense


# ---------------------------------------------------------------------------- the same content as the node
def test_messages_match_the_nodes_conversions():
    """The bag's messages, read by rclpy, equal the node's for the same hands."""
    try:
        from rclpy.serialization import deserialize_message, serialize_message
        from std_msgs.msg import Header

        from hand25d_ros.ros import conversions as conv
    except ImportError as exc:
        pytest.skip(f"ROS 2 messages not importable ({exc})")
    if not hasattr(conv, "hands_to_cloud"):
        pytest.skip("this conversions.py has no multi-hand outputs to compare with")
    tr = ScriptedTracker([[]])
    ours = [hb.HandOutput.from_tracked(SimpleNamespace(track_id=t, pose=tr.pose(t), is_left=left))
            for t, left in ((2, None), (5, True), (7, False))]
    node = [conv.HandOutput(h.hand_id, h.is_left, h.xyz, h.uv, h.confidence, h.frames) for h in ours]
    b = hb.MessageBuilder()   # the node's default frame prefix
    rh = b.header(b.ts.types["builtin_interfaces/msg/Time"](sec=5, nanosec=6), FRAME)
    header = Header(stamp=conv.ns_to_stamp(5 * 10**9 + 6), frame_id=FRAME)

    def same(mine, mt, node_msg):
        """Equal once on the wire (the bytes differ in CDR padding, which Fast CDR leaves
        uninitialised; rclpy keeps float32 fields as Python floats until serialised)."""
        cls = type(node_msg)
        return (deserialize_message(bytes(b.ts.serialize_cdr(mine, mt)), cls)
                == deserialize_message(serialize_message(node_msg), cls))

    assert same(b.tf(rh, ours), "tf2_msgs/msg/TFMessage", conv.hands_to_tf(header, node))
    assert same(b.cloud(rh, ours), "sensor_msgs/msg/PointCloud2", conv.hands_to_cloud(header, node))
    assert same(b.poses(rh, ours), "geometry_msgs/msg/PoseArray", conv.hands_to_pose_array(header, node))
    assert same(b.palms(rh, ours), "geometry_msgs/msg/PoseArray", conv.palms_to_pose_array(header, node))
    assert same(b.palm(rh, ours[0]), "geometry_msgs/msg/PoseStamped", conv.palm_to_pose_stamped(header, node[0].frames))
    # a frame without hands: the node's empty messages
    assert same(b.cloud(rh, []), "sensor_msgs/msg/PointCloud2", conv.hands_to_cloud(header, []))
    assert same(b.poses(rh, []), "geometry_msgs/msg/PoseArray", conv.hands_to_pose_array(header, []))
    assert same(b.palms(rh, []), "geometry_msgs/msg/PoseArray", conv.palms_to_pose_array(header, []))
    assert same(b.markers(rh, ours[1:], gone_ids={2, 9}), "visualization_msgs/msg/MarkerArray",
                conv.hands_to_markers(header, node[1:], {2, 9}))
    assert same(b.delete_all(rh), "visualization_msgs/msg/MarkerArray", conv.delete_all_markers(header))
    # input side: image decoding and intrinsics as the node's, on the same (rosbags) messages
    for enc, pad in (("rgb8", 0), ("bgr8", 5), ("rgba8", 0), ("bgra8", 8), ("mono8", 1)):
        m = image_msg(1, enc, pad)
        np.testing.assert_array_equal(hb.image_to_rgb(m), conv.image_to_rgb(m))
    info = info_msg(0, frame_rgb(0)[1])
    info.binning_x, info.binning_y = 2, 2
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 10, 20, 320, 240
    info.d = np.array([0.1, -0.05, 0, 0, 0.01])
    for source in ("rectified", "raw"):
        K, D, model, size = hb.camera_info_intrinsics(info, source)
        K2, D2, model2 = conv.camera_info_to_intrinsics(info, source)
        np.testing.assert_array_equal(K, K2)
        assert (model, size) == (model2, conv.expected_image_size(info))
        assert (D is None and D2 is None) or np.array_equal(D, D2)
    info.p = np.zeros(12)
    with pytest.raises(hb.FrameSkip, match="focal lengths"):
        hb.camera_info_intrinsics(info)


def test_a_camera_info_without_its_size_is_judged_by_the_images_as_the_node_does():
    """A CameraInfo that leaves its size to the image (width, height 0) with normalised
    intrinsics: the node judges K by the image's size and drops the frame; hand25d bag judged
    it by nothing and lifted hands with it."""
    info = info_msg(0, [[1.25, 0, 0.5], [0, 1.7, 0.5], [0, 0, 1]], width=0, height=0)
    index = hb.CameraInfoIndex([(0, info)], tolerance_ns=10)
    intrinsics = hb._Intrinsics(None, index, "rectified", None, INFO_TOPIC)
    with pytest.raises(hb.FrameSkip, match="field of view") as skip:
        intrinsics(0, W, H)
    assert skip.value.reason == "bad_camera_info"
    ok = info_msg(0, frame_rgb(0)[1], width=0, height=0)
    K, D, extra = hb._Intrinsics(None, hb.CameraInfoIndex([(0, ok)], tolerance_ns=10), "rectified", None)(0, W, H)
    np.testing.assert_array_equal(K, frame_rgb(0)[1])


def test_no_ros_needed(tmp_path):
    """Reading, pairing, building and writing with every ROS 2 Python package blocked."""
    code = f"""
import sys
for m in ("rclpy", "sensor_msgs", "std_msgs", "geometry_msgs", "tf2_msgs", "visualization_msgs",
          "builtin_interfaces", "rosbag2_py"):
    sys.modules[m] = None   # import fails
sys.path.insert(0, {str(REPO / "test")!r})
from pathlib import Path
from test_bag import IMG_TOPIC, ScriptedTracker, read_bag, write_bag
from hand25d_ros import bag as hb
import hand25d_ros.cli
src = write_bag(Path({str(tmp_path)!r}) / "in", [(i, ("bgr8", 0, True)) for i in range(2)], storage="sqlite3")
s = hb.convert(src, Path({str(tmp_path)!r}) / "out", ScriptedTracker([[0, 1]]), image_topic=IMG_TOPIC,
               progress=False)
print(s.with_hands, sorted(read_bag(Path({str(tmp_path)!r}) / "out")))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split(" ", 1)[0] == "2" and "/tf" in proc.stdout


def test_frame_ids_and_names_are_checked_as_the_node_does(tmp_path, capsys):
    """A ROS 1 bag's '/camera' frame goes into TF without the '/' (tf2 refuses it), with a
    warning; names no ROS tool takes are refused before any work."""
    src = write_bag(tmp_path / "slash", [(i, ("rgb8", 0, True)) for i in range(2)], frame="/" + FRAME)
    assert _bag_cli(src, "--out", tmp_path / "o", "--image-topic", IMG_TOPIC) == 0
    assert "starts with '/', which tf2 rejects" in capsys.readouterr().err
    out = read_bag(tmp_path / "o")
    assert {m.transforms[0].header.frame_id for _, m in out["/tf"]} == {FRAME}
    assert {m.header.frame_id for _, m in out[f"{NS}/keypoints"]} == {FRAME}
    for option, value in (("--namespace", "my ns!"), ("--frame-prefix", "/h h"), ("--camera-frame-id", "my cam")):
        with pytest.raises(SystemExit, match=r"is not a valid ROS name"):
            _bag_cli(src, "--out", tmp_path / "bad", "--image-topic", IMG_TOPIC, option, value)
    assert not (tmp_path / "bad").exists()


def _bag_with_stamps(path: Path, stamps_ns, encodings):
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        ci = w.add_connection(IMG_TOPIC, "sensor_msgs/msg/Image", typestore=TS)
        cc = w.add_connection(INFO_TOPIC, "sensor_msgs/msg/CameraInfo", typestore=TS)
        for i, (ns, enc) in enumerate(zip(stamps_ns, encodings)):
            msg = image_msg(i, enc)
            msg.header.stamp = T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)
            w.write(ci, stamp(i) + 10**6, TS.serialize_cdr(msg, "sensor_msgs/msg/Image"))
            w.write(cc, stamp(i) + 2 * 10**6, TS.serialize_cdr(info_msg(ns, frame_rgb(i)[1]), "sensor_msgs/msg/CameraInfo"))
    return path


def test_an_unusable_frame_stamped_ahead_does_not_hold_back_the_rest(tmp_path):
    """Only a frame used sets the stamp later ones must beat (as the node): a glitch stamped
    0.8 s ahead in an encoding that cannot be read skipped every frame after it."""
    stamps_ns = [stamp(i) for i in range(5)]
    stamps_ns[1] += 800_000_000
    src = _bag_with_stamps(tmp_path / "glitch", stamps_ns, ["rgb8", "32FC1", "rgb8", "rgb8", "rgb8"])
    assert _bag_cli(src, "--out", tmp_path / "o", "--image-topic", IMG_TOPIC) == 0
    out = read_bag(tmp_path / "o")
    assert sorted(ns_of(m) for _, m in out[f"{NS}/keypoints"]) == [stamps_ns[i] for i in (0, 2, 3, 4)]


CAMERA_ENCODINGS = ["yuv422_yuy2", "uyvy", "bayer_rggb8", "bayer_grbg8", "nv12", "nv21", "nv24", "rgb16", "bgr16",
                    "bayer_gbrg16"]
# recorded with is_bigendian set, as a camera on a big-endian bus (IIDC/FireWire) may send 16 bit
BIG_ENDIAN = {"bgr16", "bayer_gbrg16"}


def test_webcam_and_raw_bayer_frames_are_processed(tmp_path):
    """A UVC webcam's YUV 4:2:2, semi-planar YUV (4:2:0 and 4:4:4) and a machine-vision
    camera's Bayer mosaic and 16-bit pixels, recorded as the drivers publish them (row padding
    included): every frame gives hands, and each decodes to the frame it was made from
    (chroma subsampling and demosaicing blur colour edges only)."""
    frames = [(i, (enc, 8 * (i % 2), True)) for i, enc in enumerate(CAMERA_ENCODINGS)]
    src = write_bag(tmp_path / "cams", frames)
    for i, (enc, pad, _) in frames:
        diff = np.abs(hb.image_to_rgb(image_msg(i, enc, pad)).astype(int) - frame_rgb(i)[0])
        assert diff.mean() < 2 and np.median(diff) <= 1, (enc, diff.mean())
    assert _bag_cli(src, "--out", tmp_path / "o", "--image-topic", IMG_TOPIC) == 0
    out = read_bag(tmp_path / "o")
    assert sorted(ns_of(m) for _, m in out[f"{NS}/keypoints"]) == [stamp(i) for i, _ in frames]


def test_unstamped_images_are_named_not_dropped_as_out_of_order(tmp_path):
    src = _bag_with_stamps(tmp_path / "zero", [0, 0, 0], ["rgb8"] * 3)
    with pytest.raises(SystemExit, match=r"3 x unstamped: image header stamp 0: its driver does not stamp"):
        _bag_cli(src, "--out", tmp_path / "o", "--image-topic", IMG_TOPIC)


def test_a_topic_with_two_message_types_is_named_as_such(tmp_path):
    path = tmp_path / "mixed"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        ci = w.add_connection(IMG_TOPIC, "sensor_msgs/msg/Image", typestore=TS)
        cs = w.add_connection(IMG_TOPIC, "std_msgs/msg/String", typestore=TS)
        w.write(ci, stamp(0), TS.serialize_cdr(image_msg(0, "rgb8"), "sensor_msgs/msg/Image"))
        w.write(cs, stamp(0), TS.serialize_cdr(T["std_msgs/msg/String"](data="x"), "std_msgs/msg/String"))
    with pytest.raises(SystemExit, match=r"carries several message types \(sensor_msgs/msg/Image, std_msgs/msg/String\)"):
        _bag_cli(path, "--out", tmp_path / "o", "--image-topic", IMG_TOPIC)


def test_the_nodes_tracker_settings_reach_the_bag_run(small_bag, tmp_path):
    """A live run's tracker settings can be replayed: --track-max-gap-s under the 0.1 s between
    these frames finds each frame's hand afresh (a new id each), as the node would."""
    ids = {}
    for name, extra in (("default", []), ("gap", ["--track-max-gap-s", "0.05", "--smoothing-beta", "0",
                                                  "--smoothing-min-cutoff-hz", "3", "--no-follow-hand"])):
        assert _bag_cli(small_bag, "--out", tmp_path / name, "--image-topic", IMG_TOPIC, "--tta", "none", *extra) == 0
        ids[name] = [sorted(set(cloud_array(m)["hand_id"].tolist())) for _, m in
                     read_bag(tmp_path / name)[f"{NS}/keypoints"]]
    assert len({tuple(i) for i in ids["default"]}) == 1 and len(ids["default"]) == 4
    assert [i[0] for i in ids["gap"]] == sorted({i[0] for i in ids["gap"]}) and len({i[0] for i in ids["gap"]}) == 4
    with pytest.raises(SystemExit):
        _bag_cli(small_bag, "--out", tmp_path / "x", "--image-topic", IMG_TOPIC, "--min-confidence", "0.5")


# ---------------------------------------------------------------------------- CameraInfo as the node takes it
def _qos(durability: str):
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
    forever = QosTime(sec=2147483647, nsec=4294967295)
    return Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
               durability=QosDurability[durability], deadline=forever, lifespan=forever,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=forever,
               avoid_ros_namespace_conventions=False)


def _bag_with_infos(path: Path, frames, infos, durability="VOLATILE", live_infos=()):
    """rgb8 images of ``frames`` (log time stamp + 1 ms); ``infos``: (log time, CameraInfo) on
    a connection offered with ``durability``; ``live_infos`` likewise on a second, volatile one."""
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        ci = w.add_connection(IMG_TOPIC, "sensor_msgs/msg/Image", typestore=TS)
        cc = w.add_connection(INFO_TOPIC, "sensor_msgs/msg/CameraInfo", typestore=TS,
                              offered_qos_profiles=[_qos(durability)])
        cl = w.add_connection(INFO_TOPIC, "sensor_msgs/msg/CameraInfo", typestore=TS,
                              offered_qos_profiles=[_qos("VOLATILE")]) if live_infos else None
        msgs = [(t, cc, TS.serialize_cdr(m, "sensor_msgs/msg/CameraInfo")) for t, m in infos]
        msgs += [(t, cl, TS.serialize_cdr(m, "sensor_msgs/msg/CameraInfo")) for t, m in live_infos]
        msgs += [(stamp(i) + 10**6, ci, TS.serialize_cdr(image_msg(i, "rgb8"), "sensor_msgs/msg/Image"))
                 for i in frames]
        for t, conn, raw_msg in sorted(msgs, key=lambda m: m[0]):
            w.write(conn, t, raw_msg)
    return path


def test_an_uncalibrated_camera_info_takes_the_hfov_guess_only_when_given(tmp_path, capsys):
    # a webcam driver without a calibration file: K (and P) all zeros, the image size set
    src = _bag_with_infos(tmp_path / "webcam", range(3),
                          [(stamp(i) + 2 * 10**6, info_msg(stamp(i), np.zeros((3, 3)))) for i in range(3)])
    tr = ScriptedTracker([[0]])
    s = hb.convert(src, tmp_path / "a", tr, image_topic=IMG_TOPIC, hfov_deg=70, progress=False)
    assert s.processed == 3 and not s.skipped
    for call in tr.calls:
        np.testing.assert_allclose(call.K, K_from_fov(W, H, 70))
        assert call.D is None
    err = capsys.readouterr().err
    assert err.count("is uncalibrated (K all zeros): using fx = fy = 457.0 px from --hfov-deg 70") == 1
    # without --hfov-deg: skipped and named, as the node drops it (a guess only when asked for)
    with pytest.raises(SystemExit, match=r"3 x uncalibrated: its CameraInfo on /camera/color/camera_info is "
                                         r"uncalibrated \(K all zeros\): pass --calib, or --hfov-deg"):
        _bag_cli(src, "--out", tmp_path / "b", "--image-topic", IMG_TOPIC)
    # the guess is for an uncalibrated camera only: a CameraInfo with NaN in K is still unusable
    nan_K = np.zeros((3, 3))
    nan_K[0, 0] = np.nan
    bad = _bag_with_infos(tmp_path / "nan", range(2),
                          [(stamp(i) + 2 * 10**6, info_msg(stamp(i), nan_K)) for i in range(2)])
    with pytest.raises(hb.BagError, match="2 x bad_camera_info"):
        hb.convert(bad, tmp_path / "c", ScriptedTracker([[]]), image_topic=IMG_TOPIC, hfov_deg=70, progress=False)
    # an uncalibrated CameraInfo for another image size is no CameraInfo of these images
    small = _bag_with_infos(tmp_path / "small", range(2), [(stamp(i) + 2 * 10**6, info_msg(stamp(i), np.zeros((3, 3)),
                                                                                           width=320, height=240))
                                                           for i in range(2)])
    with pytest.raises(hb.BagError, match="2 x size_mismatch"):
        hb.convert(small, tmp_path / "d", ScriptedTracker([[]]), image_topic=IMG_TOPIC, hfov_deg=70, progress=False)


def test_a_camera_info_recorded_once_serves_every_image_as_the_nodes_latched_one(tmp_path):
    _, K = frame_rgb(0)
    # published once at start-up, latched, stamped 95 s before the images; recorded first
    once = _bag_with_infos(tmp_path / "once", range(4), [(stamp(0) - 10**6, info_msg(5 * 10**9, K))])
    tr = ScriptedTracker([[0]])
    s = hb.convert(once, tmp_path / "a", tr, image_topic=IMG_TOPIC, progress=False)
    assert s.processed == 4 and not s.skipped
    for call in tr.calls:
        np.testing.assert_allclose(call.K, K)
    # recorded a little after the first image (a recorder subscribes topic by topic): it still serves it
    late = _bag_with_infos(tmp_path / "late", range(3), [(stamp(0) + 5 * 10**6, info_msg(5 * 10**9, K))])
    assert hb.convert(late, tmp_path / "b", ScriptedTracker([[]]), image_topic=IMG_TOPIC, progress=False).processed == 3
    # a transient-local publisher that republished (a new calibration): from then on the newest
    K2 = K.copy()
    K2[0, 0] *= 1.5
    twice = _bag_with_infos(tmp_path / "twice", range(4), [(stamp(0) - 10**6, info_msg(5 * 10**9, K)),
                                                           (stamp(2), info_msg(6 * 10**9, K2))],
                            durability="TRANSIENT_LOCAL")
    tr = ScriptedTracker([[]])
    assert hb.convert(twice, tmp_path / "c", tr, image_topic=IMG_TOPIC, progress=False).processed == 4
    assert [c.K[0, 0] for c in tr.calls] == [K[0, 0], K[0, 0], K2[0, 0], K2[0, 0]]
    # stamped when published, among the images: still latched, no stream, as the node takes a
    # transient-local publisher's CameraInfo (the images between are not skipped waiting for theirs)
    near = _bag_with_infos(tmp_path / "near", range(4), [(stamp(0) - 10**6, info_msg(stamp(0), K)),
                                                         (stamp(2) - 10**6, info_msg(stamp(2), K2))],
                           durability="TRANSIENT_LOCAL")
    tr = ScriptedTracker([[]])
    assert hb.convert(near, tmp_path / "n", tr, image_topic=IMG_TOPIC, progress=False).processed == 4
    assert [c.K[0, 0] for c in tr.calls] == [K[0, 0], K[0, 0], K2[0, 0], K2[0, 0]]
    # two volatile CameraInfo messages are a stream, not a latched one: tolerance applies
    stream = _bag_with_infos(tmp_path / "stream", range(4), [(stamp(0) - 10**6, info_msg(5 * 10**9, K)),
                                                             (stamp(2), info_msg(6 * 10**9, K2))])
    with pytest.raises(hb.BagError, match="4 x no_camera_info"):
        hb.convert(stream, tmp_path / "d", ScriptedTracker([[]]), image_topic=IMG_TOPIC, progress=False)
    # beside a live stream, an image whose own CameraInfo is missing is skipped, as the node
    # does: the latched one would stand in for it with another calibration
    beside = _bag_with_infos(tmp_path / "beside", range(4), [(stamp(0) - 10**6, info_msg(5 * 10**9, K2))],
                             durability="TRANSIENT_LOCAL",
                             live_infos=[(stamp(i) + 2 * 10**6, info_msg(stamp(i), K)) for i in (0, 1, 3)])
    tr = ScriptedTracker([[]])
    s = hb.convert(beside, tmp_path / "e", tr, image_topic=IMG_TOPIC, progress=False)
    assert s.processed == 3 and s.skipped == {"no_camera_info": 1}
    assert [c.K[0, 0] for c in tr.calls] == [K[0, 0]] * 3


def test_hfov_deg_alone_guesses_for_a_bag_without_camera_info(tmp_path, capsys):
    src = write_bag(tmp_path / "noinfo", [(i, ("rgb8", 0, False)) for i in range(2)], with_info=False)
    for args, deg in ((["--hfov-deg", "70"], 70.0), ([], 60.0)):
        out = tmp_path / f"out{deg:g}"
        assert _bag_cli(src, "--out", out, "--image-topic", IMG_TOPIC, *args) == 0
        captured = capsys.readouterr()
        assert f"no CameraInfo topic {INFO_TOPIC}" in captured.err
        assert f"guessing intrinsics from a {deg} degree field of view" in captured.err
        assert "2 of 2 frames processed" in captured.out and f"intrinsics: guess from a {deg} degree" in captured.out
        assert set(read_bag(out)) >= {IMG_TOPIC, f"{NS}/keypoints"}


def test_the_tf_frames_follow_the_namespace_as_the_nodes_do(small_bag, tmp_path):
    """The node's frame_prefix defaults to hand_ behind its namespace and name (cam2/hand_ for
    /cam2/hand25d), so that two cameras' nodes never share a TF frame. The bag tool wrote
    hand_ whatever --namespace it was given: a replay beside another camera's shared frames."""
    for i, (namespace, palm) in enumerate((("/cam2/hand25d", "cam2/hand_0_palm"), (NS, "hand_0_palm"),
                                           ("/", "hand_0_palm"), ("/left", "left/hand_0_palm"))):
        out = tmp_path / f"o{i}"
        hb.convert(small_bag, out, ScriptedTracker([[0]]), image_topic=IMG_TOPIC, namespace=namespace, progress=False)
        tf = read_bag(out)["/tf"][0][1]
        assert tf.transforms[0].child_frame_id == palm, namespace
        assert tf.transforms[-1].child_frame_id == palm.replace("palm", "pinky_tip")
    # --frame-prefix still sets it outright
    hb.convert(small_bag, tmp_path / "own", ScriptedTracker([[0]]), image_topic=IMG_TOPIC, namespace="/cam2/hand25d",
               frame_prefix="right/", progress=False)
    assert read_bag(tmp_path / "own")["/tf"][0][1].transforms[0].child_frame_id == "right/0_palm"


def test_after_a_restart_the_old_timeline_holds_nothing_back_as_in_the_node(tmp_path):
    """Stamps jumping back over 1 s are a restarted recording (as the node's restarted source):
    the node forgets the old timeline's newest stamp then, so that when the restart's first
    frame cannot be used, the next one is not measured against the old timeline. The bag tool
    kept it: a frame 0.8 s before the old timeline's last was skipped as out of order."""
    stamps_ns = [stamp(0), stamp(0) - 1_500_000_000, stamp(0) - 800_000_000, stamp(0) - 700_000_000]
    src = _bag_with_stamps(tmp_path / "loop", stamps_ns, ["rgb8", "32FC1", "rgb8", "rgb8"])
    tr = ScriptedTracker([[0]])
    s = hb.convert(src, tmp_path / "o", tr, image_topic=IMG_TOPIC, progress=False)
    assert (s.processed, dict(s.skipped)) == (3, {"unsupported_encoding": 1})
    assert [ns_of(m) for _, m in read_bag(tmp_path / "o")[f"{NS}/keypoints"]] == [stamps_ns[i] for i in (0, 2, 3)]

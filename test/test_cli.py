"""The offline CLI on images and videos, with a small untrained weights file."""
import json
import re

import cv2
import numpy as np
import pytest

from hand25d_ros.cli import main
from hand25d_ros.detector import default_detector_path
from hand25d_ros.intrinsics import K_from_fov, load_camera_yaml
from hand25d_ros.weights import default_weights_path

from conftest import paste_sample


def _img(path, h=120, w=160, seed=0):
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def test_image_folder_writes_json_and_overlays(tmp_path, untrained_weights, capsys):
    d = tmp_path / "imgs"
    d.mkdir()
    _img(d / "a.png")
    _img(d / "b.jpg", seed=1)
    (d / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert main(["image", str(d), "--out", str(out), "--weights", str(untrained_weights), "--quiet",
                 "--whole-image"]) == 0
    rec = json.loads((out / "a.json").read_text())
    assert len(rec["hands"]) == 1 and np.array(rec["hands"][0]["keypoints_3d_m"]).shape == (21, 3)
    assert (out / "b_overlay.png").exists() and not list(out.glob(".*partial*"))
    assert "guessing intrinsics" in capsys.readouterr().err


@pytest.mark.skipif(not (default_weights_path().is_file() and default_detector_path().is_file()),
                    reason="no bundled weights in this install")
def test_image_command_finds_hands_in_full_frames(tmp_path):
    """A full frame with one pasted hand and an empty one: one hand near the truth, none."""
    frame, K, uv = paste_sample(4, (330, 160), 240, seed=2)
    cv2.imwrite(str(tmp_path / "hand.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    empty = cv2.GaussianBlur(np.random.default_rng(9).integers(0, 255, (480, 640, 3), dtype=np.uint8), (0, 0), 6)
    cv2.imwrite(str(tmp_path / "empty.png"), empty)
    calib = tmp_path / "cam.yaml"
    calib.write_text("image_width: 640\nimage_height: 480\ncamera_matrix:\n  rows: 3\n  cols: 3\n"
                     f"  data: {np.asarray(K).ravel().tolist()}\ndistortion_model: plumb_bob\n"
                     "distortion_coefficients:\n  rows: 1\n  cols: 5\n  data: [0, 0, 0, 0, 0]\n")
    out = tmp_path / "out"
    assert main(["image", str(tmp_path / "hand.png"), str(tmp_path / "empty.png"), "--out", str(out),
                 "--calib", str(calib), "--quiet"]) == 0
    hands = json.loads((out / "hand.json").read_text())["hands"]
    assert len(hands) == 1 and hands[0]["valid"] and hands[0]["is_left"] in (True, False)
    lo, hi = uv.min(0), uv.max(0)
    assert np.linalg.norm(np.mean(hands[0]["keypoints_2d_px"], 0) - uv.mean(0)) < 0.25 * max(hi - lo)
    assert json.loads((out / "empty.json").read_text())["hands"] == []


def test_calibration_file_is_used(tmp_path, untrained_weights):
    _img(tmp_path / "a.png")
    calib = tmp_path / "cam.yaml"
    calib.write_text("image_width: 160\nimage_height: 120\ncamera_matrix:\n  rows: 3\n  cols: 3\n"
                     "  data: [200, 0, 80, 0, 200, 60, 0, 0, 1]\ndistortion_model: plumb_bob\n"
                     "distortion_coefficients:\n  rows: 1\n  cols: 5\n  data: [0, 0, 0, 0, 0]\n")
    out = tmp_path / "out"
    main(["image", str(tmp_path / "a.png"), "--out", str(out), "--calib", str(calib),
          "--weights", str(untrained_weights), "--quiet", "--whole-image"])
    assert json.loads((out / "a.json").read_text())["K"][0][0] == 200


def _mp4(path, frames: int):
    """A small mp4v clip of ``frames`` grey levels, 96 x 64 at 10 frames/s."""
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for i in range(frames):
        wr.write(np.full((64, 96, 3), 40 * i, np.uint8))
    wr.release()
    return path


def test_video_roundtrip_and_broken_video(tmp_path, untrained_weights):
    vid = _mp4(tmp_path / "clip.mp4", 5)
    out = tmp_path / "out"
    main(["video", str(vid), "--out", str(out), "--weights", str(untrained_weights), "--quiet"])
    lines = (out / "clip.jsonl").read_text().splitlines()
    assert len(lines) == 5 and json.loads(lines[0])["frame"] == 0
    assert all(isinstance(json.loads(x)["hands"], list) for x in lines)
    assert (out / "clip_overlay.mp4").stat().st_size > 0
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 10)
    with pytest.raises(SystemExit, match="cannot read video"):
        main(["video", str(broken), "--out", str(tmp_path / "o2"), "--weights", str(untrained_weights)])
    assert not any((tmp_path / "o2").glob("*")) if (tmp_path / "o2").exists() else True


def test_hand_side_option_reaches_the_estimator(tmp_path, untrained_weights):
    """--hand-side left|right: the keypoints are the API's with that hand_side."""
    from hand25d_ros.estimator import HandPoseEstimator
    _img(tmp_path / "a.png", 128, 128, seed=3)
    calib = tmp_path / "cam.yaml"
    calib.write_text("image_width: 128\nimage_height: 128\ncamera_matrix:\n  rows: 3\n  cols: 3\n"
                     "  data: [200, 0, 64, 0, 200, 64, 0, 0, 1]\ndistortion_model: plumb_bob\n"
                     "distortion_coefficients:\n  rows: 1\n  cols: 5\n  data: [0, 0, 0, 0, 0]\n")
    img = cv2.cvtColor(cv2.imread(str(tmp_path / "a.png")), cv2.COLOR_BGR2RGB)
    K = np.array([[200.0, 0, 64], [0, 200, 64], [0, 0, 1]])
    answers = {}
    for side in ("left", "right"):
        out = tmp_path / side
        assert main(["image", str(tmp_path / "a.png"), "--out", str(out), "--weights", str(untrained_weights),
                     "--calib", str(calib), "--quiet", "--whole-image", "--tta", "flip_rotate",
                     "--hand-side", side, "--min-confidence", "0"]) == 0
        uv = np.array(json.loads((out / "a.json").read_text())["hands"][0]["keypoints_2d_px"])
        est = HandPoseEstimator(weights=untrained_weights, device="cpu", tta="flip_rotate", hand_side=side)
        np.testing.assert_allclose(uv, est.estimate(img, K, roi="image").keypoints_2d, atol=1e-3)
        answers[side] = uv
    assert np.abs(answers["left"] - answers["right"]).max() > 0.01   # the untrained views disagree


def test_missing_inputs_and_weights(tmp_path, untrained_weights):
    with pytest.raises(SystemExit, match="no such file"):
        main(["image", str(tmp_path / "nope.png"), "--out", str(tmp_path), "--weights", str(untrained_weights)])
    with pytest.raises(SystemExit, match="not found"):
        main(["image", str(tmp_path), "--out", str(tmp_path), "--weights", str(tmp_path / "w.pt")])


def test_intrinsics_helpers(tmp_path):
    K = K_from_fov(640, 480, 90.0)
    assert abs(K[0, 0] - 320.0) < 1e-9 and K[0, 2] == 319.5
    with pytest.raises(ValueError, match="field of view"):
        K_from_fov(640, 480, 0)
    bad = tmp_path / "bad.yaml"
    bad.write_text("camera_matrix: {data: [1, 2]}\n")
    with pytest.raises(ValueError, match="not a camera calibration"):
        load_camera_yaml(bad)
    with pytest.raises(FileNotFoundError):
        load_camera_yaml(tmp_path / "missing.yaml")


def _calib(path, K, width=160, height=120, D="[0, 0, 0, 0, 0]", model="plumb_bob"):
    path.write_text(f"image_width: {width}\nimage_height: {height}\ncamera_matrix:\n  rows: 3\n  cols: 3\n"
                    f"  data: {np.asarray(K, float).ravel().tolist()}\ndistortion_model: {model}\n"
                    f"distortion_coefficients:\n  rows: 1\n  cols: 5\n  data: {D}\n")
    return path


@pytest.mark.parametrize("K, D, model, words", [
    ([[-200, 0, 80], [0, -200, 60], [0, 0, 1]], "[0, 0, 0, 0, 0]", "plumb_bob", "both must be > 0"),
    ([[1.2, 0, 0.5], [0, 1.2, 0.5], [0, 0, 1]], "[0, 0, 0, 0, 0]", "plumb_bob", "field of view"),
    ([[200, 0, 80], [0, 200, 60], [0, 0, 1]], "[0.1, 0, 0]", "plumb_bob", "plumb_bob distortion needs"),
    ([[200, 0, 80], [0, 200, 60], [0, 0, 1]], "[0, 0, 0, 0, 0]", "fisheye", "unsupported distortion model"),
])
def test_a_calibration_no_camera_has_stops_the_run_with_its_reason(tmp_path, untrained_weights, K, D, model, words):
    """Before any image is read: a negative focal length mirrored the 3D output, and a bad
    file gave a traceback at the first frame."""
    _img(tmp_path / "a.png")
    calib = _calib(tmp_path / "cam.yaml", K, D=D, model=model)
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=words) as exc:
        main(["image", str(tmp_path / "a.png"), "--out", str(out), "--calib", str(calib),
              "--weights", str(untrained_weights), "--quiet"])
    assert "cam.yaml" in str(exc.value) and not out.exists()
    (tmp_path / "broken.yaml").write_text("camera_matrix: [1, 2\n")
    with pytest.raises(SystemExit, match="broken.yaml is not a camera calibration"):
        main(["image", str(tmp_path / "a.png"), "--out", str(out), "--calib", str(tmp_path / "broken.yaml"),
              "--weights", str(untrained_weights)])


@pytest.mark.parametrize("option, value", [
    ("--hfov-deg", "0"), ("--hfov-deg", "180"), ("--hfov-deg", "nan"), ("--hand-size-m", "0"),
    ("--hand-size-m", "-0.08"), ("--hand-size-m", "nan"), ("--max-hands", "0"), ("--max-hands", "-1"),
    ("--min-confidence", "1.5"), ("--max-hands", "two"),
])
def test_option_values_out_of_range_are_usage_errors(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as exc:
        main(["image", str(tmp_path), "--out", str(tmp_path / "o"), option, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert option in err and "expected" in err and "Traceback" not in err


def test_unreadable_inputs_fail_the_run_and_clashing_names_do_not_overwrite(tmp_path, untrained_weights, capsys):
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(SystemExit, match="none of the 1 images could be read"):
        main(["image", str(tmp_path / "text.png"), "--out", str(tmp_path / "o1"),
              "--weights", str(untrained_weights), "--quiet"])
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        _img(tmp_path / d / "f.png", seed=ord(d))
    _img(tmp_path / "a" / "f.jpg", seed=5)
    out = tmp_path / "o2"
    inputs = [tmp_path / "a" / "f.png", tmp_path / "b" / "f.png", tmp_path / "a" / "f.jpg", tmp_path / "text.png",
              tmp_path / "a" / "f.png"]
    rc = main(["image", *map(str, inputs), "--out", str(out), "--weights", str(untrained_weights), "--quiet",
               "--whole-image"])
    assert rc == 1    # one input could not be read
    sources = sorted(json.loads(p.read_text())["source"] for p in out.glob("*.json"))
    assert sources == sorted(map(str, inputs[:3]))
    assert "wrote results for 3 of 4 images" in capsys.readouterr().out


def test_out_that_is_a_file_and_video_with_nothing_to_do_are_refused(tmp_path, untrained_weights):
    _img(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="notes.txt exists and is not a folder"):
        main(["image", str(tmp_path / "a.png"), "--out", str(tmp_path / "notes.txt"), "--weights", str(untrained_weights)])
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    with pytest.raises(SystemExit, match="nothing to do"):
        main(["video", str(tmp_path / "a.png"), "--weights", str(untrained_weights)])
    if [line for line in cv2.getBuildInformation().splitlines() if line.strip() == "GUI:                           NONE"]:
        with pytest.raises(SystemExit, match="--preview needs OpenCV with a GUI"):
            main(["video", str(tmp_path / "a.png"), "--preview", "--weights", str(untrained_weights)])


def test_export_and_render_sheet_refuse_bad_paths_in_one_line(tmp_path, untrained_weights, capsys):
    from hand25d_ros.export import main as export_main
    from hand25d_ros.tools.render_sheet import main as sheet_main
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(SystemExit, match="hand25d-export: .*junk.pt"):
        export_main(["--weights", str(junk), "--torchscript", str(tmp_path / "m.ts")])
    for argv in (["--torchscript", str(tmp_path)], ["--onnx", str(tmp_path)]):
        with pytest.raises(SystemExit) as exc:
            export_main(["--weights", str(untrained_weights), *argv])
        assert exc.value.code == 2 and "is a folder" in capsys.readouterr().err
    assert export_main(["--weights", str(untrained_weights), "--torchscript", str(tmp_path / "new" / "m.ts")]) == 0
    assert (tmp_path / "new" / "m.ts").stat().st_size > 0
    for out in (tmp_path / "sheet", tmp_path):
        with pytest.raises(SystemExit) as exc:
            sheet_main(["--out", str(out)])
        assert exc.value.code == 2 and "give an image file" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="hand25d-render-sheet: .*missing"):
        sheet_main(["--out", str(tmp_path / "s.png"), "--cache", str(tmp_path / "missing")])
    # numbers too: --cols 0 was a ZeroDivisionError, --size 0 a renderer traceback, --tile 0 an OpenCV assertion
    for option, value in (("--cols", "0"), ("--size", "0"), ("--tile", "0"), ("--start", "-5")):
        with pytest.raises(SystemExit) as exc:
            sheet_main(["--out", str(tmp_path / "s.png"), option, value])
        assert exc.value.code == 2 and f"argument {option}: expected" in capsys.readouterr().err
    assert not (tmp_path / "s.png").exists()


def test_export_to_a_place_it_cannot_write_says_so_in_one_line(tmp_path, untrained_weights):
    from hand25d_ros.export import main as export_main
    (tmp_path / "notes.txt").write_text("keep me")
    for option in ("--torchscript", "--onnx"):
        with pytest.raises(SystemExit, match=rf"hand25d-export: cannot make the folder of {option} .*notes.txt"):
            export_main(["--weights", str(untrained_weights), option, str(tmp_path / "notes.txt" / "sub" / "m")])
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]

def test_export_refuses_to_write_over_its_weights_or_one_output_over_the_other(tmp_path, untrained_weights, capsys):
    from hand25d_ros.export import main as export_main
    before = untrained_weights.read_bytes()
    weights_again = untrained_weights.parent / ".." / untrained_weights.parent.name / untrained_weights.name
    for argv, reason in ((["--torchscript", str(untrained_weights)], "is the weights file being exported"),
                         (["--onnx", str(weights_again)], "is the weights file being exported"),
                         (["--torchscript", str(tmp_path / "m"), "--onnx", str(tmp_path / "." / "m")],
                          "are the same file")):
        with pytest.raises(SystemExit) as exc:
            export_main(["--weights", str(untrained_weights), *argv])
        assert exc.value.code == 2 and reason in capsys.readouterr().err
    assert untrained_weights.read_bytes() == before
    assert not (tmp_path / "m").exists()

def test_exports_carry_what_lifting_their_outputs_needs(tmp_path, untrained_weights):
    import onnx
    import torch
    from hand25d_ros import keypoints as kp
    from hand25d_ros.export import main as export_main
    from hand25d_ros.geometry import ROBUST_BONES
    from hand25d_ros.weights import load_weights
    assert export_main(["--weights", str(untrained_weights), "--torchscript", str(tmp_path / "m.ts"),
                        "--onnx", str(tmp_path / "m.onnx")]) == 0
    extra = {"hand25d_meta.json": ""}
    torch.jit.load(str(tmp_path / "m.ts"), _extra_files=extra)
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    weights_meta = load_weights(untrained_weights).meta
    for meta in (json.loads(extra["hand25d_meta.json"]), json.loads(props["hand25d_meta"])):
        assert meta["keypoint_names"] == list(kp.KEYPOINT_NAMES) and meta["input_size"] == 128
        assert meta["bone_ratios"] == weights_meta["bone_ratios"]
        assert meta["robust_bones"] == [list(b) for b in ROBUST_BONES] and meta["scale_bone"] == list(kp.SCALE_BONE)

@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_stopped_export_leaves_no_part_of_it(tmp_path, untrained_weights, signame):
    """Ctrl-C, kill or timeout while the ONNX file is being made (SIGTERM killed it outright,
    saying nothing of the TorchScript file already written)."""
    import signal
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-u", "-m", "hand25d_ros.export", "--weights", str(untrained_weights),
                             "--torchscript", str(tmp_path / "m.ts"), "--onnx", str(tmp_path / "m.onnx")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()          # the TorchScript is written: the ONNX export is under way
    assert first.startswith("wrote") and first.strip().endswith("m.ts"), first
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"interrupted; only {tmp_path / 'm.ts'} was written" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ts"]


def test_a_ctrl_c_that_python_swallowed_still_stops_the_export(tmp_path, untrained_weights):
    """A KeyboardInterrupt raised inside a __del__ or weakref callback (the import machinery
    runs both) is only printed as "Exception ignored": a Ctrl-C at that moment of the ONNX
    export let it finish and write the file. The stop is remembered and asked for again
    before the export's file is put in place."""
    import subprocess
    import sys
    script = (
        "import signal, sys\n"
        "from hand25d_ros._signals import interrupt_on_termination\n"
        "from hand25d_ros.export import export_torchscript\n"
        "from hand25d_ros.weights import load_weights\n"
        "model = load_weights(sys.argv[1]).model\n"
        "interrupt_on_termination()\n"
        "class Swallows:\n"
        "    def __del__(self):\n"
        "        signal.raise_signal(signal.SIGINT)\n"
        "        for _ in range(1000):   # the handler runs here, inside __del__\n"
        "            pass\n"
        "Swallows()\n"
        "print('went on', flush=True)\n"
        "try:\n"
        "    export_torchscript(model, sys.argv[2], 128)\n"
        "except KeyboardInterrupt:\n"
        "    print('stopped')\n")
    out = subprocess.run([sys.executable, "-c", script, str(untrained_weights), str(tmp_path / "m.ts")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Exception ignored" in out.stderr and "KeyboardInterrupt" in out.stderr
    assert out.stdout.split() == ["went", "on", "stopped"]
    assert list(tmp_path.iterdir()) == []


def test_a_missing_extra_is_named_with_its_pip_command():
    from hand25d_ros._checks import require_extra
    require_extra("train", "numpy")
    with pytest.raises(ModuleNotFoundError, match=r"no_such_module_x, not installed: pip install 'hand25d_ros\[export\]'"):
        require_extra("export", "numpy", "no_such_module_x")


def _mjpeg_avi(path, frames, fps=10):
    """A minimal MJPEG AVI (RIFF) by hand: OpenCV's writer makes neither dropped-frame gaps
    (``None``: an empty chunk, the container's way of saying a frame was dropped) nor damaged
    frames (``bytes``: written as the frame's data)."""
    import struct

    def chunk(fourcc, data):
        return fourcc.encode() + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")
    h, w = next(f for f in frames if isinstance(f, np.ndarray)).shape[:2]
    avih = struct.pack("<14I", int(1e6 / fps), 0, 0, 0x10, len(frames), 0, 1, 0, w, h, 0, 0, 0, 0)
    strh = b"vidsMJPG" + struct.pack("<IHHIIIIIIII4h", 0, 0, 0, 0, 1, fps, 0, len(frames), 0, 0xFFFFFFFF, 0,
                                     0, 0, w, h)
    strf = struct.pack("<IiiHH4sIiiII", 40, w, h, 1, 24, b"MJPG", w * h * 3, 0, 0, 0, 0)
    hdrl = chunk("LIST", b"hdrl" + chunk("avih", avih) + chunk("LIST", b"strl" + chunk("strh", strh)
                                                                + chunk("strf", strf)))
    movi, idx = b"", b""
    for f in frames:
        data = b"" if f is None else f if isinstance(f, bytes) else cv2.imencode(".jpg", f)[1].tobytes()
        idx += b"00dc" + struct.pack("<III", 0x10 if data else 0, 4 + len(movi), len(data))
        movi += chunk("00dc", data)
    body = b"AVI " + hdrl + chunk("LIST", b"movi" + movi) + chunk("idx1", idx)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_video_times_come_from_the_container_and_damaged_frames_are_skipped(tmp_path, untrained_weights, capsys):
    """A recording with dropped frames has gaps that frame numbers hide (the tracker then
    smooths and follows across a pause it should have noticed); a frame that does not decode
    ended the run silently, exit 0, with the rest of the file unread."""
    rng = np.random.default_rng(0)
    frame = [rng.integers(0, 255, (64, 96, 3), np.uint8) for _ in range(8)]
    common = ["--weights", str(untrained_weights), "--quiet", "--max-hands", "1"]
    gaps = _mjpeg_avi(tmp_path / "gaps.avi", frame[:3] + [None] * 10 + frame[3:])    # 1 s dropped
    assert main(["video", str(gaps), "--out", str(tmp_path / "o1")] + common) == 0
    t_s = [json.loads(x)["t_s"] for x in (tmp_path / "o1" / "gaps.jsonl").read_text().splitlines()]
    np.testing.assert_allclose(t_s, [0.0, 0.1, 0.2, 1.3, 1.4, 1.5, 1.6, 1.7], atol=1e-6)
    damaged = _mjpeg_avi(tmp_path / "damaged.avi", frame[:4] + [b"\xff\xd8garbage" * 50] + frame[4:])
    capsys.readouterr()
    assert main(["video", str(damaged), "--out", str(tmp_path / "o2")] + common) == 1
    assert len((tmp_path / "o2" / "damaged.jsonl").read_text().splitlines()) == 8
    assert "1 of the 9 frames the video's header announces could not be decoded" in capsys.readouterr().err
    whole = _mjpeg_avi(tmp_path / "whole.avi", frame * 3).read_bytes()
    (tmp_path / "cut.avi").write_bytes(whole[: len(whole) // 3])                  # a partial download
    assert main(["video", str(tmp_path / "cut.avi"), "--out", str(tmp_path / "o4")] + common) == 1
    assert re.search(r"1[5-7] missing at its end", capsys.readouterr().err)
    odd_fps = _mjpeg_avi(tmp_path / "fast.avi", frame[:3], fps=1_000_000)
    assert main(["video", str(odd_fps), "--out", str(tmp_path / "o3")] + common) == 0
    assert "states 1e+06 frames/s" in capsys.readouterr().err
    assert (tmp_path / "o3" / "fast_overlay.mp4").stat().st_size > 0


def test_sigterm_mid_video_leaves_nothing_half_written(tmp_path, untrained_weights):
    """timeout, kill, a cancelled job: as Ctrl-C, the partial overlay and JSON lines go."""
    import signal
    import subprocess
    import sys
    import time
    frames = [np.random.default_rng(i).integers(0, 255, (64, 96, 3), np.uint8) for i in range(4)]
    vid = _mjpeg_avi(tmp_path / "long.avi", frames * 150)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "hand25d_ros.cli", "video", str(vid), "--out", str(out),
                             "--weights", str(untrained_weights), "--quiet", "--tta", "flip_rotate"],
                            stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 60
    while not list(out.glob(".*.partial.jsonl")) and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    assert proc.poll() is None, "the video ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted; nothing written" in err, err
    assert list(out.iterdir()) == []


def test_real_world_photo_folders(tmp_path, untrained_weights):
    """What a folder of photos holds: a name that is not UTF-8 (OpenCV's file functions killed
    the process on it), macOS' ._ companions, hidden files, a subfolder named like an image, a
    file named twice through a link; and --out the input folder itself (each run took the last
    run's overlays as inputs)."""
    import os
    import sys
    d = tmp_path / "photos"
    d.mkdir()
    _img(d / "a.png")
    names = ["a.json", "a_overlay.png"]
    if sys.platform.startswith("linux"):      # bytes names; macOS' file systems take none that are not UTF-8
        latin1 = os.fsdecode(b"Gr\xfc\xdfe.png")
        _img(d / "b.png")
        (d / "b.png").rename(d / latin1)
        names += [os.fsdecode(b"Gr\xfc\xdfe.json"), os.fsdecode(b"Gr\xfc\xdfe_overlay.png")]
    (d / "._a.png").write_bytes(b"\x00\x05\x16\x07")
    _img(d / ".hidden.png")
    (d / "dir.png").mkdir()
    common = ["--weights", str(untrained_weights), "--quiet", "--whole-image", "--tta", "none"]
    out = tmp_path / "out"
    assert main(["image", str(d), str(d / "a.png"), "--out", str(out)] + common) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for run in range(2):
        assert main(["image", str(d), "--out", str(d)] + common) == 0
    assert len(list(d.glob("*_overlay*.png"))) == len(names) // 2


def test_exif_rotated_photos_get_the_calibration_turned_with_them(tmp_path, untrained_weights, capsys):
    """OpenCV shows a phone photo upright (its EXIF orientation); a calibration of the sensor's
    pixels must turn with it, or the 3D is silently wrong (0.35 m for a photo turned 180)."""
    from PIL import Image

    from hand25d_ros import geometry as geo
    from hand25d_ros.intrinsics import upright_intrinsics
    K = np.array([[500.0, 0, 170.0], [0, 510.0, 110.0], [0, 0, 1]])
    W, H = 320, 240
    P = np.array([[0.05, -0.02, 0.6], [-0.1, 0.08, 0.9]])
    uv = geo.project_points(P, K)
    turned = {3: lambda u, v: (W - 1 - u, H - 1 - v), 6: lambda u, v: (H - 1 - v, u), 8: lambda u, v: (v, W - 1 - u)}
    camera = {3: lambda p: [-p[0], -p[1], p[2]], 6: lambda p: [-p[1], p[0], p[2]], 8: lambda p: [p[1], -p[0], p[2]]}
    for tag in (3, 6, 8):
        K2 = upright_intrinsics(K, W, H, tag)
        want = np.array([turned[tag](u, v) for u, v in uv])
        np.testing.assert_allclose(geo.project_points(np.array([camera[tag](p) for p in P]), K2), want, atol=1e-9)
    with pytest.raises(ValueError, match="mirrors"):
        upright_intrinsics(K, W, H, 2)
    # a skewed K (and one given as a list): kept through a half turn, refused through a quarter
    skewed = K + np.array([[0, 20.0, 0], [0, 0, 0], [0, 0, 0]])
    K3 = upright_intrinsics(skewed.tolist(), W, H, 3)
    np.testing.assert_allclose(geo.project_points(np.array([camera[3](p) for p in P]), K3),
                               [turned[3](u, v) for u, v in geo.project_points(P, skewed)], atol=1e-9)
    with pytest.raises(ValueError, match="skew"):
        upright_intrinsics(skewed, W, H, 6)
    calib = tmp_path / "cam.yaml"
    calib.write_text(f"image_width: {W}\nimage_height: {H}\ncamera_matrix:\n  rows: 3\n  cols: 3\n"
                     f"  data: {K.ravel().tolist()}\ndistortion_model: plumb_bob\n"
                     "distortion_coefficients:\n  rows: 1\n  cols: 5\n  data: [0, 0, 0, 0, 0]\n")
    d = tmp_path / "phone"
    d.mkdir()
    rng = np.random.default_rng(1)
    sensor = Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    for tag in (6, 2):
        exif = Image.Exif()
        exif[0x0112] = tag
        sensor.save(d / f"tag{tag}.jpg", exif=exif)
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["image", str(d), "--out", str(out), "--calib", str(calib), "--weights", str(untrained_weights),
                 "--quiet", "--whole-image", "--tta", "none"]) == 1          # the mirrored one is skipped
    rec = json.loads((out / "tag6.json").read_text())
    np.testing.assert_allclose(rec["K"], upright_intrinsics(K, W, H, 6))
    assert "EXIF orientation 6" in rec["intrinsics"]
    assert "EXIF orientation 2 mirrors the photo" in capsys.readouterr().err


def test_an_image_over_the_pixel_limit_and_deep_clashing_names_are_handled(tmp_path, untrained_weights):
    import os
    import subprocess
    import sys
    deep = tmp_path.joinpath(*[f"holiday_photos_folder_{i:02d}" for i in range(8)])
    for sub in ("a", "b"):
        (deep / sub).mkdir(parents=True)
        _img(deep / sub / "IMG_0001.png")
    out = tmp_path / "out"
    args = ["image", str(deep / "a"), str(deep / "b"), "--out", str(out), "--weights", str(untrained_weights),
            "--quiet", "--whole-image", "--tta", "none"]
    assert main(args) == 0
    assert len(list(out.glob("*.json"))) == 2 and max(len(p.name) for p in out.iterdir()) < 160
    # OpenCV refuses images over its pixel limit (a scan, a panorama): skipped with the reason
    env = dict(os.environ, OPENCV_IO_MAX_IMAGE_PIXELS="1000")
    run = subprocess.run([sys.executable, "-m", "hand25d_ros.cli"] + args[:3] + ["--out", str(tmp_path / "o2")]
                         + args[5:], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "cannot use image" in run.stderr and "Traceback" not in run.stderr, run.stderr


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="bytes file names are Linux's")
def test_a_video_name_that_is_not_utf8_is_refused_not_a_crash(tmp_path, untrained_weights):
    """OpenCV's video functions segfaulted on such a name (exit 139, no message)."""
    import os
    vid = _mp4(tmp_path / "clip.mp4", 3)
    odd = tmp_path / os.fsdecode(b"clip\xfc.mp4")
    vid.rename(odd)
    with pytest.raises(SystemExit, match="is not a UTF-8 name"):
        main(["video", str(odd), "--out", str(tmp_path / "o"), "--weights", str(untrained_weights), "--quiet"])
    odd.rename(vid)
    with pytest.raises(SystemExit, match="is not a UTF-8 name"):
        main(["video", str(vid), "--out", str(tmp_path / os.fsdecode(b"o\xfc")), "--weights", str(untrained_weights),
              "--quiet"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_image_files_take_any_name_and_say_why_not(tmp_path):
    import os
    from hand25d_ros.image_files import read_image_file, write_image_file
    img = np.random.default_rng(0).integers(0, 255, (8, 12, 3), np.uint8)
    name = tmp_path / (os.fsdecode(b"bild\xe4.png") if __import__("sys").platform.startswith("linux") else "bild.png")
    write_image_file(name, img)
    np.testing.assert_array_equal(read_image_file(name), img)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    for bad, why in ((tmp_path / "junk.png", "not an image file"), (tmp_path / "none.png", "FileNotFoundError")):
        with pytest.raises(ValueError, match=why):
            read_image_file(bad)
    with pytest.raises(OSError, match="cannot encode"):
        write_image_file(tmp_path / "x.unknownformat", img)


def test_termination_signals_started_ignored_stay_ignored():
    """nohup starts a command with SIGHUP ignored, so that it outlives its terminal: made an
    interrupt, a closed terminal stopped an hours-long hand25d-train under nohup."""
    import signal
    from hand25d_ros._signals import interrupt_on_termination
    saved = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        interrupt_on_termination()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert callable(signal.getsignal(signal.SIGTERM))
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def test_a_webcam_that_does_not_open_is_named_as_a_camera(tmp_path, untrained_weights, monkeypatch):
    """`hand25d video 0` (README) on a machine whose camera 0 does not open said "cannot read
    video 0 (broken file or unsupported codec)", which sends a user looking for a file."""
    import hand25d_ros.cli as cli

    class NoCamera:
        def __init__(self, *args):
            pass

        def isOpened(self):
            return False

        def read(self):
            return False, None

        def get(self, prop):
            return 0.0

        def release(self):
            pass
    monkeypatch.setattr(cli.cv2, "VideoCapture", NoCamera)
    with pytest.raises(SystemExit) as exc:
        main(["video", "0", "--out", str(tmp_path / "o"), "--weights", str(untrained_weights)])
    text = str(exc.value)
    assert "camera 0" in text and "codec" not in text and "file" not in text, text
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_an_image_run_that_writes_nothing_leaves_no_out_folder(tmp_path, untrained_weights):
    """README: "none readable: an error, nothing written"; yet each of these runs left an empty
    --out folder behind, as did a missing input and a folder without images."""
    (tmp_path / "bad.png").write_text("not an image")
    (tmp_path / "no_images").mkdir()
    for inputs, why in [([tmp_path / "bad.png"], "none of the 1 images could be read"),
                        ([tmp_path / "nope.png"], "no such file or folder"),
                        ([tmp_path / "no_images"], "no images found")]:
        out = tmp_path / "results" / "run"
        with pytest.raises(SystemExit, match=why):
            main(["image", *map(str, inputs), "--out", str(out), "--weights", str(untrained_weights), "--quiet"])
        assert not (tmp_path / "results").exists(), why
    # an --out folder that was there stays, with what it held
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "old.json").write_text("{}")
    with pytest.raises(SystemExit, match="could be read"):
        main(["image", str(tmp_path / "bad.png"), "--out", str(kept), "--weights", str(untrained_weights), "--quiet"])
    assert sorted(p.name for p in kept.iterdir()) == ["old.json"]

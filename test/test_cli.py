"""The offline CLI on images and videos, with a small untrained weights file."""
import json

import cv2
import numpy as np
import pytest

from hand25d_ros.cli import main
from hand25d_ros.intrinsics import K_from_fov, load_camera_yaml


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
    assert main(["image", str(d), "--out", str(out), "--weights", str(untrained_weights), "--quiet"]) == 0
    rec = json.loads((out / "a.json").read_text())
    assert np.array(rec["keypoints_3d_m"]).shape == (21, 3)
    assert (out / "b_overlay.png").exists()
    assert "guessing intrinsics" in capsys.readouterr().err


def test_calibration_file_is_used(tmp_path, untrained_weights):
    _img(tmp_path / "a.png")
    calib = tmp_path / "cam.yaml"
    calib.write_text("image_width: 160\nimage_height: 120\ncamera_matrix:\n  rows: 3\n  cols: 3\n"
                     "  data: [200, 0, 80, 0, 200, 60, 0, 0, 1]\ndistortion_model: plumb_bob\n"
                     "distortion_coefficients:\n  rows: 1\n  cols: 5\n  data: [0, 0, 0, 0, 0]\n")
    out = tmp_path / "out"
    main(["image", str(tmp_path / "a.png"), "--out", str(out), "--calib", str(calib),
          "--weights", str(untrained_weights), "--quiet"])
    assert json.loads((out / "a.json").read_text())["K"][0][0] == 200


def test_video_roundtrip_and_broken_video(tmp_path, untrained_weights):
    vid = tmp_path / "clip.mp4"
    wr = cv2.VideoWriter(str(vid), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for i in range(5):
        wr.write(np.full((64, 96, 3), 40 * i, np.uint8))
    wr.release()
    out = tmp_path / "out"
    main(["video", str(vid), "--out", str(out), "--weights", str(untrained_weights), "--quiet"])
    lines = (out / "clip.jsonl").read_text().splitlines()
    assert len(lines) == 5 and json.loads(lines[0])["frame"] == 0
    assert (out / "clip_overlay.mp4").stat().st_size > 0
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 10)
    with pytest.raises(SystemExit, match="cannot read video"):
        main(["video", str(broken), "--out", str(tmp_path / "o2"), "--weights", str(untrained_weights)])
    assert not any((tmp_path / "o2").glob("*")) if (tmp_path / "o2").exists() else True


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

"""The full-frame hand detector: target/decode geometry, letterboxing, composites, weights files."""
import csv

import numpy as np
import pytest
import torch

from hand25d_ros import WeightsError
from hand25d_ros.data.composites import composite_scene
from hand25d_ros.detector import (STRIDE, HandDetector, HandDetectorNet, decode, default_detector_path,
                                  detector_loss, letterbox, load_detector, make_targets, save_detector)
from hand25d_ros.detector_train import match

from conftest import paste_sample

bundled = pytest.mark.skipif(not default_detector_path().is_file(), reason="no bundled detector in this install")


def perfect_output(hands, S):
    """The network output that encodes ``hands`` exactly (for decode round trips)."""
    heat, reg, mask = make_targets(hands, S)
    out = torch.zeros(5, S // STRIDE, S // STRIDE)
    out[0] = torch.where(torch.from_numpy(mask) > 0, 8.0, -8.0)
    out[1:4] = torch.from_numpy(reg[:3])
    out[4] = torch.from_numpy((reg[3] * 2 - 1) * 8.0)
    return out, heat, reg, mask


def test_targets_decode_back_to_the_hands_in_frame_pixels():
    S, scale = 160, 0.25                     # a 640 x 480 frame letterboxed into 160 x 120
    hands_frame = [(100.3, 200.7, 80.0, True), (500.9, 90.2, 150.0, False)]
    hands_in = [((u + 0.5) * scale - 0.5, (v + 0.5) * scale - 0.5, s * scale, left) for u, v, s, left in hands_frame]
    out, *_ = perfect_output(hands_in, S)
    dets = decode(out, scale, 0.5, 5)
    assert len(dets) == 2
    for (u, v, s, left) in hands_frame:
        d = min(dets, key=lambda d: np.linalg.norm(d.centre - (u, v)))
        np.testing.assert_allclose(d.centre, (u, v), atol=1e-3)
        assert d.box[2] == pytest.approx(s, rel=1e-5) and d.is_left == left and d.score > 0.99


def test_letterbox_keeps_the_pixel_centre_convention():
    import cv2
    img = np.zeros((480, 640, 3), np.uint8)
    cv2.circle(img, (400, 300), 10, (255, 255, 255), -1)
    out, scale = letterbox(img, 160)
    assert out.shape == (160, 160, 3) and out[120:].max() == 0          # black pad below
    ys, xs = np.nonzero(out[..., 0] > 10)
    w = out[ys, xs, 0].astype(float)
    c = np.array([np.sum(xs * w), np.sum(ys * w)]) / w.sum()
    np.testing.assert_allclose(c, ((400 + 0.5) * scale[0] - 0.5, (300 + 0.5) * scale[1] - 0.5), atol=0.1)


@pytest.mark.parametrize("W, H", [(2560, 1080), (1920, 200), (640, 480), (1000, 333)])
def test_a_peak_maps_back_to_the_frame_exactly_whatever_the_aspect(W, H):
    """The letterbox rounds the drawn size, so the two axes' scales differ: one mean scale put
    the box at the right edge of a 2560 x 1080 frame 9 px off (34 px on 1920 x 200)."""
    from hand25d_ros.detector import decode
    _, (sx, sy) = letterbox(np.zeros((H, W, 3), np.uint8), 160)
    out = torch.full((5, 20, 20), -10.0)
    out[1:4] = 0.0
    gx, gy = 19, int((H * sy - 1) // STRIDE)          # the drawn area's last column and row of cells
    out[0, gy, gx] = 10.0
    (det,) = decode(out, (sx, sy), 0.5, 1)
    u_in, v_in = (gx + 0.5) * STRIDE - 0.5, (gy + 0.5) * STRIDE - 0.5
    x, y, w, h = det.box
    np.testing.assert_allclose([x + w / 2, y + h / 2], [(u_in + 0.5) / sx - 0.5, (v_in + 0.5) / sy - 0.5], atol=1e-6)
    assert (x + w / 2 + 0.5) * 160 / max(W, H) == pytest.approx(u_in + 0.5, rel=0.01)


def test_loss_is_finite_and_prefers_the_truth():
    S = 160
    hands = [(40.0, 50.0, 30.0, True)]
    out, heat, reg, mask = perfect_output(hands, S)
    t = [torch.from_numpy(a)[None] for a in (heat, reg, mask)]
    good, _ = detector_loss(out[None], *t)
    bad, _ = detector_loss(torch.randn(1, 5, S // STRIDE, S // STRIDE), *t)
    empty, _ = detector_loss(torch.full((1, 5, S // STRIDE, S // STRIDE), -6.0),
                             *[torch.zeros_like(x) for x in t])
    assert torch.isfinite(good) and torch.isfinite(bad) and torch.isfinite(empty)
    assert good < bad


def test_composite_labels_land_on_the_pasted_keypoints():
    """A bank whose 'hand' is white dots at its keypoints: after pasting (any scale), the
    frame is bright where the labels say."""
    S = 128
    rng = np.random.default_rng(0)
    uv = rng.uniform(30, 98, (21, 2)).astype(np.float32)
    img = np.zeros((S, S, 3), np.uint8)
    import cv2
    for u, v in uv:
        cv2.circle(img, (int(round(u)), int(round(v))), 3, (255, 255, 255), -1)
    bank = {"images": img[None], "masks": np.full((1, S, S), 255, np.uint8),
            "joints_2d_px": uv[None], "is_left": np.array([True])}
    for i in range(5):
        frame, hands = composite_scene(np.random.default_rng(i), bank, 640, 480, n_hands=1,
                                       side_range_frac=(0.3, 0.6), distractors=False, p_rect=1.0)
        assert len(hands) == 1 and hands[0]["is_left"]
        grey = frame.mean(-1)
        for u, v in hands[0]["joints_2d_px"]:
            if 2 <= u < 638 and 2 <= v < 478:
                assert grey[int(round(v)), int(round(u))] > 100
        x, y, s, s2 = hands[0]["box"]
        lo, hi = hands[0]["joints_2d_px"].min(0), hands[0]["joints_2d_px"].max(0)
        assert s == s2 == pytest.approx(max(hi - lo))


def test_match_counts_hits_misses_and_false_hands():
    from hand25d_ros.detector import Detection
    hands = [{"box": (100, 100, 50, 50), "is_left": True}]
    hit = Detection((105, 98, 48, 48), 0.9, True, 0.9)
    far = Detection((400, 400, 50, 50), 0.8, False, 0.1)
    tiny = Detection((120, 120, 10, 10), 0.7, True, 0.9)
    assert match([hit], hands)[:3] == (1, 0, 0)
    assert match([far], hands)[:3] == (0, 1, 1)
    assert match([tiny], hands)[:3] == (0, 1, 1)
    assert match([hit, hit], hands)[:3] == (1, 1, 0)


def test_weights_round_trip_and_bad_files(tmp_path):
    torch.manual_seed(0)
    m = HandDetectorNet(input_size=96)
    p = tmp_path / "det.pt"
    save_detector(m, p, {"input_size": 96}, {"score_threshold": 0.4})
    det = HandDetector(p)
    assert det.input_size == 96 and det.score_threshold == 0.4
    dets = det(np.zeros((480, 640, 3), np.uint8), max_hands=3)
    assert len(dets) <= 3
    with pytest.raises(WeightsError, match="not found"):
        load_detector(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="junk.pt"):
        load_detector(tmp_path / "junk.pt")
    from hand25d_ros.weights import save_weights
    from hand25d_ros.model import build_model
    save_weights(build_model("tiny"), tmp_path / "pose.pt", {"name": "tiny"})
    with pytest.raises(WeightsError, match="of kind 'hand25d_ros.detector'"):
        load_detector(tmp_path / "pose.pt")
    torch.save({"format": "hand25d_ros.detector", "version": 1, "arch": {"input_size": 96},
                "state_dict": {"nope": torch.zeros(1)}, "meta": {}}, tmp_path / "wrong.pt")
    with pytest.raises(WeightsError, match="does not fit"):
        load_detector(tmp_path / "wrong.pt")


@bundled
def test_bundled_detector_finds_pasted_hands_and_the_pipeline_no_hand_in_empty_frames():
    """A sanity check, not the benchmark (benchmarks/bench_localisation.py measures it): the
    detector proposes the pasted hands; on empty frames the pipeline (detector + crop head)
    reports no hand."""
    from hand25d_ros import HandPoseEstimator
    det = HandDetector()
    assert 0.0 < det.score_threshold < 1.0 and "scene_benchmark" in det.meta
    found = 0
    for i, (xy, side) in enumerate([((50, 60), 200), ((380, 200), 240), ((200, 100), 160), ((300, 20), 300)]):
        frame, _, uv = paste_sample(i, xy, side, seed=i)
        dets = det(frame, max_hands=2)
        lo, hi = uv.min(0), uv.max(0)
        found += bool(dets) and np.linalg.norm(dets[0].centre - (lo + hi) / 2) < 0.3 * max(hi - lo)
    assert found >= 3
    est = HandPoseEstimator(device="cpu")
    K = np.array([[530.0, 0, 319.5], [0, 530.0, 239.5], [0, 0, 1]])
    rng = np.random.default_rng(5)
    false_frames = 0
    for i in range(20):
        frame = np.clip(rng.normal(rng.uniform(40, 200), rng.uniform(5, 60), (480, 640, 3)), 0, 255).astype(np.uint8)
        false_frames += len(est.estimate_hands(frame, K)) > 0
    assert false_frames <= 1


@bundled
def test_pipeline_calibration_writes_a_loadable_detector(tmp_path):
    from hand25d_ros.tools.calibrate_localisation import main
    out = tmp_path / "calibrated.pt"
    assert main(["--detector", str(default_detector_path()), "--out", str(out), "--empty", "6", "--hands", "3",
                 "--bank", str(tmp_path / "bank.npz"), "--bank-size", "4", "--floor", "0.2"]) == 0
    det = HandDetector(out)
    cal = det.meta["pipeline_calibration"]
    assert det.score_threshold == cal["score_threshold"] >= 0.2
    assert 0.0 <= cal["recall"] <= 1.0 and cal["empty_scenes"] == 6
    # which pose weights it was calibrated with, by name and digest: no path of this machine
    from hand25d_ros.tools.calibrate_localisation import file_sha256
    from hand25d_ros.weights import default_weights_path
    assert cal["pose_weights"] == default_weights_path().name
    assert cal["pose_weights_sha256"] == file_sha256(default_weights_path())
    ref, _ = load_detector(default_detector_path())
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), det.model.state_dict().values()))


@bundled
def test_detector_training_fine_tunes_the_bundled_detector_and_resumes(tmp_path):
    """A smoke run of hand25d-train-detector on a few cutouts: --init starts from the bundled
    weights (they move, the input size is theirs), a re-run resumes from the checkpoint, and a
    bad --init is a message naming the file."""
    from hand25d_ros.detector_train import main
    out = tmp_path / "run"
    args = ["--out", str(out), "--minutes", "0.03", "--cutouts", "6", "--backgrounds", "4", "--batch-size", "2",
            "--workers", "0", "--render-workers", "1", "--threads", "1", "--val-scenes", "1", "--val-cutouts", "3",
            "--calibration-scenes", "4", "--bank", str(tmp_path / "bank.npz"),
            "--val-bank", str(tmp_path / "val_bank.npz"), "--init", str(default_detector_path())]
    assert main(args) == 0
    det = HandDetector(out / "detector.pt")
    ref, _ = load_detector(default_detector_path())
    assert det.input_size == ref.input_size
    assert not all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), det.model.state_dict().values()))
    recipe = det.meta["recipe"]
    assert recipe["init"] == str(default_detector_path()) and recipe["steps"] >= 1
    assert 0.2 <= det.score_threshold <= 0.9 and set(det.meta["scene_benchmark"]) == {"0", "1", "2"}
    first_steps = recipe["steps"]
    assert main(args[:3] + ["0.06"] + args[4:]) == 0
    assert HandDetector(out / "detector.pt").meta["recipe"]["steps"] > first_steps
    assert not (out / "detector.uncalibrated.pt").exists()      # calibrated aside, written whole
    steps = [int(r[0]) for r in csv.reader(open(out / "log.csv")) if r[0].isdigit()]
    assert steps == sorted(set(steps))                            # a resume logs no step twice
    # other settings than the run's would train its rest on another recipe: refused
    with pytest.raises(SystemExit, match=r"other settings \(--lr: 0.002 -> 0.5\)"):
        main(args[:3] + ["0.09"] + args[4:] + ["--lr", "0.5"])
    (out / "last.pt").write_bytes((out / "last.pt").read_bytes()[:500])
    with pytest.raises(SystemExit, match=r"cannot resume from .*last.pt: unreadable or corrupt"):
        main(args[:3] + ["0.09"] + args[4:])
    # a damaged cutout bank is rendered again, not a zipfile traceback
    bank = tmp_path / "bank.npz"
    bank.write_bytes(bank.read_bytes()[:300])
    from hand25d_ros.data.composites import render_cutouts
    assert len(render_cutouts(bank, 6, seed=7000, workers=1)["images"]) == 6
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(SystemExit, match="junk.pt"):
        main(["--out", str(tmp_path / "run2"), "--init", str(tmp_path / "junk.pt"), "--cutouts", "6",
              "--bank", str(tmp_path / "bank.npz"), "--render-workers", "1", "--backgrounds", "4"])


def test_a_run_started_from_another_size_of_detector_resumes(tmp_path):
    """--init gives the run its file's input size; the same command again (no --input-size)
    must resume it, where it compared that size with the option's default and refused."""
    from hand25d_ros.detector_train import build_parser, resume_state, run_settings
    args = build_parser().parse_args(["--out", str(tmp_path), "--init", "some_192px_detector.pt"])
    started = run_settings(args) | {"input_size": 192}
    torch.save({"model": {}, "opt": {}, "step": 5, "wall_s": 1.0, "epoch": 0, "input_size": 192,
                "settings": started}, tmp_path / "last.pt")
    assert resume_state(tmp_path / "last.pt", args)["step"] == 5
    explicit = build_parser().parse_args(["--out", str(tmp_path), "--input-size", "160"])
    with pytest.raises(SystemExit, match=r"other settings \(--input-size: 192 -> 160\)"):
        resume_state(tmp_path / "last.pt", explicit)


def test_ctrl_c_while_rendering_the_cutout_bank_says_how_to_go_on_without_worker_tracebacks(tmp_path):
    """Ctrl-C reaches the whole process group, render workers included; the run has no
    checkpoint yet, so the message must not point at one."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hand25d_ros.detector_train", "--out", str(out), "--cutouts", "20000",
         "--render-workers", "2", "--bank", str(tmp_path / "bank.npz"), "--val-bank", str(tmp_path / "val.npz")],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, start_new_session=True)
    err = []
    reader = threading.Thread(target=lambda: err.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    end = time.monotonic() + 120
    while "rendering cutouts" not in "".join(err) and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    assert proc.poll() is None, "the bank was rendered before it could be interrupted: " + "".join(err)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)
    reader.join(timeout=30)
    text = "".join(err)
    assert proc.returncode == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert not (out / "last.pt").exists() and "last.pt" not in text, text
    assert "interrupted before its first checkpoint" in text, text


def test_an_explicit_input_size_with_init_is_the_runs_and_resumes(tmp_path):
    """--init gave the run its file's input size even where --input-size named another,
    without a word, and the same command then refused to resume (--input-size: 64 -> 96)."""
    from hand25d_ros.detector_train import main
    init = tmp_path / "init.pt"
    save_detector(HandDetectorNet(input_size=64), init, {"input_size": 64}, {"score_threshold": 0.3})
    out = tmp_path / "run"
    args = ["--out", str(out), "--init", str(init), "--input-size", "96", "--minutes", "0.005", "--cutouts", "2",
            "--backgrounds", "2", "--batch-size", "2", "--workers", "0", "--render-workers", "1", "--threads", "1",
            "--val-scenes", "1", "--val-cutouts", "2", "--calibration-scenes", "2",
            "--bank", str(tmp_path / "bank.npz"), "--val-bank", str(tmp_path / "val_bank.npz")]
    assert main(args) == 0
    assert HandDetector(out / "detector.pt").input_size == 96
    assert main(args[:7] + ["0.01"] + args[8:]) == 0
    assert HandDetector(out / "detector.pt").input_size == 96


def test_a_cutout_bank_of_another_seed_is_rendered_again(tmp_path):
    """A bank holds no more than its count and size told it apart: --bank-seed 8000 trained on
    the default path's seed-7000 cutouts while the recipe said 8000."""
    from hand25d_ros.data.composites import render_cutouts
    first = render_cutouts(tmp_path / "bank.npz", 2, seed=1, workers=1)
    other = render_cutouts(tmp_path / "bank.npz", 2, seed=2, workers=1)
    fresh = render_cutouts(tmp_path / "fresh.npz", 2, seed=2, workers=1)
    assert np.array_equal(other["images"], fresh["images"]) and not np.array_equal(first["images"], other["images"])


def test_a_cutout_bank_of_another_render_version_is_rendered_again(tmp_path, capsys):
    """The bank recorded its seed and size but not the renderer: a bank of a changed renderer
    was taken as if this code had rendered it."""
    from hand25d_ros.data import synthetic
    from hand25d_ros.data.composites import BANK_ARRAYS, render_cutouts
    path = tmp_path / "bank.npz"
    made = render_cutouts(path, 1, seed=1, size_px=32, workers=1)
    with np.load(path) as z:
        assert int(z["render_version"]) == synthetic.RENDER_VERSION
    stale = {k: np.zeros_like(made[k]) for k in BANK_ARRAYS}
    np.savez(path, **stale, seed=np.int64(1), render_version=np.int64(synthetic.RENDER_VERSION + 1))
    again = render_cutouts(path, 1, seed=1, size_px=32, workers=1)
    assert np.array_equal(again["images"], made["images"])
    assert "renderer version" in capsys.readouterr().out
    with np.load(path) as z:
        assert int(z["render_version"]) == synthetic.RENDER_VERSION
    # a bank written before the version was recorded holds what version 2 renders (version 2
    # changed the visible labels only, which a bank does not keep): taken as it is
    np.savez(path, **stale, seed=np.int64(1))
    assert not render_cutouts(path, 1, seed=1, size_px=32, workers=1)["images"].any()


def test_a_cutout_bank_stopped_while_written_leaves_no_part_file(tmp_path, monkeypatch, savez_then_interrupt):
    """Ctrl-C while a bank was written left its part file (bank.npz.tmp.npz, as large as the
    bank) beside it for good, under one name that two runs sharing the bank both wrote."""
    from hand25d_ros.data.composites import render_cutouts
    real_savez = savez_then_interrupt
    with pytest.raises(KeyboardInterrupt):
        render_cutouts(tmp_path / "bank.npz", 1, seed=1, size_px=32, workers=1)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(np, "savez", real_savez)
    assert len(render_cutouts(tmp_path / "bank.npz", 1, seed=1, size_px=32, workers=1)["images"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["bank.npz"]


def test_a_pose_training_run_folder_is_refused_before_the_bank_renders(tmp_path):
    """hand25d-train's last.pt has every key a detector checkpoint has; resumed as one, its
    network failed to load with a traceback only after the cutout bank had rendered."""
    from hand25d_ros.detector_train import main
    from hand25d_ros.model import build_model
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"model": build_model("tiny").state_dict(), "opt": {}, "scaler": {}, "step": 3, "samples_seen": 12,
                "wall_s": 1.0, "epoch": 0, "torch_rng": torch.get_rng_state(), "config": {}}, out / "last.pt")
    with pytest.raises(SystemExit, match=r"cannot resume from .*last.pt: it does not hold a hand detector's network"):
        main(["--out", str(out), "--cutouts", "2", "--render-workers", "1", "--bank", str(tmp_path / "bank.npz")])
    assert not (tmp_path / "bank.npz").exists()


def test_pipeline_calibration_bad_input_is_a_message(tmp_path, capsys):
    """A mistyped --detector was a WeightsError traceback, --empty 0 an IndexError after
    loading both networks."""
    from hand25d_ros.tools.calibrate_localisation import main
    with pytest.raises(SystemExit, match=r"^calibrate_localisation: weights file not found: .*nope.pt$"):
        main(["--detector", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "cal.pt")])
    with pytest.raises(SystemExit, match=r"--out .* is a folder; give the detector file to write"):
        main(["--detector", str(default_detector_path()), "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as exc:
        main(["--detector", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "cal.pt"), "--empty", "0"])
    assert exc.value.code == 2 and "argument --empty: expected a whole number >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "cal.pt").exists()


@pytest.mark.parametrize("option, value", [("--checkpoint-every", "0"), ("--val-scenes", "0"), ("--input-size", "100"),
                                           ("--workers", "-1"), ("--lr", "nan"), ("--minutes", "0")])
def test_detector_training_options_are_checked_before_any_work(tmp_path, capsys, option, value):
    """Each of these failed with a traceback from deep inside, after the cutout bank had
    rendered or (--val-scenes 0) after the whole training, before detector.pt was written."""
    from hand25d_ros.detector_train import main
    args = ["--out", str(tmp_path / "run"), "--minutes", "0.001", "--cutouts", "2", "--backgrounds", "2",
            "--batch-size", "2", "--workers", "0", "--render-workers", "1", "--threads", "1", "--val-scenes", "1",
            "--val-cutouts", "2", "--calibration-scenes", "2", "--bank", str(tmp_path / "bank.npz"),
            "--val-bank", str(tmp_path / "val_bank.npz")]
    with pytest.raises(SystemExit) as exc:
        main(args + [option, value])
    assert exc.value.code == 2 and f"argument {option}: expected" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "bank.npz").exists()


def test_a_finder_that_finds_nothing_has_no_precision_or_left_right_figure(tmp_path):
    """Precision over no detection and left/right over no found hand are undefined; they read
    0.0, as if measured (an untrained detector's run printed 'precision': 0.0 beside tp 0, fp 0)."""
    from hand25d_ros.data.composites import render_cutouts
    from hand25d_ros.detector_train import scene_benchmark
    bank = render_cutouts(tmp_path / "bank.npz", 2, seed=7000, workers=1)
    rows = scene_benchmark(lambda image, max_hands: [], bank, n_per_count=2, counts=(0, 1))
    assert rows[1]["tp"] == rows[1]["fp"] == 0 and rows[1]["recall"] == 0.0
    assert rows[1]["precision"] is None and rows[1]["left_right_accuracy"] is None
    assert rows[0]["precision"] is None and rows[0]["frames_with_false_hand"] == 0.0


def test_a_killed_bank_writers_part_file_is_removed_by_the_next_render(tmp_path):
    """A bank render SIGKILLed while writing left .bank.<pid>.tmp.npz (as large as the bank)
    beside it for good; the next render of that bank removes it once its writer is gone, and
    leaves a live writer's and other files' part files alone."""
    import os
    import time

    from hand25d_ros import _files
    from hand25d_ros.data.composites import render_cutouts

    def part(name, age_s):
        p = tmp_path / name
        p.write_bytes(b"part")
        os.utime(p, (time.time() - age_s, time.time() - age_s))
        return p

    dead = 2 ** 22 + 12345                      # above any pid this machine hands out
    gone = part(f".bank.{dead}.tmp.npz", _files.PART_GRACE_S + 5)
    kept = [part(f".bank.{os.getppid()}.tmp.npz", _files.PART_GRACE_S + 5),  # a live writer's
            part(f".other.{dead}.tmp.npz", _files.PART_GRACE_S + 5)]         # another file's
    render_cutouts(tmp_path / "bank.npz", 1, seed=1, size_px=32, workers=1)
    assert not gone.exists()
    assert all(p.exists() for p in kept)

"""The image probes of benchmarks/domain_probes.py and the measure of benchmarks/render_vs_photo.py;
how domain_probes.py and bench_localisation.py take an annotated folder with unlabelled keypoints."""
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from render_vs_photo import hand_mask  # noqa: E402
from domain_probes import probe  # noqa: E402


@pytest.fixture()
def frame():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    uv = np.stack([np.linspace(100, 150, 21), np.linspace(120, 60, 21)], -1).astype(np.float32)
    K = np.array([[300.0, 0, 128], [0, 300, 128], [0, 0, 1]])
    return image, K, uv


def test_zoom_out_keeps_the_content_under_the_shifted_keypoints(frame):
    image, K, uv = frame
    out, K2, off = probe("zoom_out", image, K, uv)
    assert off > 0 and out.shape[0] == 256 + 2 * off
    assert np.array_equal(out[off:off + 256, off:off + 256], image)
    np.testing.assert_allclose(K2[:2, 2], K[:2, 2] + off)


def test_hand_and_background_blurs_touch_only_their_part(frame):
    image, K, uv = frame
    hand = hand_mask(uv, 256)
    far = ~cv2.dilate(hand.astype(np.uint8), np.ones((81, 81), np.uint8)).astype(bool)
    blur_hand = probe("blur_hand", image, K, uv)[0].astype(int)
    blur_bg = probe("blur_background", image, K, uv)[0].astype(int)
    assert np.abs(blur_hand - image)[far].max() <= 1
    assert np.abs(blur_hand - image)[hand].mean() > 20
    assert np.abs(blur_bg - image)[hand].mean() < 2
    assert np.abs(blur_bg - image)[far].mean() > 20
    with pytest.raises(ValueError, match="unknown probe"):
        probe("sharpen", image, K, uv)


def test_hue_probe_turns_red_toward_yellow(frame):
    image, K, uv = frame
    red = np.zeros_like(image)
    red[:] = (200, 60, 40)
    out = probe("hue_plus10", red, K, uv)[0]
    assert out.shape == red.shape and out[0, 0, 1] > red[0, 0, 1] + 10 and abs(int(out[0, 0, 0]) - 200) <= 2


def test_saturation_and_brightness_probes_scale_their_channel_only(frame):
    image, K, uv = frame
    skin = np.zeros_like(image)
    skin[:] = (180, 120, 100)
    hsv = cv2.cvtColor(skin, cv2.COLOR_RGB2HSV).astype(int)[0, 0]
    more = cv2.cvtColor(probe("saturation_x1.25", skin, K, uv)[0], cv2.COLOR_RGB2HSV).astype(int)[0, 0]
    less = cv2.cvtColor(probe("saturation_x0.8", skin, K, uv)[0], cv2.COLOR_RGB2HSV).astype(int)[0, 0]
    bright = cv2.cvtColor(probe("brightness_x1.2", skin, K, uv)[0], cv2.COLOR_RGB2HSV).astype(int)[0, 0]
    assert abs(more[1] - 1.25 * hsv[1]) <= 2 and abs(less[1] - 0.8 * hsv[1]) <= 2
    assert abs(more[2] - hsv[2]) <= 1 and abs(less[2] - hsv[2]) <= 1
    assert abs(bright[2] - 1.2 * hsv[2]) <= 2 and abs(bright[1] - hsv[1]) <= 3
    assert abs(more[0] - hsv[0]) <= 1 and abs(bright[0] - hsv[0]) <= 1
    # white stays white: a scaled value saturates at 255 instead of wrapping round
    white = np.full_like(image, 250)
    assert probe("brightness_x1.2", white, K, uv)[0].min() == 255


@pytest.fixture()
def partly_labelled(tmp_path):
    """The bundled sample frames as an annotated folder; all but the last leave the thumb's
    and the little finger's tips unlabelled (null), as the folder format allows."""
    import json
    import shutil
    samples_dir = Path(__file__).resolve().parents[1] / "hand25d_ros" / "samples"
    recs = json.loads((samples_dir / "annotations.json").read_text())["samples"]
    for rec in recs:
        shutil.copy(samples_dir / rec["image"], tmp_path)
    for rec in recs[:-1]:
        for k in (4, 20):
            rec["joints_3d_mm"][k] = None
            rec["joints_2d_px"][k] = None
    (tmp_path / "annotations.json").write_text(json.dumps({"samples": recs}))
    return tmp_path, recs


def test_domain_probes_refuse_a_folder_with_unlabelled_keypoints(partly_labelled):
    from domain_probes import main
    folder, recs = partly_labelled
    with pytest.raises(SystemExit, match=rf"{len(recs) - 1} of {len(recs)} samples leave keypoints unlabelled "
                                         rf"\(null\), e\.g\. "
                                         rf".*{recs[0]['image']} \(keypoints \[4, 20\]\); the probes need all 21"):
        main([str(folder), "--probes", "none"])


def test_bench_localisation_scores_the_labelled_keypoints_only(partly_labelled):
    from bench_localisation import real_pasted

    from hand25d_ros import HandPoseEstimator
    folder, recs = partly_labelled
    # the true box is made of the labelled keypoints: one of NaN matched no hand found
    est = HandPoseEstimator(device="cpu", tta="none")
    n, found, rows = real_pasted(est, folder, seed=2026, limit=len(recs) - 1)
    assert n == len(recs) - 1 and found >= 1, "no partly labelled hand was scored"
    for column, figures in rows.items():
        assert figures, column
        for key in ("mean_error_2d_px", "pa_mpjpe_mm", "mpjpe_mm"):
            assert np.isfinite(figures[key]) and 0 < figures[key] < 100, (column, key, figures[key])


def test_bench_localisation_takes_2d_only_samples(partly_labelled):
    """A sample without joints_3d_mm (the folder format allows it) was an IndexError in the
    benchmark; it counts for the 2D figures, as in hand25d-eval."""
    import json

    from bench_localisation import real_pasted

    from hand25d_ros import HandPoseEstimator
    folder, recs = partly_labelled
    for rec in recs:
        rec["joints_3d_mm"] = None
    (folder / "annotations.json").write_text(json.dumps({"samples": recs}))
    n, found, rows = real_pasted(HandPoseEstimator(device="cpu", tta="none"), folder, seed=2026, limit=len(recs) - 1)
    assert n == len(recs) - 1 and found >= 1
    for column, figures in rows.items():
        assert figures["num_with_3d"] == 0 and 0 < figures["mean_error_2d_px"] < 100, (column, figures)

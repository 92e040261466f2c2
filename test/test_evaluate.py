"""hand25d-eval on a tiny annotated folder written by the test (real_val_snap format)."""
import json

import cv2
import numpy as np
import pytest

from hand25d_ros.data.public_datasets import AnnotatedFolderDataset, DatasetError
from hand25d_ros.evaluate import main


def write_folder(root, n=3):
    root.mkdir()
    (root / "images").mkdir()
    samples = []
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(root / "images" / f"{i}.png"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        P = rng.normal(0, 30, (21, 3)) + [0, 0, 400]
        P[5] = P[0] + [0, -85, 0]
        K = np.array([[300.0, 0, 32], [0, 300, 32], [0, 0, 1]])
        uv = (P @ K.T)[:, :2] / P[:, 2:]
        samples.append({"image": f"images/{i}.png", "K": K.tolist(), "joints_3d_mm": P.tolist(),
                        "joints_2d_px": uv.tolist()})
    (root / "annotations.json").write_text(json.dumps({"samples": samples}))
    return root


def test_eval_cli_writes_report_and_plot(tmp_path, untrained_weights, capsys):
    root = write_folder(tmp_path / "data")
    out = tmp_path / "out"
    assert main([str(root), "--weights", str(untrained_weights), "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["summary"]["num_samples"] == 3 and rep["summary"]["mean_error_2d_px"] > 0
    assert (out / "pck.png").exists()
    assert rep["tta"] == "flip" and rep["crop"] == "image" and rep["hand_size"] == "true"
    out = capsys.readouterr().out
    assert "2D mean keypoint error" in out and "2D median keypoint error" in out


def test_eval_cli_runs_one_pass_with_tta_none(tmp_path, untrained_weights):
    root = write_folder(tmp_path / "data")
    out = tmp_path / "out"
    assert main([str(root), "--weights", str(untrained_weights), "--out", str(out), "--tta", "none"]) == 0
    assert json.loads((out / "report.json").read_text())["tta"] == "none"


def test_eval_with_the_true_hand_side_tells_the_estimator_each_samples_hand(tmp_path, untrained_weights):
    """--hand-side true: each sample is estimated as a user who knows that hand would (the
    estimator's hand_side set to it), and the estimator keeps its own setting afterwards."""
    from hand25d_ros.estimator import HandPoseEstimator
    from hand25d_ros.evaluate import evaluate_folder, true_hand
    root = write_folder(tmp_path / "data", 4)
    est = HandPoseEstimator(weights=untrained_weights, device="cpu", tta="flip_rotate")
    rep = evaluate_folder(est, root, progress=False, hand_side="true")
    assert est.hand_side == "auto"
    ds = AnnotatedFolderDataset(root)
    for i, per in enumerate(rep["per_sample"]):
        s = ds[i]
        is_left, size_m = true_hand(s)
        est.hand_side = "left" if is_left else "right"
        pose = est.estimate(s["image"], s["K"], hand_size_m=size_m, roi="image")
        err = np.linalg.norm(pose.keypoints_2d - np.asarray(s["joints_2d_px"]), axis=-1).mean()
        assert per["error_2d_px"] == pytest.approx(err, rel=1e-6)
    with pytest.raises(ValueError, match="hand_side must be None, 'true' or one of"):
        evaluate_folder(est, root, progress=False, hand_side="both")
    out = tmp_path / "out"
    assert main([str(root), "--weights", str(untrained_weights), "--out", str(out), "--hand-side", "true"]) == 0
    assert json.loads((out / "report.json").read_text())["hand_side"] == "true"


def test_eval_as_a_sequence_goes_through_the_tracker(tmp_path):
    """--sequence: the samples in order through HandPoseEstimator.track (the whole image as
    the box, 30 frames/s, no smoothing), the same answers as that loop by hand; the estimator's
    tracker is left reset."""
    from hand25d_ros.crop import whole_image_box
    from hand25d_ros.estimator import HandPoseEstimator
    from hand25d_ros.evaluate import evaluate_folder, true_hand
    root = write_folder(tmp_path / "data", 6)
    est = HandPoseEstimator(device="cpu", tta="flip")     # bundled weights: valid poses on these frames
    rep = evaluate_folder(est, root, progress=False, sequence=True)
    assert est._tracker is None
    ds = AnnotatedFolderDataset(root)
    errs, ids = [], set()
    for i in range(len(ds)):
        s = ds[i]
        _, size_m = true_hand(s)
        (hand,) = est.track(s["image"], s["K"], i / 30, hand_size_m=size_m, smoothing=False,
                            rois=[whole_image_box(*s["image"].shape[:2])])
        errs.append(np.linalg.norm(hand.pose.keypoints_2d - np.asarray(s["joints_2d_px"]), axis=-1).mean())
        assert [t.track_id for t in est._tracker.tracks] == [hand.track_id]
        ids.add(hand.track_id)
    assert len(ids) == 1                                          # one hand, followed throughout
    np.testing.assert_allclose([p["error_2d_px"] for p in rep["per_sample"]], errs, rtol=1e-6)
    out = tmp_path / "out"
    assert main([str(root), "--out", str(out), "--sequence", "--limit", "2"]) == 0
    assert json.loads((out / "report.json").read_text())["sequence"] is True


def test_bad_folders_name_the_problem(tmp_path, untrained_weights):
    with pytest.raises(DatasetError, match="not found"):
        AnnotatedFolderDataset(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="annotations.json"):
        AnnotatedFolderDataset(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "annotations.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        AnnotatedFolderDataset(bad)
    (bad / "annotations.json").write_text(json.dumps({"samples": [{"image": "x.png", "K": [1, 2]}]}))
    with pytest.raises(DatasetError, match="sample 0 is malformed"):
        AnnotatedFolderDataset(bad)
    root = write_folder(tmp_path / "d2", 1)
    (root / "images" / "0.png").unlink()
    with pytest.raises(DatasetError, match="cannot read image"):
        AnnotatedFolderDataset(root)[0]
    with pytest.raises(SystemExit, match="hand25d-eval: .*annotations.json"):
        main([str(tmp_path / "empty"), "--weights", str(untrained_weights)])


def test_a_bad_device_is_one_line(tmp_path, untrained_weights):
    """--device cudax (and --device cuda on a machine without CUDA) ended in a traceback from the
    estimator's constructor; every other bad argument is one hand25d-eval line."""
    import torch
    root = write_folder(tmp_path / "d", 1)
    with pytest.raises(SystemExit, match=r"^hand25d-eval: device must be 'auto', 'cpu' or 'cuda\[:N\]', got 'cudax'"):
        main([str(root), "--weights", str(untrained_weights), "--device", "cudax"])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match=r"^hand25d-eval: device 'cuda' requested but CUDA is not available"):
            main([str(root), "--weights", str(untrained_weights), "--device", "cuda"])


def test_handedness_summary_counts_right_wrong_and_unanswered():
    from hand25d_ros.evaluate import handedness_summary
    s = handedness_summary([10.0, 20.0, 50.0, 99.0], [True, True, False, True], [True, True, True, None])
    assert s["handedness_accuracy"] == pytest.approx(2 / 3)
    assert s["mean_error_2d_px_hand_right"] == pytest.approx(15.0)
    assert s["mean_error_2d_px_hand_wrong"] == pytest.approx(50.0)
    assert np.isnan(handedness_summary([1.0], [True], [True])["mean_error_2d_px_hand_wrong"])
    assert handedness_summary([1.0, 2.0], [True, False], [None, None]) == {}


def test_eval_reports_handedness_from_the_flag_or_the_true_skeleton(tmp_path):
    from hand25d_ros import keypoints as kp
    root = write_folder(tmp_path / "data")
    ann = json.loads((root / "annotations.json").read_text())
    chirality = [bool(kp.is_left_hand(np.array(s["joints_3d_mm"]))) for s in ann["samples"]]
    ann["samples"][0]["is_left"] = not chirality[0]  # an explicit flag wins over the geometry
    (root / "annotations.json").write_text(json.dumps(ann))
    out = tmp_path / "out"
    assert main([str(root), "--out", str(out), "--tta", "none"]) == 0  # bundled weights: a crop head
    rep = json.loads((out / "report.json").read_text())
    assert [p["is_left"] for p in rep["per_sample"]] == [not chirality[0]] + chirality[1:]
    pred = [p["pred_is_left"] for p in rep["per_sample"]]
    assert all(isinstance(p, bool) for p in pred)
    truth = [p["is_left"] for p in rep["per_sample"]]
    assert rep["summary"]["handedness_accuracy"] == pytest.approx(np.mean(np.equal(pred, truth)))
    # the view split comes from the true skeletons and agrees with the per-sample figures
    cos = np.array([p["palm_toward_camera"] for p in rep["per_sample"]])
    P = np.array([s["joints_3d_mm"] for s in ann["samples"]])
    np.testing.assert_allclose(cos, kp.palm_toward_camera(P))
    assert rep["summary"]["palm_view_fraction"] == pytest.approx(np.mean(cos > 0))
    err = np.array([p["error_2d_px"] for p in rep["per_sample"]])
    # the mirror split comes from the estimated skeletons, against the truth used above
    mirrored = np.array([p["pred_skeleton_is_left"] != p["is_left"] for p in rep["per_sample"]])
    assert rep["summary"]["mirrored_skeleton_fraction"] == pytest.approx(mirrored.mean())
    for view, m in (("palm_view", cos > 0), ("back_view", cos <= 0)):
        if m.any():
            assert rep["summary"][f"mean_error_2d_px_{view}"] == pytest.approx(err[m].mean())
            assert rep["summary"][f"handedness_accuracy_{view}"] == pytest.approx(
                np.mean(np.equal(pred, truth)[m]))


def test_view_summary_splits_palm_and_back_views():
    from hand25d_ros.evaluate import view_summary
    s = view_summary([10.0, 20.0, 30.0, 40.0], [True, True, False, False], [True, False, None, True],
                     [0.9, 0.2, -0.5, -0.1])
    assert s["palm_view_fraction"] == 0.5
    assert s["mean_error_2d_px_palm_view"] == 15.0 and s["mean_error_2d_px_back_view"] == 35.0
    assert s["handedness_accuracy_palm_view"] == 0.5
    assert s["handedness_accuracy_back_view"] == 0.0          # the one answered back view is wrong
    only_palm = view_summary([1.0], [True], [None], [0.3])
    assert only_palm == {"palm_view_fraction": 1.0, "mean_error_2d_px_palm_view": 1.0}
    assert view_summary([], [], [], []) == {}


def test_mirror_summary_tells_a_thumb_side_mirror_from_a_depth_flip():
    from hand25d_ros import keypoints as kp
    from hand25d_ros.evaluate import mirror_summary
    from importlib.resources import files
    ann = json.loads((files("hand25d_ros") / "samples" / "annotations.json").read_text())
    P = np.array(ann["samples"][0]["joints_3d_mm"])
    left, cos = bool(kp.is_left_hand(P)), float(kp.palm_toward_camera(P))
    image_mirror = P * [-1, 1, 1]                      # the picture flipped left-right
    z0 = P[9, 2]
    depth_flip = P * [1, 1, -1] + [0, 0, 2 * z0]       # the same 2D outline, seen from behind
    for Q in (image_mirror, depth_flip):
        assert bool(kp.is_left_hand(Q)) != left
    assert (kp.palm_toward_camera(image_mirror) > 0) == (cos > 0)
    assert (kp.palm_toward_camera(depth_flip) > 0) != (cos > 0)
    preds = np.stack([P, image_mirror, depth_flip, image_mirror])
    s = mirror_summary([5.0, 40.0, 10.0, 50.0], [left] * 4, kp.is_left_hand(preds), [cos] * 4,
                       kp.palm_toward_camera(preds))
    assert s["mirrored_skeleton_fraction"] == 0.75
    assert s["mirrored_same_side_fraction"] == pytest.approx(2 / 3)
    assert s["mean_error_2d_px_mirrored"] == pytest.approx(100 / 3)
    assert mirror_summary([5.0], [left], [left], [cos], [cos]) == {"mirrored_skeleton_fraction": 0.0}
    assert mirror_summary([], [], [], [], []) == {}


def strict_json(path):
    """report.json as a strict reader (JavaScript's JSON.parse) takes it: no NaN or Infinity."""
    def refuse(name):
        raise AssertionError(f"{path} holds {name}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def drop(root, key, indices):
    """Remove ``key`` from the given samples of root/annotations.json."""
    ann = json.loads((root / "annotations.json").read_text())
    for i in indices:
        del ann["samples"][i][key]
    (root / "annotations.json").write_text(json.dumps(ann))


def test_a_2d_only_sample_counts_for_the_2d_figures_and_not_the_3d_ones(tmp_path, capsys):
    """A sample without joints_3d_mm (the loader takes it) is in the 2D figures; the 3D ones
    are those of the samples with 3D alone; --hand-size true gives it the default size and
    the report says how many samples each kind of figure covers."""
    full = write_folder(tmp_path / "full", 3)
    only3d = write_folder(tmp_path / "only3d", 3)
    drop(full, "joints_3d_mm", [1])
    ann = json.loads((only3d / "annotations.json").read_text())
    ann["samples"] = [ann["samples"][0], ann["samples"][2]]
    (only3d / "annotations.json").write_text(json.dumps(ann))
    for hand_size in ("true", "default"):
        out, ref = tmp_path / f"out_{hand_size}", tmp_path / f"ref_{hand_size}"
        assert main([str(full), "--out", str(out), "--tta", "none", "--hand-size", hand_size]) == 0
        assert main([str(only3d), "--out", str(ref), "--tta", "none", "--hand-size", hand_size]) == 0
        rep, r3 = strict_json(out / "report.json"), strict_json(ref / "report.json")
        s = rep["summary"]
        assert s["num_samples"] == 3 and s["num_with_3d"] == 2
        assert s["num_valid_with_3d"] == r3["summary"]["num_valid_with_3d"]
        assert s["num_default_hand_size"] == (1 if hand_size == "true" else 3)
        errs = [p["error_2d_px"] for p in rep["per_sample"]]
        assert s["mean_error_2d_px"] == pytest.approx(np.mean(errs))
        for k in ("pa_mpjpe_mm", "mpjpe_mm", "absolute_error_mm", "root_depth_error_mm", "auc_0_50_all"):
            assert s[k] == pytest.approx(r3["summary"][k]), k
        assert [p["has_3d"] for p in rep["per_sample"]] == [True, False, True]
        assert rep["per_sample"][1]["palm_toward_camera"] is None
        assert rep["per_sample"][1]["is_left"] is None          # neither is_left nor 3D to tell it
    assert "frames estimated with the default hand size | 1 |" in capsys.readouterr().out


def test_a_folder_without_3d_gives_the_2d_figures_and_null_3d_ones(tmp_path, capsys):
    root = write_folder(tmp_path / "data", 2)
    drop(root, "joints_3d_mm", [0, 1])
    out = tmp_path / "out"
    (out).mkdir()
    (out / "pck.png").write_bytes(b"an earlier run's plot")
    assert main([str(root), "--out", str(out), "--tta", "none"]) == 0
    s = strict_json(out / "report.json")["summary"]
    assert s["num_samples"] == 2 and s["num_with_3d"] == 0 and s["mean_error_2d_px"] > 0
    for k in ("pa_mpjpe_mm", "mpjpe_mm", "absolute_error_mm", "root_depth_error_mm", "auc_20_50",
              "auc_0_50", "auc_20_50_all", "auc_0_50_all"):
        assert s[k] is None, k
    assert "palm_view_fraction" not in s and "handedness_accuracy" not in s   # no true hand, no view
    assert not (out / "pck.png").exists()        # nothing to plot; the stale one would mislead
    table = capsys.readouterr().out
    assert "| PA-MPJPE (similarity aligned) | n/a (0 frames) |" in table and "nan" not in table


def test_a_3d_only_sample_is_measured_against_its_projection(tmp_path):
    """No joints_2d_px: the loader's 2D truth is the 3D pose's projection, the same figures
    as when the projection is written out."""
    with_2d = write_folder(tmp_path / "a", 2)
    without = write_folder(tmp_path / "b", 2)
    drop(without, "joints_2d_px", [0, 1])
    reps = []
    for root in (with_2d, without):
        out = tmp_path / f"out_{root.name}"
        assert main([str(root), "--out", str(out), "--tta", "none", "--crop", "gt"]) == 0
        reps.append(strict_json(out / "report.json"))
    np.testing.assert_allclose([p["error_2d_px"] for p in reps[1]["per_sample"]],
                               [p["error_2d_px"] for p in reps[0]["per_sample"]], rtol=1e-6)
    assert reps[1]["summary"]["num_with_3d"] == 2


def test_the_true_hand_side_needs_a_hand_for_every_sample(tmp_path, capsys):
    """--hand-side true cannot tell the estimator a hand nothing gives: refused up front,
    naming the file and the sample; an is_left flag is enough."""
    from hand25d_ros.evaluate import true_hand
    root = write_folder(tmp_path / "data", 2)
    drop(root, "joints_3d_mm", [1])
    ds = AnnotatedFolderDataset(root)
    assert true_hand(ds.annotation(1)) == (None, None)
    with pytest.raises(SystemExit, match=r"annotations.json: hand_side 'true' needs .* sample\(s\) \[1\]"):
        main([str(root), "--tta", "none", "--hand-side", "true"])
    ann = json.loads((root / "annotations.json").read_text())
    ann["samples"][1]["is_left"] = True
    (root / "annotations.json").write_text(json.dumps(ann))
    assert true_hand(AnnotatedFolderDataset(root).annotation(1)) == (True, None)
    out = tmp_path / "out"
    assert main([str(root), "--out", str(out), "--tta", "none", "--hand-side", "true"]) == 0
    assert strict_json(out / "report.json")["per_sample"][1]["is_left"] is True


def test_report_json_writes_null_for_a_figure_over_no_sample():
    """NaN (a figure over no sample) is not JSON: null instead; inf would be a bug, refused."""
    from hand25d_ros.evaluate import report_json
    text = report_json({"summary": {"mean_error_2d_px_hand_wrong": float("nan"), "n": 1},
                        "per_sample": [{"x": [1.5, float("nan")]}]})
    assert json.loads(text, parse_constant=pytest.fail) == {
        "summary": {"mean_error_2d_px_hand_wrong": None, "n": 1}, "per_sample": [{"x": [1.5, None]}]}
    with pytest.raises(ValueError, match="JSON"):
        report_json({"a": float("inf")})


def test_the_table_prints_no_nan():
    from hand25d_ros.evaluate import format_table
    table = format_table({"mean_error_2d_px_hand_right": 3.0, "mean_error_2d_px_hand_wrong": float("nan"),
                          "pa_mpjpe_mm": None})
    assert "| 2D mean error, hand named wrong | n/a (0 frames) |" in table
    assert "| PA-MPJPE (similarity aligned) | n/a (0 frames) |" in table
    assert "| 2D mean error, hand named right | 3.000 px |" in table and "nan" not in table


def test_limit_must_be_a_count_and_0_means_all(tmp_path, capsys):
    from hand25d_ros.estimator import HandPoseEstimator
    from hand25d_ros.evaluate import evaluate_folder
    root = write_folder(tmp_path / "data", 2)
    for bad in ("-1", "two"):
        with pytest.raises(SystemExit) as exc:
            main([str(root), "--limit", bad])
        assert exc.value.code == 2
        assert "argument --limit: expected a" in capsys.readouterr().err
    out = tmp_path / "out"
    assert main([str(root), "--out", str(out), "--tta", "none", "--limit", "0"]) == 0
    assert strict_json(out / "report.json")["summary"]["num_samples"] == 2
    est = HandPoseEstimator(device="cpu", tta="none")
    with pytest.raises(ValueError, match="limit must be a whole number of samples >= 0"):
        evaluate_folder(est, root, limit=-1, progress=False)
    assert evaluate_folder(est, root, limit=1, progress=False)["summary"]["num_samples"] == 1


def test_summaries_leave_out_samples_without_a_true_hand_or_view():
    """A 2D-only sample: its hand (None) is neither right nor wrong, its view (NaN) is not a
    back view, and it is no mirror image."""
    from hand25d_ros.evaluate import handedness_summary, mirror_summary, view_summary
    s = handedness_summary([10.0, 30.0], [True, None], [True, False])
    assert s["handedness_accuracy"] == 1.0 and np.isnan(s["mean_error_2d_px_hand_wrong"])
    assert handedness_summary([10.0], [None], [True]) == {}
    v = view_summary([10.0, 30.0], [True, None], [True, False], [0.5, np.nan])
    assert v == {"palm_view_fraction": 1.0, "mean_error_2d_px_palm_view": 10.0,
                 "handedness_accuracy_palm_view": 1.0}
    assert view_summary([10.0], [None], [True], [np.nan]) == {}
    m = mirror_summary([10.0, 30.0, 50.0], [True, None, False], [True, False, True], [0.5, np.nan, np.nan],
                       [0.5, 0.5, 0.5])
    assert m == {"mirrored_skeleton_fraction": 0.5, "mean_error_2d_px_mirrored": 50.0}
    assert mirror_summary([10.0], [None], [True], [np.nan], [0.5]) == {}


def test_an_out_that_is_a_file_is_refused_before_the_run(tmp_path, capsys):
    from hand25d_ros.evaluate import main
    (tmp_path / "report").write_text("keep")
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "no_such_folder"), "--out", str(tmp_path / "report")])
    assert exc.value.code == 2 and "exists and is not a folder" in capsys.readouterr().err
    assert (tmp_path / "report").read_text() == "keep"


def test_full_frames_read_as_hand_crops_are_warned_about(capsys):
    """--crop image on full camera frames (the bundled samples) measured 50 px with no word."""
    from hand25d_ros.evaluate import main
    from hand25d_ros.ros.demo import bundled_samples_dir
    for crop, warned in (("image", True), ("gt", False)):
        assert main([str(bundled_samples_dir()), "--limit", "2", "--crop", crop]) == 0
        err = capsys.readouterr().err
        assert ("hands span a median 3" in err) is warned, err


def test_a_frame_without_a_skeleton_is_no_mirror_reading():
    """An invalid or missing pose's 3D is zeros, which reads as a right hand: every such frame
    of a true left hand counted as a mirror image (0.33 of real_val_snap with --crop detect,
    against 0.06 of the frames with a pose), a right hand's never."""
    from hand25d_ros.evaluate import mirror_summary
    m = mirror_summary([10.0, 90.0, 90.0], [True, True, False], [True, None, None], [0.5, 0.5, 0.5],
                       [0.5, np.nan, np.nan])
    assert m == {"mirrored_skeleton_fraction": 0.0}
    assert mirror_summary([90.0], [True], [None], [0.5], [np.nan]) == {}


def test_the_palm_and_back_view_errors_cover_only_the_frames_where_a_hand_was_found(tmp_path):
    """--crop detect: a frame without a hand found has no keypoints (zeros), and the 2D figures
    cover the found frames only; the palm/back-view split counted the missing ones at their
    zeros (real_val_snap: 65.0 and 108.4 px beside a 17.8 px 2D mean)."""
    import shutil
    from hand25d_ros.estimator import HandPoseEstimator
    from hand25d_ros.evaluate import evaluate_folder
    from hand25d_ros.ros.demo import bundled_samples_dir
    src = bundled_samples_dir()
    root = tmp_path / "frames"
    root.mkdir()
    samples = json.loads((src / "annotations.json").read_text())["samples"][:3]
    for s in samples:
        shutil.copy(src / s["image"], root / s["image"])
    # the first frame's truth on a plain grey frame: no hand for the detector to find
    cv2.imwrite(str(root / "empty.png"), np.full((480, 640, 3), 128, np.uint8))
    samples.append(dict(samples[0], image="empty.png"))
    (root / "annotations.json").write_text(json.dumps({"samples": samples}))
    rep = evaluate_folder(HandPoseEstimator(device="cpu"), root, progress=False, crop="detect")
    per, summary = rep["per_sample"], rep["summary"]
    assert not per[-1]["found"] and sum(p["found"] for p in per) >= 2
    assert summary["found_fraction"] < 1.0
    for view, palm in (("palm_view", True), ("back_view", False)):
        errs = [p["error_2d_px"] for p in per
                if p["found"] and p["palm_toward_camera"] is not None and (p["palm_toward_camera"] > 0) == palm]
        key = f"mean_error_2d_px_{view}"
        if errs:
            assert summary[key] == pytest.approx(np.mean(errs))
        else:
            assert key not in summary or np.isnan(summary[key])


def test_eval_scores_labelled_keypoints_only(tmp_path, capsys):
    """A folder whose annotation leaves keypoints null (cut off, or not guessed): the loader
    refused it, and a placeholder would have been scored as truth. The estimates do not
    depend on which keypoints are labelled (--crop image), so the folder fully labelled
    gives the predictions to check the figures against."""
    from hand25d_ros import metrics
    from hand25d_ros.estimator import HandPoseEstimator
    from hand25d_ros.evaluate import evaluate_folder, true_hand
    full = write_folder(tmp_path / "full")
    data = json.loads((full / "annotations.json").read_text())
    cut = {0: [8, 12, 16], 2: [20]}
    for i, ks in cut.items():
        for k in ks:
            data["samples"][i]["joints_3d_mm"][k] = data["samples"][i]["joints_2d_px"][k] = None
    data["samples"][1]["joints_3d_mm"] = None                      # 2D-only, with a null too
    data["samples"][1]["joints_2d_px"][3] = None
    part = tmp_path / "part"
    part.mkdir()
    (part / "images").symlink_to(full / "images")
    (part / "annotations.json").write_text(json.dumps(data))
    est = HandPoseEstimator(device="cpu", tta="none")      # bundled weights: valid poses on these frames
    a = evaluate_folder(est, full, progress=False)
    b = evaluate_folder(est, part, progress=False)
    lab = np.ones((3, 21), bool)
    for i, ks in cut.items():
        lab[i, ks] = False
    lab[1, 3] = False
    np.testing.assert_array_equal(b["data"]["labelled"], lab)
    np.testing.assert_array_equal(b["data"]["pred_2d_px"], a["data"]["pred_2d_px"])
    # sample 1, 2D-only now, is lifted with the default hand size: only its 3D differs
    np.testing.assert_array_equal(b["data"]["pred_3d_mm"][[0, 2]], a["data"]["pred_3d_mm"][[0, 2]])
    e2 = np.linalg.norm(a["data"]["pred_2d_px"] - a["data"]["gt_2d_px"], axis=-1)
    sb = b["summary"]
    assert sb["num_unlabelled_keypoints"] == 5 and "num_unlabelled_keypoints" not in a["summary"]
    assert sb["mean_error_2d_px"] == pytest.approx(e2[lab].mean(), rel=1e-12)
    assert [p["error_2d_px"] for p in b["per_sample"]] == pytest.approx([e2[i][lab[i]].mean() for i in range(3)], rel=1e-12)
    ok = b["data"]["valid"] & b["data"]["has_3d"]
    assert ok.tolist() == [True, False, True]
    rr = metrics.root_relative_errors_mm(a["data"]["pred_3d_mm"][ok], a["data"]["gt_3d_mm"][ok])
    assert sb["mpjpe_mm"] == pytest.approx(rr[lab[ok]].mean(), rel=1e-12)
    assert np.isfinite(sb["pa_mpjpe_mm"]) and sb["pa_mpjpe_mm"] != a["summary"]["pa_mpjpe_mm"]
    # --crop gt frames the labelled keypoints (the box of all 21 was NaN)
    g = evaluate_folder(est, part, progress=False, crop="gt")
    s0 = AnnotatedFolderDataset(part)[0]
    uv = s0["joints_2d_px"][s0["labelled"]]
    lo, hi = uv.min(0), uv.max(0)
    side, c = float(max(hi - lo)) * 1.4, (lo + hi) / 2
    pose = est.estimate(s0["image"], s0["K"], hand_size_m=true_hand(s0)[1], roi=(c[0] - side / 2, c[1] - side / 2, side, side))
    np.testing.assert_array_equal(g["data"]["pred_2d_px"][0], pose.keypoints_2d)
    assert np.isfinite(g["summary"]["mean_error_2d_px"])
    out = tmp_path / "out"
    assert main([str(part), "--out", str(out), "--tta", "none"]) == 0
    assert "keypoints the annotation leaves unlabelled (scored nowhere) | 5 |" in capsys.readouterr().out
    assert (out / "pck.png").exists()
    assert json.loads((out / "report.json").read_text())["summary"]["num_unlabelled_keypoints"] == 5


def test_true_hand_is_unknown_without_its_palm_keypoints():
    """The hand is read from the palm keypoints' chirality; one of them unlabelled (NaN) made
    that reading compare NaN and call the hand a right one."""
    from importlib.resources import files

    from hand25d_ros import keypoints as kp
    from hand25d_ros.evaluate import true_hand
    ann = json.loads((files("hand25d_ros") / "samples" / "annotations.json").read_text())
    left = next(s for s in ann["samples"] if s["is_left"])
    P = np.array(left["joints_3d_mm"], dtype=np.float64)
    lab = np.ones(21, bool)
    assert true_hand({"joints_3d_mm": P, "labelled": lab}) == (True, pytest.approx(np.linalg.norm(P[5] - P[0]) / 1000))
    for k in kp.PALM_KEYPOINTS[1:]:                # the wrist and index MCP are always labelled in 3D
        cut = lab.copy()
        cut[k] = False
        Pk = np.where(cut[:, None], P, np.nan)
        assert true_hand({"joints_3d_mm": Pk, "labelled": cut})[0] is None, k
        assert true_hand({"joints_3d_mm": Pk, "labelled": cut, "is_left": True})[0] is True


def test_the_report_breaks_the_errors_down_per_keypoint(tmp_path):
    """report.json's per_keypoint: each keypoint's mean 2D error over the frames where a hand
    was found, and its root-relative and similarity-aligned 3D errors over the valid frames
    with a true 3D pose (null where there are none), under the keypoint's name."""
    from hand25d_ros import keypoints as kp
    from hand25d_ros import metrics
    from hand25d_ros.estimator import HandPoseEstimator
    from hand25d_ros.evaluate import evaluate_folder
    root = write_folder(tmp_path / "data", 3)
    drop(root, "joints_3d_mm", [1])
    rep = evaluate_folder(HandPoseEstimator(device="cpu", tta="none"), root, progress=False)
    d = rep["data"]
    out = tmp_path / "out"
    assert main([str(root), "--out", str(out), "--tta", "none"]) == 0
    per = strict_json(out / "report.json")["per_keypoint"]
    assert [p["name"] for p in per] == list(kp.KEYPOINT_NAMES)
    e2d = np.linalg.norm(d["pred_2d_px"] - d["gt_2d_px"], axis=-1).mean(0)
    np.testing.assert_allclose([p["error_2d_px"] for p in per], e2d, rtol=1e-6)
    ok = d["valid"] & d["has_3d"]
    assert ok.sum() >= 1 and not ok[1]
    rr = metrics.root_relative_errors_mm(d["pred_3d_mm"][ok], d["gt_3d_mm"][ok]).mean(0)
    pa = np.linalg.norm(metrics.similarity_align(d["pred_3d_mm"][ok], d["gt_3d_mm"][ok]) - d["gt_3d_mm"][ok],
                        axis=-1).mean(0)
    np.testing.assert_allclose([p["root_relative_error_mm"] for p in per], rr, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose([p["pa_error_mm"] for p in per], pa, rtol=1e-6)
    assert np.mean([p["pa_error_mm"] for p in per]) == pytest.approx(strict_json(out / "report.json")
                                                                   ["summary"]["pa_mpjpe_mm"], rel=1e-6)
    # an unlabelled keypoint (null rows) counts for none of its figures and no other's
    ann = json.loads((root / "annotations.json").read_text())
    for i in (0, 1, 2):
        ann["samples"][i]["joints_2d_px"][20] = None
        if "joints_3d_mm" in ann["samples"][i]:
            ann["samples"][i]["joints_3d_mm"][20] = None
    (root / "annotations.json").write_text(json.dumps(ann))
    assert main([str(root), "--out", str(out), "--tta", "none"]) == 0
    per2 = strict_json(out / "report.json")["per_keypoint"]
    assert per2[20]["error_2d_px"] is None and per2[20]["pa_error_mm"] is None
    np.testing.assert_allclose([p["error_2d_px"] for p in per2[:20]], e2d[:20], rtol=1e-6)
    # no 3D truth anywhere: the 3D entries are null, the 2D ones stay
    drop(root, "joints_3d_mm", [0, 2])
    assert main([str(root), "--out", str(out), "--tta", "none"]) == 0
    per = strict_json(out / "report.json")["per_keypoint"]
    assert all(p["pa_error_mm"] is None and p["root_relative_error_mm"] is None for p in per)
    assert all(p["error_2d_px"] > 0 for p in per[:20])

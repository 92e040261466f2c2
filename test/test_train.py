"""A short real training run: render a few tiny samples, train, resume, load the result."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from hand25d_ros import HandPoseEstimator
from hand25d_ros.train import main


def test_smoke_train_resume_and_load(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--out", str(out),
              "--set", "arch.name=tiny", "--set", "arch.input_size=64",
              "--set", f"data.synthetic.cache_dir={tmp_path / 'cache'}",
              "--set", "data.synthetic.num_samples=12", "--set", "data.synthetic.shard_size=6",
              "--set", "data.synthetic.render_workers=1",
              "--set", f"data.val_synthetic.cache_dir={tmp_path / 'cache_val'}",
              "--set", "data.val_synthetic.num_samples=4",
              "--set", "train.batch_size=4", "--set", "train.num_workers=0",
              "--set", "train.warmup_steps=1", "--set", "train.checkpoint_every=2",
              "--set", "train.val_every=3", "--set", "train.log_every=1", "--set", "val_real.path=null"]
    assert main(common + ["--set", "train.max_steps=3"]) == 0
    assert (out / "last.pt").exists() and (out / "weights.pt").exists()
    assert main(common + ["--set", "train.max_steps=5"]) == 0       # resumes at step 3
    rows = list(csv.DictReader(open(out / "log.csv")))
    steps = [int(r["step"]) for r in rows if r["loss"]]
    assert steps == [1, 2, 3, 4, 5]
    assert all(np.isfinite(float(r["loss"])) for r in rows if r["loss"])
    est = HandPoseEstimator(weights=out / "weights.pt", device="cpu")
    assert est.input_size == 64 and est.meta["recipe"]["steps"] == 5
    final = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("final validation: ")]
    assert len(final) == 2 and f"val_synth_2d_px={est.meta['metrics']['val_synth_2d_px']:.3f}" in final[-1], final
    # the checkpoint beside it is no weights file: said so, not "format tag None"
    from hand25d_ros.weights import WeightsError
    with pytest.raises(WeightsError, match=r"last.pt is a training checkpoint .* weights.pt"):
        HandPoseEstimator(weights=out / "last.pt", device="cpu")
    assert est.meta["recipe"]["precision"] == "float32"
    assert len(est.meta["bone_ratios"]) == 5
    pose = est.estimate(np.zeros((64, 64, 3), np.uint8), np.array([[80.0, 0, 32], [0, 80, 32], [0, 0, 1]]), roi="image")
    assert np.all(np.isfinite(pose.keypoints_3d))

    # a run killed after its checkpoint at step 5 had logged steps 6 and 7: the resume logs them once
    with open(out / "log.csv", "a", newline="") as f:
        csv.writer(f).writerows([[6, 24, 1.0, 0.001, 1, 1, 1, "", "", ""], [7, 28, 1.0, 0.001, 1, 1, 1, "", "", ""]])
    assert main(common + ["--set", "train.max_steps=7"]) == 0
    steps = [int(r["step"]) for r in csv.DictReader(open(out / "log.csv")) if r["loss"]]
    assert steps == [1, 2, 3, 4, 5, 6, 7]
    # other settings than the run's would train its rest on another recipe: refused, before any render
    with pytest.raises(SystemExit, match=r"started with other settings \(train.lr: 0.002 -> 0.5\)"):
        main(common + ["--set", "train.max_steps=9", "--set", "train.lr=0.5"])
    # and so are settings the run's config left out, at their defaults then
    with pytest.raises(SystemExit, match=r"other settings \(arch.crop_head: False -> True\)"):
        main(common + ["--set", "train.max_steps=9", "--set", "arch.crop_head=true"])
    with pytest.raises(SystemExit, match=r"other settings \(data.augment.p_randconv: 0.0 -> 0.5\)"):
        main(common + ["--set", "train.max_steps=9", "--set", "data.augment.p_randconv=0.5"])
    # written out at its default, a setting is the same one
    assert main(common + ["--set", "train.max_steps=7", "--set", "data.augment.p_randconv=0.0"]) == 0
    (out / "last.pt").write_bytes((out / "last.pt").read_bytes()[:1000])
    with pytest.raises(SystemExit, match=r"cannot resume from .*last.pt: unreadable or corrupt"):
        main(common + ["--set", "train.max_steps=9"])


def test_a_run_mixing_every_kind_of_extra_dataset_logs_finite_losses_and_resumes(tmp_path):
    """hand25d-train on its renders beside a FreiHAND, an RHD (both hands, hidden keypoints),
    an STB and an annotated folder (one sample 2D-only) in their real layouts: every logged
    loss term is finite, and the run resumes where it stopped."""
    import yaml
    from test_public_datasets import write_folder, write_freihand, write_rhd, write_stb
    write_freihand(tmp_path / "frei", n=2)
    write_rhd(tmp_path / "rhd")
    write_stb(tmp_path / "stb", seqs=("B2Counting",))
    write_folder(tmp_path / "folder")
    config = tmp_path / "mixed.yaml"
    config.write_text(yaml.safe_dump({"data": {"extra": [
        {"type": "freihand", "root": str(tmp_path / "frei"), "weight": 0.5},
        {"type": "rhd", "root": str(tmp_path / "rhd"), "options": {"hand": "both"}},
        {"type": "stb", "root": str(tmp_path / "stb"), "options": {"sequences": ["B2Counting"]}},
        {"type": "folder", "root": str(tmp_path / "folder"), "weight": 2.0}]}}))
    out = tmp_path / "run"
    common = ["--config", str(config), "--out", str(out),
              "--set", "arch.name=tiny", "--set", "arch.input_size=64",
              "--set", f"data.synthetic.cache_dir={tmp_path / 'cache'}", "--set", "data.synthetic.num_samples=4",
              "--set", "data.synthetic.render_workers=1", "--set", "data.val_synthetic.num_samples=0",
              "--set", "train.batch_size=8", "--set", "train.num_workers=0", "--set", "train.warmup_steps=1",
              "--set", "train.checkpoint_every=1", "--set", "train.log_every=1", "--set", "train.val_every=0",
              "--set", "val_real.path=null"]
    assert main(common + ["--set", "train.max_steps=2"]) == 0
    assert main(common + ["--set", "train.max_steps=3"]) == 0
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("loss", "loss_l1_px", "loss_z"))


def test_bad_config_is_a_clear_error(tmp_path, no_training):
    with pytest.raises(SystemExit, match="config file not found"):
        main(["--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "r")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("arch: [unclosed\n")
    with pytest.raises(SystemExit, match="cannot parse config"):
        main(["--config", str(bad), "--out", str(tmp_path / "r")])
    bad.write_text("- lr\n- 0.1\n")
    with pytest.raises(SystemExit, match="bad.yaml must be a mapping of sections"):
        main(["--config", str(bad), "--out", str(tmp_path / "r")])
    with pytest.raises(SystemExit, match="key=value"):
        main(["--out", str(tmp_path / "r"), "--set", "oops"])
    with pytest.raises(SystemExit, match="--set 'train.lr=\\[1,': the value is not YAML"):
        main(["--out", str(tmp_path / "r"), "--set", "train.lr=[1,"])
    (tmp_path / "f").write_text("x")
    with pytest.raises(SystemExit, match="exists and is not a run folder"):
        main(["--out", str(tmp_path / "f")])
    assert not no_training


def test_mixing_and_crop_source_keep_labels_exact():
    """Extra full-image sources are cropped like inference; the mix follows its weights."""
    from hand25d_ros import geometry as geo
    from hand25d_ros.train import Concat, CropSource, MixSampler, TrainingView

    class Full:
        def __len__(self):
            return 3

        def __getitem__(self, i):
            P = np.random.default_rng(i).normal(0, 30, (21, 3)) + [0, 0, 500]
            K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
            return {"image": np.zeros((480, 640, 3), np.uint8), "K": K, "joints_3d_mm": P,
                    "joints_2d_px": geo.project_points(P, K)}

    src = CropSource(Full(), 64, seed=0)
    s = src[1]
    assert s["image"].shape == (64, 64, 3)
    np.testing.assert_allclose(geo.project_points(s["joints_3d_mm"], s["K"]), s["joints_2d_px"], atol=1e-6)
    view = TrainingView(src, None, 0)
    item = view[1]
    _, z, _ = geo.pose_to_25d(s["joints_3d_mm"], s["K"])
    np.testing.assert_allclose(item["z"].numpy(), z, atol=1e-5)
    sampler = MixSampler([3, 100], [1.0, 3.0], seed=0, chunk=4000)
    idx = np.array(list(sampler))[:, 0]
    assert abs((idx < 3).mean() - 0.25) < 0.03
    both = Concat([src, src])
    assert len(both) == 6


def test_repeated_draws_of_an_item_are_augmented_afresh(tmp_path):
    """MixSampler draws with replacement, so a small data.extra source is drawn many times an
    epoch (a 300-image folder at a fifth of 100,000 draws: 67 times each): every draw must be
    its own augmentation of the item, not a pixel-exact copy of its first draw."""
    import torch
    from test_public_datasets import write_freihand, write_image

    from hand25d_ros.augment import AugmentConfig
    from hand25d_ros.train import Concat, CropSource, MixSampler, TrainingView, build_extra_source
    root = tmp_path / "frei"
    write_freihand(root, n=3, versions=1)
    for i in range(3):     # the writer's 8 x 8 images would crop to black around the hand
        write_image(root / "training" / "rgb" / f"{i:08d}.jpg", 224, 224, seed=i)
    source = CropSource(build_extra_source({"type": "freihand", "root": str(root), "options": {"versions": [0]}}),
                        64, seed=0)
    view = TrainingView(Concat([source]), AugmentConfig(), seed=0, p_negative=0.3)
    batch = next(iter(torch.utils.data.DataLoader(view, batch_size=24, sampler=MixSampler([3], [1.0], 0, chunk=24))))
    keys = list(MixSampler([3], [1.0], 0, chunk=24))
    assert sorted(n for _, n in keys) != [0] * 24             # the three items repeat
    images = batch["image"].flatten(1)
    for a in range(24):
        for b in range(a):
            if keys[a][0] == keys[b][0]:
                assert not torch.equal(images[a], images[b]), f"draws {b} and {a} of item {keys[a][0]} are one image"
    assert len({tuple(u.flatten().tolist()) for u in batch["uv"]}) > 3   # the geometry varies too
    # a first draw is augmented as it always was
    assert torch.equal(view[1]["image"], view[(1, 0)]["image"]) and not torch.equal(view[1]["image"], view[(1, 1)]["image"])


def test_extra_datasets_are_framed_as_the_renders(tmp_path):
    """A data.extra image is cut around its keypoints as the renders are: a recipe's
    data.synthetic.config crop_scale, crop_shift_frac and crop_rotation_deg frame both."""
    from test_public_datasets import write_freihand

    from hand25d_ros.train import DEFAULT_CONFIG, deep_update, ensure_synthetic, training_data
    write_freihand(tmp_path / "frei", n=4, versions=1)
    render = {"crop_scale": [1.5, 1.5], "crop_shift_frac": 0.0, "crop_rotation_deg": 30.0}
    cfg = deep_update(DEFAULT_CONFIG, {"data": {"synthetic": {"config": render}, "extra": [
        {"type": "freihand", "root": str(tmp_path / "frei"), "options": {"versions": [0]}}]}})
    synth = ensure_synthetic(tmp_path / "cache", 2, 0, 64, shard_size=2, workers=1, config=render)
    view, _, _ = training_data(cfg, synth, 64)
    crops = [view.source[i] for i in range(2, 6)]
    angles = []
    for s in crops:
        # the crop turns the image by its rotation (crop_affine), and K's first column with it
        angle = np.degrees(np.arctan2(-s["K"][1, 0], s["K"][0, 0]))
        c, sn = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        # turned back to the image's axes, the keypoints' box is 1/1.5 of the crop, centred
        uv = (s["joints_2d_px"] - 31.5) @ np.array([[c, sn], [-sn, c]])
        lo, hi = uv.min(0), uv.max(0)
        np.testing.assert_allclose(max(hi - lo), 64 / 1.5, rtol=1e-6)
        np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-6)
        angles.append(angle)
    assert max(np.abs(angles)) > 5 and max(np.abs(angles)) <= 30


def test_an_annotation_without_a_scale_bone_is_named_not_a_nan_loss(tmp_path):
    """Depth targets are normalised by the wrist -> index MCP bone; a data.extra annotation
    with the two on one point gave NaN targets, and every logged loss of its batches was NaN."""
    import json

    from test_public_datasets import K_FREI, hand_mm, write_image

    from hand25d_ros.augment import AugmentConfig
    from hand25d_ros.data.public_datasets import DatasetError
    from hand25d_ros.train import CropSource, TrainingView, build_extra_source
    P = hand_mm(1)
    bad = P.copy()
    bad[5] = bad[0]
    write_image(tmp_path / "a.png", 224, 224)
    (tmp_path / "annotations.json").write_text(json.dumps({"samples": [
        {"image": "a.png", "K": K_FREI.tolist(), "joints_3d_mm": p.tolist()} for p in (P, bad)]}))
    view = TrainingView(CropSource(build_extra_source({"type": "folder", "root": str(tmp_path)}), 64, 0),
                        AugmentConfig(), 0)
    assert np.isfinite(view[0]["z"].numpy()).all()
    with pytest.raises(DatasetError, match=r"a.png \(annotation 1\): its wrist and index MCP are 0 mm apart"):
        view[1]


def test_a_3d_annotation_without_is_left_trains_its_hand_by_chirality(tmp_path):
    """Evaluation takes a sample's hand from its 3D chirality where is_left is missing
    (evaluate.true_hand); training took such a sample's hand as unknown, so a data.extra
    folder in real_val_snap's format (no is_left) never trained the crop head's left/right
    logit. The bundled photos, both hands, carry the truth to compare with."""
    import json
    import shutil
    from importlib import resources

    from hand25d_ros.train import CropSource, TrainingView, build_extra_source
    bundled = resources.files("hand25d_ros") / "samples"
    samples = json.loads((bundled / "annotations.json").read_text())["samples"]
    truth = [s.pop("is_left") for s in samples]
    assert set(truth) == {True, False}
    for s in samples:
        shutil.copy(str(bundled / s["image"]), tmp_path / s["image"])
    two_d = dict(samples[0], joints_3d_mm=None)          # 2D-only, no is_left: no hand to tell
    (tmp_path / "annotations.json").write_text(json.dumps({"samples": samples + [two_d]}))
    view = TrainingView(CropSource(build_extra_source({"type": "folder", "root": str(tmp_path)}), 64, 0), None, 0)
    assert [view[i]["is_left"].item() for i in range(len(view))] == [float(t) for t in truth] + [-1.0]


def test_fine_tune_from_weights_adds_a_crop_head(tmp_path):
    """train.init_weights: a file without the crop head starts a model with one (left/right from
    the renders' is_left, hand-present against hand-free crops, its threshold calibrated on
    held-out hand-free crops); a file of another size is a clear error."""
    import torch
    from hand25d_ros.model import build_model
    from hand25d_ros.weights import save_weights
    torch.manual_seed(0)
    init = tmp_path / "init.pt"
    save_weights(build_model("tiny", input_size=64), init, {"name": "tiny", "input_size": 64})
    out = tmp_path / "ft"
    args = ["--out", str(out), "--set", "arch.name=tiny", "--set", "arch.input_size=64",
            "--set", "arch.crop_head=true", "--set", "data.p_negative=0.3", "--set", "data.negative_backgrounds=4", "--set", f"train.init_weights={init}",
            "--set", f"data.synthetic.cache_dir={tmp_path / 'cache'}",
            "--set", "data.synthetic.num_samples=8", "--set", "data.synthetic.shard_size=8",
            "--set", "data.synthetic.render_workers=1", "--set", "data.val_synthetic.num_samples=0",
            "--set", "train.batch_size=4", "--set", "train.num_workers=0", "--set", "train.warmup_steps=1",
            "--set", "train.max_steps=2", "--set", "train.val_every=0", "--set", "val_real.path=null"]
    assert main(args) == 0
    est = HandPoseEstimator(weights=out / "weights.pt", device="cpu", root_depth="bone")
    assert est.model.crop_head is not None and 0.05 <= est.hand_threshold <= 0.95
    ref = build_model("tiny", input_size=64)
    ref.load_state_dict(torch.load(init, weights_only=True)["state_dict"])
    # the backbone moved from the initial weights, not from a random start: 2 small steps
    w0, w1 = ref.stem[0].weight, est.model.stem[0].weight
    assert (w1 - w0).abs().max() < 0.05 * w0.abs().max()
    pose = est.estimate(np.zeros((64, 64, 3), np.uint8), np.array([[80.0, 0, 32], [0, 80, 32], [0, 0, 1]]), roi="image")
    assert pose.left_prob is not None and 0.0 <= pose.left_prob <= 1.0 and isinstance(pose.is_left, bool)
    assert 0.0 <= pose.hand_prob <= 1.0 and est.is_hand(pose) == (pose.hand_prob >= est.hand_threshold)
    save_weights(build_model("small"), tmp_path / "small.pt", {"name": "small"})
    with pytest.raises(SystemExit, match="does not fit"):
        main(args + ["--out", str(tmp_path / "x"), "--set", f"train.init_weights={tmp_path / 'small.pt'}"])


def test_a_missing_or_misfit_init_weights_stops_before_any_render(tmp_path):
    """The fine-tuning recipes name a weights file made by an earlier step; without it, or with
    one of another size, the run stops before rendering its cache (hours at full size)."""
    from hand25d_ros.model import build_model
    from hand25d_ros.weights import save_weights
    cache = tmp_path / "cache"
    args = ["--out", str(tmp_path / "ft"), "--set", "arch.name=tiny", "--set", "arch.input_size=64",
            "--set", f"data.synthetic.cache_dir={cache}", "--set", "data.synthetic.num_samples=4",
            "--set", "data.synthetic.render_workers=1", "--set", "data.val_synthetic.num_samples=0",
            "--set", "train.num_workers=0", "--set", "train.max_steps=1", "--set", "val_real.path=null"]
    with pytest.raises(SystemExit, match="weights file not found: .*soup.pt"):
        main(args + ["--set", f"train.init_weights={tmp_path / 'soup.pt'}"])
    assert not cache.exists()
    save_weights(build_model("small", input_size=64), tmp_path / "other.pt", {"name": "small", "input_size": 64})
    with pytest.raises(SystemExit, match="init_weights .*other.pt does not fit arch"):
        main(args + ["--set", f"train.init_weights={tmp_path / 'other.pt'}"])
    assert not cache.exists()
    # the input blur has no parameters to mismatch: a file trained behind one needs the arch to say
    save_weights(build_model("tiny", input_size=64, input_blur_sigma_px=1.5), tmp_path / "blur.pt",
                 {"name": "tiny", "input_size": 64, "input_blur_sigma_px": 1.5})
    with pytest.raises(SystemExit, match=r"blur.pt was trained behind a 1.5 px input blur .* set "
                                         r"arch.input_blur_sigma_px to 1.5 to keep it, or to 0"):
        main(args + ["--set", f"train.init_weights={tmp_path / 'blur.pt'}"])
    assert not cache.exists()
    assert main(args + ["--set", f"train.init_weights={tmp_path / 'blur.pt'}", "--set", "arch.input_blur_sigma_px=1.5"]) == 0
    assert HandPoseEstimator(weights=tmp_path / "ft" / "weights.pt", device="cpu").model.input_blur_sigma_px == 1.5


def test_snapshots_average_into_a_weights_file(tmp_path):
    import torch

    from hand25d_ros.tools import average_snapshots as avg
    out = tmp_path / "run"
    args = ["--out", str(out), "--set", "arch.name=tiny", "--set", "arch.input_size=64",
                 "--set", "arch.crop_head=true", "--set", "data.p_negative=0.3",
                 "--set", "data.negative_backgrounds=4",
                 "--set", f"data.synthetic.cache_dir={tmp_path / 'cache'}",
                 "--set", "data.synthetic.num_samples=8", "--set", "data.synthetic.shard_size=8",
                 "--set", "data.synthetic.render_workers=1",
                 "--set", f"data.val_synthetic.cache_dir={tmp_path / 'cache_val'}",
                 "--set", "data.val_synthetic.num_samples=4",
                 "--set", "train.batch_size=4", "--set", "train.num_workers=0", "--set", "train.warmup_steps=1",
                 "--set", "train.max_steps=4", "--set", "train.val_every=0", "--set", "train.snapshot_every=1",
                 "--set", "val_real.path=null"]
    assert main(args) == 0
    snaps = sorted((out / "snapshots").glob("step_*.pt"))
    assert [p.name for p in snaps] == [f"step_00000{i}.pt" for i in (1, 2, 3, 4)]
    assert [s for s, _ in avg.run_states(out, 3)] == [3, 4]

    dst = tmp_path / "avg.pt"
    assert avg.main([str(out), "--from-step", "3", "--out", str(dst), "--bn-batches", "2"]) == 0
    est = HandPoseEstimator(weights=dst, device="cpu")
    assert [a["step"] for a in est.meta["recipe"]["averaged"]] == [3, 4]
    assert 0.05 <= est.meta["hand_threshold"] <= 0.95
    states = [torch.load(p, weights_only=False)["model"] for p in snaps[2:]]
    got = est.model.state_dict()
    key = "stem.0.weight"
    assert torch.allclose(got[key], (states[0][key] + states[1][key]) / 2, atol=1e-6)
    # batch-norm statistics are measured afresh for the averaged weights, not averaged
    bn = "stem.1.running_var"
    assert not torch.allclose(got[bn], (states[0][bn] + states[1][bn]) / 2)
    pose = est.estimate(np.full((64, 64, 3), 90, np.uint8), np.array([[80.0, 0, 32], [0, 80, 32], [0, 0, 1]]),
                        roi="image")
    assert np.all(np.isfinite(pose.keypoints_3d))

    # the run folder itself as --out: refused before the work, not an IsADirectoryError after it
    with pytest.raises(SystemExit, match=r"--out .*run is a folder; give the weights file to write"):
        avg.main([str(out), "--from-step", "3", "--out", str(out), "--bn-batches", "1"])
    assert not (tmp_path / "run.tmp").exists()
    with pytest.raises(SystemExit, match="no saved states at or after step 99"):
        avg.main([str(out), "--from-step", "99", "--out", str(dst)])
    with pytest.raises(SystemExit, match="config.yaml not found"):
        avg.main([str(tmp_path / "nowhere"), "--out", str(dst)])
    (out / "snapshots" / "step_000005.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="cannot read .*step_000005.pt"):
        avg.main([str(out), "--from-step", "3", "--out", str(dst)])
    # the run's render cache refused (another renderer version, damaged): its one-line reason,
    # not a CacheError traceback from inside the batch-norm pass's data
    (out / "snapshots" / "step_000005.pt").unlink()
    meta = json.loads((tmp_path / "cache" / "cache.json").read_text())
    (tmp_path / "cache" / "cache.json").write_text(json.dumps({**meta, "render_version": 1}))
    with pytest.raises(SystemExit, match=r"average_snapshots: .*cache\.json: renderer version 1"):
        avg.main([str(out), "--from-step", "3", "--out", str(dst), "--bn-batches", "1"])
    (tmp_path / "cache" / "cache.json").write_text(json.dumps(meta))
    # a resume starts again from last.pt (step 4): a state saved after it, by the run that was
    # stopped, belongs to no step this run will have, and averaging took it in
    assert main(args) == 0
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == [f"step_00000{i}.pt" for i in (1, 2, 3, 4)]


def test_weights_files_average_into_a_soup(tmp_path):
    """Shipped weights of one lineage (recovered from git) averaged, a model soup: each file is
    one state, and --config names the renders for the batch norms and the validation."""
    import torch
    import yaml

    from hand25d_ros.model import build_model_from_arch
    from hand25d_ros.tools import average_snapshots as avg
    from hand25d_ros.weights import save_weights
    arch = {"name": "tiny", "input_size": 64, "crop_head": True}
    files = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        files.append(tmp_path / f"w{seed}.pt")
        save_weights(build_model_from_arch(arch), files[-1], arch)
    cfg = tmp_path / "soup.yaml"
    cfg.write_text(yaml.safe_dump({
        "arch": arch,
        "data": {"p_negative": 0.3, "negative_backgrounds": 4,
                 "synthetic": {"cache_dir": str(tmp_path / "cache"), "num_samples": 8, "shard_size": 8,
                               "render_workers": 1},
                 "val_synthetic": {"cache_dir": str(tmp_path / "cache_val"), "num_samples": 4}},
        "train": {"batch_size": 4, "num_workers": 0}, "val_real": {"path": None}}))
    dst = tmp_path / "soup.pt"
    assert avg.main([str(files[0]), str(files[1]), "--config", str(cfg), "--out", str(dst), "--bn-batches", "2"]) == 0
    est = HandPoseEstimator(weights=dst, device="cpu")
    assert est.meta["recipe"]["averaged"] == [{"weights": str(f)} for f in files]
    states = [torch.load(f, weights_only=False)["state_dict"] for f in files]
    key = "stem.0.weight"
    assert torch.allclose(est.model.state_dict()[key], (states[0][key] + states[1][key]) / 2, atol=1e-6)
    assert 0.05 <= est.meta["hand_threshold"] <= 0.95

    # weights files have no config of their own: the option is named
    with pytest.raises(SystemExit, match=r"w0.pt/config.yaml not found .*give --config with weights files"):
        avg.main([str(files[0]), "--out", str(dst)])
    (tmp_path / "bad.pt").write_bytes(b"not weights")
    with pytest.raises(SystemExit, match=r"average_snapshots: .*bad.pt"):
        avg.main([str(files[0]), str(tmp_path / "bad.pt"), "--config", str(cfg), "--out", str(dst)])
    # a file trained behind an input blur, averaged under a config that leaves the blur out
    save_weights(build_model_from_arch({**arch, "input_blur_sigma_px": 1.5}), tmp_path / "blur.pt",
                 {**arch, "input_blur_sigma_px": 1.5})
    with pytest.raises(SystemExit, match=r"average_snapshots: .*blur.pt was trained behind a 1.5 px input blur"):
        avg.main([str(files[0]), str(tmp_path / "blur.pt"), "--config", str(cfg), "--out", str(dst)])
    cfg.write_text("train:\n  batch_sise: 4\n")
    with pytest.raises(SystemExit, match=r"soup.yaml: unknown config key 'train.batch_sise'"):
        avg.main([str(files[0]), "--config", str(cfg), "--out", str(dst)])


@pytest.mark.parametrize("option, value", [("--bn-batches", "0"), ("--bn-batches", "-1"), ("--threads", "0")])
def test_average_snapshots_options_are_checked(tmp_path, capsys, option, value):
    """--bn-batches 0 wrote a network whose batch norms were reset (mean 0, variance 1) without
    a word; -1 and --threads 0 were tracebacks after the states had loaded."""
    from hand25d_ros.tools import average_snapshots as avg
    with pytest.raises(SystemExit) as exc:
        avg.main([str(tmp_path), "--out", str(tmp_path / "avg.pt"), option, value])
    assert exc.value.code == 2 and f"argument {option}: expected a whole number >= 1, got {value}" in capsys.readouterr().err


def test_every_shipped_recipe_passes_the_config_check():
    """A recipe that names a key the trainer ignores would fail only hours into a run."""
    from pathlib import Path

    import yaml

    from hand25d_ros.train import DEFAULT_CONFIG, check_config, deep_update
    recipes = sorted((Path(__file__).parents[1] / "config" / "train").glob("*.yaml"))
    assert len(recipes) >= 5
    for path in recipes:
        check_config(deep_update(DEFAULT_CONFIG, yaml.safe_load(path.read_text())), str(path))


def test_unknown_config_keys_are_a_clear_error(tmp_path):
    cfg = tmp_path / "typo.yaml"
    cfg.write_text("train:\n  time_budget_mn: 60\n")
    with pytest.raises(SystemExit, match=r"typo.yaml: unknown config key 'train.time_budget_mn' "
                                         r"\(did you mean 'train.time_budget_min'\?\)"):
        main(["--config", str(cfg), "--out", str(tmp_path / "r")])
    cases = {"data.synthetic.config.hand_detial=1": "data.synthetic.config.hand_detail",
             "data.augment.rotate=1": None,
             "arch.widht=3": "arch.widths",
             "val_real.pth=x": "val_real.path",
             "data.extra=[{type: rhd, root: x, wieght: 2}]": "data.extra[].weight",
             # a key without its section, or under another one, is pointed to its own (the
             # README's "a misspelt time_budget_min": the top-level sections alone, no hint)
             "time_budget_min=1": "train.time_budget_min",
             "num_samples=512": "data.synthetic.num_samples",     # the first of its places
             "time_budjet_min=1": "train.time_budget_min",
             "p_randconv=0.5": "data.augment.p_randconv",
             "train.num_samples=512": "data.synthetic.num_samples",
             # a near key where it was given still wins over one elsewhere
             "train.time_budget_mins=1": "train.time_budget_min"}
    for item, near in cases.items():
        with pytest.raises(SystemExit, match="--set: unknown config key") as exc:
            main(["--out", str(tmp_path / "r"), "--set", item])
        if near:
            assert f"did you mean '{near}'" in str(exc.value), (item, str(exc.value))
    assert not (tmp_path / "r").exists()
    for item, what in {"train=5": "train must be a mapping", "data.extra=[3]": "data.extra\\[0\\] must be a mapping"}.items():
        with pytest.raises(SystemExit, match=what):
            main(["--out", str(tmp_path / "r"), "--set", item])
    assert not (tmp_path / "r").exists()        # nothing started


def _bf16_run_args(out, cache, value):
    return ["--out", str(out), "--set", "arch.name=tiny", "--set", "arch.input_size=64",
            "--set", f"data.synthetic.cache_dir={cache}",
            "--set", "data.synthetic.num_samples=8", "--set", "data.synthetic.shard_size=8",
            "--set", "data.synthetic.render_workers=1", "--set", "data.val_synthetic.num_samples=0",
            "--set", "train.batch_size=4", "--set", "train.num_workers=0", "--set", "train.warmup_steps=1",
            "--set", "train.max_steps=3", "--set", "train.val_every=0", "--set", "train.log_every=1",
            "--set", f"train.cpu_bf16={value}", "--set", "val_real.path=null"]


def test_cpu_bfloat16_training_keeps_float32_weights(tmp_path):
    """train.cpu_bf16: the convolutions run in bfloat16 on the CPU, the loss stays finite and
    the saved weights stay float32 (inference loads them as before). "always" forces it, so
    that this runs on CPUs without AMX too."""
    import torch
    out = tmp_path / "bf16"
    assert main(_bf16_run_args(out, tmp_path / "cache", "always")) == 0
    rows = list(csv.DictReader(open(out / "log.csv")))
    losses = [float(r["loss"]) for r in rows if r["loss"]]
    assert len(losses) == 3 and all(np.isfinite(losses))
    state = torch.load(out / "weights.pt", weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float32 for k, v in state.items() if v.is_floating_point())
    est = HandPoseEstimator(weights=out / "weights.pt", device="cpu")
    assert est.meta["recipe"]["precision"] == "bfloat16 mixed"
    pose = est.estimate(np.zeros((64, 64, 3), np.uint8), np.array([[80.0, 0, 32], [0, 80, 32], [0, 0, 1]]), roi="image")
    assert np.all(np.isfinite(pose.keypoints_3d))



def test_cpu_bfloat16_falls_back_to_float32_without_native_bfloat16(tmp_path, monkeypatch, capsys):
    """cpu_bf16: true on a CPU with neither AMX nor AVX512-BF16, where bfloat16 is emulated
    (about 10x slower), trains in float32 with a warning, and the recipe says float32."""
    import hand25d_ros.train as train_mod
    monkeypatch.setattr(train_mod, "cpu_has_amx_bf16", lambda: False)
    monkeypatch.setattr(train_mod, "cpu_has_avx512_bf16", lambda: False)
    out = tmp_path / "fallback"
    assert main(_bf16_run_args(out, tmp_path / "cache", "true")) == 0
    assert "neither AMX nor AVX512-BF16" in capsys.readouterr().out
    est = HandPoseEstimator(weights=out / "weights.pt", device="cpu")
    assert est.meta["recipe"]["precision"] == "float32"


@pytest.mark.parametrize("bf16_s, want", [(0.5, "bfloat16 mixed"), (2.0, "float32")])
def test_cpu_bfloat16_with_avx512_alone_takes_the_faster_measured(tmp_path, monkeypatch, capsys, bf16_s, want):
    """With AVX512-BF16 but no AMX, bfloat16 is slower than float32 on some CPUs and faster
    on others, so true times both and trains in the faster; the times are printed."""
    import hand25d_ros.train as train_mod
    monkeypatch.setattr(train_mod, "cpu_has_amx_bf16", lambda: False)
    monkeypatch.setattr(train_mod, "cpu_has_avx512_bf16", lambda: True)
    monkeypatch.setattr(train_mod, "measure_cpu_precisions", lambda arch, batch: (1.0, bf16_s))
    out = tmp_path / "measured"
    assert main(_bf16_run_args(out, tmp_path / "cache", "true")) == 0
    assert f"measured {bf16_s:.2f} s a step in bfloat16 against 1.00 s in float32" in capsys.readouterr().out
    est = HandPoseEstimator(weights=out / "weights.pt", device="cpu")
    assert est.meta["recipe"]["precision"] == want


def test_cpu_precision_timing_runs_both_and_leaves_no_trace():
    """The timing behind that choice runs real steps of a fresh network in each precision."""
    import torch
    from hand25d_ros.train import measure_cpu_precisions
    before = torch.get_autocast_dtype("cpu"), torch.is_autocast_enabled("cpu")
    fp32_s, bf16_s = measure_cpu_precisions({"name": "small", "crop_head": True}, 2)
    assert 0 < fp32_s < 60 and 0 < bf16_s < 60
    assert (torch.get_autocast_dtype("cpu"), torch.is_autocast_enabled("cpu")) == before


def test_cpu_bfloat16_rejects_other_values(tmp_path):
    with pytest.raises(SystemExit, match="train.cpu_bf16 must be true, false or always, got 'yes please'"):
        main(["--out", str(tmp_path / "r"), "--set", "train.cpu_bf16=yes please"])
    assert not (tmp_path / "r").exists()


def test_channels_last_gradients_match_contiguous_on_this_cpu():
    """CPU training runs the pose network on channels-last tensors. oneDNN has had kernels that
    crash or return wrong weight gradients in that layout (1x1 stride-2 convolutions whose input
    channels are fewer than its register block, uxlfoundation/oneDNN#6035; the detector's 12-channel
    one crashes here): the gradients of every parameter must be those of the default layout,
    up to float32 rounding (a broken kernel is off by its whole size)."""
    import copy
    import torch
    from hand25d_ros.model import build_model
    torch.manual_seed(0)
    model = build_model("small").train()
    x = torch.rand(4, 3, 128, 128)

    def grads(channels_last):
        m, xx = copy.deepcopy(model), x
        if channels_last:
            m, xx = m.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        uv, z, conf, logit = m(xx, crop_logits=True)
        target = torch.linspace(0, 127, uv.numel()).view_as(uv)
        ((uv - target).square().mean() + z.square().mean() + logit.square().mean()).backward()
        return {n: p.grad for n, p in m.named_parameters() if p.grad is not None}

    ref, cl = grads(False), grads(True)
    assert ref.keys() == cl.keys() and len(ref) > 50
    rel = {n: float((cl[n] - ref[n]).norm() / ref[n].norm().clamp_min(1e-30)) for n in ref}
    worst = max(rel, key=rel.get)
    assert rel[worst] < 0.1, f"{worst}: channels-last gradient off by {rel[worst]:.3f} of its norm"


BAD_VALUES = {
    # --set item: what the error must say (the key, what is expected, the value)
    "train.max_steps=abc": "train.max_steps must be an integer >= 1, got 'abc' (str)",
    "train.max_steps=-5": "train.max_steps must be an integer >= 1, got -5",
    "train.max_steps=0": "train.max_steps must be an integer >= 1, got 0",
    "train.max_steps=2.5": "train.max_steps must be an integer >= 1, got 2.5",
    "train.max_steps=true": "train.max_steps must be an integer >= 1, got True",
    "train.lr=nan": "train.lr must be a number > 0, got 'nan' (str)",
    "train.lr=.nan": "train.lr must be a finite number > 0, got nan",
    "train.lr=.inf": "train.lr must be a finite number > 0, got inf",
    "train.lr=0": "train.lr must be a number > 0, got 0",
    "train.lr=-0.001": "train.lr must be a number > 0, got -0.001",
    "train.time_budget_min=-10": "train.time_budget_min must be a number >= 0, got -10",
    "train.checkpoint_every=0": "train.checkpoint_every must be an integer >= 1, got 0",
    "train.log_every=0": "train.log_every must be an integer >= 1, got 0",
    "train.batch_size=0": "train.batch_size must be an integer >= 1, got 0",
    "train.warmup_steps=-1": "train.warmup_steps must be an integer >= 0, got -1",
    "train.weight_decay=-0.1": "train.weight_decay must be a number >= 0, got -0.1",
    "train.amp=1": "train.amp must be true or false, got 1",
    "train.cpu_bf16=1": "train.cpu_bf16 must be true, false or always, got 1",
    "train.seed=x": "train.seed must be an integer >= 0, got 'x' (str)",
    "data.synthetic.num_samples=0": "data.synthetic.num_samples must be an integer >= 1, got 0",
    "data.p_negative=1.5": "data.p_negative must be a number in [0, 1], got 1.5",
    "data.p_negative=0.5": "data.p_negative 0.5 needs arch.crop_head: true (the hand-free crops train its "
                           "hand-present logit and nothing else)",
    "data.extra=rhd": "data.extra must be a list, got 'rhd' (str)",
    "data.extra=[{type: rhd}]": "data.extra[0] needs root (type: one of folder, freihand, rhd, stb; root: the "
                                "dataset's folder), got {'type': 'rhd'}",
    "data.extra=[{root: x}]": "data.extra[0] needs type",
    "data.extra=[{type: rhd, root: 5}]": "data.extra[0].root must be a string, got 5",
    "data.extra=[{type: RHD, root: x}]": "data.extra[0].type must be one of folder, freihand, rhd, stb, got 'RHD'",
    "data.extra=[{type: rhd, root: x, weight: -1}]": "data.extra[0].weight must be a number >= 0, got -1",
    "data.extra=[{type: stb, root: x}, {type: rhd, root: x, weight: abc}]":
        "data.extra[1].weight must be a number >= 0, got 'abc' (str)",
    "data.synthetic_weight=0": "data.synthetic_weight and every data.extra weight are 0",
    "data.extra=[{type: stb, root: x, split: 1}]": "data.extra[0].split must be a string, got 1",
    "data.extra=[{type: folder, root: x, split: train}]":
        "data.extra[0] is a 'folder' dataset, which has no split (got split 'train')",
    "data.extra=[{type: rhd, root: x, options: {hands: both}}]":
        "data.extra[0].options: a 'rhd' dataset has no option 'hands' (did you mean 'hand'?); "
        "it takes hand, min_visible",
    "data.extra=[{type: folder, root: x, options: {versions: [0]}}]":
        "data.extra[0].options: a 'folder' dataset has no option 'versions'; it takes none",
    "data.extra=[{type: freihand, root: x, options: [0]}]":
        "data.extra[0].options must be a mapping of the freihand loader's arguments, got [0]",
    "data.extra=[{type: stb, root: x, split: test, options: {sequences: [B1Counting]}}]":
        "data.extra[0]: give STB's split or options.sequences, not both",
    "arch.name=7": "arch.name must be a string, got 7",
    "data.val_synthetic.config.p_left=2": "data.val_synthetic.config {'p_left': 2}: p_left is a probability, got 2",
    "val_real=null": "val_real is empty (null): give its entries, or leave it out for its defaults "
                     "(val_real.path: null switches real validation off)",
    "data.augment=null": "data.augment is empty (null): give its entries, or leave it out for its defaults",
    "arch.name=huge": "arch {'name': 'huge'}: unknown arch 'huge'; choose one of ['base', 'small', 'tiny']",
    "arch.input_size=0": "arch {'name': 'small', 'input_size': 0}: crop_size_px must be >= 16, got 0",
    "arch.widths=5": "arch {'name': 'small', 'widths': 5}: 'int' object is not subscriptable",
    "arch.num_keypoints=5": "unknown config key 'arch.num_keypoints'",
    "val_real.path=3": "val_real.path must be a string, got 3",
}


@pytest.fixture
def no_training(monkeypatch):
    """main() with train() replaced: a value the check let through reaches the stub at once
    instead of rendering for minutes; the configs it got are kept."""
    import hand25d_ros.train as train_mod
    got = []
    monkeypatch.setattr(train_mod, "train",
                        lambda cfg, out, command="", state=None, extras=None, init=None: got.append(cfg))
    return got


@pytest.mark.parametrize("item", sorted(BAD_VALUES))
def test_bad_values_are_a_clear_error_before_anything_runs(tmp_path, no_training, item):
    import re
    import time
    t0 = time.perf_counter()
    with pytest.raises(SystemExit, match="^--set: " + re.escape(BAD_VALUES[item])):
        main(["--out", str(tmp_path / "r"), "--set", item])
    assert time.perf_counter() - t0 < 2.0
    assert not no_training and not (tmp_path / "r").exists()


def test_the_real_validation_set_is_refused_as_training_data(tmp_path, no_training, monkeypatch):
    """val_real.path's folder (or the default one) given as a data.extra folder: it is for
    measuring only, so the run stops before anything, naming the entry."""
    monkeypatch.chdir(tmp_path)
    for args in (["--set", "data.extra=[{type: folder, root: snap}]", "--set", "val_real.path=snap/"],
                 ["--set", f"data.extra=[{{type: folder, root: {tmp_path.parent / 'shared/data/real_val_snap'}}}]",
                  "--set", "val_real.path=null"]):
        with pytest.raises(SystemExit, match=r"data.extra\[0\].root .* is the real validation set"):
            main(["--out", str(tmp_path / "r")] + args)
    assert not no_training and not (tmp_path / "r").exists()


def test_bad_values_in_a_config_file_get_the_same_check(tmp_path, no_training):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("train:\n  lr: .nan\n")
    with pytest.raises(SystemExit, match=r"bad.yaml: train.lr must be a finite number > 0, got nan"):
        main(["--config", str(cfg), "--out", str(tmp_path / "r")])
    cfg.write_text("train:\n  lr: 1e-3\n")   # YAML 1.1 reads this as text
    with pytest.raises(SystemExit, match=r"bad.yaml: train.lr must be a number > 0, got '1e-3' \(str\) "
                                         r"\(YAML reads 1e-3 as text"):
        main(["--config", str(cfg), "--out", str(tmp_path / "r")])
    assert not no_training and not (tmp_path / "r").exists()


def test_a_section_left_empty_in_a_config_file_is_a_clear_error(tmp_path, no_training):
    """Every entry of a section commented out leaves it null: val_real's was an AttributeError
    after the renders, augment's a TypeError, and a --set into it a TypeError."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("val_real:\n  # path: elsewhere\n")
    with pytest.raises(SystemExit, match=r"c.yaml: val_real is empty \(null\)"):
        main(["--config", str(cfg), "--out", str(tmp_path / "r")])
    with pytest.raises(SystemExit, match=r"--set 'val_real.limit=3': val_real is None in the config"):
        main(["--config", str(cfg), "--out", str(tmp_path / "r"), "--set", "val_real.limit=3"])
    cfg.write_text("data:\n  val_synthetic:\n  synthetic:\n    config:\n")   # these mean off, defaults
    assert main(["--config", str(cfg), "--out", str(tmp_path / "r")]) == 0
    assert not (tmp_path / "r").exists() and len(no_training) == 1


def test_good_values_pass_the_check(tmp_path, no_training):
    """The type is the default's, an int does for a float, and 0 or null keeps its meaning
    (off, no limit, all) where the trainer gives it one."""
    sets = ["train.lr=1", "train.lr=1e-3", "train.lr=1.0e-3", "train.weight_decay=0", "train.time_budget_min=0",
            "train.time_budget_min=0.5", "train.max_steps=1", "train.warmup_steps=0", "train.val_every=0",
            "train.snapshot_every=0", "train.threads=0", "train.amp=false", "train.cpu_bf16=always",
            "train.init_weights=null", "val_real.path=null", "val_real.limit=0", "data.p_negative=1", "arch.crop_head=true",
            "data.val_synthetic.num_samples=0", "data.synthetic_weight=2", "data.extra=[]"]
    assert main(["--out", str(tmp_path / "r"), *[a for s in sets for a in ("--set", s)]]) == 0
    (cfg,) = no_training
    assert cfg["train"]["lr"] == 0.001 and cfg["train"]["time_budget_min"] == 0.5 and cfg["val_real"]["path"] is None



@pytest.mark.parametrize("error, message", [
    ("DatasetError", "cannot read image /data/rgb/00000007.jpg: corrupt or not an image"),
    ("OSError", "[Errno 2] No such file or directory: '/cache/shard_00003.npz'")])
def test_an_unreadable_file_mid_run_is_a_one_line_error(tmp_path, monkeypatch, error, message):
    """An extra dataset's image or a shard is read by a DataLoader worker, and torch
    re-raises its error with the worker's traceback as the message (an OSError loses its
    strerror and filename on the way): the run ends with the original message."""
    import errno

    import torch.utils.data

    import hand25d_ros.train as train_mod
    from hand25d_ros.data.public_datasets import DatasetError

    class Unreadable(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            if error == "OSError":
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/cache/shard_00003.npz")
            raise DatasetError(message)

    def train(cfg, out, command="", **kwargs):
        next(iter(torch.utils.data.DataLoader(Unreadable(), num_workers=1)))

    monkeypatch.setattr(train_mod, "train", train)
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "r")])
    assert str(exc.value) == f"hand25d-train: {message}"


def test_real_validation_notice_says_where_or_why_not(tmp_path, monkeypatch):
    from hand25d_ros.train import real_validation_notice
    monkeypatch.chdir(tmp_path)
    assert real_validation_notice({"val_real": {"path": None}}) == "real validation: off (val_real.path is null)"
    off = real_validation_notice({"val_real": {"path": "../shared/data/real_val_snap"}})
    assert off.startswith("real validation: off, no ") and str(tmp_path) in off and "working directory" in off
    (tmp_path / "snap").mkdir()
    (tmp_path / "snap" / "annotations.json").write_text("[]")
    assert real_validation_notice({"val_real": {"path": "snap"}}) == f"real validation: {tmp_path / 'snap'}"


def _train_until(tmp_path, settings, path):
    """A hand25d-train process in its own process group with these --set items, once ``path``
    exists (asserted still running then)."""
    import subprocess
    import sys
    import time
    args = [sys.executable, "-m", "hand25d_ros.train", "--out", str(tmp_path / "run")]
    for item in settings:
        args += ["--set", item]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    end = time.monotonic() + 120
    while not path.exists() and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.communicate()[1]}"
    return proc


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the render workers from /proc")
@pytest.mark.parametrize("signame, to_group", [("SIGINT", True), ("SIGTERM", False)])
def test_a_run_stopped_while_rendering_ends_its_render_workers_and_says_how_to_go_on(tmp_path, signame, to_group):
    """Ctrl-C reaches the whole process group, render workers included (each printed its own
    traceback); kill, timeout or a cancelled job reach the run alone (it died outright, its
    workers rendering on as orphans). The run has no checkpoint yet, so the message must not
    point at one."""
    import os
    import signal
    out, cache = tmp_path / "run", tmp_path / "cache"
    proc = _train_until(tmp_path, ["arch.name=tiny", "arch.input_size=64", f"data.synthetic.cache_dir={cache}",
                                   "data.synthetic.num_samples=4000", "data.synthetic.shard_size=4",
                                   "data.synthetic.render_workers=2",
                                   f"data.val_synthetic.cache_dir={tmp_path / 'cache_val'}",
                                   "data.val_synthetic.num_samples=4", "val_real.path=null"],
                        cache / "shard_00001.npz")
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    workers = [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert len(workers) == 2
    if to_group:
        os.killpg(proc.pid, getattr(signal, signame))
    else:
        proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert not (out / "last.pt").exists() and "last.pt" not in err, err
    assert "interrupted before its first checkpoint" in err, err
    assert not [w for w in workers if Path(f"/proc/{w}").exists()]


def test_sigterm_to_the_process_group_mid_training_is_an_interrupt(tmp_path):
    """timeout and systemd send SIGTERM to every process of the run, the DataLoader's workers
    too: torch's watch over them raised 'DataLoader worker ... is killed by signal' over the
    interrupt (a traceback and exit status 1), where the run should stop as on Ctrl-C."""
    import os
    import signal
    out = tmp_path / "run"
    proc = _train_until(tmp_path, [f"data.synthetic.cache_dir={tmp_path / 'cache'}", "data.synthetic.num_samples=8",
                                   "data.synthetic.render_workers=1", "data.val_synthetic.num_samples=0",
                                   "train.batch_size=8", "train.num_workers=1", "train.checkpoint_every=2",
                                   "train.max_steps=100000", "val_real.path=null"],
                        out / "last.pt")
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert f"interrupted; the same command resumes from {out / 'last.pt'}" in err


def test_a_resume_compares_extra_entries_with_their_default_weight():
    """An entry written with weight 1.0 and one without are the same setting (the resume was
    refused as a change); another weight is a change."""
    from hand25d_ros.train import RESUMABLE_KEYS, _flat, changed_settings, settings_in_effect

    def change(before, now):
        return changed_settings(_flat(settings_in_effect({"data": {"extra": before}})),
                                _flat(settings_in_effect({"data": {"extra": now}})), RESUMABLE_KEYS)
    entry = {"type": "folder", "root": "/data/mine"}
    assert change([entry], [{**entry, "weight": 1.0}]) is None
    assert "data.extra" in change([entry], [{**entry, "weight": 0.5}])
    assert "data.extra" in change([{"type": "stb", "root": "/d"}], [{"type": "stb", "root": "/d", "split": "train"}])
    # no options are the loader's defaults; other options are other data
    assert change([entry], [{**entry, "options": {}}]) is None
    rhd = {"type": "rhd", "root": "/d"}
    assert "data.extra" in change([rhd], [{**rhd, "options": {"hand": "both"}}])


def _folder_with_unlabelled(tmp_path, cut, two_d_only=False):
    """The bundled right-hand photo's annotation, with keypoints ``cut`` written null."""
    import json
    import shutil
    from importlib import resources
    bundled = resources.files("hand25d_ros") / "samples"
    s = json.loads((bundled / "annotations.json").read_text())["samples"][0]
    s.pop("is_left")                     # as in real_val_snap: the 3D tells the hand
    shutil.copy(str(bundled / s["image"]), tmp_path / s["image"])
    full = json.loads(json.dumps(s))
    uv = s.get("joints_2d_px") or None
    if uv is None:
        from hand25d_ros import geometry as geo
        uv = geo.project_points(np.array(s["joints_3d_mm"]), np.array(s["K"])).tolist()
    s["joints_2d_px"] = [None if k in cut else r for k, r in enumerate(uv)]
    s["joints_3d_mm"] = None if two_d_only else [None if k in cut else r for k, r in enumerate(s["joints_3d_mm"])]
    full["joints_2d_px"] = uv
    (tmp_path / "annotations.json").write_text(json.dumps({"samples": [s, full]}))
    return np.array(uv)


def test_unlabelled_keypoints_frame_nothing_and_train_nothing(tmp_path):
    """A keypoint an annotated folder leaves null (cut off, or hidden and not guessed) had to be
    a made-up point: it trained the network toward it at full weight and widened the crop (three
    at (0, 0) shrank a hand from 105 to 45 px of its 128 px crop). Now the crop is framed on the
    labelled keypoints and both loss terms give the others weight 0."""
    import torch

    from hand25d_ros.augment import AugmentConfig
    from hand25d_ros.losses import latent25d_loss
    from hand25d_ros.train import CropSource, TrainingView, build_extra_source
    cut = [4, 8, 12]                     # the thumb, index and middle tips: the box's far side
    uv_full = _folder_with_unlabelled(tmp_path, cut)
    labelled = np.array([k not in cut for k in range(21)])
    source = CropSource(build_extra_source({"type": "folder", "root": str(tmp_path)}), 64, 0,
                        scale=(1.5, 1.5), shift=0.0)
    crop = source[0]
    assert crop["labelled"].tolist() == labelled.tolist()
    uv = crop["joints_2d_px"][labelled]
    np.testing.assert_allclose(max(uv.max(0) - uv.min(0)), 64 / 1.5, rtol=1e-9)
    assert max(np.ptp(uv_full[labelled], 0)) < 0.95 * max(np.ptp(uv_full, 0))   # the cut ones did widen it
    for augment in (None, AugmentConfig(p_affine=1.0)):
        view = TrainingView(source, augment, 0)
        batch = torch.utils.data.default_collate([view[0], view[1]])
        assert batch["weight_2d"][0].tolist() == labelled.tolist() and batch["weight_z"][0].tolist() == labelled.tolist()
        assert batch["weight_2d"][1].all() and batch["weight_z"][1].all() and batch["has_3d"].all()
        assert torch.isfinite(batch["uv"]).all() and torch.isfinite(batch["z"]).all()
        # the same photo fully labelled: its targets agree on the labelled keypoints
        torch.testing.assert_close(batch["z"][0][labelled], batch["z"][1][labelled], atol=1e-5, rtol=0)
        uv_pred = (batch["uv"] + torch.randn(batch["uv"].shape, generator=torch.Generator().manual_seed(0))).requires_grad_()
        z_pred = (batch["z"] + 0.3).requires_grad_()
        loss, _ = latent25d_loss(uv_pred, z_pred, batch["uv"], batch["z"], 64, batch["has_3d"], batch["weight_2d"],
                                 1.0, batch["weight_z"])
        loss.backward()
        assert torch.isfinite(loss)
        assert (uv_pred.grad[0, cut] == 0).all() and (z_pred.grad[0, cut] == 0).all()
        assert (uv_pred.grad[0, labelled] != 0).all() and (z_pred.grad[0, labelled] != 0).all()
        # whatever the placeholder under an unlabelled keypoint, the loss is the same
        moved_uv, moved_z = batch["uv"].clone(), batch["z"].clone()
        moved_uv[0, cut], moved_z[0, cut] = 50.0, -3.0
        again, _ = latent25d_loss(uv_pred, z_pred, moved_uv, moved_z, 64, batch["has_3d"], batch["weight_2d"],
                                  1.0, batch["weight_z"])
        assert torch.equal(loss, again)


def test_a_3d_sample_with_an_unlabelled_palm_keypoint_has_no_hand_from_chirality(tmp_path):
    """A 3D sample's hand is read from its palm keypoints' chirality; with one of them
    unlabelled (NaN) the reading compared NaN and called every such hand a right one."""
    from hand25d_ros.train import CropSource, TrainingView, build_extra_source
    _folder_with_unlabelled(tmp_path, [17])                       # the pinky MCP
    view = TrainingView(CropSource(build_extra_source({"type": "folder", "root": str(tmp_path)}), 64, 0), None, 0)
    assert view[0]["is_left"].item() == -1.0 and view[1]["is_left"].item() in (0.0, 1.0)


def test_the_loss_on_renders_is_unchanged_by_per_keypoint_depth_weights(tmp_path):
    """Renders label every keypoint: their batches carry weights of 1, and the loss is the
    same bits as the unweighted one (the per-sample has_3d mask alone, as it always was)."""
    import torch

    from hand25d_ros.augment import AugmentConfig
    from hand25d_ros.losses import latent25d_loss
    from hand25d_ros.train import TrainingView, ensure_synthetic
    synth = ensure_synthetic(tmp_path / "cache", 4, 0, 64, shard_size=4, workers=1)
    view = TrainingView(synth, AugmentConfig(), 0)
    batch = torch.utils.data.default_collate([view[i] for i in range(4)])
    assert batch["weight_2d"].eq(1).all() and batch["weight_z"].eq(1).all() and batch["has_3d"].all()
    g = torch.Generator().manual_seed(1)
    uv_pred = batch["uv"] + 3 * torch.randn(batch["uv"].shape, generator=g)
    z_pred = batch["z"] + torch.randn(batch["z"].shape, generator=g)
    has_3d = batch["has_3d"].clone()
    has_3d[1] = False
    new, terms = latent25d_loss(uv_pred, z_pred, batch["uv"], batch["z"], 64, has_3d, batch["weight_2d"], 0.7,
                                batch["weight_z"])
    old, _ = latent25d_loss(uv_pred, z_pred, batch["uv"], batch["z"], 64, has_3d, batch["weight_2d"], 0.7)
    # the formula before per-keypoint depth weights, written out
    err2d = (uv_pred - batch["uv"]).abs().sum(-1) / 64
    loss2d = (err2d * batch["weight_2d"]).sum() / batch["weight_2d"].sum().clamp(min=1.0)
    mask = has_3d[:, None].to(err2d.dtype).expand_as(err2d)
    lossz = ((z_pred - batch["z"]).abs() * mask).sum() / mask.sum().clamp(min=1.0)
    assert torch.equal(new, old) and torch.equal(new, loss2d + 0.7 * lossz) and lossz > 0

"""Synthetic renderer: projection and row order, label/image consistency, determinism, shards."""
import json
import pickle

import cv2
import numpy as np
import pytest

from hand25d_ros import geometry as geo
from hand25d_ros.data.render import VERTEX_FLOATS, MeshRenderer, default_lights
from hand25d_ros.data.synthetic import ShardDataset, SyntheticConfig, SyntheticHandGenerator, write_shards

TIPS = [4, 8, 12, 16, 20]


def _octahedron(centre, radius):
    d = radius * np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1.0]])
    faces = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    buf = np.zeros((6, VERTEX_FLOATS), np.float32)
    buf[:, 0:3] = centre + d
    buf[:, 3:6] = d / radius
    buf[:, 6:9] = 1.0
    buf[:, 14] = 7
    return buf, faces


def test_render_lands_where_K_projects_rows_top_down():
    """A blob in the top-left part of an off-centre K lands on K's pixel (a row flip would not)."""
    r = MeshRenderer(64)
    K = np.array([[400.0, 0, 20.0], [0, 400.0, 45.0], [0, 0, 1]])
    c = np.array([0.01, -0.03, 0.5])
    buf, faces = _octahedron(c, 0.004)
    rgb, alpha, depth, part = r.render(buf, faces, K, default_lights())
    ys, xs = np.nonzero(alpha > 0.5)
    u, v = geo.project_points(c[None], K)[0]
    assert v < 32                                   # the top half of the image
    assert abs(xs.mean() - u) < 0.6 and abs(ys.mean() - v) < 0.6
    assert depth[int(round(v)), int(round(u))] == pytest.approx(0.496, abs=0.0005)
    assert part[int(round(v)), int(round(u))] == 7 and part[0, 0] == 0 and np.isinf(depth[0, 0])
    # rendering survives pickling (the GL context is per process and rebuilt lazily)
    r2 = pickle.loads(pickle.dumps(r))
    np.testing.assert_array_equal(r2.render(buf, faces, K)[1], alpha)


def test_render_has_no_sub_pixel_offset_from_K():
    """The one above allows 0.6 px per blob, and so would pass a half-pixel convention error
    (pixel centres at 0 against 0.5), which every label would carry. Over blobs at random
    sub-pixel places the coverage centroid's mean offset from K's projection is ~0.02 px."""
    r = MeshRenderer(64)
    K = np.array([[400.0, 0, 20.0], [0, 400.0, 45.0], [0, 0, 1]])
    rng = np.random.default_rng(0)
    offsets_px = []
    for _ in range(24):
        c = np.array([rng.uniform(-0.02, 0.02), rng.uniform(-0.05, 0.0), 0.5])
        alpha = r.render(*_octahedron(c, 0.004), K, default_lights())[1]
        ys, xs = np.nonzero(alpha > 0.5)
        offsets_px.append(np.array([xs.mean(), ys.mean()]) - geo.project_points(c[None], K)[0])
    assert np.all(np.abs(np.mean(offsets_px, axis=0)) < 0.1), np.mean(offsets_px, axis=0)


@pytest.fixture(scope="module")
def gen():
    return SyntheticHandGenerator(SyntheticConfig(crop_size_px=64), seed=3)


def test_samples_are_deterministic(gen):
    a = gen.sample(5)
    b = SyntheticHandGenerator(SyntheticConfig(crop_size_px=64), seed=3).sample(5)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(gen.sample(6)["image"], a["image"])
    assert not np.array_equal(SyntheticHandGenerator(SyntheticConfig(crop_size_px=64), seed=4).sample(5)["image"],
                              a["image"])


def test_sample_format_and_label_consistency(gen):
    lefts = 0
    for i in range(12):
        s = gen.sample(i)
        assert s["image"].shape == (64, 64, 3) and s["image"].dtype == np.uint8
        assert s["K"].shape == (3, 3) and s["joints_3d_mm"].shape == (21, 3) and s["joints_2d_px"].shape == (21, 2)
        assert s["visible"].dtype == bool and s["visible"].shape == (21,)
        lefts += s["is_left"]
        # the 2D labels are the projection of the 3D labels through the crop's K
        np.testing.assert_allclose(geo.project_points(s["joints_3d_mm"], s["K"]), s["joints_2d_px"], atol=1e-6)
        assert 200 < s["joints_3d_mm"][9, 2] < 1500
        # the crop is made as inference makes it: the keypoint box fills 1/1.7 .. 1/1.2 of the side
        span = (s["joints_2d_px"].max(0) - s["joints_2d_px"].min(0)).max()
        assert 64 / 1.7 - 0.5 < span < 64 / 1.2 + 0.5
    assert 0 < lefts < 12


def test_visible_labels_lie_on_the_rendered_hand(gen):
    """Visible fingertip labels sit on the hand's silhouette in the image; hidden ones are hidden."""
    on, n_vis, n_hidden = [], 0, 0
    for i in range(30):
        s = gen.sample(i, with_mask=True)
        m = s["mask"] > 0.25
        for k in range(21):
            x, y = np.round(s["joints_2d_px"][k]).astype(int)
            if not (0 <= x < 64 and 0 <= y < 64):
                assert not s["visible"][k]
                continue
            if s["visible"][k]:
                n_vis += 1
                on.append(m[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].any())
            else:
                n_hidden += 1
    assert np.mean(on) > 0.99, np.mean(on)
    assert n_vis > 300 and n_hidden > 30


def test_config_is_validated():
    with pytest.raises(ValueError, match="p_left"):
        SyntheticConfig(p_left=1.5)
    with pytest.raises(ValueError, match="crop_scale"):
        SyntheticConfig(crop_scale=(1.7, 1.2))


def test_shards_roundtrip_resume_and_mismatch(tmp_path):
    cfg = SyntheticConfig(crop_size_px=32, supersample=1)
    root = tmp_path / "c"
    write_shards(root, 5, cfg, seed=1, shard_size=2, progress=False)
    assert sorted(p.name for p in root.glob("shard_*.npz")) == ["shard_00000.npz", "shard_00001.npz",
                                                                "shard_00002.npz"]
    ds = ShardDataset(root)
    assert len(ds) == 5
    ref = SyntheticHandGenerator(cfg, 1).sample(4)
    s = ds[4]
    np.testing.assert_array_equal(s["image"], ref["image"])
    np.testing.assert_allclose(s["joints_3d_mm"], ref["joints_3d_mm"], rtol=1e-6)
    np.testing.assert_allclose(s["joints_2d_px"], ref["joints_2d_px"], atol=1e-4)
    np.testing.assert_array_equal(s["visible"], ref["visible"])
    assert s["is_left"] == ref["is_left"] and ds[-1]["is_left"] == s["is_left"]
    with np.load(root / "shard_00000.npz") as z:
        assert z["images"].dtype == np.uint8 and z["K"].dtype == np.float32 and z["visible"].dtype == bool
    # resume: complete shards are not redone; a torn one is
    mtime = (root / "shard_00000.npz").stat().st_mtime_ns
    (root / "shard_00001.npz").write_bytes(b"torn")
    write_shards(root, 5, cfg, seed=1, shard_size=2, progress=False)
    assert (root / "shard_00000.npz").stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(ShardDataset(root)[3]["image"], SyntheticHandGenerator(cfg, 1).sample(3)["image"])
    # the Dataset pickles into DataLoader workers
    ds2 = pickle.loads(pickle.dumps(ShardDataset(root)))
    np.testing.assert_array_equal(ds2[1]["image"], ds[1]["image"])
    with pytest.raises(ValueError, match=r"other settings \(.*cache.json: seed 1, here 2\)"):
        write_shards(root, 5, cfg, seed=2, shard_size=2, progress=False)
    # the message names what differs, not the seed and shard size that are the same
    with pytest.raises(ValueError, match=r"cache.json: config.crop_size_px 32, here 48; config.p_left 0.5, here 0.3\)"):
        write_shards(root, 5, SyntheticConfig(crop_size_px=48, supersample=1, p_left=0.3), seed=1, shard_size=2,
                     progress=False)
    assert json.loads((root / "cache.json").read_text())["seed"] == 1
    good_meta = (root / "cache.json").read_text()
    (root / "cache.json").write_text(good_meta[: len(good_meta) // 2])    # damaged: named, not a JSON traceback
    from hand25d_ros.data.synthetic import CacheError
    for read in (lambda: ShardDataset(root), lambda: write_shards(root, 5, cfg, seed=1, shard_size=2, progress=False)):
        with pytest.raises(CacheError, match=r"cache.json is damaged \(JSONDecodeError"):
            read()
    (root / "cache.json").write_text(good_meta)
    # an unchanged cache.json is not rewritten: a second run starting on the same cache
    # must never read it half-written
    stat = (root / "cache.json").stat()
    write_shards(root, 5, cfg, seed=1, shard_size=2, progress=False)
    assert (root / "cache.json").stat().st_mtime_ns == stat.st_mtime_ns
    write_shards(root, 6, cfg, seed=1, shard_size=2, progress=False)
    assert json.loads((root / "cache.json").read_text())["num_samples"] == 6
    # a smaller run on the extended cache trains on what it asked for, not the whole folder
    for n, shards in ((3, 2), (4, 2), (5, 3)):
        part = ShardDataset(root, num_samples=n)
        assert len(part) == n and len(part.shards) == shards
        np.testing.assert_array_equal(part[n - 1]["image"], ShardDataset(root)[n - 1]["image"])
        with pytest.raises(IndexError):
            part[n]
    assert len(ShardDataset(root, num_samples=100)) == 6
    from hand25d_ros.train import ensure_synthetic
    assert len(ensure_synthetic(root, 3, seed=1, crop_size=32, shard_size=2,
                                config={"supersample": 1})) == 3
    with pytest.raises(ValueError, match="num_samples"):
        ShardDataset(root, num_samples=0)
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(FileNotFoundError, match="cache.json"):
        ShardDataset(tmp_path / "nothing")
    with pytest.raises(IndexError):
        ds[5]


def test_skin_detail_changes_only_the_hand_pixels_and_no_label():
    """hand_detail draws from its own random stream: the same sample with and without it has
    the same pose, camera, background and labels, and differs on the hand only."""
    quiet = dict(crop_size_px=64, p_blur=0.0, p_motion_blur=0.0, p_jpeg=0.0, p_low_res=0.0)
    changed = 0
    for i in range(6):
        a = SyntheticHandGenerator(SyntheticConfig(hand_detail=0.0, **quiet), seed=11).sample(i, with_mask=True)
        b = SyntheticHandGenerator(SyntheticConfig(hand_detail=1.0, **quiet), seed=11).sample(i, with_mask=True)
        for k in ("K", "joints_3d_mm", "joints_2d_px", "visible", "is_left", "mask"):
            np.testing.assert_array_equal(a[k], b[k])
        diff = np.abs(a["image"].astype(int) - b["image"].astype(int)).sum(-1)
        assert diff[a["mask"] == 0].max(initial=0) <= 3        # noise rounding only, off the hand
        changed += int(diff[a["mask"] > 0.5].sum() > 0)
    assert changed >= 4                                            # creases or nails in view


def test_hand_texture_changes_only_the_hand_and_no_label():
    """hand_texture draws from its own random stream too: labels, camera and background are
    the same with and without it; pixels change on the hand and at most a few pixels past its
    edge (the hand's own defocus)."""
    quiet = dict(crop_size_px=64, p_blur=0.0, p_motion_blur=0.0, p_jpeg=0.0, p_low_res=0.0)
    changed = 0
    for i in range(6):
        a = SyntheticHandGenerator(SyntheticConfig(hand_texture=0.0, **quiet), seed=12).sample(i, with_mask=True)
        b = SyntheticHandGenerator(SyntheticConfig(hand_texture=1.0, **quiet), seed=12).sample(i, with_mask=True)
        for k in ("K", "joints_3d_mm", "joints_2d_px", "visible", "is_left"):
            np.testing.assert_array_equal(a[k], b[k])
        near_hand = cv2.dilate((a["mask"] > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        diff = np.abs(a["image"].astype(int) - b["image"].astype(int)).sum(-1)
        assert diff[~near_hand].max(initial=0) <= 3                 # noise rounding only, off the hand
        changed += int(diff[a["mask"] > 0.5].mean() > 1.0)
    assert changed >= 5


def test_hand_layer_texture_keeps_the_layer_valid_and_its_coverage():
    from hand25d_ros.data.synthetic import hand_layer_texture
    S = 64
    alpha = np.zeros((S, S), np.float32)
    cv2.circle(alpha, (32, 32), 18, 1.0, -1)
    premul = alpha[..., None] * np.array([0.8, 0.55, 0.45], np.float32)
    for seed in range(8):
        p2, a2 = hand_layer_texture(np.random.default_rng(seed), premul, alpha, 1.0)
        assert p2.shape == premul.shape and a2.shape == alpha.shape
        assert p2.dtype == np.float32 and a2.dtype == np.float32
        assert np.isfinite(p2).all() and p2.min() >= 0.0 and p2.max() <= 1.0
        assert abs(float(a2.sum()) - float(alpha.sum())) < 0.01 * float(alpha.sum())   # a blur keeps coverage
        inside = alpha > 0.99
        colour = p2[inside].mean(0) / max(float(a2[inside].mean()), 1e-6)
        np.testing.assert_allclose(colour, [0.8, 0.55, 0.45], atol=0.05)            # zero-mean mottling
        assert np.all(p2 <= a2[..., None] + 0.02)                   # premultiplied: colour <= coverage
    with pytest.raises(ValueError, match="hand_texture"):
        SyntheticConfig(hand_texture=1.5)


def test_renderer_skin_detail_is_validated_and_off_by_default():
    from hand25d_ros.data.render import MAX_DETAIL_LINES, no_detail
    r = MeshRenderer(32)
    K = np.array([[300.0, 0, 15.5], [0, 300.0, 15.5], [0, 0, 1]])
    buf, faces = _octahedron(np.array([0.0, 0.0, 0.4]), 0.01)
    buf[:, 14] = 3                                                  # a hand part
    buf[:, 9:12] = buf[:, 0:3] - [0.0, 0.0, 0.4]                  # its rest-pose coordinates
    plain = r.render(buf, faces, K)[0]
    line = {"detail": 0.0, "lines_a": [[-0.02, 0, 0, 0.004]], "lines_b": [[0.02, 0, 0, 0.9]],
            "lines_n": [[0, 0, 1.0, -1.0]], "lines_parts": [[3]], "nail_col": [1, 1, 1]}
    np.testing.assert_array_equal(r.render(buf, faces, K, detail=line)[0], plain)   # strength 0
    np.testing.assert_array_equal(r.render(buf, faces, K, detail=no_detail())[0], plain)
    dark = r.render(buf, faces, K, detail=dict(line, detail=1.0))[0]
    # a back-side line across the middle darkens the far half of the blob only: the camera
    # sees the -z side, the line's normal is +z, and the near half is the "palm"
    assert np.array_equal(dark, plain)
    line["lines_n"] = [[0, 0, -1.0, -1.0]]
    dark = r.render(buf, faces, K, detail=dict(line, detail=1.0))[0]
    assert dark.sum() < plain.sum() and (dark <= plain + 1e-6).all()
    # a line only touches the parts it names
    np.testing.assert_array_equal(r.render(buf, faces, K, detail=dict(line, detail=1.0, lines_parts=[[4]]))[0],
                                  plain)
    many = {k: np.repeat(np.asarray(v, float), MAX_DETAIL_LINES + 1, 0) if k.startswith("lines") else v
            for k, v in line.items()}
    with pytest.raises(ValueError, match="at most"):
        r.render(buf, faces, K, detail=dict(many, detail=1.0))
    with pytest.raises(ValueError, match="hand parts are 1-25"):
        r.render(buf, faces, K, detail=dict(line, detail=1.0, lines_parts=[[26]]))


@pytest.mark.parametrize("key, old_value, other, match", [
    ("hand_detail", 0.0, {}, "other settings"),
    ("pose_family_weights", None, {"pose_family_weights": {"count": 2.0}},
     r"config.pose_family_weights None, here \{'count': 2.0\}")])
def test_caches_from_before_a_setting_still_open(tmp_path, key, old_value, other, match):
    """A cache written before ``key`` existed opens as rendered with its value of then, and
    refuses a config that sets it otherwise."""
    cfg = SyntheticConfig(crop_size_px=32, supersample=1, **{key: old_value})
    root = tmp_path / "old"
    write_shards(root, 2, cfg, seed=1, shard_size=2, progress=False)
    meta = json.loads((root / "cache.json").read_text())
    del meta["config"][key]                                         # as written before it existed
    (root / "cache.json").write_text(json.dumps(meta))
    write_shards(root, 2, cfg, seed=1, shard_size=2, progress=False)
    with pytest.raises(ValueError, match=match):
        write_shards(root, 2, SyntheticConfig(crop_size_px=32, supersample=1, **other), seed=1, shard_size=2,
                     progress=False)


def test_make_samples_writes_an_annotated_folder_and_says_how(tmp_path):
    from hand25d_ros.data.public_datasets import AnnotatedFolderDataset
    from hand25d_ros.tools.make_samples import main
    assert main(["--out", str(tmp_path / "t"), "--n", "2", "--size", "48", "--test-set", "--hand-detail", "0"]) == 0
    ds = AnnotatedFolderDataset(tmp_path / "t")
    assert len(ds) == 2 and ds[1]["image"].shape == (48, 48, 3)
    source = json.loads((tmp_path / "t" / "annotations.json").read_text())["source"]
    assert "seed 2026" in source and "hand_detail 0" in source
    assert main(["--out", str(tmp_path / "u"), "--n", "1", "--size", "48", "--hand-texture", "1"]) == 0
    assert "hand_texture 1" in json.loads((tmp_path / "u" / "annotations.json").read_text())["source"]
    with pytest.raises(SystemExit, match="hand_texture must be in"):
        main(["--out", str(tmp_path / "v"), "--n", "1", "--hand-texture", "2"])
    # the knuckle labels: the same hand, its MCP labels moved and said in the source
    assert main(["--out", str(tmp_path / "k"), "--n", "1", "--size", "48", "--knuckle-labels", "photo"]) == 0
    assert main(["--out", str(tmp_path / "j"), "--n", "1", "--size", "48"]) == 0
    k, j = (json.loads((tmp_path / d / "annotations.json").read_text()) for d in ("k", "j"))
    assert "knuckle_labels photo" in k["source"] and "knuckle" not in j["source"]
    # relative to the wrist: the camera is placed by the middle MCP, so the whole hand moves a little
    rel = [np.subtract(x["samples"][0]["joints_3d_mm"], x["samples"][0]["joints_3d_mm"][0]) for x in (k, j)]
    moved = np.linalg.norm(rel[0] - rel[1], axis=1)
    assert set(np.flatnonzero(moved > 1.0)) == {5, 9, 13, 17}


def test_make_samples_can_render_one_kind_of_pose_with_the_thumb_tucked(tmp_path):
    from hand25d_ros.tools.make_samples import main
    args = ["--n", "2", "--size", "48", "--test-set", "--seed", "3", "--families", "point,count"]
    assert main(["--out", str(tmp_path / "t"), *args, "--thumb-tucked", "1"]) == 0
    assert main(["--out", str(tmp_path / "o"), *args]) == 0
    t, o = (json.loads((tmp_path / d / "annotations.json").read_text()) for d in ("t", "o"))
    assert "families point,count, p_thumb_tucked 1" in t["source"]
    assert "families point,count" in o["source"] and "thumb" not in o["source"]
    assert main(["--out", str(tmp_path / "h"), *args, "--thumb-on-tips", "1"]) == 0
    h = json.loads((tmp_path / "h" / "annotations.json").read_text())
    assert "families point,count, p_thumb_on_tips 1" in h["source"]
    assert not np.allclose(h["samples"][0]["joints_3d_mm"], o["samples"][0]["joints_3d_mm"])
    # the option reaches the renderer: the same seed draws another hand
    assert not np.allclose(t["samples"][0]["joints_3d_mm"], o["samples"][0]["joints_3d_mm"])
    with pytest.raises(SystemExit, match="--families 'point,wave': choose from open"):
        main(["--out", str(tmp_path / "x"), "--n", "1", "--families", "point,wave"])
    with pytest.raises(SystemExit, match="p_thumb_tucked is a probability"):
        main(["--out", str(tmp_path / "x"), "--n", "1", "--thumb-tucked", "2"])
    assert not (tmp_path / "x").exists()


def test_make_samples_names_sort_in_frame_order():
    from hand25d_ros.tools.make_samples import frame_name
    for n in (1, 8, 100, 101, 1500):
        names = [frame_name(i, n) for i in range(n)]
        assert sorted(names) == names and len(set(names)) == n
    assert frame_name(3, 8) == "frame_03.png" and frame_name(7, 500) == "frame_007.png"


def test_a_sample_does_not_depend_on_the_samples_rendered_before_it():
    # skin detail once listed each line's parts from the first sample a process drew;
    # sample 63999 of seed 2 then came out differently after sample 0
    fresh = SyntheticHandGenerator(SyntheticConfig(), seed=2).sample(63999)["image"]
    used = SyntheticHandGenerator(SyntheticConfig(), seed=2)
    used.sample(0)
    np.testing.assert_array_equal(used.sample(63999)["image"], fresh)


def test_caches_from_before_the_background_settings_open_with_the_old_values(tmp_path):
    legacy = SyntheticConfig(crop_size_px=32, supersample=1, p_background_defocus=0.6, fine_backgrounds=False)
    root = tmp_path / "old"
    write_shards(root, 2, legacy, seed=1, shard_size=2, progress=False)
    meta = json.loads((root / "cache.json").read_text())
    del meta["config"]["p_background_defocus"], meta["config"]["fine_backgrounds"]
    (root / "cache.json").write_text(json.dumps(meta))
    write_shards(root, 2, legacy, seed=1, shard_size=2, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        write_shards(root, 2, SyntheticConfig(crop_size_px=32, supersample=1), seed=1, shard_size=2, progress=False)


def test_fine_shelves_hold_smaller_items_and_defocus_blurs():
    from hand25d_ros.data import backgrounds

    def edges(img):
        grey = img.mean(-1)
        return float(np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 1.5)).mean())

    coarse = [edges(backgrounds.shelves(np.random.default_rng(s), 128)) for s in range(12)]
    fine = [edges(backgrounds.shelves(np.random.default_rng(s), 128, fine=True)) for s in range(12)]
    assert np.mean(fine) > 1.2 * np.mean(coarse)
    sharp = [edges(backgrounds.sample_background(np.random.default_rng(s), 128, "shelves", p_defocus=0.0))
             for s in range(12)]
    blurred = [edges(backgrounds.sample_background(np.random.default_rng(s), 128, "shelves", p_defocus=1.0))
               for s in range(12)]
    assert np.mean(blurred) < 0.8 * np.mean(sharp)


@pytest.mark.parametrize("option, value", [("--n", "-1"), ("--n", "0"), ("--seed", "-1"), ("--hand-detail", "-1")])
def test_make_samples_checks_its_numbers(tmp_path, capsys, option, value):
    """--n -1 'wrote -1 frames' (an empty folder), --seed -1 was a traceback, and a negative
    --hand-detail (a strength) was rendered."""
    from hand25d_ros.tools.make_samples import main
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "s"), option, value])
    assert exc.value.code == 2 and f"argument {option}: expected" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_make_samples_can_render_the_legacy_look(tmp_path):
    from hand25d_ros.tools.make_samples import main
    args = ["--n", "1", "--size", "48", "--test-set", "--seed", "5"]
    assert main(["--out", str(tmp_path / "a"), "--legacy-look"] + args) == 0
    assert main(["--out", str(tmp_path / "b")] + args) == 0
    a, b = (cv2.imread(str(tmp_path / d / "frame_00.png")) for d in "ab")
    assert "legacy look" in json.loads((tmp_path / "a" / "annotations.json").read_text())["source"]
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_skin_hue_is_drawn_from_the_configured_range():
    from hand25d_ros.data import backgrounds
    for s in range(20):
        tone = backgrounds.skin_tone(np.random.default_rng(s), (4.0, 24.0))
        r, g, b = tone
        assert r > g > b
        assert 3.0 <= 60.0 * (g - b) / (r - b) <= 25.0
    # the legacy draw is unchanged by the option's existence: same stream, same tone
    a = backgrounds.skin_tone(np.random.default_rng(3))
    b = backgrounds.skin_tone(np.random.default_rng(3), None)
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="skin_hue_deg"):
        SyntheticConfig(skin_hue_deg=(30.0, 10.0))


def test_a_cache_is_readable_as_the_umask_allows(tmp_path):
    """A cache shared between users (a lab's render cache): its cache.json was written 0600
    (mkstemp's), so another user's run could not open the shards beside it."""
    import os
    old = os.umask(0o022)
    try:
        write_shards(tmp_path / "c", 1, SyntheticConfig(crop_size_px=32, supersample=1), seed=1, progress=False)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "c").iterdir()}
    assert modes == {"cache.json": 0o644, "shard_00000.npz": 0o644}


def test_a_shard_stopped_while_written_leaves_no_part_file(tmp_path, savez_then_interrupt):
    """Ctrl-C (or a render worker's SIGTERM, when the pool ends) during a shard's write left its
    16 MB part file in the cache for good; a later run renders the shard again under another name."""
    import signal

    from hand25d_ros.data import synthetic
    with pytest.raises(KeyboardInterrupt):
        write_shards(tmp_path / "c", 1, SyntheticConfig(crop_size_px=32, supersample=1), seed=1, progress=False)
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["cache.json"]
    # the render workers turn the pool's SIGTERM into that exception while they render a
    # shard; between shards it ends them as SIGTERM does (see the test of a worker waiting)
    with synthetic.render_pool(1) as pool:
        assert pool.apply(signal.getsignal, (signal.SIGTERM,)) is signal.SIG_DFL


def test_a_smaller_run_keeps_the_longer_last_shard_of_a_larger_one(tmp_path):
    """A run asking for fewer samples than a shared cache holds re-rendered its last shard
    shorter: minutes of rendering lost per switch, and a run of the larger size reading the
    cache at the time lost samples under its DataLoader workers (maps reopen lazily)."""
    cfg = SyntheticConfig(crop_size_px=32, supersample=1)
    root = tmp_path / "c"
    write_shards(root, 6, cfg, seed=1, shard_size=4, progress=False)
    before = (root / "shard_00001.npz").stat().st_mtime_ns
    small = ShardDataset(write_shards(root, 5, cfg, seed=1, shard_size=4, progress=False), num_samples=5)
    assert (root / "shard_00001.npz").stat().st_mtime_ns == before
    assert len(small) == 5 and len(ShardDataset(root)) == 6
    np.testing.assert_array_equal(small[4]["image"], SyntheticHandGenerator(cfg, 1).sample(4)["image"])


@pytest.mark.parametrize("damage", ["truncated", "bad member"])
def test_a_damaged_shard_is_named_not_skipped(tmp_path, damage):
    """A shard damaged after it was written (a full disk, a copy cut short) made the Dataset
    serve the shards before it alone: 2 of the 6 samples asked for, no word of it."""
    from hand25d_ros.data.synthetic import CacheError
    cfg = SyntheticConfig(crop_size_px=32, supersample=1)
    root = tmp_path / "c"
    write_shards(root, 6, cfg, seed=1, shard_size=2, progress=False)
    shard = root / "shard_00001.npz"
    data = shard.read_bytes()
    if damage == "truncated":
        shard.write_bytes(data[: len(data) // 2])
    else:
        i = data.find(b"\x93NUMPY")
        shard.write_bytes(data[:i] + b"XXXXXX" + data[i + 6:])
    with pytest.raises(CacheError, match=r"shard_00001.npz is damaged \(.*\); write_shards") as exc:
        ShardDataset(root, num_samples=6)
    assert "\n" not in str(exc.value)
    # and write_shards renders it again
    assert len(ShardDataset(write_shards(root, 6, cfg, seed=1, shard_size=2, progress=False), 6)) == 6


def _first_hits(origin_to, triangles):
    """Ray casts from the camera centre through each point of ``origin_to`` (N, 3) onto
    ``triangles`` (T, 3, 3), Moller-Trumbore: (N, 3) first hit points (nan: none) and (N,)
    indices of the triangles hit."""
    v0, e1, e2 = triangles[:, 0], triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]
    d = origin_to / np.linalg.norm(origin_to, axis=1, keepdims=True)              # (N, 3)
    h = np.cross(d[:, None], e2[None])                                            # (N, T, 3)
    a = (e1[None] * h).sum(-1)
    f = 1.0 / np.where(np.abs(a) > 1e-12, a, np.nan)
    u = f * (-v0[None] * h).sum(-1)
    q = np.cross(-v0, e1)                                                         # (T, 3)
    v = f * (d[:, None] * q[None]).sum(-1)
    t = f * (e2[None] * q[None]).sum(-1)
    t = np.where((u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0), t, np.inf)
    i = np.argmin(t, axis=1)
    t_min = t[np.arange(len(d)), i]
    return np.where(np.isfinite(t_min)[:, None], d * t_min[:, None], np.nan), i


def test_a_keypoint_behind_another_finger_is_not_visible():
    """Checked without the GL buffers: a ray from the camera through each label, cast on the
    mesh the renderer drew. Any pixel of the keypoint's own part within a crop pixel of the
    label made it visible, so a joint 1 px from a covering finger's edge counted as seen:
    ~5% of the labels in the crop were flagged visible with another finger over 10 mm in
    front of them on their own ray."""
    from hand25d_ros.data.synthetic import OWN_PARTS
    gen = SyntheticHandGenerator(SyntheticConfig(crop_size_px=128, p_occluder=0.0), seed=0)
    renderer = gen._lazy()["renderer"]
    drawn = {}
    render = renderer.render

    def keep_mesh(buf, faces, *args, **kw):
        drawn["buf"], drawn["faces"] = np.array(buf), np.array(faces)
        return render(buf, faces, *args, **kw)

    renderer.render = keep_mesh
    covered, clear_but_hidden, n_in_crop = 0, 0, 0
    for i in range(40):
        s = gen.sample(i)
        buf, faces = drawn["buf"], drawn["faces"]
        tri_part = buf[faces[:, 2], 14].astype(int)      # GL's flat attribute: the last vertex's
        P = s["joints_3d_mm"] / 1000.0
        in_crop = np.all((s["joints_2d_px"] >= -0.5) & (s["joints_2d_px"] <= 127.5), axis=1)
        hit, tri = _first_hits(P[in_crop], buf[faces, :3].astype(np.float64))
        part = tri_part[tri]
        own = OWN_PARTS[np.nonzero(in_crop)[0], part]
        in_front_mm = (P[in_crop, 2] - hit[:, 2]) * 1000.0       # nan where the ray misses
        vis = s["visible"][in_crop]
        covered += int(np.sum(vis & ~own & (in_front_mm > 10.0)))
        clear_but_hidden += int(np.sum(~vis & own & (np.abs(in_front_mm) < 20.0)))
        n_in_crop += int(in_crop.sum())
    assert n_in_crop > 700
    assert covered <= 0.005 * n_in_crop, (covered, n_in_crop)
    assert clear_but_hidden <= 0.005 * n_in_crop, (clear_but_hidden, n_in_crop)


def test_make_samples_and_render_sheet_say_in_one_line_where_they_cannot_write(tmp_path):
    """A file where the output folder goes was a FileExistsError / NotADirectoryError
    traceback, render-sheet's only after all its renders."""
    from hand25d_ros.tools.make_samples import main as samples_main
    from hand25d_ros.tools.render_sheet import main as sheet_main
    blocker = tmp_path / "a_file"
    blocker.write_text("keep me")
    for out in (blocker, blocker / "sub"):
        with pytest.raises(SystemExit, match=r"^make_samples: cannot write to .*a_file") as exc:
            samples_main(["--out", str(out), "--n", "1", "--size", "16"])
        assert "\n" not in str(exc.value.code)
    with pytest.raises(SystemExit, match=r"^hand25d-render-sheet: cannot write .*a_file/s.png: File exists: .*a_file$"):
        sheet_main(["--out", str(blocker / "s.png"), "--n", "100000", "--size", "16"])
    assert blocker.read_text() == "keep me"


@pytest.mark.parametrize("name, value", [("image_size_px", (-640, 480)), ("image_size_px", (0, 480)),
                                         ("image_size_px", (640.5, 480)), ("hfov_deg", (200.0, 300.0))])
def test_a_camera_that_cannot_see_the_hand_is_refused(name, value):
    """image_size_px (-640, 480) rendered all-black crops with no keypoint visible (a cache
    of them trained on nothing), (0, 480) was a LinAlgError; an hfov past 180 degrees puts
    every hand behind the camera."""
    with pytest.raises(ValueError, match=name):
        SyntheticConfig(**{name: value})


def test_render_sheet_says_when_start_is_past_the_cache(tmp_path):
    """It said 'no samples to draw', neither which command nor why."""
    from hand25d_ros.tools.render_sheet import main
    root = write_shards(tmp_path / "c", 3, SyntheticConfig(crop_size_px=32, supersample=1), seed=1, progress=False)
    with pytest.raises(SystemExit, match=r"^hand25d-render-sheet: --start 3 is past the 3 samples in .*c$"):
        main(["--out", str(tmp_path / "s.png"), "--cache", str(root), "--start", "3"])
    assert main(["--out", str(tmp_path / "s.png"), "--cache", str(root), "--start", "2", "--tile", "32"]) == 0
    assert cv2.imread(str(tmp_path / "s.png")).shape == (32, 32 * 6, 3)
    # the cache's seed and size are its own: asking for others was ignored without a word
    for extra in (["--seed", "5"], ["--size", "64"]):
        with pytest.raises(SystemExit):
            main(["--out", str(tmp_path / "t.png"), "--cache", str(root), *extra])
        assert not (tmp_path / "t.png").exists()


def test_make_samples_again_with_fewer_frames_leaves_no_stale_ones(tmp_path):
    """frame_01 and frame_02 of a first run stayed beside the second run's one annotated
    frame; the demo takes every image of a folder."""
    from hand25d_ros.tools.make_samples import main
    out = tmp_path / "s"
    assert main(["--out", str(out), "--n", "3", "--size", "16"]) == 0
    (out / "mine.png").write_bytes((out / "frame_02.png").read_bytes())
    assert main(["--out", str(out), "--n", "1", "--size", "16"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["annotations.json", "frame_00.png", "mine.png"]


def test_two_runs_starting_on_one_folder_with_other_settings_do_not_share_it(tmp_path, monkeypatch):
    """Both found no cache.json, so both wrote theirs and rendered into the folder: its
    shards a mix of the two settings under the last one's cache.json. Here the other run
    writes its cache.json between this one's look and its own write."""
    import pathlib

    from hand25d_ros.data.synthetic import CacheError
    root = tmp_path / "c"
    other = SyntheticConfig(crop_size_px=48, supersample=1)
    real_write_text = pathlib.Path.write_text

    def other_run_first(path, text, *args, **kw):
        if path.name.startswith(".cache.json.") and not (root / "cache.json").exists():
            real_write_text(root / "cache.json", json.dumps(
                {"format": "hand25d-synthetic-shards/1", "seed": 1, "shard_size": 2, "config": other.to_json(),
                 "num_samples": 4}))
        return real_write_text(path, text, *args, **kw)

    monkeypatch.setattr(pathlib.Path, "write_text", other_run_first)
    with pytest.raises(CacheError, match=r"config.crop_size_px 48, here 32"):
        write_shards(root, 4, SyntheticConfig(crop_size_px=32, supersample=1), seed=1, shard_size=2, progress=False)
    assert json.loads((root / "cache.json").read_text())["config"]["crop_size_px"] == 48
    assert [p.name for p in root.iterdir()] == ["cache.json"]


def test_shards_of_another_crop_size_are_not_served(tmp_path):
    """With cache.json deleted (not the folder), a run of another crop size kept the old
    shards as complete and trained on their 48 px crops as 32 px ones."""
    from hand25d_ros.data.synthetic import CacheError
    root = tmp_path / "c"
    write_shards(root, 2, SyntheticConfig(crop_size_px=48, supersample=1), seed=1, shard_size=2, progress=False)
    old_meta = (root / "cache.json").read_text()
    (root / "cache.json").unlink()
    cfg = SyntheticConfig(crop_size_px=32, supersample=1)
    write_shards(root, 2, cfg, seed=1, shard_size=2, progress=False)
    np.testing.assert_array_equal(ShardDataset(root)[1]["image"], SyntheticHandGenerator(cfg, 1).sample(1)["image"])
    (root / "cache.json").write_text(old_meta)         # and read under another cache's cache.json
    with pytest.raises(CacheError, match=r"shard_00000.npz holds 32 px crops, .*cache.json says 48"):
        ShardDataset(root)


def _worker_run(code: str, timeout_s: float = 300):
    """``code`` run in a fresh interpreter set up as a render worker is (``_worker_init``)."""
    import subprocess
    import sys
    pre = "import atexit, os, signal\nfrom hand25d_ros.data import synthetic\nsynthetic._worker_init()\n"
    return subprocess.run([sys.executable, "-c", pre + code], capture_output=True, text=True, timeout=timeout_s)


def test_a_waiting_render_worker_ends_on_a_sigterm_another_thread_takes():
    """Between shards a worker waits in C on its main thread (the pool's queue lock, which a
    worker killed while holding it never gives back). A SIGTERM that one of its other threads
    took (llvmpipe's, OpenBLAS's) flagged the Python handler and nothing ran it: the worker
    waited for ever, and so did the run that stopped it (a fresh-clone test run hung 120 s
    in test_a_run_stopped_while_rendering_ends_its_render_workers...[SIGTERM])."""
    import signal
    r = _worker_run("import threading, time, multiprocessing as mp\n"
                    "def later():\n"
                    "    time.sleep(0.5)\n"
                    "    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)\n"
                    "threading.Thread(target=later, daemon=True).start()\n"
                    "mp.get_context('spawn').Semaphore(0).acquire()\n", timeout_s=60)
    assert r.returncode == -signal.SIGTERM, (r.returncode, r.stderr)


def test_a_render_worker_ended_while_it_exits_prints_no_traceback():
    """The pool ends its render workers with SIGTERM after every render, often while a worker
    is already exiting; the SIGTERM turned into an exception inside the worker's exit handlers
    printed 'Exception ignored in atexit callback ... SystemExit: 143' tracebacks on every
    hand25d-train run that rendered."""
    r = _worker_run("atexit.register(lambda: os.kill(os.getpid(), signal.SIGTERM))\n")
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr
    assert r.returncode in (128 + 15, -15)   # exited as SIGTERM's status, or ended by it


def test_a_render_worker_ended_while_it_writes_a_shard_leaves_no_part_file(tmp_path):
    """The same SIGTERM while a shard is written still stops the worker as an exception, which
    removes the shard's part file."""
    r = _worker_run(
        "import numpy as np\n"
        "real = np.savez\n"
        "def write_then_end(path, **a):\n"
        "    real(path, **a)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "np.savez = write_then_end\n"
        "cfg = synthetic.SyntheticConfig(crop_size_px=32, supersample=1)\n"
        f"synthetic._render_shard(({str(tmp_path)!r}, 0, 0, 1, cfg.to_json(), 1))\n")
    assert r.returncode == 128 + 15, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_cache_of_another_renderer_version_is_refused_never_mixed(tmp_path):
    """A renderer change that renders the same settings and seed otherwise (the visible labels'
    fix: 115 of 2520 labels) reused an existing cache's old renders without a word, and a run
    extending the cache rendered new shards beside the old ones. cache.json records the
    renderer's version; one without it is of version 1, written before it was recorded."""
    import warnings

    from hand25d_ros.data.synthetic import RENDER_VERSION, CacheError
    cfg = SyntheticConfig(crop_size_px=32, supersample=1)
    root = tmp_path / "c"
    write_shards(root, 2, cfg, seed=1, shard_size=2, progress=False)
    meta = json.loads((root / "cache.json").read_text())
    assert meta["render_version"] == RENDER_VERSION == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(ShardDataset(root)) == 2
    for version in (None, RENDER_VERSION + 1):      # before versions were recorded; a newer checkout's
        if version is None:
            del meta["render_version"]
        else:
            meta["render_version"] = version
        text = json.dumps(meta)
        (root / "cache.json").write_text(text)
        for n in (2, 4):                            # reused as it is; extended
            with pytest.raises(CacheError, match=rf"cache.json: renderer version {version or 1}, this code renders "
                                                 rf"version {RENDER_VERSION}.*delete .*c to render it again"):
                write_shards(root, n, cfg, seed=1, shard_size=2, progress=False)
            assert (root / "cache.json").read_text() == text
            assert sorted(p.name for p in root.iterdir()) == ["cache.json", "shard_00000.npz"]
        # read only, as render_sheet does: its images are valid renders, its labels named stale
        with pytest.warns(UserWarning, match=rf"renderer version {version or 1}, this code renders version "
                                             rf"{RENDER_VERSION}.*labels"):
            assert len(ShardDataset(root)) == 2


def _render_fingerprint(root) -> tuple[str, list]:
    """A shard cache's labels as one hash, and each crop's mean colour in 2 x 2 blocks (whole
    levels). Labels are rounded (K to 0.001, 2D to 0.01 px, 3D to 0.1 mm), far above a float's
    last bits and far below what a renderer change moves. Pixels only through block means: a
    crop's pixels came out bit for bit the same in two runs and with 1 or 2 workers here, but
    llvmpipe of another Mesa build may shade a silhouette's pixels a level otherwise, which is
    no renderer change."""
    import hashlib
    ds = ShardDataset(root)
    h, blocks = hashlib.sha256(), []
    for i in range(len(ds)):
        s = ds[i]
        for a in (np.round(s["K"], 3), np.round(s["joints_2d_px"], 2), np.round(s["joints_3d_mm"], 1)):
            h.update(np.ascontiguousarray(a, np.float64).tobytes())
        h.update(s["visible"].astype(np.uint8).tobytes() + bytes([s["is_left"]]))
        S = s["image"].shape[0]
        means = s["image"].reshape(2, S // 2, 2, S // 2, 3).mean(axis=(1, 3))
        blocks.append(np.rint(means).astype(int).ravel().tolist())
    return h.hexdigest()[:16], blocks


# Three renders of seed 2 (48 px, supersample 1) as RENDER_VERSION 2 makes them: the hash of
# their labels and their block means (_render_fingerprint). Version 1 labelled samples 0 and 1
# otherwise (visible; labels 8d9dcc1c6cc49097), with the same pixels
RENDER_FINGERPRINT = (2, "c991abd9ed86c751", [[79, 69, 60, 105, 95, 83, 100, 111, 94, 121, 132, 117],
                                             [140, 39, 21, 146, 52, 36, 117, 34, 16, 128, 18, 11],
                                             [80, 75, 76, 79, 77, 77, 137, 128, 127, 133, 125, 122]])


def test_the_renders_are_those_of_their_render_version(tmp_path):
    """Renders that change for the same settings and seed need a new RENDER_VERSION, or caches
    of the old renders are taken for the new ones (the visible labels' fix changed 115 of 2520
    labels without a word to the caches). A change to the renderer fails here until the version
    is bumped and the fingerprint recorded anew."""
    from hand25d_ros.data.synthetic import RENDER_VERSION
    root = write_shards(tmp_path / "c", 3, SyntheticConfig(crop_size_px=48, supersample=1), seed=2, shard_size=2,
                        progress=False)
    labels, blocks = _render_fingerprint(root)
    version, want_labels, want_blocks = RENDER_FINGERPRINT
    bump = f"renders changed: bump RENDER_VERSION (now {RENDER_VERSION}) and update this fingerprint"
    assert labels == want_labels, f"{bump}: labels {labels!r}, recorded {want_labels!r} for version {version}"
    worst = np.abs(np.subtract(blocks, want_blocks)).max()
    assert worst <= 2, f"{bump}: a block's mean colour moved {worst} levels; now {blocks}"
    assert RENDER_VERSION == version, (f"RENDER_VERSION is {RENDER_VERSION}, this fingerprint was recorded for "
                                       f"{version}: record it for the new version")


def test_part_files_of_a_killed_render_are_removed_by_the_next_run(tmp_path):
    """A render worker SIGKILLed (the OOM killer, a lost machine) while it writes a shard runs
    no clean-up: its part file, as large as a shard, stayed in the cache for good. The next
    write_shards on the folder removes the part files whose writer is gone; a live writer's,
    which may be another run sharing the cache, are kept."""
    import os
    import signal
    import time

    from hand25d_ros import _files
    cfg = SyntheticConfig(crop_size_px=32, supersample=1)
    root = tmp_path / "c"
    write_shards(root, 2, cfg, seed=1, shard_size=2, progress=False)
    r = _worker_run(
        "import numpy as np\n"
        "real = np.savez\n"
        "def write_then_die(path, **a):\n"
        "    real(path, **a)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "np.savez = write_then_die\n"
        "cfg = synthetic.SyntheticConfig(crop_size_px=32, supersample=1)\n"
        f"synthetic._render_shard(({str(root)!r}, 1, 2, 2, cfg.to_json(), 1))\n")
    assert r.returncode == -signal.SIGKILL, r.stderr
    (killed,) = [p for p in root.iterdir() if p.name.startswith(".")]
    dead = int(killed.name.split(".")[2])           # .shard_00001.<pid>.tmp.npz
    assert killed.name == f".shard_00001.{dead}.tmp.npz"

    def part(name, age_s):
        p = root / name
        p.write_bytes(b"part")
        os.utime(p, (time.time() - age_s, time.time() - age_s))
        return p

    grace, stale = _files.PART_GRACE_S, _files.PART_ABANDONED_S
    os.utime(killed, (time.time() - grace - 5, time.time() - grace - 5))
    gone = [killed, part(f".cache.json.{dead}.tmp", grace + 5),
            part(f".shard_00003.{os.getpid()}.tmp.npz", stale + 5)]          # the pid reused since
    kept = [part(f".shard_00002.{os.getpid()}.tmp.npz", stale - 60),           # a live writer's
            part(f".shard_00004.{dead}.tmp.npz", grace - 30),               # being written elsewhere?
            part(f".notes.{dead}.tmp.txt", stale + 5), part(f"sheet.{dead}.tmp.png", stale + 5)]
    write_shards(root, 4, cfg, seed=1, shard_size=2, progress=False)
    assert [p.name for p in gone if p.exists()] == []
    assert [p.name for p in kept if p.exists()] == [p.name for p in kept]
    np.testing.assert_array_equal(ShardDataset(root)[3]["image"], SyntheticHandGenerator(cfg, 1).sample(3)["image"])


def _only(family: str) -> dict:
    from hand25d_ros.data.pose_sampler import POSE_FAMILIES
    return {f: float(f == family) for f in POSE_FAMILIES}


def test_pose_family_weights_choose_the_poses_rendered():
    """A task's own poses (a teleoperator's pinches, a counting game) can be drawn more often:
    fists only puts every fingertip near the palm, open hands only far from it."""
    def tip_reach(family):   # fingertip-to-wrist over middle-MCP-to-wrist, mean of 4 renders
        g = SyntheticHandGenerator(SyntheticConfig(crop_size_px=32, supersample=1,
                                                   pose_family_weights=_only(family)), seed=5)
        reach = []
        for i in range(4):
            P = g.sample(i)["joints_3d_mm"]
            reach.append(np.linalg.norm(P[[8, 12, 16, 20]] - P[0], axis=1).mean() / np.linalg.norm(P[9] - P[0]))
        return float(np.mean(reach))
    assert tip_reach("fist") < 1.3 < 1.6 < tip_reach("open")
    # the default draw is unchanged: None and the sampler's own weights give the same sample
    from hand25d_ros.data.pose_sampler import FAMILY_WEIGHTS, POSE_FAMILIES
    a = SyntheticHandGenerator(SyntheticConfig(crop_size_px=32, supersample=1), seed=5).sample(1)
    b = SyntheticHandGenerator(SyntheticConfig(crop_size_px=32, supersample=1, pose_family_weights=dict(
        zip(POSE_FAMILIES, map(float, FAMILY_WEIGHTS)))), seed=5).sample(1)
    np.testing.assert_array_equal(a["image"], b["image"])


@pytest.mark.parametrize("weights, match", [({"jazz": 1.0}, "unknown pose family 'jazz'"),
                                            ({"count": -1.0}, "count=-1.0 must be a finite number >= 0"),
                                            ({"count": float("nan")}, "must be a finite number"),
                                            ({"count": True}, "must be a finite number"),
                                            (_only("count") | {"count": 0.0}, "leave no family to draw"),
                                            ([0.5] * 9, "must be None or a mapping")])
def test_pose_family_weights_are_checked(weights, match):
    with pytest.raises(ValueError, match=match):
        SyntheticConfig(pose_family_weights=weights)


def test_knuckle_labels_photo_moves_the_finger_mcp_labels_only():
    """Renders can label the knuckles where photo datasets mark them; the default keeps the
    rig's joints, so that the recipes before the option render the labels they rendered."""
    assert SyntheticConfig().knuckle_labels == "joint"
    g = SyntheticHandGenerator(SyntheticConfig(crop_size_px=32, supersample=1, knuckle_labels="photo"), seed=5)
    s = g.sample(0)
    P = s["joints_3d_mm"]
    # wrist to index MCP, longer than the rig's joint (the photos' 86.6 mm against 78.9 mm)
    from hand25d_ros.data import hand_mesh as hm
    right = hm.load_hand_mesh("right")
    rig = hm.keypoint_labels(right, right.rest_global)
    photo = hm.keypoint_labels(right, right.rest_global, knuckles="photo")
    assert np.linalg.norm(photo[5] - photo[0]) > np.linalg.norm(rig[5] - rig[0]) + 0.002
    assert np.isfinite(P).all() and np.isfinite(s["joints_2d_px"]).all()
    with pytest.raises(ValueError, match="knuckle_labels must be one of joint, photo, got 'skin'"):
        SyntheticConfig(knuckle_labels="skin")


def test_a_render_worker_stopped_inside_a_constructor_prints_no_traceback():
    """A run's Ctrl-C ends its render workers with SIGTERM; one that took it inside imageio's
    constructor (loading the background photos) printed "Exception ignored in: PluginV3.__del__
    ... Traceback" under the run's one-line message, as the half-built object was collected."""
    import signal
    import subprocess
    import sys
    code = """
import os, signal
from hand25d_ros.data import synthetic
signal.signal(signal.SIGTERM, synthetic._exit_on_sigterm)   # as while a worker renders a shard

class Plugin:
    def __init__(self):
        os.kill(os.getpid(), signal.SIGTERM)     # the stop lands before the object is complete
        self.images_to_write = []

    def __del__(self):
        len(self.images_to_write)

Plugin()
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 128 + signal.SIGTERM, r.stderr
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr

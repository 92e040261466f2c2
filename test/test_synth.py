"""Synthetic renderer: rig, projection (no upside-down labels), determinism, shard cache."""
import numpy as np
import pytest

from hand25d_ros import geometry as geo
from hand25d_ros.synth.hand_mesh import AssetError, forward_kinematics, load_hand_mesh, skin
from hand25d_ros.synth.poses import sample_pose
from hand25d_ros.synth.render import MeshRenderer
from hand25d_ros.synth.synthetic import ShardDataset, SyntheticConfig, SyntheticHandGenerator, write_shards


def test_rest_pose_reproduces_the_asset():
    m = load_hand_mesh("right")
    fk = forward_kinematics(m, np.tile(np.eye(3), (25, 1, 1)))
    np.testing.assert_allclose(fk, m.rest_global, atol=1e-9)
    v, _ = skin(m, fk)
    np.testing.assert_allclose(v, m.vertices, atol=1e-9)


def test_posing_keeps_bone_lengths():
    m = load_hand_mesh("left")
    fk = forward_kinematics(m, sample_pose(np.random.default_rng(0), "fist"))
    from hand25d_ros.synth.hand_mesh import WEBXR_PARENTS
    for j, p in enumerate(WEBXR_PARENTS):
        if p >= 0:
            assert np.linalg.norm(fk[j, :3, 3] - fk[p, :3, 3]) == pytest.approx(
                np.linalg.norm(m.rest_joints[j] - m.rest_joints[p]), abs=1e-7)


def test_render_lands_where_K_projects():
    """A small blob rendered through K covers the pixel K projects its centre to (catches row flips)."""
    r = MeshRenderer(64)
    K = np.array([[400.0, 0, 20.0], [0, 400.0, 45.0], [0, 0, 1]])  # off-centre: flips would show
    c = np.array([0.01, -0.02, 0.5])
    # an octahedron of radius 4 mm
    d = 0.004 * np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1.0]])
    faces = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    lights = {"light_dir": [[0, 0, -1], [0, 0, -1]], "light_col": [[1, 1, 1], [0, 0, 0]],
              "ambient": [0.5, 0.5, 0.5], "spec": 0.0, "shininess": 10.0}
    rgb, alpha, depth = r.render(c + d, d / 0.004, np.ones((6, 3)), faces, K, lights)
    ys, xs = np.nonzero(alpha > 0.5)
    u, v = geo.project_points(c[None], K)[0]
    assert abs(xs.mean() - u) < 0.6 and abs(ys.mean() - v) < 0.6
    assert depth[int(round(v)), int(round(u))] == pytest.approx(0.496, abs=0.001)


def test_samples_are_deterministic_and_consistent():
    gen = SyntheticHandGenerator(SyntheticConfig(crop_size_px=64), seed=3)
    a, b = gen.sample(5), SyntheticHandGenerator(SyntheticConfig(crop_size_px=64), seed=3).sample(5)
    np.testing.assert_array_equal(a["image"], b["image"])
    assert a["image"].shape == (64, 64, 3) and a["image"].dtype == np.uint8
    np.testing.assert_allclose(geo.project_points(a["joints_3d_mm"], a["K"]), a["joints_2d_px"], atol=1e-6)
    assert 250 * 0.8 < a["joints_3d_mm"][9, 2] < 1200 * 1.3
    # the keypoints sit inside the crop, filling it as inference crops do
    span = a["joints_2d_px"].max(0) - a["joints_2d_px"].min(0)
    assert 64 / 1.9 < span.max() < 64 / 1.1
    assert not np.array_equal(gen.sample(6)["image"], a["image"])


def test_shards_roundtrip_resume_and_mismatch(tmp_path):
    cfg = SyntheticConfig(crop_size_px=32, supersample=1)
    write_shards(tmp_path / "c", 5, cfg, seed=1, shard_size=2, progress=False)
    ds = ShardDataset(tmp_path / "c")
    assert len(ds) == 5
    s = ds[4]
    ref = SyntheticHandGenerator(cfg, 1).sample(4)
    np.testing.assert_array_equal(s["image"], ref["image"])
    np.testing.assert_allclose(s["joints_3d_mm"], ref["joints_3d_mm"], rtol=1e-6)
    mtime = (tmp_path / "c" / "shard_00000" / "images.npy").stat().st_mtime_ns
    write_shards(tmp_path / "c", 5, cfg, seed=1, shard_size=2, progress=False)  # resume: nothing redone
    assert (tmp_path / "c" / "shard_00000" / "images.npy").stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="other settings"):
        write_shards(tmp_path / "c", 5, cfg, seed=2, shard_size=2, progress=False)
    with pytest.raises(FileNotFoundError, match="cache.json"):
        ShardDataset(tmp_path / "nothing")


def test_missing_or_corrupt_asset(tmp_path):
    with pytest.raises(AssetError, match="not found"):
        load_hand_mesh("right", tmp_path / "missing.glb")
    bad = tmp_path / "bad.glb"
    bad.write_bytes(b"glTF" + b"\x00" * 40)
    with pytest.raises(AssetError, match="bad.glb"):
        load_hand_mesh("right", bad)

"""FreiHAND, RHD and STB loaders on tiny fixtures written in each dataset's real layout."""
import json
import pickle

import cv2
import numpy as np
import pytest
import scipy.io

from hand25d_ros.datasets import (STB_SK_COLOR_K, DatasetError, FreiHANDDataset, RHDDataset, STBDataset)


def _hand_mm(seed):
    rng = np.random.default_rng(seed)
    P = rng.normal(0, 30, (21, 3)) + [0, 0, 500]
    P[:, 0] += np.arange(21)  # distinct x per keypoint: our index k has x offset k
    return P


def _png(path, h=48, w=64):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 128, np.uint8))


def test_freihand_layout(tmp_path):
    P = [_hand_mm(i) for i in range(2)]
    K = [[[500.0, 0, 112], [0, 500, 112], [0, 0, 1]]] * 2
    (tmp_path / "training_xyz.json").write_text(json.dumps([(p / 1000).tolist() for p in P]))
    (tmp_path / "training_K.json").write_text(json.dumps(K))
    for i in range(8):
        _png(tmp_path / "training" / "rgb" / f"{i:08d}.jpg")
    ds = FreiHANDDataset(tmp_path)
    assert len(ds) == 8
    s = ds[5]  # version 2 of annotation 1
    np.testing.assert_allclose(s["joints_3d_mm"], P[1], atol=1e-9)
    uv = (P[1] @ np.array(K[0]).T)
    np.testing.assert_allclose(s["joints_2d_px"], uv[:, :2] / uv[:, 2:], atol=1e-9)
    (tmp_path / "training_K.json").write_text(json.dumps(K[:1]))
    with pytest.raises(DatasetError, match="2 poses but .* 1 intrinsics"):
        FreiHANDDataset(tmp_path)
    (tmp_path / "training_K.json").write_text("[[broken")
    with pytest.raises(DatasetError, match="training_K.json is not valid JSON"):
        FreiHANDDataset(tmp_path)


def test_rhd_layout_and_reordering(tmp_path):
    ours = _hand_mm(3)
    rhd_hand = np.zeros((21, 3))
    rhd_hand[0] = ours[0]
    for f in range(5):
        for j in range(4):              # RHD stores each finger tip first
            rhd_hand[1 + 4 * f + (3 - j)] = ours[1 + 4 * f + j]
    xyz = np.concatenate([np.zeros((21, 3)) + [0, 0, 500], rhd_hand]) / 1000.0
    vis = np.concatenate([np.zeros(21), np.ones(21)])
    anno = {0: {"xyz": xyz, "uv_vis": np.c_[np.zeros((42, 2)), vis], "K": np.array([[300.0, 0, 160], [0, 300, 160], [0, 0, 1]])}}
    d = tmp_path / "training"
    d.mkdir()
    with open(d / "anno_training.pickle", "wb") as f:
        pickle.dump(anno, f)
    _png(d / "color" / "00000.png")
    s = RHDDataset(tmp_path)[0]
    np.testing.assert_allclose(s["joints_3d_mm"], ours, atol=1e-9)
    assert s["is_left"] is False and s["visible"].all()
    (d / "anno_training.pickle").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="not a readable pickle"):
        RHDDataset(tmp_path)
    with pytest.raises(DatasetError, match="anno_evaluation.pickle not found"):
        RHDDataset(tmp_path, split="evaluation")


def test_stb_layout_reordering_and_wrist(tmp_path):
    ours = _hand_mm(4)
    palm = 0.5 * (ours[0] + ours[9])            # the palm centre STB stores instead of the wrist
    stb = np.zeros((21, 3))
    stb[0] = palm
    for f in range(5):                          # STB: pinky, ring, middle, index, thumb; base -> tip
        for j in range(4):
            stb[1 + 4 * (4 - f) + j] = ours[1 + 4 * f + j]
    from scipy.spatial.transform import Rotation
    from hand25d_ros.datasets import STB_SK_ROT_VEC, STB_SK_TRANS_MM
    R = Rotation.from_rotvec(STB_SK_ROT_VEC).as_matrix()
    depth = stb @ R.T + STB_SK_TRANS_MM         # inverse of colour = (depth - T) R
    (tmp_path / "labels").mkdir()
    scipy.io.savemat(str(tmp_path / "labels" / "B1Counting_SK.mat"), {"handPara": depth.T[:, :, None]})
    _png(tmp_path / "B1Counting" / "SK_color_0.png", 480, 640)
    ds = STBDataset(tmp_path)
    s = ds[0]
    np.testing.assert_allclose(s["joints_3d_mm"], ours, atol=1e-6)
    np.testing.assert_allclose(s["K"], STB_SK_COLOR_K)
    scipy.io.savemat(str(tmp_path / "labels" / "B1Counting_SK.mat"), {"handPara": np.zeros((3, 20, 1))})
    with pytest.raises(DatasetError, match=r"shape \(3, 21, N\)"):
        STBDataset(tmp_path)
    with pytest.raises(DatasetError, match="labels folder not found"):
        STBDataset(tmp_path / "nothing")

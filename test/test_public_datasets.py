"""Public dataset loaders on tiny fixtures that the tests write in each dataset's real layout.

No file from a real dataset is used: every pose, image and annotation file is made here.
"""
import json
import pickle

import cv2
import numpy as np
import pytest
import scipy.io
import torch
from torch.utils.data import default_collate

from hand25d_ros import keypoints as kp
from hand25d_ros.data.public_datasets import (
    RHD_TO_OURS, STB_SK_COLOR_K, STB_SK_ROTVEC, STB_SK_TRANS_MM, STB_TEST_SEQUENCES, STB_TO_OURS,
    STB_TRAIN_SEQUENCES, AnnotatedFolderDataset, DatasetError, FreiHANDDataset, MixedDataset, RHDDataset,
    STBDataset, project_px)

K_FREI = np.array([[500.0, 0, 112], [0, 500, 112], [0, 0, 1]])
K_RHD = np.array([[300.0, 0, 160], [0, 310, 150], [0, 0, 1]])


def hand_mm(seed, z=500.0):
    """A pose in our order, mm, in front of the camera, every keypoint distinct:
    keypoint k carries k millimetres of extra x so a permutation cannot go unnoticed."""
    P = np.random.default_rng(seed).normal(0, 30, (21, 3)) + [0, 0, z]
    P[:, 0] += 7.0 * np.arange(21)
    return P


def write_image(path, h=8, w=8, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)
    return img


def project(P, K):
    h = P @ K.T
    return h[..., :2] / h[..., 2:]


def check_item(item, P_expected_mm, K, atol=1e-6):
    """The common item contract, units and projection consistency."""
    assert item["image"].dtype == np.uint8 and item["image"].ndim == 3 and item["image"].shape[2] == 3
    assert item["K"].shape == (3, 3) and item["K"].dtype == np.float64
    np.testing.assert_allclose(item["K"], K)
    assert item["joints_3d_mm"].shape == (21, 3)
    np.testing.assert_allclose(item["joints_3d_mm"], P_expected_mm, atol=atol)
    np.testing.assert_allclose(item["joints_2d_px"], project(item["joints_3d_mm"], item["K"]), atol=1e-9)
    assert item["visible"].shape == (21,) and item["visible"].dtype == bool


# ============================================================================ FreiHAND

def write_freihand(root, n=2, versions=4, split="training"):
    P = [hand_mm(i) for i in range(n)]
    root.mkdir(exist_ok=True)
    (root / f"{split}_xyz.json").write_text(json.dumps([(p / 1000.0).tolist() for p in P]))  # metres
    (root / f"{split}_K.json").write_text(json.dumps([K_FREI.tolist()] * n))
    for i in range(n * versions):
        write_image(root / split / "rgb" / f"{i:08d}.jpg", seed=i)
    return P


def test_freihand_layout_versions_and_units(tmp_path):
    P = write_freihand(tmp_path)
    ds = FreiHANDDataset(tmp_path)
    assert ds.name == "freihand" and len(ds) == 8
    s = ds[5]                                       # image 5 = version 2 of annotation 1
    assert s["image_path"].endswith("00000005.jpg") and s["annotation_index"] == 1
    check_item(s, P[1], K_FREI, atol=1e-9)          # metres in the file -> mm here
    assert s["is_left"] is False and s["visible"].all() and s["image"].shape == (8, 8, 3)
    assert ds[-1]["image_path"].endswith("00000007.jpg")
    with pytest.raises(IndexError):
        ds[8]
    one = FreiHANDDataset(tmp_path, versions=(3,))
    assert len(one) == 2 and one.annotation(0)["image_path"].endswith("00000006.jpg")


def test_freihand_evaluation_split(tmp_path):
    P = write_freihand(tmp_path, n=3, versions=1, split="evaluation")
    ds = FreiHANDDataset(tmp_path, split="evaluation")
    assert len(ds) == 3
    check_item(ds[2], P[2], K_FREI)
    with pytest.raises(DatasetError, match="versions"):
        FreiHANDDataset(tmp_path, split="evaluation", versions=(1,))
    with pytest.raises(DatasetError, match="training_xyz.json"):
        FreiHANDDataset(tmp_path)                   # only the evaluation files exist


def test_freihand_bad_input(tmp_path):
    with pytest.raises(DatasetError, match="FreiHAND folder not found"):
        FreiHANDDataset(tmp_path / "nothing")
    root = tmp_path / "f"
    write_freihand(root)
    xyz, K = root / "training_xyz.json", root / "training_K.json"
    good_xyz, good_K = xyz.read_text(), K.read_text()

    def expect(match, **kw):
        with pytest.raises(DatasetError, match=match):
            FreiHANDDataset(root, **kw)

    expect(r"evaluation keypoints \(their own download, FreiHAND_pub_v2_eval\) not found", split="evaluation")
    K.write_text("[[broken")
    expect("training_K.json is not valid JSON")
    K.unlink()
    expect("intrinsics not found: .*training_K.json")
    K.write_text(json.dumps([K_FREI.tolist()]))
    expect("2 poses but .*training_K.json has 1 intrinsics")
    K.write_text(json.dumps([[[0, 0, 0], [0, 0, 0], [0, 0, 1]]] * 2))
    expect("sample 0: K is not a camera matrix")
    mirrored = K_FREI.copy()
    mirrored[0, 0] *= -1
    K.write_text(json.dumps([K_FREI.tolist(), mirrored.tolist()]))
    expect("sample 1: K is not a camera matrix .*positive focal lengths")
    K.write_text(good_K)
    xyz.write_text(json.dumps(np.zeros((2, 21, 2)).tolist()))
    expect(r"keypoints must have shape \(N, 21, 3\), got \(2, 21, 2\)")
    xyz.write_text(json.dumps([[[float("nan")] * 3] * 21] * 2))
    expect("contains NaN")
    behind = np.array(json.loads(good_xyz))
    behind[1, 3, 2] = -0.1
    xyz.write_text(json.dumps(behind.tolist()))
    expect("sample 1: joints at or behind the camera")
    xyz.write_text(json.dumps({"not": "a list"}))
    expect("not a numeric array|must have shape")
    xyz.write_text(good_xyz)
    expect("versions must be distinct", versions=(0, 0))
    expect("versions must be whole numbers", versions=("a",))
    (root / "training" / "rgb" / "00000007.jpg").unlink()
    expect(r"version 3 .* 00000007.jpg is missing.*versions=\(0,\)")
    ds = FreiHANDDataset(root, versions=(0, 1, 2))
    (root / "training" / "rgb" / "00000003.jpg").unlink()
    with pytest.raises(DatasetError, match="cannot read image .*00000003.jpg: file not found"):
        ds[3]
    (root / "training" / "rgb" / "00000004.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="cannot read image .*00000004.jpg: corrupt"):
        ds[4]
    assert ds.annotation(4)["joints_3d_mm"].shape == (21, 3)   # annotations need no image


# ============================================================================ RHD

def to_rhd_hand(ours):
    """Our order -> RHD's (wrist, then each finger tip -> MCP), written out independently."""
    rhd = np.zeros((21,) + ours.shape[1:], ours.dtype)
    rhd[0] = ours[0]
    for f in range(5):
        for j in range(4):                          # j: 0 MCP/CMC ... 3 tip in our order
            rhd[1 + 4 * f + (3 - j)] = ours[1 + 4 * f + j]
    return rhd


def test_rhd_reorder_table_anchors():
    assert RHD_TO_OURS[4] == 1 and RHD_TO_OURS[1] == 4    # thumb tip is RHD's first thumb entry
    assert RHD_TO_OURS[8] == 5 and RHD_TO_OURS[9] == 12   # index tip; middle MCP = RHD 12 (hand3d's palm)
    assert sorted(RHD_TO_OURS) == list(range(21))


def write_rhd(root, split="training", protocol=2):
    """Three frames: 0 only the right hand visible, 1 left mostly visible (right 3 keypoints),
    2 nothing visible. Returns the per-frame (left, right) poses in our order, mm."""
    d = root / split
    poses, vis_ours, anno = {}, {}, {}
    for sid in range(3):
        left, right = hand_mm(10 + sid, 400), hand_mm(20 + sid, 600)
        vl, vr = np.zeros(21), np.zeros(21)
        if sid == 0:
            vr[:] = 1
        elif sid == 1:
            vl[:] = 1
            vl[[3, 7]] = 0                          # our thumb IP and index DIP hidden
            vr[[0, 1, 2]] = 1
        xyz = np.concatenate([to_rhd_hand(left), to_rhd_hand(right)]) / 1000.0
        vis = np.concatenate([to_rhd_hand(vl), to_rhd_hand(vr)])
        uv = project(xyz, K_RHD)
        anno[sid] = {"xyz": xyz.astype(np.float32), "uv_vis": np.c_[uv, vis].astype(np.float32),
                     "K": K_RHD.astype(np.float32)}
        poses[sid], vis_ours[sid] = (left, right), (vl.astype(bool), vr.astype(bool))
        write_image(d / "color" / f"{sid:05d}.png", 16, 16, seed=sid)
        mask = np.zeros((16, 16), np.uint8)
        mask[:4] = 5                                # 64 px of left hand (labels 2-17)
        mask[4:12] = 20 if sid == 1 else 1          # frame 1: 128 px of right hand (18-33)
        (d / "mask").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / "mask" / f"{sid:05d}.png"), mask)
    with open(d / f"anno_{split}.pickle", "wb") as f:
        pickle.dump(anno, f, protocol=protocol)
    return poses, vis_ours


def test_rhd_more_visible_hand_reordered(tmp_path):
    poses, vis = write_rhd(tmp_path)
    ds = RHDDataset(tmp_path)
    assert ds.name == "rhd" and len(ds) == 2        # frame 2 has no visible keypoint
    a, b = ds[0], ds[1]
    assert a["is_left"] is False and b["is_left"] is True
    check_item(a, poses[0][1], K_RHD, atol=1e-3)    # float32 metres -> mm
    check_item(b, poses[1][0], K_RHD, atol=1e-3)
    np.testing.assert_array_equal(b["visible"], vis[1][0])
    assert not b["visible"][3] and not b["visible"][7] and b["visible"].sum() == 19
    assert a["image_path"].endswith("00000.png") and b["annotation_index"] == 1
    assert len(RHDDataset(tmp_path, min_visible=0)) == 3


def test_rhd_hand_modes(tmp_path):
    poses, _ = write_rhd(tmp_path, protocol=pickle.HIGHEST_PROTOCOL)
    both = RHDDataset(tmp_path, hand="both")
    assert [(x["annotation_index"], x["is_left"]) for x in map(both.annotation, range(len(both)))] == \
        [(0, False), (1, True), (1, False)]
    np.testing.assert_allclose(both.annotation(2)["joints_3d_mm"], poses[1][1], atol=1e-3)
    assert len(RHDDataset(tmp_path, hand="left")) == 1 and len(RHDDataset(tmp_path, hand="right")) == 2
    # mask mode: frame 1's mask has more right-hand pixels although the left is more visible
    masked = RHDDataset(tmp_path, hand="mask")
    assert len(masked) == 2 and masked[1]["is_left"] is False and masked[0]["is_left"] is True
    np.testing.assert_allclose(masked[1]["joints_3d_mm"], poses[1][1], atol=1e-3)


def test_rhd_bad_input(tmp_path):
    with pytest.raises(DatasetError, match="RHD folder not found"):
        RHDDataset(tmp_path / "nothing")
    write_rhd(tmp_path)
    path = tmp_path / "training" / "anno_training.pickle"
    good = path.read_bytes()
    with pytest.raises(DatasetError, match="RHD evaluation folder not found"):
        RHDDataset(tmp_path, split="evaluation")
    with pytest.raises(DatasetError, match="hand must be one of"):
        RHDDataset(tmp_path, hand="best")

    def expect(match, **kw):
        with pytest.raises(DatasetError, match=match):
            RHDDataset(tmp_path, **kw)

    path.write_bytes(b"not a pickle")
    expect("anno_training.pickle is not a readable pickle")
    path.write_bytes(good[: len(good) // 2])
    expect("is not a readable pickle")
    path.write_bytes(pickle.dumps(tmp_path))     # a pathlib object: no code from the file runs
    expect("refusing to load pathlib")
    path.write_bytes(pickle.dumps([1, 2]))
    expect("expected a dict sample id -> annotation, got list")
    path.write_bytes(pickle.dumps({0: {"xyz": np.zeros((42, 3))}}))
    expect("sample 0 must be a dict with 'xyz', 'uv_vis' and 'K'")
    anno = pickle.loads(good)
    anno[1]["xyz"] = anno[1]["xyz"][:21]
    path.write_bytes(pickle.dumps(anno))
    expect(r"sample 1 'xyz' must have shape \(42, 3\), got \(21, 3\)")
    anno = pickle.loads(good)
    anno[2]["K"][0, 0] = np.nan
    path.write_bytes(pickle.dumps(anno))
    expect("sample 2 'K' contains NaN")
    anno = pickle.loads(good)
    anno[0]["xyz"][30, 2] = -0.2                     # a right-hand joint behind the camera
    path.write_bytes(pickle.dumps(anno))
    expect(r"sample 0 \(right hand\): joints at or behind")
    path.unlink()
    expect("RHD annotation file .* not found: .*anno_training.pickle")
    path.write_bytes(good)
    expect("no frame has a qualifying hand", hand="left", min_visible=20)   # frame 1's left: 19
    expect(r"min_visible must be a whole number of keypoints in 0..21, got 22", min_visible=22)
    ds = RHDDataset(tmp_path, hand="mask")
    (tmp_path / "training" / "mask" / "00001.png").unlink()
    with pytest.raises(DatasetError, match="cannot read mask .*00001.png: file not found"):
        ds[1]
    (tmp_path / "training" / "color" / "00000.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DatasetError, match="cannot read image .*00000.png: corrupt"):
        RHDDataset(tmp_path)[0]
    import shutil
    shutil.rmtree(tmp_path / "training" / "mask")
    expect("RHD training masks folder not found", hand="mask")
    shutil.rmtree(tmp_path / "training" / "color")
    expect("RHD training colour images folder not found")


def test_rhd_missing_images_found_when_opened(tmp_path):
    """A partial extraction is found when the dataset opens (as FreiHAND's and STB's images
    are), not by a DataLoader worker once training reaches the frame."""
    write_rhd(tmp_path)
    (tmp_path / "training" / "color" / "00001.png").unlink()
    with pytest.raises(DatasetError, match=r"color: 1 of the training images that anno_training.pickle "
                                           r"annotates are missing, the first 00001.png"):
        RHDDataset(tmp_path)
    # only the frames with an item need their image: frame 1's right hand has 3 visible keypoints
    assert len(RHDDataset(tmp_path, hand="right", min_visible=4)) == 1
    write_image(tmp_path / "training" / "color" / "00001.png", 16, 16)
    (tmp_path / "training" / "mask" / "00000.png").unlink()
    with pytest.raises(DatasetError, match=r"mask: 1 of the training masks .* the first 00000.png"):
        RHDDataset(tmp_path, hand="mask", min_visible=0)
    assert len(RHDDataset(tmp_path, min_visible=0)) == 3    # masks are read in 'mask' mode only


# ============================================================================ STB

def to_stb(ours):
    """Our order -> STB's (palm, then little, ring, middle, index, thumb; each MCP -> tip),
    with the palm centre halfway between wrist and middle MCP."""
    stb = np.zeros_like(ours)
    stb[0] = 0.5 * (ours[0] + ours[9])
    for f in range(5):                              # ours: thumb 0 .. pinky 4
        for j in range(4):
            stb[1 + 4 * (4 - f) + j] = ours[1 + 4 * f + j]
    return stb


def color_to_depth(P_color):
    """The readme's extrinsics: P_depth = R P_color + T (R by OpenCV's Rodrigues)."""
    R, _ = cv2.Rodrigues(STB_SK_ROTVEC.reshape(3, 1))
    return P_color @ R.T + STB_SK_TRANS_MM


def write_stb(root, seqs=("B1Counting",), frames=2, images_subdir=False):
    out = {}
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for s, seq in enumerate(seqs):
        ours = np.stack([hand_mm(30 + 10 * s + f, 450) for f in range(frames)])
        depth = np.stack([color_to_depth(to_stb(P)) for P in ours])       # (N, 21, 3)
        scipy.io.savemat(str(root / "labels" / f"{seq}_SK.mat"), {"handPara": depth.transpose(2, 1, 0)})
        for f in range(frames):
            write_image(root / ("images" if images_subdir else "") / seq / f"SK_color_{f}.png", 6, 8, seed=f)
        out[seq] = ours
    return out


def test_stb_reorder_table_anchors():
    assert STB_TO_OURS[17] == 1 and STB_TO_OURS[20] == 4    # pinky MCP, tip: STB's first finger
    assert STB_TO_OURS[1] == 17 and STB_TO_OURS[4] == 20    # thumb: STB's last finger
    assert STB_TO_OURS[9] == 9 and sorted(STB_TO_OURS) == list(range(21))


def test_stb_layout_reordering_frames_and_wrist(tmp_path):
    ours = write_stb(tmp_path, seqs=("B1Counting", "B2Random"))
    ds = STBDataset(tmp_path)
    assert ds.name == "stb" and len(ds) == 4 and ds.sequences == ("B1Counting", "B2Random")
    s = ds[3]
    assert s["image_path"].endswith("B2Random/SK_color_1.png") and s["annotation_index"] == 1
    check_item(s, ours["B2Random"][1], STB_SK_COLOR_K, atol=1e-6)    # colour frame, mm, wrist restored
    assert s["is_left"] is True and s["visible"].all() and s["image"].shape == (6, 8, 3)
    raw = STBDataset(tmp_path, sequences=["B1Counting"], depth_to_color=False)
    assert len(raw) == 2 and np.abs(raw.annotation(0)["joints_3d_mm"] - ours["B1Counting"][0]).max() > 5
    # the wrist extrapolation is a parameter: 2.2 moves it along middle MCP -> palm
    far = STBDataset(tmp_path, sequences="B1Counting", palm_to_wrist=2.2).annotation(0)["joints_3d_mm"]
    P = ours["B1Counting"][0]
    np.testing.assert_allclose(far[0], P[9] + 1.1 * (P[0] - P[9]), atol=1e-6)
    np.testing.assert_allclose(far[1:], P[1:], atol=1e-6)


def test_stb_images_folder_layout_and_split(tmp_path):
    ours = write_stb(tmp_path, seqs=("B1Counting", "B1Random"), images_subdir=True)
    ds = STBDataset(tmp_path, split="test")
    assert len(ds) == 4 and "images/B1Random" in ds.annotation(2)["image_path"]
    check_item(ds[2], ours["B1Random"][0], STB_SK_COLOR_K)
    with pytest.raises(DatasetError, match="B2Counting_SK.mat"):
        STBDataset(tmp_path, split="train")
    with pytest.raises(DatasetError, match="split must be"):
        STBDataset(tmp_path, split="val")


def test_stb_bad_input(tmp_path):
    with pytest.raises(DatasetError, match="STB folder not found"):
        STBDataset(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="STB labels folder not found"):
        STBDataset(tmp_path / "empty")
    (tmp_path / "empty" / "labels").mkdir()
    with pytest.raises(DatasetError, match="no <sequence>_SK.mat label files"):
        STBDataset(tmp_path / "empty")
    write_stb(tmp_path)
    mat = tmp_path / "labels" / "B1Counting_SK.mat"
    good = mat.read_bytes()

    def expect(match, **kw):
        with pytest.raises(DatasetError, match=match):
            STBDataset(tmp_path, **kw)

    mat.write_bytes(b"MATLAB 5.0 MAT-file, but not really")
    expect("B1Counting_SK.mat is not a readable .mat file")
    scipy.io.savemat(str(mat), {"handPose": np.zeros((3, 21, 2))})
    expect(r"has no 'handPara' array \(found: \['handPose'\]\)")
    scipy.io.savemat(str(mat), {"handPara": np.zeros((3, 20, 2))})
    expect(r"handPara must have shape \(3, 21, N\), got \(3, 20, 2\)")
    scipy.io.savemat(str(mat), {"handPara": np.full((3, 21, 2), np.nan)})
    expect("handPara contains NaN")
    behind = np.zeros((3, 21, 2))
    behind[2] = -100.0                               # Z of every joint, mm
    scipy.io.savemat(str(mat), {"handPara": behind})
    expect("frame 0: joints at or behind the camera")
    mat.write_bytes(good)
    expect("STB labels of B9Counting not found", sequences=["B9Counting"])
    expect(r"no STB sequences given", sequences=[])
    expect("palm_to_wrist must be a positive finite factor", palm_to_wrist=float("nan"))
    scipy.io.savemat(str(mat), {"handPara": np.concatenate([scipy.io.loadmat(str(mat))["handPara"]] * 2, 2)})
    expect(r"4 label frames in B1Counting_SK.mat but no SK_color_2.png \(2 of the images missing\)")
    mat.write_bytes(good)
    ds = STBDataset(tmp_path)
    (tmp_path / "B1Counting" / "SK_color_1.png").unlink()
    with pytest.raises(DatasetError, match="cannot read image .*SK_color_1.png: file not found"):
        ds[1]
    import shutil
    shutil.rmtree(tmp_path / "B1Counting")
    expect("STB images of B1Counting not found")


def test_training_config_opens_the_training_split_unless_told(tmp_path):
    """hand25d-train's data.extra: STB's loader defaults to every sequence, so a training
    source left at its default trained on B1, the sequences the benchmark tests on."""
    from hand25d_ros.train import build_extra_source
    root = tmp_path / "stb"
    write_stb(root, seqs=STB_TEST_SEQUENCES + STB_TRAIN_SEQUENCES, frames=1)
    stb = build_extra_source({"type": "stb", "root": str(root), "weight": 0.5})
    assert stb.sequences == STB_TRAIN_SEQUENCES and len(stb) == 10
    assert build_extra_source({"type": "stb", "root": str(root), "split": "test"}).sequences == STB_TEST_SEQUENCES
    write_rhd(tmp_path / "rhd", split="evaluation")
    with pytest.raises(DatasetError, match="RHD training folder not found"):
        build_extra_source({"type": "rhd", "root": str(tmp_path / "rhd")})
    assert build_extra_source({"type": "rhd", "root": str(tmp_path / "rhd"), "split": "evaluation"}).split == "evaluation"


def test_training_config_passes_loader_options(tmp_path):
    """data.extra's options reach the loader: FreiHAND's image versions, RHD's hand, STB's
    sequences (which then name the split) and its wrist factor; a bad value is the loader's
    clear error, raised when the entry opens, before any rendering."""
    from hand25d_ros.train import build_extra_source
    write_freihand(tmp_path / "frei", n=2)
    frei = {"type": "freihand", "root": str(tmp_path / "frei")}
    assert len(build_extra_source(frei)) == 8
    assert len(build_extra_source({**frei, "options": {"versions": [0]}})) == 2
    write_rhd(tmp_path / "rhd")
    rhd = {"type": "rhd", "root": str(tmp_path / "rhd")}
    assert len(build_extra_source(rhd)) == 2 and len(build_extra_source({**rhd, "options": {"hand": "both"}})) == 3
    assert len(build_extra_source({**rhd, "options": {"min_visible": 0}})) == 3
    root = tmp_path / "stb"
    write_stb(root, seqs=STB_TEST_SEQUENCES + STB_TRAIN_SEQUENCES, frames=1)
    one = build_extra_source({"type": "stb", "root": str(root), "options": {"sequences": ["B1Counting"]}})
    assert one.sequences == ("B1Counting",) and len(one) == 1
    far = build_extra_source({"type": "stb", "root": str(root), "options": {"sequences": "B1Counting",
                                                                              "palm_to_wrist": 3.0}})
    np.testing.assert_raises(AssertionError, np.testing.assert_allclose,
                             far[0]["joints_3d_mm"][0], one[0]["joints_3d_mm"][0])
    for options, message in [({"versions": [4]}, r"FreiHAND training versions must be distinct values in"),
                             ({"versions": "all"}, "FreiHAND versions must be whole numbers")]:
        with pytest.raises(DatasetError, match=message):
            build_extra_source({**frei, "options": options})
    for options, message in [({"min_visible": "3"}, "RHD min_visible must be a whole number"),
                             ({"min_visible": 22}, "RHD min_visible must be a whole number"),
                             ({"hand": "thumb"}, "RHD hand must be one of")]:
        with pytest.raises(DatasetError, match=message):
            build_extra_source({**rhd, "options": options})
    stb = {"type": "stb", "root": str(root)}
    for options, message in [({"sequences": 5}, "STB sequences must be sequence names"),
                             ({"sequences": ["B1Counting", 2]}, "STB sequences must be sequence names"),
                             ({"palm_to_wrist": "2"}, "palm_to_wrist must be a positive finite factor"),
                             ({"depth_to_color": "no"}, "STB depth_to_color must be true or false")]:
        with pytest.raises(DatasetError, match=message):
            build_extra_source({**stb, "options": options})


# ============================================================================ own format

def write_folder(root, n_full=2):
    """real_val_snap's format: full 3D samples, plus a 2D-only one and a 3D-only one."""
    root.mkdir()
    K = np.array([[300.0, 0, 4], [0, 300, 4], [0, 0, 1]])
    samples, poses = [], []
    for i in range(n_full):
        P = hand_mm(40 + i, 400)
        write_image(root / "images" / f"{i:04d}.jpg", seed=i)
        samples.append({"image": f"images/{i:04d}.jpg", "K": K.tolist(), "joints_3d_mm": P.tolist(),
                        "joints_2d_px": project(P, K).tolist()})
        poses.append(P)
    uv = np.random.default_rng(0).uniform(0, 8, (21, 2))
    write_image(root / "images" / "2d.png", seed=9)
    samples.append({"image": "images/2d.png", "K": K.tolist(), "joints_3d_mm": None,
                    "joints_2d_px": uv.tolist(), "is_left": True,
                    "visible": [True] * 20 + [False]})
    P3 = hand_mm(50, 400)
    write_image(root / "images" / "3d.png", seed=10)
    samples.append({"image": "images/3d.png", "K": K.tolist(), "joints_3d_mm": P3.tolist()})
    (root / "annotations.json").write_text(json.dumps({
        "keypoint_order": "wrist, thumb CMC MCP IP TIP, ...", "image_size": [8, 8], "samples": samples}))
    return K, poses, uv, P3


def test_annotated_folder(tmp_path):
    K, poses, uv, P3 = write_folder(tmp_path / "d")
    ds = AnnotatedFolderDataset(tmp_path / "d")
    assert ds.name == "folder" and len(ds) == 4 and ds.image_size == [8, 8]
    check_item(ds[1], poses[1], K, atol=1e-9)
    assert ds[1]["is_left"] is None and ds[1]["visible"].all()
    two = ds[2]
    assert two["joints_3d_mm"] is None and two["is_left"] is True and not two["visible"][20]
    np.testing.assert_allclose(two["joints_2d_px"], uv)
    check_item(ds[3], P3, K)                        # 2D made from the 3D


def test_annotated_folder_bad_input(tmp_path):
    with pytest.raises(DatasetError, match="annotated dataset folder not found"):
        AnnotatedFolderDataset(tmp_path / "none")
    root = tmp_path / "d"
    write_folder(root)
    ann = root / "annotations.json"
    good = json.loads(ann.read_text())

    def expect(content, match):
        ann.write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(DatasetError, match=match):
            AnnotatedFolderDataset(root)

    expect("{not json", "annotations.json is not valid JSON")
    expect({"frames": []}, "has no 'samples' list")
    expect({"samples": []}, "'samples' is empty")
    expect({"samples": [{"image": "x.png", "K": [1, 2]}]}, r"sample 0 is malformed: 'K' must have shape \(3, 3\)")
    expect({"samples": [{"K": np.eye(3).tolist()}]}, "sample 0 is malformed")
    bad = json.loads(json.dumps(good))
    bad["samples"][1]["joints_3d_mm"][4][0] = float("nan")
    expect(bad, "sample 1 is malformed: 'joints_3d_mm' contains NaN")
    bad = json.loads(json.dumps(good))
    bad["samples"][0]["joints_2d_px"] = bad["samples"][0]["joints_2d_px"][:20]
    expect(bad, r"sample 0 is malformed: 'joints_2d_px' must have shape \(21, 2\), got \(20, 2\)")
    bad = json.loads(json.dumps(good))
    bad["samples"][2]["joints_2d_px"] = None
    expect(bad, "sample 2 is malformed: it has neither")
    bad = json.loads(json.dumps(good))
    bad["samples"][2]["is_left"] = "left"
    expect(bad, "'is_left' must be true, false or null")
    bad = json.loads(json.dumps(good))
    bad["samples"][2]["visible"] = [0.5] * 21
    expect(bad, r"'visible' must be 21 booleans \(or 0/1\), got float64 values")
    ann.unlink()
    with pytest.raises(DatasetError, match="annotations.json .* not found"):
        AnnotatedFolderDataset(root)
    ann.write_text(json.dumps(good))
    jpg = (root / "images" / "0001.jpg").read_bytes()
    (root / "images" / "0001.jpg").write_bytes(jpg[: len(jpg) * 6 // 10])    # a partial download
    with pytest.raises(DatasetError, match="0001.jpg: truncated JPEG"):
        AnnotatedFolderDataset(root)[1]
    (root / "images" / "0000.jpg").unlink()
    with pytest.raises(DatasetError, match="cannot read image .*0000.jpg: file not found"):
        AnnotatedFolderDataset(root)[0]


# ============================================================================ mixing

def test_mixed_dataset_weights_flags_and_collate(tmp_path):
    write_folder(tmp_path / "d")
    write_freihand(tmp_path / "f", n=2, versions=1)
    folder, frei = AnnotatedFolderDataset(tmp_path / "d"), FreiHANDDataset(tmp_path / "f", versions=(0,))
    mix = MixedDataset([folder, frei], weights=[3.0, 1.0], length=4000, seed=1)
    draws = np.array([mix.draw(i) for i in range(4000)])
    assert abs((draws[:, 0] == 0).mean() - 0.75) < 0.03
    assert set(draws[draws[:, 0] == 0, 1]) == set(range(4)) and set(draws[draws[:, 0] == 1, 1]) == {0, 1}
    assert [mix.draw(i) for i in range(50)] == [tuple(d) for d in draws[:50]]   # deterministic
    mix.set_epoch(1)
    assert [mix.draw(i) for i in range(50)] != [tuple(d) for d in draws[:50]]

    # every item is batchable; the 2D-only sample has zero 3D and has_3d False
    items = [mix[i] for i in range(200)]
    two_d = [it for it in items if it["source"] == "folder" and it["source_index"] == 2]
    assert two_d and not two_d[0]["has_3d"] and not two_d[0]["joints_3d_mm"].any()
    assert two_d[0]["is_left"] == 1
    full = [it for it in items if it["source"] == "freihand"]
    assert full and full[0]["has_3d"] and full[0]["is_left"] == 0
    assert [it for it in items if it["source"] == "folder" and it["source_index"] == 0][0]["is_left"] == -1
    batch = default_collate(items[:16])
    assert batch["image"].shape == (16, 8, 8, 3) and batch["joints_3d_mm"].shape == (16, 21, 3)
    assert batch["has_3d"].dtype == torch.bool

    only = MixedDataset([folder, frei], weights=[0.0, 1.0])
    assert len(only) == 6 and all(only.draw(i)[0] == 1 for i in range(6))


def test_mixed_dataset_bad_input(tmp_path):
    write_folder(tmp_path / "d")
    folder = AnnotatedFolderDataset(tmp_path / "d")
    with pytest.raises(ValueError, match="at least one source"):
        MixedDataset([])
    with pytest.raises(ValueError, match="one weight per source"):
        MixedDataset([folder], weights=[1.0, 2.0])
    for w in ([-1.0], [0.0], [np.nan]):
        with pytest.raises(ValueError, match="non-negative and not all zero"):
            MixedDataset([folder], weights=w)
    with pytest.raises(ValueError, match="empty"):
        MixedDataset([folder, []], weights=[1.0, 1.0])
    with pytest.raises(IndexError):
        MixedDataset([folder]).draw(4)


def test_project_px_matches_intrinsics():
    P = np.array([[10.0, -20.0, 500.0]])
    K = np.array([[600.0, 0.5, 320.0], [0, 610.0, 240.0], [0, 0, 1]])
    # u = fx X/Z + s Y/Z + cx
    np.testing.assert_allclose(project_px(P, K), [[600 * 0.02 + 0.5 * -0.04 + 320, 610 * -0.04 + 240]])
    assert kp.NUM_KEYPOINTS == 21 and issubclass(DatasetError, ValueError)


def test_annotated_folder_null_keypoints_are_unlabelled(tmp_path):
    root = tmp_path / "d"
    K, poses, uv, P3 = write_folder(root)
    ann = root / "annotations.json"
    good = json.loads(ann.read_text())
    cut = [4, 8, 20]
    data = json.loads(json.dumps(good))
    for k in cut:
        data["samples"][0]["joints_3d_mm"][k] = None
        data["samples"][0]["joints_2d_px"][k] = None
        data["samples"][2]["joints_2d_px"][k] = None        # 2D-only
        data["samples"][3]["joints_3d_mm"][k] = None        # 3D only: its projection
    ann.write_text(json.dumps(data))
    ds = AnnotatedFolderDataset(root)
    for i in (0, 2, 3):
        item = ds[i]
        assert item["labelled"].tolist() == [k not in cut for k in range(21)]
        assert np.isnan(item["joints_2d_px"][cut]).all() and np.isfinite(item["joints_2d_px"][item["labelled"]]).all()
    np.testing.assert_allclose(ds[0]["joints_3d_mm"][[0, 5, 9]], poses[0][[0, 5, 9]])
    np.testing.assert_allclose(ds[3]["joints_2d_px"][:4], project(P3, K)[:4])
    assert ds[1]["labelled"].all()

    def expect(edit, match):
        bad = json.loads(json.dumps(good))
        edit(bad["samples"])
        ann.write_text(json.dumps(bad))
        with pytest.raises(DatasetError, match=match):
            AnnotatedFolderDataset(root)

    def nan_string(s):
        s[0]["joints_2d_px"][3] = ["NaN", "NaN"]
    expect(nan_string, r"sample 0 is malformed: 'joints_2d_px' keypoint 3 holds 'NaN', not a number; "
                       "a keypoint that is not labelled is written null")

    def null_coordinate(s):
        s[2]["joints_2d_px"][3] = [None, 2.0]
    expect(null_coordinate, "sample 2 is malformed: 'joints_2d_px' contains NaN.*written null")

    def short_row(s):
        s[2]["joints_2d_px"][3], s[2]["joints_2d_px"][4] = None, [1.0]
    expect(short_row, r"'joints_2d_px' keypoint 4 must be 2 numbers or null, got \[1.0\]")

    def twenty_rows(s):
        s[2]["joints_2d_px"] = s[2]["joints_2d_px"][:19] + [None]
    expect(twenty_rows, "'joints_2d_px' must have 21 keypoints")

    def one_array_only(s):
        s[0]["joints_2d_px"][7] = None
    expect(one_array_only, r"keypoints \[7\] are null in one of 'joints_3d_mm' and 'joints_2d_px' only")

    def all_null(s):
        s[2]["joints_2d_px"] = [None] * 21
    expect(all_null, "sample 2 is malformed: every keypoint is null")

    def no_scale_bone(s):
        s[3]["joints_3d_mm"][5] = None
    expect(no_scale_bone, "sample 3 is malformed: its 3D pose leaves the wrist or the index MCP .* "
                          "'joints_3d_mm': null to use the sample as 2D-only")

    def no_wrist(s):
        s[1]["joints_3d_mm"][0] = s[1]["joints_2d_px"][0] = None
    expect(no_wrist, "sample 1 is malformed: its 3D pose leaves the wrist")

    def behind(s):
        s[1]["joints_3d_mm"][3] = None
        s[1]["joints_2d_px"][3] = None
        s[1]["joints_3d_mm"][6][2] = -5.0
    expect(behind, "sample 1 is malformed: joints at or behind the camera plane")

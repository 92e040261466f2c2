"""Annotated image folders in this project's evaluation format.

A folder holds ``annotations.json``: ``{"samples": [{"image": <path relative to the
folder>, "K": 3x3, "joints_3d_mm": 21x3, "joints_2d_px": 21x2}, ...]}`` with keypoints in
this package's order (the format of real_val_snap).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from . import keypoints as kp


class DatasetError(ValueError):
    """A dataset file that is missing, unreadable or not in the expected layout."""


class AnnotatedFolderDataset:
    """Items: image (H, W, 3) uint8 RGB, K (3, 3), joints_3d_mm (21, 3), joints_2d_px (21, 2)."""

    name = "folder"

    def __init__(self, root):
        self.root = Path(root)
        ann = self.root / "annotations.json"
        if not self.root.is_dir():
            raise DatasetError(f"dataset folder not found: {self.root}")
        if not ann.is_file():
            raise DatasetError(f"{ann} not found: an annotated folder needs annotations.json")
        try:
            data = json.loads(ann.read_text())
            samples = data["samples"]
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{ann} is not valid JSON: {exc}") from None
        except (KeyError, TypeError):
            raise DatasetError(f"{ann} has no 'samples' list") from None
        self.samples = []
        for i, s in enumerate(samples):
            try:
                item = {"image": str(s["image"]),
                        "K": np.asarray(s["K"], dtype=np.float64).reshape(3, 3),
                        "joints_3d_mm": np.asarray(s["joints_3d_mm"], dtype=np.float64).reshape(kp.NUM_KEYPOINTS, 3),
                        "joints_2d_px": np.asarray(s["joints_2d_px"], dtype=np.float64).reshape(kp.NUM_KEYPOINTS, 2)}
            except (KeyError, TypeError, ValueError) as exc:
                raise DatasetError(f"{ann}: sample {i} is malformed "
                                   f"(needs image, K 3x3, joints_3d_mm 21x3, joints_2d_px 21x2): {exc}") from None
            self.samples.append(item)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        s = self.samples[i]
        path = self.root / s["image"]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DatasetError(f"cannot read image {path} (missing or not an image)")
        return {"image": cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), "K": s["K"].copy(),
                "joints_3d_mm": s["joints_3d_mm"].copy(), "joints_2d_px": s["joints_2d_px"].copy(),
                "visible": np.ones(kp.NUM_KEYPOINTS, bool), "is_left": None}


# ----------------------------------------------------------------------------- public datasets

def _read_image(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"cannot read image {path} (missing or not an image)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _project(P, K):
    h = P @ K.T
    return h[:, :2] / h[:, 2:3]


def _load_json(path: Path):
    if not path.is_file():
        raise DatasetError(f"{path} not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}") from None


def _as_array(value, shape, what, path):
    try:
        a = np.asarray(value, dtype=np.float64)
        return a.reshape(shape)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: {what} must have shape {shape}: {exc}") from None


class FreiHANDDataset:
    """FreiHAND v2 (Zimmermann et al. 2019), in its published layout.

    ``root/training_xyz.json`` (N x 21 x 3, metres, our keypoint order),
    ``root/training_K.json`` (N x 3 x 3), ``root/training/rgb/%08d.jpg`` where the folder
    holds ``versions`` x N images (green-screen and three re-composited backgrounds of the
    same frames: image ``i + v N`` shares annotation ``i``). ``split='evaluation'`` reads
    the evaluation_* files the same way (one version).
    """

    name = "freihand"

    def __init__(self, root, split: str = "training", versions=(0, 1, 2, 3)):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"FreiHAND folder not found: {self.root}")
        if split not in ("training", "evaluation"):
            raise DatasetError(f"FreiHAND split must be 'training' or 'evaluation', got {split!r}")
        xyz_path, k_path = self.root / f"{split}_xyz.json", self.root / f"{split}_K.json"
        xyz, Ks = _load_json(xyz_path), _load_json(k_path)
        if len(xyz) != len(Ks):
            raise DatasetError(f"{xyz_path} has {len(xyz)} poses but {k_path} has {len(Ks)} intrinsics")
        self.xyz_mm = _as_array(xyz, (len(xyz), kp.NUM_KEYPOINTS, 3), "poses", xyz_path) * 1000.0
        self.K = _as_array(Ks, (len(Ks), 3, 3), "intrinsics", k_path)
        self.rgb = self.root / split / "rgb"
        self.versions = tuple(versions) if split == "training" else (0,)
        self.n = len(self.xyz_mm)

    def __len__(self):
        return self.n * len(self.versions)

    def __getitem__(self, i):
        v, j = divmod(i, self.n)
        P = self.xyz_mm[j]
        return {"image": _read_image(self.rgb / f"{j + self.versions[v] * self.n:08d}.jpg"), "K": self.K[j].copy(),
                "joints_3d_mm": P.copy(), "joints_2d_px": _project(P, self.K[j]),
                "visible": np.ones(kp.NUM_KEYPOINTS, bool), "is_left": False}


# RHD per hand: 0 wrist, then thumb, index, middle, ring, pinky, each tip first.
# ours[1 + 4 f + j] (j: base -> tip) = rhd[1 + 4 f + (3 - j)]
RHD_TO_OURS = (0,) + tuple(1 + 4 * f + (3 - j) for f in range(5) for j in range(4))
# STB: 0 palm centre, then pinky, ring, middle, index, thumb, each base -> tip.
STB_TO_OURS = (0,) + tuple(1 + 4 * (4 - f) + j for f in range(5) for j in range(4))
# STB's SK colour camera: intrinsics and the depth -> colour extrinsics published with it
STB_SK_COLOR_K = np.array([[607.92271, 0.0, 314.78337], [0.0, 607.88192, 236.42484], [0.0, 0.0, 1.0]])
STB_SK_ROT_VEC = np.array([0.00531, -0.01196, 0.00301])
STB_SK_TRANS_MM = np.array([-24.0381, -0.4563, -1.2326])


class RHDDataset:
    """Rendered Hand Pose dataset (Zimmermann & Brox 2017), in its published layout.

    ``root/{training,evaluation}/anno_{split}.pickle``: sample id -> {'xyz': (42, 3) m,
    'uv_vis': (42, 3), 'K': (3, 3)}; ``color/%05d.png``. Keypoints 0-20 are the left hand,
    21-41 the right. Each item is the hand with more visible keypoints, reordered to ours.
    """

    name = "rhd"

    def __init__(self, root, split: str = "training"):
        import pickle
        self.root = Path(root) / split
        path = self.root / f"anno_{split}.pickle"
        if not path.is_file():
            raise DatasetError(f"{path} not found (RHD layout: <root>/{split}/anno_{split}.pickle)")
        try:
            with open(path, "rb") as f:
                anno = pickle.load(f)
        except Exception as exc:
            raise DatasetError(f"{path} is not a readable pickle: {type(exc).__name__}: {exc}") from None
        if not isinstance(anno, dict):
            raise DatasetError(f"{path}: expected a dict of samples, got {type(anno).__name__}")
        self.items = []
        for sid in sorted(anno):
            a = anno[sid]
            try:
                xyz = np.asarray(a["xyz"], dtype=np.float64).reshape(42, 3) * 1000.0
                vis = np.asarray(a["uv_vis"], dtype=np.float64).reshape(42, 3)[:, 2] > 0
                K = np.asarray(a["K"], dtype=np.float64).reshape(3, 3)
            except (KeyError, TypeError, ValueError) as exc:
                raise DatasetError(f"{path}: sample {sid} is malformed (needs xyz 42x3, uv_vis 42x3, K 3x3): {exc}") from None
            left = vis[:21].sum() >= vis[21:].sum()
            sl = slice(0, 21) if left else slice(21, 42)
            idx = list(RHD_TO_OURS)
            self.items.append((int(sid), xyz[sl][idx], vis[sl][idx], K, bool(left)))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        sid, P, vis, K, left = self.items[i]
        return {"image": _read_image(self.root / "color" / f"{sid:05d}.png"), "K": K.copy(),
                "joints_3d_mm": P.copy(), "joints_2d_px": _project(P, K), "visible": vis.copy(), "is_left": left}


class STBDataset:
    """Stereo Hand Pose Benchmark (Zhang et al. 2016), SK colour images.

    ``root/labels/<seq>_SK.mat`` with ``handPara`` (3, 21, N) in mm in the depth camera
    frame; images ``root/<seq>/SK_color_%d.png``. Labels are moved to the colour camera
    with the published extrinsics, reordered to ours, and the palm centre that STB has
    instead of a wrist becomes ``wrist = palm + (palm - middle MCP)``: the palm centre
    lies about halfway between wrist and middle MCP. That wrist is an approximation
    (re-implementations vary), so STB wrists are a few mm off the photo convention.
    """

    name = "stb"

    def __init__(self, root, sequences=None):
        import scipy.io
        from scipy.spatial.transform import Rotation
        self.root = Path(root)
        labels = self.root / "labels"
        if not labels.is_dir():
            raise DatasetError(f"STB labels folder not found: {labels}")
        files = sorted(labels.glob("*_SK.mat"))
        if sequences is not None:
            files = [labels / f"{s}_SK.mat" for s in sequences]
        if not files:
            raise DatasetError(f"no *_SK.mat label files in {labels}")
        R = Rotation.from_rotvec(STB_SK_ROT_VEC).as_matrix()
        self.items = []
        for f in files:
            if not f.is_file():
                raise DatasetError(f"{f} not found")
            try:
                para = np.asarray(scipy.io.loadmat(str(f))["handPara"], dtype=np.float64)
            except Exception as exc:
                raise DatasetError(f"{f} is not a readable STB label file (handPara): {type(exc).__name__}: {exc}") from None
            if para.ndim != 3 or para.shape[:2] != (3, 21):
                raise DatasetError(f"{f}: handPara must have shape (3, 21, N), got {para.shape}")
            P_depth = para.transpose(2, 1, 0)                        # (N, 21, 3)
            # row vectors: colour = (depth - T) R, the convention of the published extrinsics
            P = ((P_depth - STB_SK_TRANS_MM) @ R)[:, list(STB_TO_OURS)]
            P[:, 0] = 2.0 * P[:, 0] - P[:, kp.MIDDLE_MCP]
            seq = f.name[: -len("_SK.mat")]
            self.items += [(seq, i, P[i]) for i in range(len(P))]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        seq, j, P = self.items[i]
        K = STB_SK_COLOR_K
        return {"image": _read_image(self.root / seq / f"SK_color_{j}.png"), "K": K.copy(),
                "joints_3d_mm": P.copy(), "joints_2d_px": _project(P, K),
                "visible": np.ones(kp.NUM_KEYPOINTS, bool), "is_left": True}

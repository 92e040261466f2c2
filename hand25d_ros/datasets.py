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

"""Where intrinsics come from when there is no CameraInfo: a calibration file or a guess."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ._checks import check_camera_intrinsics, check_distortion, check_intrinsics


@dataclass
class Calibration:
    """Camera intrinsics as CameraInfo carries them."""
    K: np.ndarray
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))
    distortion_model: str = "plumb_bob"
    width: int = 0
    height: int = 0
    source: str = ""


def upright_intrinsics(K, width: int, height: int, orientation: int) -> np.ndarray:
    """The camera matrix of a ``width`` x ``height`` sensor image shown upright by its EXIF
    ``orientation`` (1, 3: turned 180, 6: 90 clockwise, 8: 90 anticlockwise), the camera
    turned about its optical axis with it: the 3D is then in the upright image's frame.
    A mirrored orientation (2, 4, 5, 7) has no camera matrix: ValueError; nor has a skewed K
    turned by 90 degrees (its skew would fall below the diagonal).

    Returns:
        (3, 3) float64.
    """
    K = check_intrinsics(K)
    fx, fy, cx, cy, skew = K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1]
    table = {1: (fx, fy, cx, cy), 3: (fx, fy, width - 1 - cx, height - 1 - cy),
             6: (fy, fx, height - 1 - cy, cx), 8: (fy, fx, cy, width - 1 - cx)}
    if orientation not in table:
        raise ValueError(f"EXIF orientation {orientation} mirrors the photo, which no camera matrix describes")
    if skew and orientation in (6, 8):   # it was dropped, moving every point by up to skew px
        raise ValueError(f"a camera matrix with skew ({skew:g}) turned by EXIF orientation {orientation} "
                         "(90 degrees) has none: rotate the photo's pixels or give a calibration without skew")
    fx2, fy2, cx2, cy2 = table[orientation]
    # a half turn keeps the skew as it is (both axes reversed)
    return np.array([[fx2, skew if orientation in (1, 3) else 0.0, cx2], [0.0, fy2, cy2], [0.0, 0.0, 1.0]])


def K_from_fov(width: int, height: int, hfov_deg: float = 60.0) -> np.ndarray:
    """Pinhole K with square pixels and the principal point at the image centre.

    ``fx = (W / 2) / tan(hfov / 2)``.
    """
    if not (0 < hfov_deg < 180):
        raise ValueError(f"horizontal field of view must be in (0, 180) degrees, got {hfov_deg}")
    f = (width / 2.0) / np.tan(np.deg2rad(hfov_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def load_camera_yaml(path) -> Calibration:
    """Read a camera_info_manager / camera_calibration YAML file.

    Expected keys: ``image_width``, ``image_height``, ``camera_matrix`` {rows, cols, data},
    ``distortion_model``, ``distortion_coefficients`` {data}; ``projection_matrix``
    is not used (the raw K and D are, and keypoints are undistorted before lifting).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
        K = np.asarray(data["camera_matrix"]["data"], dtype=np.float64).reshape(3, 3)
        D = np.asarray((data.get("distortion_coefficients") or {}).get("data", []), dtype=np.float64)
    except Exception as exc:
        raise ValueError(f"{path} is not a camera calibration YAML "
                         f"(camera_matrix.data with 9 numbers): {type(exc).__name__}: {exc}") from None
    try:
        width, height = int(data.get("image_width") or 0), int(data.get("image_height") or 0)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: image_width and image_height must be whole numbers") from None
    model = data.get("distortion_model") or "plumb_bob"
    if width > 0 and height > 0:
        check_camera_intrinsics(K, width, height, f"camera_matrix in {path}")
    else:
        check_intrinsics(K, f"camera_matrix in {path}")
    D = check_distortion(D, model, f"distortion_coefficients in {path}")
    return Calibration(K=K, D=D, distortion_model=model, width=width, height=height, source=str(path))

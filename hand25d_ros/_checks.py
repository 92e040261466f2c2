"""Input validation at the public boundary: one helper per kind of input, each
raising an error that says what was expected and what came."""
from __future__ import annotations

import numpy as np


def check_array(x, name: str, shape: tuple, dtype_kind: str | None = None,
                finite: bool = True) -> np.ndarray:
    """Check ``x`` is an array of ``shape`` (None = any size; a leading Ellipsis =
    any batch dims) and return it as a numpy array."""
    try:
        a = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be array-like, got {type(x).__name__}: {exc}") from None
    want = tuple(shape)
    batch = want[:1] == (Ellipsis,)
    core = want[1:] if batch else want
    ok = a.ndim >= len(core) if batch else a.ndim == len(core)
    if ok:
        tail = a.shape[a.ndim - len(core):]
        ok = all(w is None or w == t for w, t in zip(core, tail))
    if not ok:
        parts = ["*" if w is Ellipsis else ("N" if w is None else str(w)) for w in want]
        pretty = "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
        raise ValueError(f"{name} must have shape {pretty}, got {a.shape}")
    if dtype_kind is not None and a.dtype.kind not in dtype_kind:
        raise TypeError(f"{name} must have a {'numeric' if 'f' in dtype_kind else dtype_kind} dtype, got {a.dtype}")
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {a.dtype}")
    if finite and a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return a


def check_intrinsics(K, name: str = "K") -> np.ndarray:
    """A 3x3 camera matrix: finite, last row (0, 0, 1), invertible. Returns float64."""
    K = check_array(K, name, (3, 3)).astype(np.float64)
    if not np.allclose(K[2], [0.0, 0.0, 1.0]):
        raise ValueError(f"{name} must have last row (0, 0, 1), got {K[2].tolist()}")
    det = np.linalg.det(K[:2, :2])
    if not abs(det) > 1e-9:
        raise ValueError(f"{name} is singular (focal lengths {K[0, 0]}, {K[1, 1]}): "
                         "a camera matrix needs non-zero focal lengths")
    return K


def check_image_rgb(image, name: str = "image_rgb") -> np.ndarray:
    """An H x W x 3 uint8 RGB image with H, W > 0."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (H, W, 3) uint8, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {image.shape}")
    if image.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8 RGB, got dtype {image.dtype}")
    return image


def check_box(box) -> tuple[float, float, float, float]:
    """An (x, y, w, h) box with finite values and w, h > 0."""
    b = check_array(box, "roi", (4,)).astype(np.float64)
    if not (b[2] > 0 and b[3] > 0):
        raise ValueError(f"roi (x, y, w, h) needs positive width and height, got {b.tolist()}")
    return tuple(float(v) for v in b)


def check_positive(value, name: str) -> float:
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return v

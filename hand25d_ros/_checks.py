"""Input validation at the public boundary: one helper per kind of input, each
raising an error that says what was expected and what came."""
from __future__ import annotations

import argparse
import warnings

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
    """A 3x3 camera matrix: finite, last row (0, 0, 1), invertible, positive focal lengths
    (a negative one mirrors the lifted hand into the other one). Returns float64."""
    K = check_array(K, name, (3, 3)).astype(np.float64)
    if not np.allclose(K[2], [0.0, 0.0, 1.0]):
        raise ValueError(f"{name} must have last row (0, 0, 1), got {K[2].tolist()}")
    det = np.linalg.det(K[:2, :2])
    if not abs(det) > 1e-9:
        raise ValueError(f"{name} is singular (focal lengths {K[0, 0]}, {K[1, 1]}): "
                         "a camera matrix needs non-zero focal lengths")
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise ValueError(f"{name} has focal lengths fx={K[0, 0]:g}, fy={K[1, 1]:g}; both must be > 0 "
                         "(a negative one mirrors the image)")
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


def check_box_in_image(box, width: int, height: int, name: str = "roi") -> tuple[float, float, float, float]:
    """:func:`check_box`, and overlapping the ``width`` x ``height`` image: a box wholly
    outside crops nothing but the border, which the network reads as some hand."""
    x, y, w, h = check_box(box)
    # the image spans [-0.5, width - 0.5] (pixel centres at whole numbers, crop.py's convention)
    if x + w <= -0.5 or y + h <= -0.5 or x >= width - 0.5 or y >= height - 0.5:
        raise ValueError(f"{name} {[x, y, w, h]} lies wholly outside the {width} x {height} image")
    # the crop is the square on the longer side, resampled to the network's input: under a pixel
    # it crops one colour and read as a found hand at the box's corner; a hundred images wide
    # it ended in a ZeroDivisionError (1e300) or keypoints 500,000 px out (1e6)
    side_px, most_px = max(w, h), BOX_MAX_IMAGES * max(width, height)
    if not 1.0 <= side_px <= most_px:
        raise ValueError(f"{name} {[x, y, w, h]}: its longer side must be 1 to {most_px:g} px "
                         f"({BOX_MAX_IMAGES} times the {width} x {height} image's), got {side_px:g}")
    return x, y, w, h


# how many times an image's longer side a box may span (a hand in it could not be read far sooner)
BOX_MAX_IMAGES = 100


def is_real_number(value) -> bool:
    """A Python or numpy int or float, and not a bool (which float() would take for 1 or 0)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_positive(value, name: str) -> float:
    """A positive finite number."""
    if not is_real_number(value):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return v


def check_count(value, name: str, low: int = 1) -> int:
    """A whole number >= ``low`` (not a bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a whole number, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


# OpenCV's point undistortion takes these numbers of coefficients; CameraInfo's plumb_bob
# has 5 and rational_polynomial 8, and an empty D means no distortion.
DISTORTION_SIZES = {"plumb_bob": (0, 4, 5, 8, 12, 14), "rational_polynomial": (0, 4, 5, 8, 12, 14),
                    "equidistant": (0, 4)}


def check_distortion(D, distortion_model: str, name: str = "D") -> np.ndarray:
    """Distortion coefficients for ``distortion_model`` (a CameraInfo string): a supported
    model, finite values, a number of them the model has; an empty model name is
    plumb_bob, as the node reads CameraInfo (uncalibrated drivers publish "" with an empty D).
    Returns (N,) float64."""
    if distortion_model == "":
        distortion_model = "plumb_bob"
    if distortion_model not in DISTORTION_SIZES:
        raise ValueError(f"unsupported distortion model {distortion_model!r} for {name}; use "
                         f"{', '.join(DISTORTION_SIZES)} (or the rectified image)")
    try:
        D = np.asarray(D, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be distortion coefficients (numbers), got {D!r}") from None
    D = check_array(D, name, (None,))
    if D.size not in DISTORTION_SIZES[distortion_model]:
        sizes = "/".join(str(n) for n in DISTORTION_SIZES[distortion_model] if n)
        raise ValueError(f"{distortion_model} distortion needs {sizes} coefficients, {name} has {D.size}")
    return D


# A camera's field of view lies well inside these; K outside them is a unit or calibration
# mistake (normalised or metric focal lengths, a principal point of another image).
MIN_FOV_DEG, MAX_FOV_DEG = 0.5, 170.0


def check_camera_intrinsics(K, width: int, height: int, name: str = "K") -> np.ndarray:
    """A camera matrix for whole ``width`` x ``height`` camera images: :func:`check_intrinsics`,
    and plausible for such a camera: fields of view between ``MIN_FOV_DEG`` and
    ``MAX_FOV_DEG`` each way, the principal point within the image widened by twice its size
    each side (a cropped camera image, the bundled sample frames among them, has it well
    off-centre). A hand crop's K can fail this; only a camera's own K has to pass.

    Returns:
        (3, 3) float64.
    """
    K = check_intrinsics(K, name)
    problem = _field_of_view_problem(K, width, height, name)
    if problem:
        raise ValueError(problem)
    for axis, c, size in (("x", K[0, 2], width), ("y", K[1, 2], height)):
        if not -2.0 * size <= c <= 3.0 * size:
            raise ValueError(f"{name} has its principal point c{axis}={c:g} px, outside {width} x {height} images "
                             "and their surroundings (are the intrinsics of another image size?)")
    if abs(K[0, 1]) > K[0, 0]:
        raise ValueError(f"{name} has a skew of {K[0, 1]:g}, more than fx={K[0, 0]:g}: not a camera matrix")
    return K


def _field_of_view_problem(K: np.ndarray, width: int, height: int, name: str) -> str | None:
    """Why ``K``'s focal lengths give ``width`` x ``height`` images a field of view outside
    ``MIN_FOV_DEG``-``MAX_FOV_DEG``, or None."""
    for axis, f, size in (("x", K[0, 0], width), ("y", K[1, 1], height)):
        lo, hi = (size / 2.0 / np.tan(np.deg2rad(fov) / 2.0) for fov in (MAX_FOV_DEG, MIN_FOV_DEG))
        if not lo <= f <= hi:
            return (f"{name} has f{axis}={f:g} px: for {width} x {height} images that is a field of view "
                    f"outside {MIN_FOV_DEG:g}-{MAX_FOV_DEG:g} degrees (expected {lo:.0f}-{hi:.0f} px; "
                    "are the intrinsics normalised, in metres, or of another image size?)")
    return None


def warn_implausible_focal_length(K: np.ndarray, width: int, height: int, name: str = "K") -> None:
    """Warn when ``K`` (checked) gives ``width`` x ``height`` images a field of view no camera
    or crop of one has: normalised or metric intrinsics, or an identity passed by a caller who
    wants 2D only, give 2D keypoints as usual but 3D that is wrong or not valid, and the warning
    (once per message, the warnings module's default) says why where ``valid`` alone would not.
    The principal point is not judged: a hand crop's lies far outside it, legitimately."""
    problem = _field_of_view_problem(K, width, height, name)
    if problem:
        warnings.warn(f"{problem}; 3D poses lifted with it will be wrong or not valid (2D keypoints are unaffected)",
                      RuntimeWarning, stacklevel=3)


# Wrist -> index-MCP lengths of real hands, a child's to a large adult's (the default is 0.087);
# the node's hand_size_m parameter takes only these.
MIN_HAND_SIZE_M, MAX_HAND_SIZE_M = 0.03, 0.2


def warn_implausible_hand_size(hand_size_m: float) -> None:
    """Warn when ``hand_size_m`` (checked positive) is no hand's: a size in millimetres or
    centimetres lifts every hand beyond the distance a pose is trusted at, so ``valid`` is
    False on every frame with nothing saying why, and one 10x too small puts valid hands 10x
    too near. Once per value (the warnings module's default)."""
    if not MIN_HAND_SIZE_M <= hand_size_m <= MAX_HAND_SIZE_M:
        warnings.warn(f"hand_size_m={hand_size_m:g} is outside {MIN_HAND_SIZE_M:g}-{MAX_HAND_SIZE_M:g} m, the "
                      "wrist to index-MCP length of real hands (is it in millimetres or centimetres?): the 3D "
                      "scales with it, and too far a hand is not valid", RuntimeWarning, stacklevel=3)


# What the synthetic renderer imports (the `train` extra): the hand mesh (pygltflib), headless
# OpenGL (moderngl) and the photo backgrounds (scikit-image's, which without it were left out
# without a word)
RENDER_MODULES = ("moderngl", "pygltflib", "skimage")


def require_extra(extra: str, *modules: str) -> None:
    """Raise ModuleNotFoundError naming the pip extra that installs ``modules`` when one is
    missing, before a command starts work that would fail deep inside on its import."""
    import importlib.util
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ModuleNotFoundError(f"this needs {', '.join(missing)}, not installed: "
                                  f"pip install 'hand25d_ros[{extra}]'")


def require_render_extra(command: str, what: str = "") -> None:
    """:func:`require_extra` of the renderer's modules (:data:`RENDER_MODULES`) for a command
    line: SystemExit ``"<command>: <what><which and how to install>"`` when one is missing."""
    try:
        require_extra("train", *RENDER_MODULES)
    except ModuleNotFoundError as exc:
        raise SystemExit(f"{command}: {what}{exc}") from None


def argparse_number(kind, lo=None, hi=None, lo_open=False, hi_open=False, what=""):
    """An argparse type: a finite ``kind`` within [lo, hi] (an end excluded with ``*_open``)."""
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if (not np.isfinite(v) or (lo is not None and (v <= lo if lo_open else v < lo))
                or (hi is not None and (v >= hi if hi_open else v > hi))):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return v
    return parse


# the argument types the commands share
POSITIVE_NUMBER = argparse_number(float, 0.0, lo_open=True, what="a positive number")
WHOLE_AT_LEAST_1 = argparse_number(int, 1, what="a whole number >= 1")
WHOLE_NON_NEGATIVE = argparse_number(int, 0, what="a whole number >= 0")

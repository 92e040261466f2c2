"""Hand datasets a user may have on disk, read in their published layouts and converted
to this package's conventions.

Every loader is a torch ``Dataset`` with a ``name``. Annotations are read and validated
when the dataset is built; images are read lazily in ``__getitem__``. An item is a dict
of numpy values:

==================  =========================================================================
``image``           (H, W, 3) uint8 RGB
``K``               (3, 3) float64 intrinsics of that image, pixels
``joints_3d_mm``    (21, 3) float64 in the camera optical frame (x right, y down, z forward),
                    mm, our keypoint order (:mod:`hand25d_ros.keypoints`); None if 2D-only
``joints_2d_px``    (21, 2) float64; for the public datasets the projection of ``joints_3d_mm``
                    with ``K`` (``u = fx X / Z + cx``), so the two agree; an annotated folder's
                    own ``joints_2d_px`` as given (its projection where it has none)
``visible``         (21,) bool, the dataset's visibility flag (all True where it has none)
``is_left``         bool, or None when unknown
``labelled``        (21,) bool, False for a keypoint the annotation leaves out (an annotated
                    folder's ``null``); its rows of ``joints_2d_px`` / ``joints_3d_mm`` are NaN,
                    so that code which ignores the flag fails instead of using a made-up point.
                    All True for the public datasets
``image_path``      str
``annotation_index`` int, the row of the annotation file behind the item
==================  =========================================================================

``annotation(i)`` returns the same dict without reading the image. Anything wrong with the
files (missing folder or file, corrupt JSON/pickle/.mat, unreadable image, arrays of the
wrong shape or with NaN, a joint behind the camera; NaN stands only for an unlabelled keypoint) raises :class:`DatasetError` naming the
file and the problem.

Source conventions converted here (``X_TO_OURS[k]`` is the source index of our keypoint k):

- FreiHAND v2: metres, already our order, right hands.
- RHD: metres; 42 keypoints, left hand 0-20, right hand 21-41; per hand wrist, then thumb,
  index, middle, ring, pinky, each finger *tip first* (tip, DIP, PIP, MCP).
- STB: mm; palm centre, then little, ring, middle, index, thumb, each finger MCP -> tip;
  left hands; labels in the depth camera's frame (see :class:`STBDataset`).
"""
from __future__ import annotations

import json
import numbers
import operator
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from .. import keypoints as kp
from ..image_files import decode_image, read_image_file

NK = kp.NUM_KEYPOINTS

__all__ = [
    "DatasetError", "HandDataset", "FreiHANDDataset", "RHDDataset", "STBDataset",
    "AnnotatedFolderDataset", "MixedDataset", "read_image_rgb", "project_px",
    "RHD_TO_OURS", "STB_TO_OURS", "STB_SK_COLOR_K", "STB_SK_ROTVEC", "STB_SK_TRANS_MM",
    "STB_TRAIN_SEQUENCES", "STB_TEST_SEQUENCES",
]


class DatasetError(ValueError):
    """A dataset folder or file that is missing, unreadable or not in the expected layout."""


# ============================================================================ keypoint orders

# RHD, per hand: 0 wrist, then thumb, index, middle, ring, pinky, each tip -> MCP.
# ours[1 + 4 f + j] (f: thumb..pinky, j: 0 base .. 3 tip) = rhd[1 + 4 f + (3 - j)]
RHD_TO_OURS: tuple[int, ...] = (0,) + tuple(1 + 4 * f + (3 - j) for f in range(5) for j in range(4))

# STB: 0 palm centre, then little, ring, middle, index, thumb, each MCP -> tip.
# ours[1 + 4 f + j] = stb[1 + 4 (4 - f) + j]; ours[0] <- the palm centre, moved to the wrist.
# (Finger direction as in Zimmermann & Brox's own STB reader, hand3d
# data/BinaryDbReaderSTB.py, whose convert_kp puts STB 20 (thumb tip) .. 17 (thumb MCP)
# into its tip-first thumb slots, and in the re-implementations of Ge et al. 2019,
# hand-graph-cnn, whose names are loc_bn_<finger>_L_01 (MCP) .. _04 (tip), and of bihand;
# not tip first.)
STB_TO_OURS: tuple[int, ...] = (0,) + tuple(1 + 4 * (4 - f) + j for f in range(5) for j in range(4))


# ============================================================================ file helpers

def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what} folder not found: {path}")
    return path


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}")
    return path


def _load_json(path: Path, what: str):
    _require_file(path, what)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: no code from the file runs."""

    ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"), ("collections", "OrderedDict"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only arrays and "
                                         "plain containers are expected)")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module[len("numpy.core."):]   # numpy >= 2 moved it
        return super().find_class(module, name)


def _load_pickle(path: Path, what: str):
    _require_file(path, what)
    try:
        with open(path, "rb") as f:
            # latin1: RHD's pickles come from Python 2 and hold numpy arrays
            return _ArrayUnpickler(f, encoding="latin1").load()
    except Exception as exc:  # pickle raises many types on corrupt input
        raise DatasetError(f"{path} is not a readable pickle: {type(exc).__name__}: {exc}") from None


def _load_mat(path: Path, key: str, what: str) -> np.ndarray:
    import scipy.io
    _require_file(path, what)
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises ValueError, MatReadError, TypeError, ...
        raise DatasetError(f"{path} is not a readable .mat file: {type(exc).__name__}: {exc}") from None
    if key not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetError(f"{path} has no {key!r} array (found: {found})")
    return mat[key]


def _array(value, shape: tuple, path: Path, what: str) -> np.ndarray:
    """``value`` as a finite float64 array of ``shape`` (None = any size)."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: {what} is not a numeric array: {exc}") from None
    if a.ndim != len(shape) or any(w is not None and w != s for w, s in zip(shape, a.shape)):
        pretty = "(" + ", ".join("N" if w is None else str(w) for w in shape) + ")"
        raise DatasetError(f"{path}: {what} must have shape {pretty}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise DatasetError(f"{path}: {what} contains NaN or inf")
    return a


def _keypoint_rows(value, dim: int, path, what: str) -> tuple[np.ndarray, np.ndarray]:
    """An annotated folder's 21 keypoints, each a row of ``dim`` numbers or null (not
    labelled): ((21, dim) float64 with NaN rows where null, (21,) bool labelled)."""
    hint = "; a keypoint that is not labelled is written null (the whole row)"
    if isinstance(value, list):
        for k, row in enumerate(value):
            cells = row if isinstance(row, list) else [row]
            bad = next((c for c in cells if isinstance(c, (str, bool))), None)
            if bad is not None:
                # numpy would read "NaN" or "1.5" as a number, and true as 1
                raise DatasetError(f"{path}: {what} keypoint {k} holds {bad!r}, not a number{hint}")
    if not (isinstance(value, list) and any(row is None for row in value)):
        try:
            return _array(value, (NK, dim), path, what), np.ones(NK, bool)
        except DatasetError as exc:
            raise DatasetError(f"{exc}{hint}" if "NaN" in str(exc) else str(exc)) from None
    if len(value) != NK:
        raise DatasetError(f"{path}: {what} must have {NK} keypoints (rows), got {len(value)}")
    for k, row in enumerate(value):
        if row is not None and (not isinstance(row, list) or len(row) != dim):
            raise DatasetError(f"{path}: {what} keypoint {k} must be {dim} numbers or null, got {row!r}")
    labelled = np.array([row is not None for row in value])
    if not labelled.any():
        raise DatasetError(f"{path}: every keypoint is null (not labelled); leave the sample out")
    try:
        rows = _array([row for row in value if row is not None], (None, dim), path, what)
    except DatasetError as exc:
        raise DatasetError(f"{exc}{hint}" if "NaN" in str(exc) else str(exc)) from None
    out = np.full((NK, dim), np.nan)
    out[labelled] = rows
    return out, labelled


def _check_intrinsics(Ks: np.ndarray, path: Path, labels) -> None:
    """(N, 3, 3) camera matrices: last row (0, 0, 1) and positive focal lengths (a negative
    one mirrors the labels into the other hand's)."""
    bad_row = ~np.all(np.isclose(Ks[:, 2], [0.0, 0.0, 1.0]), axis=1)
    bad_f = ~((Ks[:, 0, 0] > 0) & (Ks[:, 1, 1] > 0) & (np.abs(np.linalg.det(Ks[:, :2, :2])) > 1e-9))
    bad = np.flatnonzero(bad_row | bad_f)
    if bad.size:
        i = bad[0]
        raise DatasetError(f"{path}: {labels(i)}: K is not a camera matrix "
                           f"(needs last row (0, 0, 1) and positive focal lengths): {Ks[i].tolist()}")


def _check_in_front(P_mm: np.ndarray, path: Path, labels) -> None:
    """(N, 21, 3) joints must have Z > 0 to project."""
    bad = np.flatnonzero(~np.all(P_mm[..., 2] > 0, axis=-1))
    if bad.size:
        i = bad[0]
        raise DatasetError(f"{path}: {labels(i)}: joints at or behind the camera plane "
                           f"(min Z {P_mm[i, :, 2].min():.1f} mm)")


def read_image_rgb(path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, or raise :class:`DatasetError`."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"cannot read image {path}: file not found")
    data = np.fromfile(path, dtype=np.uint8)
    if data[:2].tobytes() == b"\xff\xd8" and b"\xff\xd9" not in data[-1024:].tobytes():
        # libjpeg decodes a cut-off file (a partial download) grey below the cut and only
        # says so on stderr: no end-of-image marker is the sure sign
        raise DatasetError(f"cannot read image {path}: truncated JPEG (no end-of-image marker)")
    try:
        bgr = decode_image(data)
    except ValueError as exc:
        raise DatasetError(f"cannot read image {path}: corrupt or not an image ({exc})") from None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def project_px(P, K) -> np.ndarray:
    """Pinhole projection.

    Args:
        P: (*, 3) points in the camera frame, Z > 0.
        K: (3, 3) intrinsics.

    Returns:
        (*, 2) pixels.
    """
    # u = fx X / Z + s Y / Z + cx,  v = fy Y / Z + cy
    h = np.asarray(P, dtype=np.float64) @ np.asarray(K, dtype=np.float64).T
    return h[..., :2] / h[..., 2:3]


def _item(K, P_mm, visible, is_left, image_path, index, uv=None, labelled=None) -> dict:
    return {"K": np.array(K, dtype=np.float64),
            "joints_3d_mm": None if P_mm is None else np.array(P_mm, dtype=np.float64),
            "joints_2d_px": project_px(P_mm, K) if uv is None else np.array(uv, dtype=np.float64),
            "visible": np.array(visible, dtype=bool),
            "is_left": None if is_left is None else bool(is_left),
            "labelled": np.ones(NK, bool) if labelled is None else np.array(labelled, dtype=bool),
            "image_path": str(image_path), "annotation_index": int(index)}


# ============================================================================ base class

class HandDataset(Dataset):
    """Base of the loaders: subclasses define ``__len__`` and ``annotation(i)``."""

    name = "hand"

    def __len__(self) -> int:
        raise NotImplementedError

    def annotation(self, i: int) -> dict:
        """Item ``i`` without its image (see the module docstring for the keys)."""
        raise NotImplementedError

    def _index(self, i) -> int:
        i = operator.index(i)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"{self.name}: index {i} out of range for {n} items")
        return i % n

    def __getitem__(self, i) -> dict:
        item = self.annotation(i)
        item["image"] = read_image_rgb(item["image_path"])
        return item

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, items={len(self)})"


# ============================================================================ FreiHAND

class FreiHANDDataset(HandDataset):
    """FreiHAND v2 (Zimmermann et al., ICCV 2019) in its published layout::

        root/training_xyz.json     N x 21 x 3, metres, camera frame, our keypoint order
        root/training_K.json       N x 3 x 3
        root/training/rgb/%08d.jpg 4 x N images: image i + v N (v = 0..3: green screen and
                                   three re-composited backgrounds) shows annotation i
        root/evaluation_xyz.json, evaluation_K.json, evaluation/rgb/%08d.jpg (one version)

    Right hands only (``is_left`` False), every keypoint ``visible`` (no flags published).

    Args:
        root: the FreiHAND folder.
        split: 'training' or 'evaluation'.
        versions: which of the 4 training image versions to use (default all; the
            evaluation split has only version 0). Items run over versions, then
            annotations: item ``b * N + i`` is annotation i in ``versions[b]``.
    """

    name = "freihand"
    NUM_VERSIONS = 4

    def __init__(self, root, split: str = "training", versions=None):
        self.root = _require_dir(Path(root), "FreiHAND")
        if split not in ("training", "evaluation"):
            raise DatasetError(f"FreiHAND split must be 'training' or 'evaluation', got {split!r}")
        self.split = split
        xyz_path, k_path = self.root / f"{split}_xyz.json", self.root / f"{split}_K.json"
        # the evaluation annotations were published after the training set, as their own archive
        xyz = _load_json(xyz_path, f"FreiHAND {split} keypoints"
                         + (" (their own download, FreiHAND_pub_v2_eval)" if split == "evaluation" else ""))
        Ks = _load_json(k_path, f"FreiHAND {split} intrinsics")
        self.joints_mm = _array(xyz, (None, NK, 3), xyz_path, "keypoints") * 1000.0
        self.K = _array(Ks, (None, 3, 3), k_path, "intrinsics")
        n = len(self.joints_mm)
        if len(self.K) != n:
            raise DatasetError(f"{xyz_path} has {n} poses but {k_path} has {len(self.K)} intrinsics")
        if n == 0:
            raise DatasetError(f"{xyz_path} holds no poses")
        _check_intrinsics(self.K, k_path, lambda i: f"sample {i}")
        _check_in_front(self.joints_mm, xyz_path, lambda i: f"sample {i}")
        self.n = n

        if versions is None:
            versions = tuple(range(self.NUM_VERSIONS)) if split == "training" else (0,)
        try:
            versions = tuple(int(v) for v in versions)
        except (TypeError, ValueError):
            raise DatasetError(f"FreiHAND versions must be whole numbers, got {versions!r}") from None
        allowed = range(self.NUM_VERSIONS) if split == "training" else range(1)
        if not versions or len(set(versions)) != len(versions) or any(v not in allowed for v in versions):
            raise DatasetError(f"FreiHAND {split} versions must be distinct values in "
                               f"{list(allowed)}, got {versions}")
        self.versions = versions
        self.rgb = _require_dir(self.root / split / "rgb", f"FreiHAND {split} images")
        for v in versions:   # one stat per version: a partial download fails here, not mid-epoch
            last = self.rgb / f"{(v + 1) * n - 1:08d}.jpg"
            if not last.is_file():
                raise DatasetError(
                    f"{self.rgb}: version {v} needs images {v * n:08d}.jpg..{(v + 1) * n - 1:08d}.jpg "
                    f"for the {n} annotations, but {last.name} is missing; FreiHAND v2 {split} has "
                    f"{self.NUM_VERSIONS if split == 'training' else 1} x {n} images "
                    "(pass versions=(0,) for the green-screen images alone)")

    def __len__(self) -> int:
        return self.n * len(self.versions)

    def annotation(self, i: int) -> dict:
        b, j = divmod(self._index(i), self.n)
        image = self.rgb / f"{j + self.versions[b] * self.n:08d}.jpg"
        return _item(self.K[j], self.joints_mm[j], np.ones(NK, bool), False, image, j)


# ============================================================================ RHD

class RHDDataset(HandDataset):
    """Rendered Hand Pose dataset (Zimmermann & Brox, ICCV 2017) in its published layout::

        root/{training,evaluation}/anno_{split}.pickle  sample id -> {'xyz': (42, 3) m,
                                                        'uv_vis': (42, 3) u, v, visible 0/1,
                                                        'K': (3, 3)}
        root/{split}/color/%05d.png, mask/%05d.png      (mask: 2-17 left hand, 18-33 right)

    Keypoints 0-20 are the left hand, 21-41 the right; each is reordered to ours
    (``RHD_TO_OURS``) and flagged with ``is_left``. The pickle is read with an unpickler
    that accepts numpy arrays and plain containers only.

    Args:
        root: the RHD folder (RHD_published_v2).
        split: 'training' or 'evaluation'.
        hand: which hand of each frame becomes an item:
            'visible' (default): the hand with more visible keypoints (left on a tie);
            'mask': the hand with more mask pixels, decided when the item is read, as in
            Zimmermann & Brox's own pipeline (needs the mask folder);
            'both': every hand that qualifies, one item each;
            'left' / 'right': that hand only.
        min_visible: a hand with fewer visible keypoints does not qualify; with 'mask',
            a frame is kept when at least one hand qualifies.
    """

    name = "rhd"
    HANDS = ("visible", "mask", "both", "left", "right")

    def __init__(self, root, split: str = "training", hand: str = "visible", min_visible: int = 1):
        self.root = _require_dir(Path(root), "RHD")
        if split not in ("training", "evaluation"):
            raise DatasetError(f"RHD split must be 'training' or 'evaluation', got {split!r}")
        if hand not in self.HANDS:
            raise DatasetError(f"RHD hand must be one of {self.HANDS}, got {hand!r}")
        if isinstance(min_visible, bool) or not isinstance(min_visible, numbers.Integral) \
                or not 0 <= min_visible <= NK:
            raise DatasetError(f"RHD min_visible must be a whole number of keypoints in 0..{NK}, got {min_visible!r}")
        self.split, self.hand = split, hand
        base = _require_dir(self.root / split, f"RHD {split}")
        path = base / f"anno_{split}.pickle"
        anno = _load_pickle(path, f"RHD annotation file (layout <root>/{split}/anno_{split}.pickle)")
        if not isinstance(anno, dict):
            raise DatasetError(f"{path}: expected a dict sample id -> annotation, got {type(anno).__name__}")
        self.color = _require_dir(base / "color", f"RHD {split} colour images")
        self.mask = _require_dir(base / "mask", f"RHD {split} masks") if hand == "mask" else base / "mask"

        ids, xyz, vis, Ks = [], [], [], []
        for sid, a in anno.items():
            try:
                sid_int = operator.index(sid)
            except TypeError:
                raise DatasetError(f"{path}: sample ids must be integers, got {sid!r}") from None
            if not isinstance(a, dict) or not {"xyz", "uv_vis", "K"} <= set(a):
                raise DatasetError(f"{path}: sample {sid} must be a dict with 'xyz', 'uv_vis' and 'K'")
            ids.append(sid_int)
            xyz.append(_array(a["xyz"], (42, 3), path, f"sample {sid} 'xyz'"))
            vis.append(_array(a["uv_vis"], (42, 3), path, f"sample {sid} 'uv_vis'")[:, 2] > 0.5)
            Ks.append(_array(a["K"], (3, 3), path, f"sample {sid} 'K'"))
        if not ids:
            raise DatasetError(f"{path} holds no samples")
        order = np.argsort(ids)
        self.ids = np.asarray(ids)[order]
        self.xyz_mm = np.stack(xyz)[order] * 1000.0
        self.vis = np.stack(vis)[order]
        self.K = np.stack(Ks)[order]
        _check_intrinsics(self.K, path, lambda i: f"sample {self.ids[i]}")

        n_vis = np.stack([self.vis[:, :NK].sum(1), self.vis[:, NK:].sum(1)], axis=1)  # (N, 2)
        ok = n_vis >= int(min_visible)
        rows, sides = [], []                       # side: 0 left, 1 right, -1 decided by the mask
        for r in range(len(self.ids)):
            if hand == "visible":
                s = 0 if n_vis[r, 0] >= n_vis[r, 1] else 1
                cand = [s] if ok[r, s] else []
            elif hand == "both":
                cand = [s for s in (0, 1) if ok[r, s]]
            elif hand == "mask":
                cand = [-1] if ok[r].any() else []
            else:
                s = 0 if hand == "left" else 1
                cand = [s] if ok[r, s] else []
            rows += [r] * len(cand)
            sides += cand
        if not rows:
            raise DatasetError(f"{path}: no frame has a qualifying hand (hand={hand!r}, "
                               f"min_visible={min_visible})")
        self.rows, self.sides = np.asarray(rows), np.asarray(sides, dtype=np.int8)
        # one listing per folder: a partial extraction fails here, not at an item mid-epoch
        for folder, what in [(self.color, "images")] + ([(self.mask, "masks")] if hand == "mask" else []):
            present = {e.name for e in os.scandir(folder)}
            missing = [int(self.ids[r]) for r in np.unique(self.rows) if f"{self.ids[r]:05d}.png" not in present]
            if missing:
                raise DatasetError(f"{folder}: {len(missing)} of the {split} {what} that {path.name} annotates "
                                   f"are missing, the first {missing[0]:05d}.png")
        # joints behind the camera cannot be projected: check the hands that can be items
        for s in (0, 1):
            sel = (self.sides == s) | (self.sides == -1)
            P = self.xyz_mm[self.rows[sel], NK * s:NK * (s + 1)]
            _check_in_front(P, path, lambda i, s=s, sel=sel: f"sample {self.ids[self.rows[sel][i]]} "
                                                              f"({'left' if s == 0 else 'right'} hand)")

    def __len__(self) -> int:
        return len(self.rows)

    def _side_from_mask(self, sid: int) -> int:
        path = self.mask / f"{sid:05d}.png"
        if not path.is_file():
            raise DatasetError(f"cannot read mask {path}: file not found")
        try:
            m = read_image_file(path, cv2.IMREAD_UNCHANGED)
        except ValueError as exc:
            raise DatasetError(f"cannot read mask {path}: corrupt or not an image ({exc})") from None
        if m.ndim == 3:
            m = m[..., 0]
        left = np.count_nonzero((m >= 2) & (m <= 17))
        right = np.count_nonzero((m >= 18) & (m <= 33))
        return 0 if left > right else 1          # Zimmermann & Brox: right unless left has more

    def annotation(self, i: int) -> dict:
        """Item ``i`` without its image; with ``hand='mask'`` this reads the mask."""
        k = self._index(i)
        r, side = int(self.rows[k]), int(self.sides[k])
        sid = int(self.ids[r])
        if side < 0:
            side = self._side_from_mask(sid)
        sl = slice(NK * side, NK * (side + 1))
        idx = list(RHD_TO_OURS)
        P = self.xyz_mm[r, sl][idx]
        return _item(self.K[r], P, self.vis[r, sl][idx], side == 0, self.color / f"{sid:05d}.png", sid)


# ============================================================================ STB

# SK (Intel RealSense F200) colour camera, from the STB readme
STB_SK_COLOR_K = np.array([[607.92271, 0.0, 314.78337],
                           [0.0, 607.88192, 236.42484],
                           [0.0, 0.0, 1.0]])
# readme: "rotation and translation vector can transform the coordinates relative to color
# camera to those relative to depth camera": P_depth = R P_color + T, R = Rodrigues(ROTVEC)
STB_SK_ROTVEC = np.array([0.00531, -0.01196, 0.00301])
STB_SK_TRANS_MM = np.array([-24.0381, -0.4563, -1.2326])
# the usual split (Zimmermann & Brox 2017 and after): B1 to test, B2-B6 to train
STB_TEST_SEQUENCES = ("B1Counting", "B1Random")
STB_TRAIN_SEQUENCES = tuple(f"B{b}{kind}" for b in range(2, 7) for kind in ("Counting", "Random"))


class STBDataset(HandDataset):
    """Stereo Hand Pose Tracking Benchmark (Zhang et al., ICIP 2017), SK colour images::

        root/labels/<seq>_SK.mat         'handPara' (3, 21, N), mm, depth camera frame
        root/<seq>/SK_color_%d.png       (or root/images/<seq>/SK_color_%d.png)

    Conversions, as in the public re-implementations (Ge et al. 2019 hand-graph-cnn,
    Yang et al. bihand):

    - depth -> colour camera: the readme's extrinsics map colour to depth,
      ``P_depth = R P_color + T``, so ``P_color = R^T (P_depth - T)``.
    - keypoint order: ``STB_TO_OURS``.
    - STB marks the palm centre, not the wrist. The wrist is extrapolated along the
      middle finger's metacarpal: ``wrist = middle_MCP + palm_to_wrist * (palm - middle_MCP)``.
      The default 2.0 inverts the palm that Zimmermann & Brox's RHD reader makes from a
      wrist to match STB's (hand3d data/BinaryDbReader.py: palm = midpoint of wrist and
      middle MCP); bihand uses 2.2 from the middle MCP. Zimmermann & Brox's own STB reader
      (hand3d data/BinaryDbReaderSTB.py) and hand-graph-cnn extrapolate from the ring MCP
      instead, by 2.0 (``2 palm - ring_MCP``), a wrist the middle-to-ring MCP distance
      across the palm from this one, which ``palm_to_wrist`` cannot reproduce
      (``palm + 2 (palm - MCP)`` would be 3.0, which none of them uses). It is an
      approximation: STB wrists are not measured points, and the published conventions
      disagree by up to that knuckle spacing, which shifts every root-relative figure on STB.

    Hands are left hands (``is_left`` True); every keypoint ``visible``.

    Args:
        root: the STB folder.
        sequences: names such as 'B1Counting'; default: ``split``'s, or every *_SK.mat.
        split: 'train' (B2-B6) or 'test' (B1); None with ``sequences`` None means all.
        depth_to_color: apply the extrinsics above (the labels are in the depth frame).
        palm_to_wrist: the extrapolation factor above.
    """

    name = "stb"

    def __init__(self, root, sequences=None, split: str | None = None, depth_to_color: bool = True,
                 palm_to_wrist: float = 2.0):
        from scipy.spatial.transform import Rotation
        self.root = _require_dir(Path(root), "STB")
        labels = _require_dir(self.root / "labels", "STB labels")
        if sequences is not None and split is not None:
            raise DatasetError("give STB sequences or split, not both")
        if split is not None:
            table = {"train": STB_TRAIN_SEQUENCES, "test": STB_TEST_SEQUENCES}
            if split not in table:
                raise DatasetError(f"STB split must be 'train' or 'test', got {split!r}")
            sequences = table[split]
        if sequences is None:
            sequences = sorted(p.name[:-len("_SK.mat")] for p in labels.glob("*_SK.mat"))
            if not sequences:
                raise DatasetError(f"no <sequence>_SK.mat label files in {labels}")
        if isinstance(sequences, str):
            sequences = (sequences,)
        if not isinstance(sequences, (list, tuple)) or not all(isinstance(q, str) for q in sequences):
            raise DatasetError(f"STB sequences must be sequence names such as 'B1Counting', got {sequences!r}")
        if not isinstance(depth_to_color, bool):
            raise DatasetError(f"STB depth_to_color must be true or false, got {depth_to_color!r}")
        self.sequences = tuple(sequences)
        if not self.sequences:
            raise DatasetError("no STB sequences given (sequences=[]); None takes every *_SK.mat")
        if isinstance(palm_to_wrist, bool) or not isinstance(palm_to_wrist, numbers.Real) \
                or not (np.isfinite(palm_to_wrist) and palm_to_wrist > 0):
            raise DatasetError(f"STB palm_to_wrist must be a positive finite factor, got {palm_to_wrist}")
        R = Rotation.from_rotvec(STB_SK_ROTVEC).as_matrix()

        joints, self.image_dirs, entries = [], [], []
        for s, seq in enumerate(self.sequences):
            path = labels / f"{seq}_SK.mat"
            para = _array(_load_mat(path, "handPara", f"STB labels of {seq}"), (3, NK, None),
                          path, "handPara")
            if para.shape[2] == 0:
                raise DatasetError(f"{path}: handPara holds no frames")
            P = para.transpose(2, 1, 0)                        # (N, 21, 3), STB order, mm
            if depth_to_color:
                # P_color = R^T (P_depth - T); as row vectors: (P - T) @ R
                P = (P - STB_SK_TRANS_MM) @ R
            P = P[:, list(STB_TO_OURS)]
            palm, mid = P[:, 0].copy(), P[:, kp.MIDDLE_MCP]
            P[:, kp.WRIST] = mid + float(palm_to_wrist) * (palm - mid)
            _check_in_front(P, path, lambda i: f"frame {i}")
            candidates = (self.root / seq, self.root / "images" / seq)
            img_dir = next((c for c in candidates if c.is_dir()), None)
            if img_dir is None:
                raise DatasetError(f"STB images of {seq} not found: looked for {candidates[0]} "
                                   f"and {candidates[1]}")
            missing = [f for f in range(len(P)) if not (img_dir / f"SK_color_{f}.png").is_file()]
            if missing:   # found now, not at item N of an epoch
                raise DatasetError(f"{img_dir}: {len(P)} label frames in {path.name} but no SK_color_{missing[0]}.png "
                                   f"({len(missing)} of the images missing)")
            joints.append(P)
            self.image_dirs.append(img_dir)
            entries += [(s, f) for f in range(len(P))]
        self.joints_mm = np.concatenate(joints)
        self.entries = np.asarray(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def annotation(self, i: int) -> dict:
        k = self._index(i)
        s, f = (int(v) for v in self.entries[k])
        image = self.image_dirs[s] / f"SK_color_{f}.png"
        return _item(STB_SK_COLOR_K, self.joints_mm[k], np.ones(NK, bool), True, image, f)


# ============================================================================ own format

class AnnotatedFolderDataset(HandDataset):
    """A folder in this project's evaluation format (that of real_val_snap)::

        root/annotations.json  {"samples": [{"image": path relative to root,
                                             "K": 3x3, "joints_3d_mm": 21x3,
                                             "joints_2d_px": 21x2}, ...]}

    Keypoints in our order, 3D in the camera optical frame in mm. Optional per sample:
    ``joints_3d_mm`` null or absent for a 2D-only sample (then ``joints_2d_px`` is
    required), ``visible`` (21 bools), ``is_left`` (bool or null). With 3D and no
    ``joints_2d_px``, the 2D keypoints are its projection. Optional top-level keys
    (``keypoint_order``, ``image_size``) are kept as attributes.

    A keypoint that is not labelled (cut off by the image border, or hidden and not
    guessed by the annotator) is ``null`` in place of its row, in ``joints_2d_px`` and in
    ``joints_3d_mm`` alike; the item's ``labelled`` is False there and its rows are NaN.
    Training gives it no weight and evaluation does not score it (``visible`` is another
    thing: a hidden keypoint with a label still trains and counts). Refused: a row that is
    neither null nor ``dim`` numbers (a string such as ``"NaN"``, a NaN, a null coordinate),
    a keypoint null in one array only, a sample with every keypoint null, and a 3D sample
    whose wrist or index MCP is null: its depth is wrist-relative and normalised by that
    bone, so its 3D could neither train nor be scored; write ``joints_3d_mm: null`` to use
    it as 2D-only.
    """

    name = "folder"

    def __init__(self, root):
        self.root = _require_dir(Path(root), "annotated dataset")
        path = self.root / "annotations.json"
        data = _load_json(path, "annotations.json (an annotated folder needs one)")
        if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
            raise DatasetError(f"{path} has no 'samples' list")
        if not data["samples"]:
            raise DatasetError(f"{path}: 'samples' is empty")
        self.keypoint_order = data.get("keypoint_order")
        self.image_size = data.get("image_size")
        self.items = []
        for i, s in enumerate(data["samples"]):
            where = f"{path}: sample {i} is malformed"      # prefix of every message below
            if not isinstance(s, dict) or not isinstance(s.get("image"), str) or "K" not in s:
                raise DatasetError(f"{where}: needs 'image' (a path), 'K' (3x3), "
                                   "'joints_3d_mm' (21x3) and/or 'joints_2d_px' (21x2)")
            K = _array(s["K"], (3, 3), where, "'K'")
            _check_intrinsics(K[None], path, lambda _: f"sample {i} is malformed")
            P, lab3 = s.get("joints_3d_mm"), None
            if P is not None:
                P, lab3 = _keypoint_rows(P, 3, where, "'joints_3d_mm'")
                _check_in_front(P[lab3][None], path, lambda _: f"sample {i} is malformed")
            uv = s.get("joints_2d_px")
            if uv is None and P is None:
                raise DatasetError(f"{where}: it has neither 'joints_3d_mm' nor 'joints_2d_px'")
            if uv is None:
                uv, labelled = project_px(P, K), lab3
            else:
                uv, labelled = _keypoint_rows(uv, 2, where, "'joints_2d_px'")
                if lab3 is not None and (lab3 != labelled).any():
                    raise DatasetError(f"{where}: keypoints {np.flatnonzero(lab3 != labelled).tolist()} are null "
                                       "in one of 'joints_3d_mm' and 'joints_2d_px' only; a keypoint "
                                       "that is not labelled is null in both")
            if P is not None and not labelled[list(kp.SCALE_BONE)].all():
                # depth is root (wrist) relative and normalised by the wrist -> index MCP bone, and
                # evaluation's true hand size is that bone: without both, its 3D teaches nothing
                # and scores nothing, so it is refused rather than silently made 2D-only
                raise DatasetError(f"{where}: its 3D pose leaves the wrist or the index MCP (keypoints "
                                   f"{kp.WRIST} and {kp.INDEX_MCP}) null, and its depth is relative to the "
                                   "wrist and normalised by that bone; give both, or write "
                                   "'joints_3d_mm': null to use the sample as 2D-only")
            vis = s.get("visible")
            if vis is None:
                vis = np.ones(NK, bool)
            else:
                vis = np.asarray(vis)
                if vis.shape != (NK,) or vis.dtype.kind not in "bi":
                    raise DatasetError(f"{where}: 'visible' must be 21 booleans (or 0/1), got "
                                       f"{vis.dtype.name} values of shape {vis.shape}")
            is_left = s.get("is_left")
            if is_left is not None and not isinstance(is_left, bool):
                raise DatasetError(f"{where}: 'is_left' must be true, false or null, got {is_left!r}")
            self.items.append(_item(K, P, vis, is_left, self.root / s["image"], i, uv=uv, labelled=labelled))

    def __len__(self) -> int:
        return len(self.items)

    def annotation(self, i: int) -> dict:
        it = self.items[self._index(i)]
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in it.items()}


# ============================================================================ mixing

class MixedDataset(Dataset):
    """Items drawn from several sources with probabilities proportional to ``weights``.

    Item ``i`` comes from source k with probability ``w_k / sum(w)`` and is a uniformly
    drawn item of that source; the draw is a pure function of ``(seed, epoch, i)``, so it
    is the same in every DataLoader worker and changes with :meth:`set_epoch`.

    Items are those of the sources, made batchable by torch's default collate:

    - ``has_3d`` (bool): False for a 2D-only item, whose ``joints_3d_mm`` becomes zeros
      (21, 3), so a training loss can mask its depth term;
    - ``is_left`` becomes an int: 1 left, 0 right, -1 unknown;
    - ``source`` (the source's ``name``) and ``source_index`` (the item within it).

    Args:
        datasets: non-empty sequence of datasets with items as above.
        weights: one non-negative weight per source (not all zero); default: the
            source sizes, i.e. uniform over all items.
        length: items per epoch; default the sum of the source sizes.
        seed: draws are reproducible per seed.
    """

    name = "mixed"

    def __init__(self, datasets, weights=None, length: int | None = None, seed: int = 0):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("MixedDataset needs at least one source")
        sizes = np.array([len(d) for d in self.datasets])
        w = sizes.astype(np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(self.datasets),):
            raise ValueError(f"need one weight per source ({len(self.datasets)}), got shape {w.shape}")
        if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be finite, non-negative and not all zero, got {w.tolist()}")
        empty = [getattr(d, "name", str(k)) for k, d in enumerate(self.datasets)
                 if sizes[k] == 0 and w[k] > 0]
        if empty:
            raise ValueError(f"sources with a positive weight are empty: {empty}")
        self.sizes = sizes
        self.probs = w / w.sum()
        self.length = int(sizes.sum()) if length is None else int(length)
        if self.length <= 0:
            raise ValueError(f"length must be positive, got {self.length}")
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        """Draw a different mixture for each epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def draw(self, i) -> tuple[int, int]:
        """(source, index within it) of item ``i``, without loading anything."""
        i = operator.index(i)
        if not 0 <= i < self.length:
            raise IndexError(f"mixed: index {i} out of range for {self.length} items")
        rng = np.random.default_rng((self.seed, self.epoch, i))
        k = int(rng.choice(len(self.probs), p=self.probs))
        return k, int(rng.integers(self.sizes[k]))

    def __getitem__(self, i) -> dict:
        k, j = self.draw(i)
        item = dict(self.datasets[k][j])
        P = item.get("joints_3d_mm")
        item["has_3d"] = P is not None
        item["joints_3d_mm"] = np.zeros((NK, 3)) if P is None else P
        left = item.get("is_left")
        item["is_left"] = -1 if left is None else int(bool(left))
        item["source"] = str(getattr(self.datasets[k], "name", k))
        item["source_index"] = j
        return item

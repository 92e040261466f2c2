"""Synthetic hand crops with exact labels: the generator, shard cache and Dataset.

Each sample: a random hand (side, shape, pose, skin), a random camera (60-90 degree
horizontal FOV, 640x480) with the hand 0.25-1.2 m away, a crop around the hand exactly
as inference crops (square around the 2D keypoints, side x U(1.2, 1.7), centre jitter),
rendered directly into the crop through the crop's intrinsics, composited over a
background with occluders. Labels follow the photo-dataset convention (wrist and
fingertips on the skin): see ``LABEL_*`` below and ``tools/measure_label_offsets.py``.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from .. import keypoints as kp
from ..crop import crop_affine, crop_intrinsics
from ..geometry import project_points
from . import backgrounds
from .hand_mesh import KEYPOINT_FROM_WEBXR, WEBXR_JOINTS, WEBXR_PARENTS, forward_kinematics, load_hand_mesh, skin
from .poses import sample_pose, sample_shape
from .render import MeshRenderer

# Photo datasets mark the wrist on the skin, distal and palmar of the WebXR wrist joint.
# Offset (mm) in the wrist joint's own frame, fitted so that the distances from the wrist
# label to the four finger MCPs and the thumb CMC/MCP match real_val_snap's median
# proportions (tools/measure_label_offsets.py; residuals 1-5 mm).
LABEL_WRIST_OFFSET_MM = np.array([-7.7, -8.2, -12.3])
# Fingertip labels sit on the skin at the end of the finger: each tip joint is extended
# along its distal bone to the farthest skin vertex (measured on the mesh at load time).

TIP_JOINTS = (4, 9, 14, 19, 24)


@dataclass
class SyntheticConfig:
    crop_size_px: int = 128
    supersample: int = 2
    image_size_px: tuple = (640, 480)
    hfov_deg: tuple = (60.0, 90.0)
    distance_m: tuple = (0.25, 1.2)
    crop_scale: tuple = (1.2, 1.7)
    crop_shift_frac: float = 0.12
    p_left: float = 0.5
    p_camera_facing: float = 0.6      # palm or back toward the camera, roughly upright
    p_forearm: float = 0.9
    p_sleeve: float = 0.6
    p_occluder: float = 0.25
    p_motion_blur: float = 0.15
    visibility_tol_mm: float = 12.0


def tip_skin_extents(mesh) -> np.ndarray:
    """(5,) how far (m) the skin reaches beyond each fingertip joint along its distal bone."""
    ext = []
    for tip in TIP_JOINTS:
        d = mesh.rest_joints[tip] - mesh.rest_joints[WEBXR_PARENTS[tip]]
        d /= np.linalg.norm(d)
        rel = mesh.vertices - mesh.rest_joints[tip]
        proj = rel @ d
        radial = np.linalg.norm(rel - proj[:, None] * d, axis=1)
        ext.append(float(proj[radial < 0.012].max()))   # vertices of that finger's tip only
    return np.array(ext)


class _Hand:
    """Per-process cache of the two hand meshes and their tip extents."""

    def __init__(self):
        self.meshes = {s: load_hand_mesh(s) for s in ("left", "right")}
        self.tip_extent = {s: tip_skin_extents(m) for s, m in self.meshes.items()}


def _forearm(rng, length_m, r_palm, r_back, n_ring=16, n_seg=6):
    """Elliptic tapered tube along +y (model space: proximal), starting at the origin."""
    t = np.linspace(0.0, 1.0, n_seg)
    ang = np.linspace(0, 2 * np.pi, n_ring, endpoint=False)
    taper = 1.0 + 0.25 * t
    # model space: x = palm normal (back of hand +x), z = across the palm
    v = np.stack([np.outer(taper * r_palm, np.cos(ang)), np.outer(t * length_m, np.ones(n_ring)),
                  np.outer(taper * r_back, np.sin(ang))], -1).reshape(-1, 3)
    nrm = np.stack([np.outer(np.ones(n_seg), np.cos(ang) / r_palm), np.zeros((n_seg, n_ring)),
                    np.outer(np.ones(n_seg), np.sin(ang) / r_back)], -1).reshape(-1, 3)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    faces = []
    for i in range(n_seg - 1):
        for j in range(n_ring):
            a, b = i * n_ring + j, i * n_ring + (j + 1) % n_ring
            c, d = a + n_ring, b + n_ring
            faces += [(a, b, c), (b, d, c)]
    return v, nrm, np.array(faces, np.int32), np.repeat(t, n_ring)


def _global_rotation(rng, camera_facing: bool) -> np.ndarray:
    """Model -> camera rotation. Model: fingers along -y, back of the hand along +x."""
    if camera_facing:
        # palm toward the camera, fingers up, then tilted and rolled
        R0 = np.array([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]])
        roll = rng.normal(0, 50)
        tilt = rng.normal(0, 25, 2)
        R = Rotation.from_euler("zxy", [roll, tilt[0], tilt[1]], degrees=True).as_matrix() @ R0
        if rng.random() < 0.35:  # back of the hand toward the camera
            R = R @ Rotation.from_euler("y", 180, degrees=True).as_matrix()
        return R
    return Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()


class SyntheticHandGenerator:
    """Deterministic synthetic samples: ``sample(i)`` depends only on (seed, i)."""

    def __init__(self, config: SyntheticConfig | None = None, seed: int = 0):
        self.cfg = config or SyntheticConfig()
        self.seed = int(seed)
        self._hand = None
        self._renderer = None

    def __getstate__(self):
        # GL contexts and meshes are per process: rebuilt lazily after pickling
        return {"cfg": self.cfg, "seed": self.seed, "_hand": None, "_renderer": None}

    def _lazy(self):
        if self._hand is None:
            self._hand = _Hand()
            self._renderer = MeshRenderer(self.cfg.crop_size_px * self.cfg.supersample)

    def sample(self, index: int) -> dict:
        self._lazy()
        cfg = self.cfg
        rng = np.random.default_rng([self.seed, int(index)])
        for _attempt in range(20):
            out = self._try_sample(rng)
            if out is not None:
                return out
        raise RuntimeError(f"could not place a hand for sample {index} in 20 attempts")

    def _try_sample(self, rng) -> dict | None:
        cfg = self.cfg
        side = "left" if rng.random() < cfg.p_left else "right"
        mesh = self._hand.meshes[side]
        bone_scale, width = sample_shape(rng)
        size_scale = rng.normal(1.0, 0.07)                    # overall hand size
        posed = forward_kinematics(mesh, sample_pose(rng), bone_scale)
        verts, normals = skin(mesh, posed, width)
        joints = posed[:, :3, 3]
        # labels in the photo-dataset convention
        labels = joints[list(KEYPOINT_FROM_WEBXR)].copy()
        labels[0] = joints[0] + posed[0, :3, :3] @ (LABEL_WRIST_OFFSET_MM / 1000.0) * bone_scale.mean()
        for k, (tip, ext) in enumerate(zip(TIP_JOINTS, self._hand.tip_extent[side])):
            d = joints[tip] - joints[WEBXR_PARENTS[tip]]
            labels[kp.TIPS[k]] = joints[tip] + d / max(np.linalg.norm(d), 1e-9) * ext * bone_scale[tip]
        # skin colour, per-vertex variation, palm lighter than the back
        tone = backgrounds.skin_tone(rng)
        freq = rng.normal(0, 60, (3, 3))
        phase = rng.uniform(0, 2 * np.pi, 3)
        var = np.sin(mesh.vertices @ freq + phase).mean(1, keepdims=True)
        palm = np.clip(-(mesh.normals @ np.array([1.0, 0, 0])), 0, 1)[:, None]
        colors = tone * (1 + 0.07 * var) * (1 + palm * np.array([0.08, 0.02, 0.0]) * rng.uniform(0.5, 1.5))
        faces = mesh.faces
        parts_v, parts_n, parts_c, parts_f = [verts], [normals], [colors], [faces]
        if rng.random() < cfg.p_forearm:
            fv, fn, ff, ft = _forearm(rng, rng.uniform(0.12, 0.3), rng.uniform(0.016, 0.022) * width,
                                      rng.uniform(0.025, 0.032) * width)
            wrist_R = Rotation.from_euler("zx", rng.normal(0, [25, 12]), degrees=True).as_matrix()
            # hang the forearm off the wrist joint, bent by wrist flexion/deviation
            origin = joints[0] + posed[0, :3, :3] @ np.array([0, 0.0, 0.012])
            Rw = posed[0, :3, :3] @ mesh.rest_global[0, :3, :3].T @ wrist_R
            fv = origin + fv @ Rw.T
            fn = fn @ Rw.T
            fc = np.tile(tone * (1 + 0.05 * rng.normal()), (len(fv), 1))
            if rng.random() < cfg.p_sleeve:
                start = rng.uniform(0.1, 0.7)
                fc[ft > start] = rng.uniform(0.05, 0.95, 3)
            parts_v.append(fv)
            parts_n.append(fn)
            parts_c.append(fc)
            parts_f.append(ff + sum(len(v) for v in parts_v[:-1]))
        V = np.concatenate(parts_v)
        N = np.concatenate(parts_n)
        C = np.concatenate(parts_c)
        F = np.concatenate(parts_f)
        # camera and placement
        W, H = cfg.image_size_px
        hfov = np.deg2rad(rng.uniform(*cfg.hfov_deg))
        f = (W / 2) / np.tan(hfov / 2)
        K = np.array([[f, 0, W / 2 - 0.5 + rng.normal(0, 6)],
                      [0, f * rng.normal(1.0, 0.005), H / 2 - 0.5 + rng.normal(0, 6)], [0, 0, 1]])
        R = _global_rotation(rng, rng.random() < cfg.p_camera_facing)
        centre_model = joints[11]                                   # middle MCP
        dist = np.exp(rng.uniform(np.log(cfg.distance_m[0]), np.log(cfg.distance_m[1])))
        uv_c = np.array([rng.uniform(0.15, 0.85) * W, rng.uniform(0.15, 0.85) * H])
        ray = np.linalg.solve(K, np.array([uv_c[0], uv_c[1], 1.0]))
        t_cam = ray / ray[2] * dist

        def to_cam(p):
            return ((p - centre_model) * size_scale) @ R.T + t_cam

        Vc, Nc, Lc = to_cam(V), N @ R.T, to_cam(labels)
        if Vc[:, 2].min() < 0.08:
            return None
        uv = project_points(Lc, K)
        lo, hi = uv.min(0), uv.max(0)
        side_px = float(max(hi - lo)) * rng.uniform(*cfg.crop_scale)
        if side_px < 8:
            return None
        centre = (lo + hi) / 2 + rng.uniform(-cfg.crop_shift_frac, cfg.crop_shift_frac, 2) * side_px
        S = cfg.crop_size_px
        A = crop_affine(centre, side_px, S)
        Kc = crop_intrinsics(K, A)
        ss = cfg.supersample
        # supersampled render: u_ss = ss u + (ss - 1) / 2 under the pixel-centre convention
        Kr = np.array([[ss, 0, (ss - 1) / 2], [0, ss, (ss - 1) / 2], [0, 0, 1]]) @ Kc
        lights = self._lights(rng)
        rgb, alpha, depth = self._renderer.render(Vc, Nc, C, F, Kr, lights)
        # visibility from the depth buffer, before compositing
        uv_r = project_points(Lc, Kr)
        Ssr = S * ss
        inside = np.all((uv_r >= 0) & (uv_r <= Ssr - 1), axis=1)
        ij = np.clip(np.round(uv_r).astype(int), 0, Ssr - 1)
        zbuf = depth[ij[:, 1], ij[:, 0]]
        visible = inside & (Lc[:, 2] <= zbuf + cfg.visibility_tol_mm / 1000.0)
        bg = backgrounds.sample_background(rng, Ssr)
        img = rgb * alpha[..., None] + bg * (1 - alpha[..., None])
        if rng.random() < cfg.p_occluder:
            img, occ = self._occluder(rng, img, uv_r)
            visible &= ~occ[ij[:, 1], ij[:, 0]]
        if rng.random() < cfg.p_motion_blur:
            n = int(rng.integers(3, 10))
            ker = np.zeros((n, n), np.float32)
            ker[n // 2] = 1.0 / n
            M = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), rng.uniform(0, 180), 1.0)
            ker = cv2.warpAffine(ker, M, (n, n))
            img = cv2.filter2D(img, -1, ker / max(ker.sum(), 1e-6))
        img = cv2.resize(img.astype(np.float32), (S, S), interpolation=cv2.INTER_AREA)
        img = np.clip(img, 0, 1) ** rng.uniform(0.85, 1.15)
        image = (img * 255 + 0.5).astype(np.uint8)
        return {"image": image, "K": Kc, "joints_3d_mm": Lc * 1000.0,
                "joints_2d_px": project_points(Lc, Kc), "visible": visible, "is_left": side == "left"}

    @staticmethod
    def _lights(rng):
        dirs = rng.normal(0, 1, (2, 3))
        dirs[:, 2] = -np.abs(dirs[:, 2]) - 0.3    # mostly from the camera side
        warm = np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.7, 1.0)])
        key = rng.uniform(0.5, 1.1)
        return {"light_dir": dirs, "light_col": np.stack([warm * key, warm * key * rng.uniform(0, 0.5)]),
                "ambient": warm * rng.uniform(0.15, 0.5), "spec": rng.uniform(0.0, 0.25),
                "shininess": rng.uniform(8, 40)}

    @staticmethod
    def _occluder(rng, img, uv_r):
        S = img.shape[0]
        mask = np.zeros((S, S), np.uint8)
        c = uv_r[rng.integers(len(uv_r))] + rng.normal(0, S * 0.08, 2)
        axes = (int(rng.uniform(0.06, 0.22) * S), int(rng.uniform(0.04, 0.15) * S))
        cv2.ellipse(mask, (int(c[0]), int(c[1])), axes, rng.uniform(0, 180), 0, 360, 1, -1)
        tex = backgrounds.sample_background(rng, S)
        m = mask.astype(bool)
        img = img.copy()
        img[m] = tex[m]
        return img, m


# ----------------------------------------------------------------------------- shards

_ARRAYS = ("images", "K", "joints_3d_mm", "joints_2d_px", "visible", "is_left")


def _shard_dir(out_dir: Path, k: int) -> Path:
    return out_dir / f"shard_{k:05d}"


def _write_one(args):
    out_dir, k, start, count, cfg_dict, seed = args
    final = _shard_dir(Path(out_dir), k)
    if (final / "done.json").exists():
        return k
    gen = SyntheticHandGenerator(SyntheticConfig(**cfg_dict), seed)
    samples = [gen.sample(i) for i in range(start, start + count)]
    tmp = Path(out_dir) / f".tmp_shard_{k:05d}_{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    np.save(tmp / "images.npy", np.stack([s["image"] for s in samples]))
    np.save(tmp / "K.npy", np.stack([s["K"] for s in samples]).astype(np.float32))
    np.save(tmp / "joints_3d_mm.npy", np.stack([s["joints_3d_mm"] for s in samples]).astype(np.float32))
    np.save(tmp / "joints_2d_px.npy", np.stack([s["joints_2d_px"] for s in samples]).astype(np.float32))
    np.save(tmp / "visible.npy", np.stack([s["visible"] for s in samples]))
    np.save(tmp / "is_left.npy", np.array([s["is_left"] for s in samples]))
    (tmp / "done.json").write_text(json.dumps({"start": start, "count": count, "seed": seed}))
    if final.exists():
        import shutil
        shutil.rmtree(final)
    os.replace(tmp, final)
    return k


def write_shards(out_dir, num_samples: int, cfg: SyntheticConfig | None = None, seed: int = 0,
                 shard_size: int = 2048, workers: int = 1, progress: bool = True) -> Path:
    """Render ``num_samples`` samples into shard folders (resumable: complete shards are kept).

    A cache made with another config or seed is an error, not silently mixed.
    """
    cfg = cfg or SyntheticConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"num_samples": int(num_samples), "seed": int(seed), "shard_size": int(shard_size),
            "config": json.loads(json.dumps(asdict(cfg)))}
    meta_path = out_dir / "cache.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if {k: old.get(k) for k in ("seed", "shard_size", "config")} != {k: meta[k] for k in ("seed", "shard_size", "config")}:
            raise ValueError(f"{out_dir} holds a synthetic cache made with other settings "
                             f"({meta_path}); use another folder or delete it")
    meta_path.write_text(json.dumps(meta, indent=1))
    jobs = [(str(out_dir), k, k * shard_size, min(shard_size, num_samples - k * shard_size), asdict(cfg), seed)
            for k in range((num_samples + shard_size - 1) // shard_size)]
    todo = [j for j in jobs if not (_shard_dir(out_dir, j[1]) / "done.json").exists()]
    if todo:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), unit="shard", desc=f"rendering {out_dir.name}", disable=not progress)
        if workers > 1:
            import multiprocessing as mp
            with mp.get_context("spawn").Pool(workers) as pool:
                for _ in pool.imap_unordered(_write_one, todo):
                    bar.update(1)
        else:
            for j in todo:
                _write_one(j)
                bar.update(1)
        bar.close()
    return out_dir


class ShardDataset:
    """Samples from a shard cache, memory-mapped (``torch.utils.data.Dataset`` protocol)."""

    def __init__(self, root):
        root = Path(root)
        if not (root / "cache.json").exists():
            raise FileNotFoundError(f"no synthetic cache at {root} (cache.json missing); "
                                    "render one with write_shards / hand25d-train")
        self.root = root
        self.shards = sorted(p for p in root.glob("shard_*") if (p / "done.json").exists())
        if not self.shards:
            raise FileNotFoundError(f"synthetic cache {root} has no complete shard")
        self.counts = [json.loads((p / "done.json").read_text())["count"] for p in self.shards]
        self.offsets = np.cumsum([0] + self.counts)
        self._arrays = {}

    def __len__(self):
        return int(self.offsets[-1])

    def _shard(self, j):
        if j not in self._arrays:
            self._arrays[j] = {name: np.load(self.shards[j] / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
        return self._arrays[j]

    def __getitem__(self, i):
        if not 0 <= i < len(self):
            raise IndexError(i)
        j = int(np.searchsorted(self.offsets, i, side="right") - 1)
        a = self._shard(j)
        r = i - int(self.offsets[j])
        return {"image": np.array(a["images"][r]), "K": np.asarray(a["K"][r], np.float64),
                "joints_3d_mm": np.asarray(a["joints_3d_mm"][r], np.float64),
                "joints_2d_px": np.asarray(a["joints_2d_px"][r], np.float64),
                "visible": np.asarray(a["visible"][r]), "is_left": bool(a["is_left"][r])}

    def __getstate__(self):
        return {"root": self.root, "shards": self.shards, "counts": self.counts, "offsets": self.offsets,
                "_arrays": {}}

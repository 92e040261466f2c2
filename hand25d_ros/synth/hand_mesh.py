"""The rigged WebXR generic hand: glTF loading, forward kinematics, linear blend skinning.

The glb stores the 25 WebXR joints as flat children of one armature, each with its
rest pose in model space (metres). WebXR joint frames: -Z along the bone toward the
fingertip, +Y out of the back of the hand, so flexion is a rotation about the joint's
own X axis and abduction about its Y axis.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

WEBXR_JOINTS: tuple[str, ...] = (
    "wrist",
    "thumb-metacarpal", "thumb-phalanx-proximal", "thumb-phalanx-distal", "thumb-tip",
    *(f"{f}-finger-{p}" for f in ("index", "middle", "ring", "pinky")
      for p in ("metacarpal", "phalanx-proximal", "phalanx-intermediate", "phalanx-distal", "tip")),
)
# kinematic parent of each WebXR joint
WEBXR_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 3) + tuple(
    p for base in (5, 10, 15, 20) for p in (0, base, base + 1, base + 2, base + 3))
# our 21 keypoints from the 25 joints: drop the four finger metacarpals
KEYPOINT_FROM_WEBXR: tuple[int, ...] = (0, 1, 2, 3, 4) + tuple(
    j for base in (5, 10, 15, 20) for j in (base + 1, base + 2, base + 3, base + 4))


class AssetError(RuntimeError):
    """The hand asset is missing or unreadable."""


def asset_path(side: str) -> Path:
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return Path(str(resources.files("hand25d_ros") / "assets" / "generic-hand" / f"{side}.glb"))


def _quat_xyzw_to_matrix(q) -> np.ndarray:
    return Rotation.from_quat(q).as_matrix()


@dataclass
class HandMesh:
    """Rest-pose mesh and skeleton of one hand (metres, model space)."""
    side: str
    vertices: np.ndarray        # (V, 3)
    normals: np.ndarray         # (V, 3)
    faces: np.ndarray           # (F, 3) int32
    joint_idx: np.ndarray       # (V, 4) int
    joint_w: np.ndarray         # (V, 4) float, rows sum to 1
    rest_global: np.ndarray     # (25, 4, 4) joint frames in model space
    uv: np.ndarray | None = None

    @property
    def rest_joints(self) -> np.ndarray:
        return self.rest_global[:, :3, 3]

    @property
    def rest_local(self) -> np.ndarray:
        """(25, 4, 4) each joint's rest frame relative to its parent's."""
        loc = self.rest_global.copy()
        for j, p in enumerate(WEBXR_PARENTS):
            if p >= 0:
                loc[j] = np.linalg.inv(self.rest_global[p]) @ self.rest_global[j]
        return loc


def load_hand_mesh(side: str = "right", path=None) -> HandMesh:
    """Read the generic hand glb for ``side`` (or a glb at ``path``)."""
    import pygltflib
    path = Path(path) if path is not None else asset_path(side)
    if not path.is_file():
        raise AssetError(f"hand asset not found: {path} (the package data is incomplete; reinstall)")
    try:
        g = pygltflib.GLTF2().load(str(path))
        blob = g.binary_blob()

        def read(acc_idx):
            acc = g.accessors[acc_idx]
            view = g.bufferViews[acc.bufferView]
            comps = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc.type]
            dtype = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}[acc.componentType]
            start = (view.byteOffset or 0) + (acc.byteOffset or 0)
            itemsize = np.dtype(dtype).itemsize * comps
            stride = view.byteStride or itemsize
            raw = np.frombuffer(blob, dtype=np.uint8, count=stride * (acc.count - 1) + itemsize, offset=start)
            if stride == itemsize:
                return raw.view(dtype).reshape(acc.count, comps)
            rows = np.lib.stride_tricks.as_strided(raw, (acc.count, itemsize), (stride, 1))
            return np.ascontiguousarray(rows).view(dtype).reshape(acc.count, comps)

        prim = g.meshes[0].primitives[0]
        verts = read(prim.attributes.POSITION).astype(np.float64)
        normals = read(prim.attributes.NORMAL).astype(np.float64)
        faces = read(prim.indices).reshape(-1, 3).astype(np.int32)
        jidx = read(prim.attributes.JOINTS_0).astype(np.int64)
        jw = read(prim.attributes.WEIGHTS_0).astype(np.float64)
        uv = read(prim.attributes.TEXCOORD_0).astype(np.float64) if prim.attributes.TEXCOORD_0 is not None else None
        skin = g.skins[0]
        names = [g.nodes[j].name for j in skin.joints]
        # skin joint order -> WebXR order
        order = [names.index(n) for n in WEBXR_JOINTS]
        remap = np.empty(len(names), dtype=np.int64)
        remap[order] = np.arange(len(order))
        jidx = remap[jidx]
        ibm = read(skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1).astype(np.float64)[order]
    except AssetError:
        raise
    except Exception as exc:
        raise AssetError(f"cannot read hand asset {path}: {type(exc).__name__}: {exc}") from None
    # the bind pose is the rest pose; inverse bind matrices are exact where node transforms round
    rest_global = np.linalg.inv(ibm)
    jw = jw / np.maximum(jw.sum(1, keepdims=True), 1e-9)
    return HandMesh(side=side, vertices=verts, normals=normals, faces=faces, joint_idx=jidx,
                    joint_w=jw, rest_global=rest_global, uv=uv)


def forward_kinematics(mesh: HandMesh, local_rot: np.ndarray, bone_scale: np.ndarray | None = None) -> np.ndarray:
    """Posed joint frames.

    Args:
        mesh: the hand.
        local_rot: (25, 3, 3) rotation of each joint in its own rest frame (identity = rest).
        bone_scale: (25,) scale of each joint's offset from its parent (hand-shape variation).

    Returns:
        (25, 4, 4) posed joint frames in model space.
    """
    loc = mesh.rest_local
    out = np.empty_like(loc)
    for j, p in enumerate(WEBXR_PARENTS):
        L = loc[j].copy()
        if bone_scale is not None:
            L[:3, 3] *= bone_scale[j]
        L[:3, :3] = L[:3, :3] @ local_rot[j]
        out[j] = L if p < 0 else out[p] @ L
    return out


def skin(mesh: HandMesh, posed_global: np.ndarray, width_scale: float = 1.0):
    """Linear blend skinning.

    Args:
        posed_global: (25, 4, 4) from :func:`forward_kinematics`.
        width_scale: scale of the mesh around the bones (thicker/thinner fingers and palm).

    Returns:
        vertices (V, 3), normals (V, 3) in model space.
    """
    # each vertex relative to its bones' rest frames, optionally thickened about the bone axis
    M = posed_global @ np.linalg.inv(mesh.rest_global)                     # (25, 4, 4)
    verts = mesh.vertices
    if width_scale != 1.0:
        # push vertices away from their main joint's position, across the bone only
        main = mesh.joint_idx[np.arange(len(verts)), mesh.joint_w.argmax(1)]
        origin = mesh.rest_global[main, :3, 3]
        axis = mesh.rest_global[main, :3, 2]                                # joint's Z: along the bone
        d = verts - origin
        along = (d * axis).sum(1, keepdims=True) * axis
        verts = origin + along + (d - along) * width_scale
    vh = np.concatenate([verts, np.ones((len(verts), 1))], 1)
    Mv = np.einsum("vk,vkij->vij", mesh.joint_w, M[mesh.joint_idx])          # (V, 4, 4)
    v = np.einsum("vij,vj->vi", Mv, vh)[:, :3]
    n = np.einsum("vij,vj->vi", Mv[:, :3, :3], mesh.normals)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    return v, n

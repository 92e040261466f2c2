"""The rigged WebXR generic hand: glb loading, forward kinematics, linear blend skinning.

The asset (``hand25d_ros/assets/generic-hand/{left,right}.glb``, MIT, see the README
there) is a skinned mesh of 1360 vertices bound to the 25 WebXR hand joints. All 25
joint nodes are flat children of one armature; each node's transform is its rest frame
in model space (metres), equal to the inverse of its inverse-bind matrix.

Model space of the right hand: fingers point along -y, the back of the hand faces +x,
the thumb is on the -z side. WebXR joint frames: -Z along the bone toward the
fingertip, +Y out of the back of the hand, +X across the finger, so flexion (curling
toward the palm) is a rotation ``R_x(-phi)`` about the joint's own X axis and
abduction a rotation about its Y axis. The left hand is the right hand mirrored
(``x -> -x``); the generator renders the mirrored right hand so that both sides share
one pose parameterisation and one label calibration.

Keypoints: the 21 hand25d keypoints are the 25 WebXR joints without the four finger
metacarpals (:data:`KEYPOINT_FROM_WEBXR`). Where the rig's joint centres differ from the
photo-dataset label convention (the wrist, the thumb CMC, the fingertips) see
:func:`keypoint_labels` and the ``LABEL_*`` constants.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
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
NUM_JOINTS = len(WEBXR_JOINTS)   # 25
# kinematic parent of each WebXR joint (the finger metacarpals hang off the wrist)
WEBXR_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 3) + tuple(
    p for base in (5, 10, 15, 20) for p in (0, base, base + 1, base + 2, base + 3))
# hand25d keypoint k is WebXR joint KEYPOINT_FROM_WEBXR[k]: the finger metacarpals are dropped
KEYPOINT_FROM_WEBXR: tuple[int, ...] = (0, 1, 2, 3, 4) + tuple(
    j for base in (5, 10, 15, 20) for j in (base + 1, base + 2, base + 3, base + 4))
# WebXR tip joints (thumb, index, middle, ring, pinky)
TIP_JOINTS: tuple[int, ...] = (4, 9, 14, 19, 24)
# joints whose offsets from their parents span the palm: the thumb CMC and finger metacarpal
# joints (from the wrist) and the finger MCPs (from their metacarpal joints)
PALM_JOINTS: tuple[int, ...] = (1, 5, 6, 10, 11, 15, 16, 20, 21)
# depth of each joint in the tree (wrist 0): FK runs one level at a time
_DEPTH = np.zeros(NUM_JOINTS, dtype=int)
for _j, _p in enumerate(WEBXR_PARENTS):
    _DEPTH[_j] = 0 if _p < 0 else _DEPTH[_p] + 1
_LEVELS = tuple(np.nonzero(_DEPTH == d)[0] for d in range(1, _DEPTH.max() + 1))
_LEVEL_PARENTS = tuple(np.array([WEBXR_PARENTS[j] for j in lv]) for lv in _LEVELS)

MIRROR_X = np.diag([-1.0, 1.0, 1.0])


class AssetError(RuntimeError):
    """The hand asset is missing or unreadable; the message names the file."""


def asset_path(side: str) -> Path:
    """Path of the packaged glb for ``side`` ('left' or 'right')."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return Path(str(resources.files("hand25d_ros") / "assets" / "generic-hand" / f"{side}.glb"))


@dataclass(frozen=True)
class HandMesh:
    """Rest-pose mesh and skeleton of one hand, in model space (metres).

    Attributes:
        side: 'left' or 'right'.
        vertices: (V, 3) rest vertices.
        normals: (V, 3) unit rest normals.
        faces: (F, 3) int32 triangles (counter-clockwise seen from outside).
        joint_idx: (V, 4) int WebXR joint of each skin influence.
        joint_w: (V, 4) float skin weights, rows sum to 1.
        rest_global: (25, 4, 4) joint rest frames in model space.
        path: the file it came from.
    """
    side: str
    vertices: np.ndarray
    normals: np.ndarray
    faces: np.ndarray
    joint_idx: np.ndarray
    joint_w: np.ndarray
    rest_global: np.ndarray
    path: Path
    rest_local: np.ndarray = field(init=False, repr=False)
    dominant_joint: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        loc = self.rest_global.copy()
        for j, p in enumerate(WEBXR_PARENTS):
            if p >= 0:
                loc[j] = np.linalg.inv(self.rest_global[p]) @ self.rest_global[j]
        object.__setattr__(self, "rest_local", loc)
        dom = self.joint_idx[np.arange(len(self.vertices)), self.joint_w.argmax(1)]
        object.__setattr__(self, "dominant_joint", dom)

    @property
    def rest_joints(self) -> np.ndarray:
        """(25, 3) joint positions at rest."""
        return self.rest_global[:, :3, 3]


def _read_accessor(g, blob: bytes, index: int) -> np.ndarray:
    acc = g.accessors[index]
    view = g.bufferViews[acc.bufferView]
    comps = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc.type]
    dtype = np.dtype({5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}[acc.componentType])
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    itemsize = dtype.itemsize * comps
    stride = view.byteStride or itemsize
    need = start + stride * (acc.count - 1) + itemsize
    if need > len(blob):
        raise ValueError(f"accessor {index} reads past the end of the binary chunk ({need} > {len(blob)} bytes)")
    raw = np.frombuffer(blob, dtype=np.uint8, count=need - start, offset=start)
    if stride != itemsize:
        raw = np.lib.stride_tricks.as_strided(raw, (acc.count, itemsize), (stride, 1)).copy()
    return raw.reshape(acc.count, itemsize).view(dtype).reshape(acc.count, comps)


def _node_globals(g) -> dict[int, np.ndarray]:
    """Global 4x4 transform of every node of the default scene."""
    def local(n):
        if n.matrix is not None:
            return np.array(n.matrix, dtype=np.float64).reshape(4, 4).T
        T = np.eye(4)
        if n.scale is not None:
            T[:3, :3] = np.diag(n.scale)
        if n.rotation is not None:
            T[:3, :3] = Rotation.from_quat(n.rotation).as_matrix() @ T[:3, :3]
        if n.translation is not None:
            T[:3, 3] = n.translation
        return T

    out: dict[int, np.ndarray] = {}
    stack = [(i, np.eye(4)) for i in g.scenes[g.scene or 0].nodes]
    while stack:
        i, parent = stack.pop()
        out[i] = parent @ local(g.nodes[i])
        stack.extend((c, out[i]) for c in (g.nodes[i].children or []))
    return out


def load_hand_mesh(side: str = "right", path=None) -> HandMesh:
    """Read a WebXR generic-hand glb (the packaged one for ``side``, or ``path``).

    Raises:
        AssetError: the file is missing, is not a glb, or lacks the mesh, skin or joints.
    """
    path = Path(path) if path is not None else asset_path(side)
    if not path.is_file():
        raise AssetError(f"hand asset not found: {path} (the package data is incomplete; reinstall "
                         "hand25d_ros or restore hand25d_ros/assets/generic-hand/)")
    try:
        import pygltflib
        g = pygltflib.GLTF2().load(str(path))
        if g is None or not g.meshes or not g.skins:
            raise ValueError("no skinned mesh in the file")
        blob = g.binary_blob()
        if blob is None:
            raise ValueError("no binary chunk")
        prim = g.meshes[0].primitives[0]
        a = prim.attributes
        verts = _read_accessor(g, blob, a.POSITION).astype(np.float64)
        normals = _read_accessor(g, blob, a.NORMAL).astype(np.float64)
        faces = _read_accessor(g, blob, prim.indices).reshape(-1, 3).astype(np.int32)
        jidx = _read_accessor(g, blob, a.JOINTS_0).astype(np.int64)
        jw = _read_accessor(g, blob, a.WEIGHTS_0).astype(np.float64)
        skin = g.skins[0]
        names = [g.nodes[j].name for j in skin.joints]
        missing = [n for n in WEBXR_JOINTS if n not in names]
        if missing:
            raise ValueError(f"skin lacks the WebXR joints {missing}")
        order = [names.index(n) for n in WEBXR_JOINTS]          # WebXR joint -> skin slot
        remap = np.full(len(names), -1, dtype=np.int64)
        remap[order] = np.arange(NUM_JOINTS)
        used = np.unique(jidx[jw > 0])
        if np.any(remap[used] < 0):
            raise ValueError("vertices are bound to joints outside the 25 WebXR joints")
        jidx = np.where(jw > 0, remap[jidx], 0)
        ibm = _read_accessor(g, blob, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
        ibm = ibm.astype(np.float64)[order]
        nodes = _node_globals(g)
        node_rest = np.stack([nodes[skin.joints[o]] for o in order])
    except AssetError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad asset
        raise AssetError(f"cannot read hand asset {path}: {type(exc).__name__}: {exc}") from None
    rest_global = np.linalg.inv(ibm)
    # the matrices are stored in float32: make each rest rotation exactly orthonormal
    U, _, Vt = np.linalg.svd(rest_global[:, :3, :3])
    rest_global[:, :3, :3] = U @ Vt
    # the bind pose must be the scene's rest pose, else the posed mesh would not match the joints
    if np.abs(rest_global - node_rest).max() > 1e-4:
        raise AssetError(f"hand asset {path}: joint nodes differ from the bind pose "
                         f"(max {np.abs(rest_global - node_rest).max():.3g})")
    jw = jw / np.maximum(jw.sum(1, keepdims=True), 1e-12)
    normals = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return HandMesh(side=side, vertices=verts, normals=normals, faces=faces, joint_idx=jidx,
                    joint_w=jw, rest_global=rest_global, path=path)


@lru_cache(maxsize=4)
def packaged_hand(side: str = "right") -> HandMesh:
    """The packaged mesh for ``side``, loaded once per process."""
    return load_hand_mesh(side)


def forward_kinematics(mesh: HandMesh, local_rot: np.ndarray, bone_scale: np.ndarray | None = None,
                       root: np.ndarray | None = None) -> np.ndarray:
    """Posed joint frames.

    ``G_j = G_parent(j) @ T(s_j * t_j) @ R_rest_j @ R_j``: each joint rotates in its own
    rest frame, and its offset from its parent is scaled by ``bone_scale``.

    Args:
        mesh: the hand.
        local_rot: (25, 3, 3) rotation of each joint in its own rest frame (identity = rest).
        bone_scale: (25,) scale of each joint's offset from its parent (hand shape); None = 1.
        root: (4, 4) replaces the wrist's rest frame (global placement); None = rest.

    Returns:
        (25, 4, 4) posed joint frames in model space.
    """
    local_rot = np.asarray(local_rot, dtype=np.float64)
    if local_rot.shape != (NUM_JOINTS, 3, 3):
        raise ValueError(f"local_rot must be (25, 3, 3), got {local_rot.shape}")
    L = mesh.rest_local.copy()
    if bone_scale is not None:
        L[:, :3, 3] *= np.asarray(bone_scale, dtype=np.float64)[:, None]
    L[:, :3, :3] = L[:, :3, :3] @ local_rot
    if root is not None:
        L[0, :3, :3] = np.asarray(root)[:3, :3] @ local_rot[0]
        L[0, :3, 3] = np.asarray(root)[:3, 3]
    out = L.copy()
    for lv, par in zip(_LEVELS, _LEVEL_PARENTS):
        out[lv] = out[par] @ L[lv]
    return out


def skin(mesh: HandMesh, posed_global: np.ndarray, width_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Linear blend skinning.

    ``v' = sum_i w_i G_i G_rest_i^-1 v``.

    Args:
        mesh: the hand.
        posed_global: (25, 4, 4) from :func:`forward_kinematics`.
        width_scale: scale of the flesh around the bones, across each bone only
            (thicker or slimmer fingers and palm); 1 = the asset.

    Returns:
        vertices (V, 3) and unit normals (V, 3) in model space.
    """
    M = posed_global @ np.linalg.inv(mesh.rest_global)                      # (25, 4, 4)
    verts = mesh.vertices
    if width_scale != 1.0:
        # push each vertex away from its dominant bone's axis (the joint's Z), not along it
        dom = mesh.dominant_joint
        origin = mesh.rest_global[dom, :3, 3]
        axis = mesh.rest_global[dom, :3, 2]
        d = verts - origin
        along = (d * axis).sum(1, keepdims=True) * axis
        verts = origin + along + (d - along) * width_scale
    W = mesh.joint_w
    Mv = np.einsum("vk,vkij->vij", W, M[mesh.joint_idx][..., :3, :])         # (V, 3, 4)
    v = np.einsum("vij,vj->vi", Mv[..., :3], verts) + Mv[..., 3]
    n = np.einsum("vij,vj->vi", Mv[..., :3], mesh.normals)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return v, n


# ----------------------------------------------------------------------------- labels
# The rig's joints are joint centres; photo datasets (real_val_snap, FreiHAND) mark the
# wrist and the fingertips on the skin and the thumb CMC near the wrist. These constants
# move the synthetic labels to that convention. Measured on real_val_snap with
# ``python -m hand25d_ros.tools.measure_label_offsets`` (rig units: the rig's rest hand,
# real / rig scale 1.03 from the finger bones).
#
# Wrist and thumb-CMC labels: points rigid with the WebXR wrist joint, offset from it in
# the wrist joint's own frame (X across the palm toward the pinky, Y out of the back of
# the hand, Z toward the forearm; mm of the rig at PALM_SCALE 1, scaled with the palm),
# fitted together with PALM_SCALE to the real median distances wrist-MCPs, CMC-MCPs,
# wrist-CMC, CMC-thumb MCP and the MCP spacings (14 distances, residuals 0-4 mm; the
# largest come from the real MCP row being more arched than the rig's). The real wrist
# label sits 16 mm distal, 5 mm radial and 2 mm palmar of the WebXR wrist joint; the real
# CMC label is 31 mm from it (rig joint: 50 mm), at the base of the thenar eminence.
LABEL_WRIST_OFFSET_MM = np.array([-4.8, -1.8, -16.3])
LABEL_THUMB_CMC_OFFSET_MM = np.array([-23.1, -18.1, -33.3])
# Fingertip labels: on the distal bone's line, this fraction (thumb..pinky) of the way from
# the tip joint to the end of the skin (1 = the very end of the fingertip; the rig's skin
# reaches 10-13 mm beyond its tip joints). Fitted to the real |DIP-tip| / scale:
# (1.07, 1.08, 0.85, 0.77, 0.44), clipped to [0.5, 1] so that no label leaves the skin
# and one person's short pinky does not set the convention.
LABEL_TIP_SKIN_FRACTION = (1.0, 1.0, 0.85, 0.77, 0.5)
# Knuckle (finger MCP) labels, index..pinky, for ``keypoint_labels(..., knuckles="photo")``:
# points rigid with each proximal phalanx, offset from its WebXR joint in that joint's own
# frame (mm of the rig at PALM_SCALE 1, scaled with the palm). With the rig's joints as MCP
# labels the real MCP row is the other shape: on real_val_snap wrist to index and pinky MCP
# are longer than the rig's (86.6, 79.7 mm against the renders' 78.9, 74.6 mm at the same
# wrist to middle MCP) and the middle and ring MCP-PIP bones longer (49.0, 46.2 against 46.5,
# 42.7 mm), and a network trained on the rig's joints reads the photos' MCPs 4-8 mm off on
# average where it reads the renders' within 1-2 mm. Fitted with the wrist and CMC labels
# above held to the real median distances wrist-MCP, CMC-MCP, MCP-PIP and the MCP spacings
# (``measure_label_offsets``).
# Residuals 2-5 mm at the joints, 0-1.3 mm with these. The WebXR joint frames' -Z runs
# along the bone toward the fingertip: the index and pinky labels sit 3-4 mm distal of their
# joints, the middle and ring 2-3 mm proximal.
LABEL_KNUCKLE_OFFSET_MM = np.array([[0.4, -2.0, -4.4], [-0.5, -3.1, 1.5], [-0.2, -1.2, 2.5], [-0.6, 1.6, -3.2]])
KNUCKLE_LABELS = ("joint", "photo")
# Palm size relative to the fingers: the real hands' palms (wrist to MCPs, MCP to MCP) are
# larger relative to their fingers than the rig's; the shape sampler scales the palm joints
# (PALM_JOINTS) by this on average.
PALM_SCALE = 1.06


def tip_skin_extents_m(mesh: HandMesh) -> np.ndarray:
    """(5,) how far (m) the skin reaches beyond each tip joint along its distal bone (thumb..pinky)."""
    ext = []
    J = mesh.rest_joints
    for tip in TIP_JOINTS:
        d = J[tip] - J[WEBXR_PARENTS[tip]]
        d /= np.linalg.norm(d)
        rel = mesh.vertices - J[tip]
        along = rel @ d
        radial = np.linalg.norm(rel - along[:, None] * d, axis=1)
        ext.append(float(along[(radial < 0.012) & (along > -0.02)].max()))
    return np.array(ext)


@lru_cache(maxsize=8)
def _tip_extents_cached(path: str, side: str) -> np.ndarray:
    return tip_skin_extents_m(load_hand_mesh(side, path))


def keypoint_labels(mesh: HandMesh, posed_global: np.ndarray, bone_scale: np.ndarray | None = None,
                    knuckles: str = "joint") -> np.ndarray:
    """The 21 keypoint labels (m, model space) of a posed hand, in the photo-dataset convention.

    Args:
        mesh: the hand.
        posed_global: (25, 4, 4) from :func:`forward_kinematics`.
        bone_scale: the (25,) bone scales the pose was made with (scales the offsets).
        knuckles: the finger MCP labels: ``"joint"``, the rig's joints (the renders before
            stage 27), or ``"photo"``, moved by ``LABEL_KNUCKLE_OFFSET_MM`` to where photo
            datasets mark them.

    Returns:
        (21, 3) keypoints in hand25d order.
    """
    if knuckles not in KNUCKLE_LABELS:
        raise ValueError(f"knuckles must be one of {', '.join(KNUCKLE_LABELS)}, got {knuckles!r}")
    bs = np.ones(NUM_JOINTS) if bone_scale is None else np.asarray(bone_scale, dtype=np.float64)
    J = posed_global[:, :3, 3]
    out = J[list(KEYPOINT_FROM_WEBXR)].copy()
    Rw = posed_global[0, :3, :3]
    palm = float(np.mean(bs[[5, 10, 15, 20]]))
    out[0] = J[0] + Rw @ LABEL_WRIST_OFFSET_MM * (palm / 1000.0)
    out[1] = J[0] + Rw @ LABEL_THUMB_CMC_OFFSET_MM * (palm / 1000.0)
    if knuckles == "photo":
        for f in range(4):
            j = KEYPOINT_FROM_WEBXR[4 * f + 5]
            out[4 * f + 5] = J[j] + posed_global[j, :3, :3] @ LABEL_KNUCKLE_OFFSET_MM[f] * (palm / 1000.0)
    ext = _tip_extents_cached(str(mesh.path), mesh.side)
    for f, tip in enumerate(TIP_JOINTS):
        d = J[tip] - J[WEBXR_PARENTS[tip]]
        d = d / max(np.linalg.norm(d), 1e-12)
        out[4 * f + 4] = J[tip] + d * (ext[f] * LABEL_TIP_SKIN_FRACTION[f] * bs[tip])
    return out

"""HandPoseEstimator: image + intrinsics -> metric 3D hand pose (the public API)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from . import geometry as geo
from . import keypoints as kp
from ._checks import check_image_rgb, check_intrinsics, check_positive
from .crop import box_to_crop_affine, crop_intrinsics, invert_affine, transform_points, warp_crop, whole_image_box
from .weights import load_weights

# Plausible distance of a hand from a camera; a root outside is not trusted.
MIN_DEPTH_M, MAX_DEPTH_M = 0.05, 10.0


@dataclass
class HandPose:
    """One hand's pose in one image.

    Attributes:
        keypoints_2d: (21, 2) pixels of the input image (keypoint order in ``keypoints.py``).
        keypoints_3d: (21, 3) metres in the camera optical frame; NaN-free (zeros when not valid).
        confidence: (21,) in [0, 1], heatmap mass around each keypoint.
        valid: False when no trustworthy 3D could be made (see ``root_status``).
        z_rel_norm: (21,) the network's scale-normalised root-relative depth.
        root_status: ``geometry.RootDepthStatus`` of the root-depth solve.
        roi: (x, y, w, h) crop box that was used, in input-image pixels.
        hand_size_m: the hand-size prior used (wrist -> index MCP).
    """
    keypoints_2d: np.ndarray
    keypoints_3d: np.ndarray
    confidence: np.ndarray
    valid: bool
    z_rel_norm: np.ndarray = field(repr=False, default=None)
    root_status: int = 0
    roi: tuple = ()
    hand_size_m: float = kp.DEFAULT_HAND_SIZE_M

    @property
    def mean_confidence(self) -> float:
        return float(np.mean(self.confidence))


def resolve_device(device: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> torch.device; 'cuda' without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available "
                           "(use device='auto' or 'cpu')")
    return torch.device(device)


class HandPoseEstimator:
    """Latent 2.5D hand pose estimator.

    Args:
        weights: path of a weights file, or None for the weights bundled with the package.
        device: 'auto' (CUDA when there is one), 'cpu' or 'cuda[:N]'.
        fp16: run the network in half precision (CUDA only; ignored on CPU).
        root_depth: 'robust' (median over palm bones, default when the weights carry
            bone ratios) or 'bone' (the scale bone alone, as in the paper).
    """

    def __init__(self, weights=None, device: str = "auto", fp16: bool = False,
                 root_depth: str = "robust"):
        loaded = load_weights(weights)
        self._setup(loaded.model, loaded.meta, loaded.path, device, fp16, root_depth)

    @classmethod
    def from_model(cls, model, meta: dict | None = None, device: str = "auto", fp16: bool = False,
                   root_depth: str = "robust") -> "HandPoseEstimator":
        """An estimator around an in-memory network (e.g. one being trained). The model is
        used as it is: switch it to eval mode before estimating."""
        est = cls.__new__(cls)
        est._setup(model, dict(meta or {}), "<in-memory>", device, fp16, root_depth, move=False)
        return est

    def _setup(self, model, meta, path, device, fp16, root_depth, move=True):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval() if move else model
        self.meta = meta
        self.weights_path = path
        self.input_size = int(self.meta.get("input_size", self.model.input_size))
        self.fp16 = bool(fp16) and self.device.type == "cuda"
        ratios = self.meta.get("bone_ratios")
        if root_depth not in ("robust", "bone"):
            raise ValueError(f"root_depth must be 'robust' or 'bone', got {root_depth!r}")
        if root_depth == "robust" and ratios is None:
            warnings.warn("weights carry no bone_ratios: using the scale bone alone for root depth")
            root_depth = "bone"
        self.root_depth = root_depth
        self.bone_ratios = None if ratios is None else np.asarray(ratios, dtype=np.float64)

    # ------------------------------------------------------------------ network
    @torch.inference_mode()
    def predict_crops(self, crops_rgb: np.ndarray):
        """Run the network on square crops.

        Args:
            crops_rgb: (B, S, S, 3) uint8 RGB, S = ``input_size``.

        Returns:
            uv_px (B, 21, 2) crop pixels, z_rel_norm (B, 21), confidence (B, 21), float64 numpy.
        """
        x = torch.from_numpy(np.ascontiguousarray(crops_rgb)).to(self.device)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.fp16):
            uv, z, conf = self.model(x)
        return (uv.double().cpu().numpy(), z.double().cpu().numpy(), conf.double().cpu().numpy())

    # ------------------------------------------------------------------ public API
    def estimate(self, image_rgb: np.ndarray, K, hand_size_m: float | None = None,
                 roi=None, D=None, distortion_model: str = "plumb_bob") -> HandPose:
        """Estimate the 3D pose of the hand in ``image_rgb``.

        Args:
            image_rgb: (H, W, 3) uint8 RGB.
            K: (3, 3) intrinsics of ``image_rgb``.
            hand_size_m: wrist -> index-MCP length in metres (None: ``DEFAULT_HAND_SIZE_M``).
            roi: (x, y, w, h) box around the hand (None: the whole image is the hand crop).
                The square around its longer side is the crop.
            D: CameraInfo distortion coefficients when ``image_rgb`` is not rectified.
            distortion_model: CameraInfo distortion model name for ``D``.

        Returns:
            HandPose.
        """
        return self.estimate_batch([image_rgb], [K], hand_size_m, [roi], D, distortion_model)[0]

    def estimate_batch(self, images_rgb, Ks, hand_size_m: float | None = None, rois=None,
                       D=None, distortion_model: str = "plumb_bob") -> list[HandPose]:
        """:meth:`estimate` over several (image, K, roi), one network pass."""
        if len(images_rgb) != len(Ks):
            raise ValueError(f"got {len(images_rgb)} images but {len(Ks)} intrinsics")
        rois = [None] * len(images_rgb) if rois is None else list(rois)
        if len(rois) != len(images_rgb):
            raise ValueError(f"got {len(images_rgb)} images but {len(rois)} rois")
        hand_size_m = kp.DEFAULT_HAND_SIZE_M if hand_size_m is None else check_positive(hand_size_m, "hand_size_m")
        crops, affines, Kmats, boxes = [], [], [], []
        for image, K, roi in zip(images_rgb, Ks, rois):
            image = check_image_rgb(image)
            K = check_intrinsics(K)
            box = whole_image_box(*image.shape[:2]) if roi is None else tuple(roi)
            A = box_to_crop_affine(box, self.input_size)
            crops.append(warp_crop(image, A, self.input_size))
            affines.append(A)
            Kmats.append(K)
            boxes.append(tuple(float(v) for v in box))
        if not crops:
            return []
        uv_crop, z, conf = self.predict_crops(np.stack(crops))
        poses = []
        for i, (A, K) in enumerate(zip(affines, Kmats)):
            uv_img = transform_points(invert_affine(A), uv_crop[i])
            poses.append(self._lift(uv_img, z[i], conf[i], K, hand_size_m, boxes[i], D, distortion_model))
        return poses

    def _lift(self, uv_img, z, conf, K, hand_size_m, box, D, distortion_model) -> HandPose:
        uv_ideal = uv_img if D is None else geo.undistort_points(uv_img, K, D, distortion_model)
        P, status = geo.reconstruct_metric(uv_ideal, z, K, hand_size_m, method=self.root_depth,
                                           bone_ratios=self.bone_ratios)
        status = int(status)
        root_z = P[kp.ROOT, 2]
        valid = bool(status in (int(s) for s in geo.USABLE_STATUSES)
                     and np.all(np.isfinite(P)) and MIN_DEPTH_M <= root_z <= MAX_DEPTH_M)
        if not valid:
            P = np.zeros_like(P)
        return HandPose(keypoints_2d=np.nan_to_num(uv_img), keypoints_3d=P,
                        confidence=np.nan_to_num(conf), valid=valid, z_rel_norm=np.nan_to_num(z),
                        root_status=status, roi=box, hand_size_m=hand_size_m)

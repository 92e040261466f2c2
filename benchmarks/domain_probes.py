"""What in a photo throws the network: the same frames, changed one way at a time.

Each probe alters every image of an annotated folder (real_val_snap format) and runs the
estimator on the whole image as the crop, one pass (``--tta none``), with the true hand
size. It prints the 2D mean error, how often the estimated skeleton is the right hand
(``keypoints.is_left_hand`` against the annotation's ``is_left`` or the true skeleton's
chirality) and the 2D error on those frames. A change that helps on photos and not on
renders points at something the renders lack; the probes measure, they are never applied
at inference.

Probes: ``none``; ``blur`` (Gaussian, sigma 3 px at 256 px, scaled with the image);
``blur_hand`` and ``blur_background`` (the same blur inside or outside the hand: the true
skeleton's bones and palm hull, dilated 12 px, feathered); ``zoom_out`` (the image padded by
replicating its border to 1.3x its side, so the hand is smaller in the crop); ``hue_plus10``
(every hue turned 10 degrees, red toward yellow: the renders' skin is more orange than the
photos', see benchmarks/render_vs_photo.py); ``saturation_x1.25`` and ``saturation_x0.8`` (HSV
saturation scaled), ``brightness_x1.2`` (HSV value scaled): the renders' skin is more
saturated and brighter than the photos' (render_vs_photo.py), so these say whether the
network reads a photo better made more render-like in each.

    python benchmarks/domain_probes.py ../shared/data/real_val_snap
    python benchmarks/domain_probes.py cache/synth_test_detail --probes none blur blur_hand
"""
import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_vs_photo import hand_mask  # noqa: E402

PROBES = ("none", "blur", "blur_hand", "blur_background", "zoom_out", "hue_plus10", "saturation_x1.25",
          "saturation_x0.8", "brightness_x1.2")


def soft_hand_mask(uv_px: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 1) float weight, 1 on the hand: skeleton mask dilated (skin lies past the
    bones) and feathered so that the probe adds no edge of its own."""
    m = hand_mask(uv_px, size).astype(np.uint8)
    reach = max(3, int(round(25 * size / 256)))
    m = cv2.dilate(m, np.ones((reach, reach), np.uint8)).astype(np.float32)
    return cv2.GaussianBlur(m, (0, 0), 4 * size / 256)[..., None]


def probe(name: str, image: np.ndarray, K: np.ndarray, uv_px: np.ndarray):
    """The altered image, its intrinsics and the keypoints' offset (px) into it."""
    size = max(image.shape[:2])
    sigma = 3.0 * size / 256
    if name == "none":
        return image, K, 0
    if name == "zoom_out":
        pad = int(round(size * 0.15))
        K2 = K.copy()
        K2[0, 2] += pad
        K2[1, 2] += pad
        return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE), K2, pad
    if name == "hue_plus10":
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + 5) % 180     # OpenCV stores hue / 2
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), K, 0
    if name.startswith(("saturation_x", "brightness_x")):
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
        channel = 1 if name.startswith("saturation") else 2
        hsv[..., channel] = np.clip(hsv[..., channel] * float(name.split("_x")[1]) + 0.5, 0, 255)
        return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB), K, 0
    blurred = cv2.GaussianBlur(image, (0, 0), sigma).astype(np.float32)
    if name == "blur":
        return blurred.astype(np.uint8), K, 0
    w = soft_hand_mask(uv_px, size)
    if name == "blur_background":
        w = 1.0 - w
    elif name != "blur_hand":
        raise ValueError(f"unknown probe {name!r}; choose from {PROBES}")
    out = image.astype(np.float32) * (1.0 - w) + blurred * w
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), K, 0


def refuse_unlabelled(ds, folder) -> None:
    """The hand probes blur inside or outside the whole true skeleton, and each probe's error
    is compared with the others' frame by frame: a frame with unlabelled keypoints (null in
    the folder, NaN in the arrays) has neither, so such a folder is refused, not scored as NaN."""
    partial = [ds.annotation(i) for i in range(len(ds))]
    partial = [a for a in partial if not a["labelled"].all()]
    if partial:
        first = partial[0]
        raise SystemExit(f"domain_probes: {folder}: {len(partial)} of {len(ds)} samples leave keypoints unlabelled "
                         f"(null), e.g. {first['image_path']} (keypoints "
                         f"{np.flatnonzero(~first['labelled']).tolist()}); the probes need all 21 of every frame: "
                         "give a folder of fully labelled frames")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--probes", nargs="+", default=list(PROBES), choices=PROBES)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    from hand25d_ros import HandPoseEstimator
    from hand25d_ros import keypoints as kp
    from hand25d_ros.data.public_datasets import AnnotatedFolderDataset
    from hand25d_ros.evaluate import true_hand
    torch.set_num_threads(args.threads)
    ds = AnnotatedFolderDataset(args.folder)
    refuse_unlabelled(ds, args.folder)
    samples = [ds[i] for i in range(len(ds))]
    truths = [true_hand(s) for s in samples]
    est = HandPoseEstimator(weights=args.weights, tta="none")
    print(f"{args.folder}: {len(samples)} frames, one pass, whole image as the crop")
    print(f"{'probe':16s} {'2D error':>9s} {'right hand':>10s} {'2D error, right hand':>21s}")
    for name in args.probes:
        t0 = time.time()
        err, ok = [], []
        for s, (is_left, size_m) in zip(samples, truths):
            uv = np.asarray(s["joints_2d_px"], np.float32)
            img, K, off = probe(name, s["image"], np.asarray(s["K"], np.float64), uv)
            pose = est.estimate(img, K, hand_size_m=size_m, roi="image")
            err.append(float(np.linalg.norm(pose.keypoints_2d - off - uv, axis=1).mean()))
            ok.append(bool(kp.is_left_hand(pose.keypoints_3d)) == is_left)
        err, ok = np.array(err), np.array(ok)
        print(f"{name:16s} {err.mean():7.1f}px {ok.mean():10.3f} {err[ok].mean():19.1f}px"
              f"   ({time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

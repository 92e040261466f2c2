import signal

import numpy as np
import pytest
import torch

# Tests stop the command lines they start with SIGINT, as Ctrl-C does. A suite started in the
# background by a script ('./scripts/test.sh &') inherits an ignored SIGINT, as do the commands
# it starts, which then ran on through their Ctrl-C tests until the tests' timeouts (3 failures,
# the suite twice as long). A handled SIGINT here is the default again in every child (exec
# resets handlers, not an ignore); the default handler is what an interactive run has anyway.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

from hand25d_ros.model import build_model
from hand25d_ros.weights import save_weights


@pytest.fixture(scope="session")
def untrained_weights(tmp_path_factory):
    """A small untrained weights file (random init, fixed seed) with bone ratios."""
    torch.manual_seed(0)
    model = build_model("tiny")
    path = tmp_path_factory.mktemp("weights") / "untrained.pt"
    from hand25d_ros.geometry import ROBUST_BONES
    save_weights(model, path, {"name": "tiny"}, {"bone_ratios": [1.0] * len(ROBUST_BONES),
                                                 "note": "untrained, for tests"})
    return path


@pytest.fixture
def savez_then_interrupt(monkeypatch):
    """np.savez that writes its file whole and then raises KeyboardInterrupt, as late as a stop
    can come while a part file is written; yields the real np.savez (restored at the end)."""
    real_savez = np.savez

    def stopped_after_writing(path, **arrays):
        real_savez(path, **arrays)
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", stopped_after_writing)
    yield real_savez


def sample_hand(i: int, size_px: int = 256):
    """Bundled sample ``i`` as a square hand crop (keypoint box x1.5): image, K, 2D keypoints.
    Works whether the bundled samples are crops or full frames."""
    import json
    from importlib import resources
    import cv2
    from hand25d_ros.crop import crop_affine, crop_intrinsics, transform_points, warp_crop
    root = resources.files("hand25d_ros") / "samples"
    s = json.loads((root / "annotations.json").read_text())["samples"][i]
    img = cv2.cvtColor(cv2.imread(str(root / s["image"])), cv2.COLOR_BGR2RGB)
    uv = np.asarray(s["joints_2d_px"], dtype=np.float64)
    lo, hi = uv.min(0), uv.max(0)
    A = crop_affine((lo + hi) / 2, 1.5 * float(max(hi - lo)), size_px)
    return warp_crop(img, A, size_px), crop_intrinsics(np.asarray(s["K"]), A), transform_points(A, uv)


def paste_sample(i: int, at_xy, side_px: int, seed: int = 0, frame=None):
    """Bundled sample ``i``'s hand crop resized to ``side_px`` and pasted at ``at_xy`` into a
    640x480 frame of smooth noise (or into ``frame``); returns the frame, its intrinsics
    (exact: the paste is an affine of the crop) and the true 2D keypoints in it."""
    import cv2
    crop, K_crop, uv = sample_hand(i)
    if frame is None:
        rng = np.random.default_rng(seed)
        frame = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (0, 0), 6)
    frame = frame.copy()
    x0, y0 = at_xy
    frame[y0:y0 + side_px, x0:x0 + side_px] = cv2.resize(crop, (side_px, side_px), interpolation=cv2.INTER_AREA)
    f = side_px / crop.shape[0]
    A = np.array([[f, 0.0, 0.5 * f - 0.5 + x0], [0.0, f, 0.5 * f - 0.5 + y0], [0.0, 0.0, 1.0]])
    return frame, A @ K_crop, uv @ A[:2, :2].T + A[:2, 2]

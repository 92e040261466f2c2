"""The weights that ship: they load with no arguments, carry their recipe, and do better
than a constant guess on the bundled sample frames (a sanity check, not an accuracy target:
the figures live in the README's model card, measured by hand25d-eval)."""
import json

import cv2
import numpy as np
import pytest

from hand25d_ros import HandPoseEstimator
from hand25d_ros import geometry as geo
from hand25d_ros.weights import default_weights_path

pytestmark = pytest.mark.skipif(not default_weights_path().is_file(), reason="no bundled weights in this install")


@pytest.fixture(scope="module")
def est():
    return HandPoseEstimator(device="cpu")


def test_default_weights_load_with_their_metadata(est):
    assert est.weights_path == str(default_weights_path())
    assert default_weights_path().stat().st_size < 50e6
    # trained by hand25d-train, or averaged from such runs or earlier weights files (the recipe
    # then names each run and step, or each file)
    recipe = est.meta["recipe"]
    assert recipe["command"].startswith(("hand25d-train", "python -m hand25d_ros.tools.average_snapshots"))
    if "averaged" in recipe:
        assert recipe["averaged"] and all({"run", "step"} <= set(s) or set(s) == {"weights"}
                                          for s in recipe["averaged"])
    assert est.meta["metrics"]["val_synth_2d_px"] > 0
    assert len(est.meta["bone_ratios"]) == len(geo.ROBUST_BONES) and est.root_depth == "robust"


def test_beats_a_constant_pose_on_the_bundled_samples(est):
    from importlib import resources
    root = resources.files("hand25d_ros") / "samples"
    ann = json.loads((root / "annotations.json").read_text())["samples"]
    err_model, err_const, sizes = [], [], []
    for s in ann:
        img = cv2.cvtColor(cv2.imread(str(root / s["image"])), cv2.COLOR_BGR2RGB)
        pose = est.estimate(img, np.array(s["K"]))   # full frames: the hand is found
        gt = np.array(s["joints_2d_px"])
        assert pose.found and pose.valid and np.all(np.isfinite(pose.keypoints_3d))
        np.testing.assert_allclose(geo.project_points(pose.keypoints_3d, np.array(s["K"])), pose.keypoints_2d, atol=1e-5)
        err_model.append(np.linalg.norm(pose.keypoints_2d - gt, axis=1).mean())
        centre = np.broadcast_to([(img.shape[1] - 1) / 2.0, (img.shape[0] - 1) / 2.0], gt.shape)
        err_const.append(np.linalg.norm(centre - gt, axis=1).mean())
        sizes.append(float(np.max(gt.max(0) - gt.min(0))))
    assert np.mean(err_model) < 0.6 * np.mean(err_const)
    assert np.mean(err_model) < 0.25 * np.mean(sizes)


def test_the_readme_python_example_runs_as_written(tmp_path):
    """The README's first Python block, pasted into a file and run from the repository root as
    it says: it used image_rgb, K, frame_rgb and t_s without defining them (a NameError)."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text()
    start = text.index("```python\n", text.index("## Python API")) + len("```python\n")
    script = tmp_path / "example.py"
    script.write_text(text[start:text.index("```", start)])
    r = subprocess.run([sys.executable, str(script)], cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    track_id, is_left, *tip = r.stdout.split()
    assert track_id.isdigit() and is_left in ("True", "False") and len(tip) >= 3

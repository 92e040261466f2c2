"""Every command that renders says, before it starts, that it needs the `train` extra.

The README: "Rendering and training need the `train` extra (...), a command that lacks one
says which, before it starts." hand25d-train and hand25d-render-sheet did; in a plain
`pip install .` hand25d-train-detector ended in a worker's traceback (AssetError: No module
named 'pygltflib') after making its run folder, and make_samples and calibrate_localisation
the same; without scikit-image, whose photos the backgrounds draw from, the sheet rendered
without them, unlike any training run."""
import sys
from pathlib import Path

import pytest

from hand25d_ros.detector import default_detector_path

TRAIN_EXTRA = r"pip install 'hand25d_ros\[train\]'"


def _without(monkeypatch, module):
    # importlib.util.find_spec answers None and an import raises, as where it is not installed
    monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize("module", ["pygltflib", "moderngl", "skimage"])
def test_hand25d_train_detector_names_the_extra_before_it_starts(tmp_path, monkeypatch, module):
    from hand25d_ros.detector_train import main
    _without(monkeypatch, module)
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match=rf"hand25d-train-detector: .*{module}.*{TRAIN_EXTRA}"):
        main(["--out", str(out), "--minutes", "0.01", "--cutouts", "2", "--val-cutouts", "2",
              "--backgrounds", "0", "--render-workers", "0", "--workers", "0",
              "--bank", str(tmp_path / "bank.npz"), "--val-bank", str(tmp_path / "val_bank.npz")])
    assert sorted(tmp_path.iterdir()) == []        # no run folder, no bank


@pytest.mark.parametrize("module", ["pygltflib", "skimage"])
def test_make_samples_names_the_extra_before_it_starts(tmp_path, monkeypatch, module):
    from hand25d_ros.tools.make_samples import main
    _without(monkeypatch, module)
    with pytest.raises(SystemExit, match=rf"make_samples: .*{module}.*{TRAIN_EXTRA}"):
        main(["--out", str(tmp_path / "samples"), "--n", "1"])
    assert sorted(tmp_path.iterdir()) == []


def test_calibrate_localisation_names_the_extra_before_it_starts(tmp_path, monkeypatch):
    from hand25d_ros.tools.calibrate_localisation import main
    _without(monkeypatch, "pygltflib")
    with pytest.raises(SystemExit, match=rf"calibrate_localisation: .*pygltflib.*{TRAIN_EXTRA}"):
        main(["--detector", str(default_detector_path()), "--out", str(tmp_path / "det.pt"),
              "--empty", "1", "--hands", "1", "--bank", str(tmp_path / "bank.npz"), "--bank-size", "1"])
    assert sorted(tmp_path.iterdir()) == []


def test_render_sheet_wants_scikit_image_as_training_does(tmp_path, monkeypatch):
    from hand25d_ros.tools.render_sheet import main
    _without(monkeypatch, "skimage")
    with pytest.raises(SystemExit, match=rf"hand25d-render-sheet: .*skimage.*{TRAIN_EXTRA}"):
        main(["--out", str(tmp_path / "sheet.png"), "--n", "1"])
    assert not Path(tmp_path / "sheet.png").exists()


def test_average_snapshots_names_the_extra_before_it_starts(tmp_path, monkeypatch):
    # it measures batch norms on the run's renders and calibrates the crop head on rendered
    # backgrounds, as hand25d-train does
    from hand25d_ros.tools.average_snapshots import main
    _without(monkeypatch, "skimage")
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(SystemExit, match=rf"average_snapshots: .*skimage.*{TRAIN_EXTRA}"):
        main([str(run), "--out", str(tmp_path / "soup.pt")])
    assert sorted(tmp_path.iterdir()) == [run]

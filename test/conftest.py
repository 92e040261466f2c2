import numpy as np
import pytest
import torch

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

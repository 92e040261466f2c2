import numpy as np
import pytest

from hand25d_ros import HandPoseEstimator
from hand25d_ros.tracking import HandTracker, box_iou, keypoint_box, sliding_windows


def test_sliding_windows_cover_the_frame():
    boxes = sliding_windows(480, 640)
    assert boxes
    for x, y, w, h in boxes:
        assert w == h and -0.5 - 1e-6 <= x and x + w <= 640 - 0.5 + 1e-6 and y + h <= 480 - 0.5 + 1e-6
    covered = np.zeros((480, 640), bool)
    for x, y, w, h in boxes:
        covered[int(y + 0.5):int(y + h + 0.5), int(x + 0.5):int(x + w + 0.5)] = True
    assert covered.all()


def test_keypoint_box_and_iou():
    uv = np.array([[10.0, 20.0], [50.0, 40.0]] + [[30.0, 30.0]] * 19)
    x, y, w, h = keypoint_box(uv, 1.5)
    assert w == h == 60.0 and (x + w / 2, y + h / 2) == (30.0, 30.0)
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


def test_tracker_on_frames_without_a_hand(untrained_weights):
    """An untrained net is never confident: no hand, no crash, no track."""
    est = HandPoseEstimator(weights=untrained_weights, device="cpu")
    tr = HandTracker(est, max_hands=2, min_confidence=0.5)
    K = np.array([[500.0, 0, 160], [0, 500, 120], [0, 0, 1]])
    for i in range(3):
        hands = tr.update(np.full((240, 320, 3), 30 * i, np.uint8), K, i / 30)
        assert hands == []
    with pytest.raises(ValueError):
        HandTracker(est, max_hands=0)

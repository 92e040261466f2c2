import numpy as np

from hand25d_ros.draw import draw_skeleton


def test_draws_at_the_keypoints_and_leaves_input_untouched():
    img = np.zeros((100, 120, 3), np.uint8)
    uv = np.tile([[60.0, 50.0]], (21, 1))
    uv[8] = [10.0, 90.0]   # index tip (yellow)
    out = draw_skeleton(img, uv)
    assert img.max() == 0
    assert out[90, 10].sum() > 0 and out[50, 60].sum() > 0
    assert out[5, 115].sum() == 0


def test_nan_keypoints_do_not_crash():
    out = draw_skeleton(np.zeros((50, 50, 3), np.uint8), np.full((21, 2), np.nan), np.zeros(21), 0.5)
    assert out.shape == (50, 50, 3)

"""The view-combining rules of benchmarks/view_combining.py, on a skeleton and its mirror image."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from view_combining import RULES, view_weights  # noqa: E402
from test_estimator import _sample_views  # noqa: E402


def test_rules_keep_the_views_on_their_hand():
    _, views, z = _sample_views()            # view 2 is the mirror image of the other three
    conf = np.array([0.2, 0.4, 0.9, 0.2])[None, :, None].repeat(21, -1)
    p_left = np.full((1, 4), 0.9)            # the crop head calls every view the same hand
    from hand25d_ros.estimator import skeleton_is_left
    mirror_is_left = bool(skeleton_is_left(views[:, 2], z[:, 2])[0])
    if not mirror_is_left:
        p_left = 1.0 - p_left                # make the crop head side with the mirror image
    w = {rule: view_weights(rule, views, z, conf, p_left) for rule in RULES}
    np.testing.assert_array_equal(w["mean"], np.ones((1, 4)))
    np.testing.assert_array_equal(w["majority"], [[1, 1, 0, 1]])
    np.testing.assert_array_equal(w["head"], [[0, 0, 1, 0]])
    np.testing.assert_array_equal(w["confident"], [[0, 0, 1, 0]])       # the mirror is the most confident
    np.testing.assert_array_equal(w["conf_sum"], [[0, 0, 1, 0]])        # 0.9 against a mean 0.27
    np.testing.assert_allclose(w["confident_weighted"], [[0, 0, 1, 0]])
    with pytest.raises(ValueError, match="unknown rule"):
        view_weights("vote", views, z, conf, p_left)


def test_known_hand_answer_falls_back_to_the_further_views_on_that_hand():
    from view_combining import known_hand_answer
    from hand25d_ros.estimator import skeleton_is_left
    uv, views, z = _sample_views()           # view 2 is the mirror image of the other three
    conf = np.full((1, 4, 21), 0.3)
    hand = bool(skeleton_is_left(uv, z[0, 0]))
    # the subset is the mirror image alone: told the true hand, the fallback views 0 and 1 answer
    out = known_hand_answer(views, z, conf, [2], [0, 1], hand)
    np.testing.assert_allclose(out[0][0], uv + 0.5, atol=1e-9)
    # told the mirror's hand, the subset answers; no fallback, the subset answers anyway
    np.testing.assert_allclose(known_hand_answer(views, z, conf, [2], [0, 1], not hand)[0][0], views[0, 2], atol=1e-9)
    np.testing.assert_allclose(known_hand_answer(views, z, conf, [2], [], hand)[0][0], views[0, 2], atol=1e-9)

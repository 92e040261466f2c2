"""Train-time augmentation: labels stay exact, the random convolution keeps shapes."""
import numpy as np
import pytest

from hand25d_ros.augment import AugmentConfig, augment_sample, random_convolution


def _square_image(S=64):
    img = np.zeros((S, S, 3), np.float32)
    img[20:44, 16:40] = (0.9, 0.6, 0.4)
    return img


def test_randconv_keeps_labels_and_moves_no_edge():
    S = 64
    image = (_square_image(S) * 255).astype(np.uint8)
    K = np.array([[80.0, 0, 31.5], [0, 80.0, 31.5], [0, 0, 1]])
    uv = np.random.default_rng(0).uniform(0, S - 1, (21, 2))
    cfg = AugmentConfig(p_affine=0.0, brightness=0, contrast=0, saturation=0, hue_deg=0,
                        p_blur=0, p_noise=0, p_jpeg=0, p_gray=0, p_randconv=1.0)
    changed = 0
    for seed in range(20):
        out, K2, uv2, inside = augment_sample(image, K, uv, np.random.default_rng(seed), cfg)
        assert out.dtype == np.uint8 and out.shape == image.shape
        np.testing.assert_array_equal(K2, K)
        np.testing.assert_array_equal(uv2, uv)
        assert inside.all()
        changed += int(np.abs(out.astype(int) - image).max() > 8)
    assert changed >= 15


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_randconv_output_is_an_image_with_the_shape_where_it_was(k):
    img = _square_image()
    for seed in range(10):
        out = random_convolution(img, np.random.default_rng(seed), (k,))
        assert out.shape == img.shape and out.dtype == np.float32
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
        # the filter is local: farther than its radius from the square's edges, the inside
        # is one colour and the outside another, i.e. no texture and no shifted edge
        r = k // 2
        core = out[20 + r:44 - r, 16 + r:40 - r].reshape(-1, 3)
        far = np.concatenate([out[:20 - r].reshape(-1, 3), out[44 + r:].reshape(-1, 3)])
        assert core.std(0).max() < 1e-4 and far.std(0).max() < 1e-4


def test_randconv_on_a_flat_image_stays_finite():
    img = np.full((32, 32, 3), 0.5, np.float32)
    out = random_convolution(img, np.random.default_rng(1))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, 0.5, atol=1e-4)


def test_randconv_rejects_an_even_kernel():
    with pytest.raises(ValueError, match="odd"):
        random_convolution(_square_image(), np.random.default_rng(0), (4,))


def test_randconv_off_leaves_the_random_stream_of_older_configs():
    image = (_square_image() * 255).astype(np.uint8)
    K = np.eye(3)
    uv = np.zeros((21, 2))
    a = augment_sample(image, K, uv, np.random.default_rng(3), AugmentConfig())
    b = augment_sample(image, K, uv, np.random.default_rng(3), AugmentConfig(p_randconv=0.0))
    np.testing.assert_array_equal(a[0], b[0])
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    augment_sample(image, K, uv, g1, AugmentConfig())
    augment_sample(image, K, uv, g2, AugmentConfig(p_randconv=0.0))
    assert g1.random() == g2.random()


@pytest.mark.parametrize("kw", [{"p_randconv": 1.5}, {"p_randconv": -0.1},
                                {"randconv_kernels_px": (3, 4)}, {"randconv_kernels_px": ()}])
def test_bad_randconv_settings_are_a_clear_error_at_config_time(kw):
    with pytest.raises(ValueError, match="data.augment"):
        AugmentConfig(**kw)


def test_the_trainer_names_a_bad_randconv_setting_without_a_traceback(tmp_path):
    from hand25d_ros.train import main
    with pytest.raises(SystemExit, match="p_randconv must be in"):
        main(["--out", str(tmp_path / "x"), "--set", "arch.name=tiny", "--set", "arch.input_size=64",
              "--set", f"data.synthetic.cache_dir={tmp_path / 'cache'}",
              "--set", "data.synthetic.num_samples=2", "--set", "data.synthetic.render_workers=1",
              "--set", "val_real.path=null", "--set", "data.augment.p_randconv=2"])

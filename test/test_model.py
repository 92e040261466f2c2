import warnings

import numpy as np
import pytest
import torch

from hand25d_ros import keypoints as kp
from hand25d_ros.export import export_onnx, export_torchscript
from hand25d_ros.losses import latent25d_loss
from hand25d_ros.model import Latent25DHead, build_model
from hand25d_ros.weights import WeightsError, load_weights, save_weights


def test_output_shapes_and_ranges():
    m = build_model("tiny").eval()
    uv, z, conf = m(torch.rand(2, 3, 128, 128))
    assert uv.shape == (2, 21, 2) and z.shape == (2, 21) and conf.shape == (2, 21)
    assert torch.all((conf >= 0) & (conf <= 1))
    assert torch.all((uv > -0.5) & (uv < 127.5))


def test_beta_is_a_trained_positive_parameter():
    m = build_model("tiny")
    names = [n for n, _ in m.named_parameters()]
    assert "head.beta_raw" in names
    assert torch.all(m.head.beta > 0)
    uv, z, _ = m(torch.rand(2, 3, 128, 128))
    (uv.sum() + z.sum()).backward()
    assert m.head.beta_raw.grad is not None and torch.any(m.head.beta_raw.grad != 0)


def test_soft_argmax_pixel_centres():
    """A one-hot latent map at cell (i, j) lands on that cell's centre in input pixels."""
    head = Latent25DHead(1, stride=4, beta_init=50.0)
    lat = torch.full((1, 2, 32, 32), -10.0)
    lat[0, 0, 7, 20] = 10.0
    lat[0, 1] = 0.3
    uv, z, conf, _ = head(lat)
    np.testing.assert_allclose(uv[0, 0].detach().numpy(), [(20 + 0.5) * 4 - 0.5, (7 + 0.5) * 4 - 0.5], atol=1e-3)
    assert abs(z.item() - 0.3) < 1e-5
    assert conf.item() > 0.99


def test_flat_heatmap_has_low_confidence():
    head = Latent25DHead(1, stride=4)
    uv, z, conf, _ = head(torch.zeros(1, 2, 32, 32))
    assert conf.item() < 0.02
    np.testing.assert_allclose(uv[0, 0].detach().numpy(), [63.5, 63.5], atol=1e-4)


def test_loss_masks_2d_only_samples():
    uv = torch.zeros(2, 21, 2)
    z_pred = torch.zeros(2, 21)
    z_gt = torch.ones(2, 21)
    total, terms = latent25d_loss(uv, z_pred, uv, z_gt, 128, has_3d=torch.tensor([True, False]))
    assert abs(terms["loss_z"].item() - 1.0) < 1e-6
    total, terms = latent25d_loss(uv, z_pred, uv, z_gt, 128, has_3d=torch.tensor([False, False]))
    assert terms["loss_z"].item() == 0.0 and total.item() == 0.0


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    m = build_model("tiny")
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    x = torch.rand(4, 3, 128, 128)
    uv_gt = torch.rand(4, 21, 2) * 100 + 14
    z_gt = torch.randn(4, 21) * 0.3
    losses = []
    for _ in range(15):
        uv, z, _ = m(x)
        loss, _ = latent25d_loss(uv, z, uv_gt, z_gt, 128)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_weights_roundtrip_and_metadata(tmp_path):
    m = build_model("tiny").eval()
    p = tmp_path / "w.pt"
    save_weights(m, p, {"name": "tiny"}, {"recipe": {"steps": 1}})
    loaded = load_weights(p)
    assert loaded.meta["input_size"] == 128
    assert tuple(loaded.meta["keypoint_names"]) == kp.KEYPOINT_NAMES
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        for a, b in zip(m(x), loaded.model(x)):
            torch.testing.assert_close(a, b)


def test_weights_errors_name_the_file(tmp_path):
    with pytest.raises(WeightsError, match="not found.*nope.pt"):
        load_weights(tmp_path / "nope.pt")
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(WeightsError, match="corrupt.pt") as exc:
        load_weights(bad)
    # torch's reason, whole, without its advice to load the file unsafely
    assert "Unsupported operand" in str(exc.value) and "weights_only" not in str(exc.value)
    with pytest.raises(WeightsError, match="is a folder"):
        load_weights(tmp_path)
    other = tmp_path / "other.pt"
    torch.save({"hello": 1}, other)
    with pytest.raises(WeightsError, match="not a hand25d_ros weights file"):
        load_weights(other)
    m = build_model("tiny")
    wrong = tmp_path / "wrong.pt"
    save_weights(m, wrong, {"name": "small"})  # claims an arch it does not fit
    with pytest.raises(WeightsError, match="does not fit"):
        load_weights(wrong)
    garbled = tmp_path / "garbled.pt"
    blob = torch.load(wrong, weights_only=False)
    blob["arch"] = "tiny"  # an arch record that is not a mapping
    torch.save(blob, garbled)
    with pytest.raises(WeightsError, match="garbled.pt does not fit"):
        load_weights(garbled)
    order = tmp_path / "order.pt"
    save_weights(m, order, {"name": "tiny"}, {"keypoint_names": list(reversed(kp.KEYPOINT_NAMES))})
    with pytest.raises(WeightsError, match="keypoint order"):
        load_weights(order)


@pytest.mark.parametrize("blur_sigma_px", [0.0, 1.5])
def test_torchscript_and_onnx_exports_match(tmp_path, blur_sigma_px):
    import onnxruntime as ort
    torch.manual_seed(0)
    m = build_model("tiny", input_blur_sigma_px=blur_sigma_px).eval()
    x = torch.rand(3, 3, 128, 128)
    with torch.no_grad():
        ref = [t.numpy() for t in m(x)]
    ts = torch.jit.load(str(export_torchscript(m, tmp_path / "m.ts", 128)))
    with torch.no_grad():
        out = [t.numpy() for t in ts(x)]
    for a, b in zip(ref, out):
        np.testing.assert_allclose(a, b, atol=1e-4)
    with warnings.catch_warnings():
        # a TracerWarning says the trace may not generalise: an export must not need one
        warnings.simplefilter("error", torch.jit.TracerWarning)
        onnx_path = export_onnx(m, tmp_path / "m.onnx", 128)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"image": x.numpy()})
    for a, b in zip(ref, out):
        np.testing.assert_allclose(a, b, atol=1e-3)


def test_the_torchscript_export_holds_no_device_of_its_own(tmp_path):
    """Traced on the CPU, it must run on the device it is loaded to: a device constant in its
    graph makes that tensor on the CPU whatever the input's device."""
    torch.manual_seed(0)
    m = build_model("tiny").eval()
    ts = torch.jit.load(str(export_torchscript(m, tmp_path / "m.ts", 128)))
    devices = [str(n).strip() for n in ts.inlined_graph.nodes()
               if n.kind() == "prim::Constant" and n.output().type().kind() == "DeviceObjType"]
    assert devices == []
    if torch.cuda.is_available():
        x = torch.rand(2, 3, 128, 128)
        with torch.no_grad():
            ref, out = m(x), ts.cuda()(x.cuda())
        for a, b in zip(ref, out):
            np.testing.assert_allclose(a.numpy(), b.cpu().numpy(), atol=1e-3)

def test_a_torchscript_export_given_as_weights_is_named_as_such(tmp_path):
    m = build_model("tiny")
    save_weights(m, tmp_path / "w.pt", {"name": "tiny"})
    ts = export_torchscript(load_weights(tmp_path / "w.pt").model, tmp_path / "exported.pt", 128)
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # not torch's advice to call torch.jit.load
        with pytest.raises(WeightsError, match=r"exported.pt is a TorchScript model .* give the weights file"):
            load_weights(ts)

def test_weights_with_numpy_and_version_metadata_load_safely(tmp_path):
    m = build_model("tiny")
    p = tmp_path / "w.pt"
    save_weights(m, p, {"name": "tiny"}, {"torch": torch.__version__, "ratios": np.ones(3),
                                          "x": np.float32(1.5)})
    meta = load_weights(p).meta
    assert meta["ratios"] == [1.0, 1.0, 1.0] and meta["x"] == 1.5 and isinstance(meta["torch"], str)


def test_head_keeps_float32_under_bfloat16_autocast():
    """Mixed precision runs the convolutions in bfloat16 (train.cpu_bf16, fp16 on CUDA) but
    not the soft-argmax: in bfloat16 its keypoints would snap to 0.5 px steps near the
    crop's far edge."""
    m = build_model("tiny").eval()
    lat = torch.full((1, 42, 32, 32), -10.0)
    lat[0, :21, 30, 29] = 1.0          # two neighbouring peaks: the keypoint falls between cells
    lat[0, :21, 30, 30] = 1.2
    with torch.no_grad():
        ref = m.head(lat.bfloat16().float())[0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            unguarded = m.head(lat.bfloat16())[0]
            guarded = m._head_fp32(lat.bfloat16())[0]
            uv, z, conf = m(torch.rand(1, 3, 128, 128))
    assert (unguarded.float() - ref).abs().max() > 0.05      # what the guard is for
    assert guarded.dtype == torch.float32 and (guarded - ref).abs().max() < 1e-3
    assert uv.dtype == z.dtype == conf.dtype == torch.float32


def test_input_blur_is_part_of_the_model_and_its_file(tmp_path):
    import cv2
    torch.manual_seed(0)
    blurred = build_model("tiny", input_blur_sigma_px=1.5).eval()
    plain = build_model("tiny").eval()
    plain.load_state_dict(blurred.state_dict())      # the blur adds no parameters
    # the same as blurring the image first (OpenCV, border replicated), then the plain net
    rng = np.random.default_rng(0)
    img = rng.random((128, 128, 3)).astype(np.float32)
    ref = cv2.GaussianBlur(img, (11, 11), 1.5, borderType=cv2.BORDER_REPLICATE)
    to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].contiguous()
    with torch.no_grad():
        for a, b in zip(blurred(to_t(img)), plain(to_t(ref))):
            torch.testing.assert_close(a, b, atol=2e-4, rtol=1e-4)
        # a constant image stays constant up to its border (replicated, not darkened)
        flat = torch.full((1, 3, 128, 128), 0.6)
        torch.testing.assert_close(blurred.latent(flat), plain.latent(flat), atol=1e-5, rtol=1e-5)
    p = tmp_path / "blur.pt"
    save_weights(blurred, p, {"name": "tiny", "input_blur_sigma_px": 1.5})
    loaded = load_weights(p).model.eval()
    assert loaded.input_blur_sigma_px == 1.5
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], blurred(x)[0])
        assert (loaded(x)[0] - plain(x)[0]).abs().max() > 1e-3     # not silently dropped
    ts = torch.jit.load(str(export_torchscript(blurred, tmp_path / "b.ts", 128)))
    with torch.no_grad():
        np.testing.assert_allclose(ts(x)[0].numpy(), blurred(x)[0].numpy(), atol=1e-4)
    for bad in (-1.0, float("nan"), 20.0):
        with pytest.raises(ValueError, match="input_blur_sigma_px"):
            build_model("tiny", input_blur_sigma_px=bad)

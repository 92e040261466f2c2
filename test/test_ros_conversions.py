"""ROS message <-> numpy conversions of the node (hand25d_ros.ros.conversions)."""
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

try:
    import rclpy.serialization  # noqa: F401
    import tf2_msgs.msg  # noqa: F401
except ImportError as exc:  # the CI installs ROS (scripts/install_ros.sh); elsewhere it may be absent
    pytest.skip(f"ROS 2 messages not importable ({exc}); install with scripts/install_ros.sh .venv "
                "and source scripts/ros_env.sh", allow_module_level=True)

import cv2
from rclpy.serialization import deserialize_message, serialize_message
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from hand25d_ros import keypoints as kp
from hand25d_ros.pose_frames import hand_frames
from hand25d_ros.ros import conversions as cv

import raw_encodings as raw

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:lark.*")
# the encodings that hold RGB as it is (the camera encodings are tested below)
ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"]


def header(sec=12, nanosec=345, frame="cam_optical"):
    return Header(stamp=cv.ns_to_stamp(sec * 10**9 + nanosec), frame_id=frame)


def rgb_to_encoding(rgb, enc):
    return {"rgb8": rgb, "bgr8": rgb[..., ::-1], "rgba8": np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)]),
            "bgra8": np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 9, np.uint8)]),
            "mono8": rgb[..., :1]}[enc]


def hand_pose(seed=0):
    """A plausible hand 0.5 m in front of the camera (metres)."""
    rng = np.random.default_rng(seed)
    P = np.zeros((21, 3))
    for f, y in zip(range(1, 5), (-0.03, -0.01, 0.01, 0.03)):
        for j in range(4):
            P[kp.FINGERS[f][j]] = (y, -0.09 - 0.03 * j, 0.0)
    for j in range(4):
        P[1 + j] = (-0.05, -0.02 - 0.03 * j, 0.0)
    return P + rng.normal(0, 0.003, P.shape) + (0.0, 0.05, 0.5)


# ---------------------------------------------------------------------------- time
def test_stamps_round_trip_in_nanoseconds():
    for ns in (0, 1, 999_999_999, 1_000_000_000, 1_700_000_000_123_456_789):
        t = cv.ns_to_stamp(ns)
        assert 0 <= t.nanosec < 10**9 and cv.stamp_to_ns(t) == ns
    d = cv.seconds_to_duration(1.25)
    assert (d.sec, d.nanosec) == (1, 250_000_000)
    assert cv.seconds_to_duration(-3).sec == 0


# ---------------------------------------------------------------------------- images
@settings(max_examples=40, deadline=None)
@given(enc=st.sampled_from(ENCODINGS), h=st.integers(1, 9), w=st.integers(1, 11), pad=st.integers(0, 13),
       seed=st.integers(0, 1000))
def test_image_round_trip_with_row_padding(enc, h, w, pad, seed):
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    if enc == "mono8":
        rgb = np.repeat(rgb[..., :1], 3, axis=2)
    native = rgb_to_encoding(rgb, enc)
    msg = cv.numpy_to_image(native, enc, header(), step=w * native.shape[2] + pad)
    assert msg.step == w * native.shape[2] + pad and len(msg.data) == msg.step * h
    np.testing.assert_array_equal(cv.image_to_numpy(msg), native)
    out = cv.image_to_rgb(msg)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


def test_image_survives_serialization():
    rgb = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    msg = cv.numpy_to_image(rgb[..., ::-1], "bgr8", header(), step=64 * 3 + 16)
    back = deserialize_message(serialize_message(msg), Image)
    np.testing.assert_array_equal(cv.image_to_rgb(back), rgb)
    assert back.header.frame_id == "cam_optical"


def _raw_image(enc="rgb8", h=4, w=5, step=None, nbytes=None):
    c = cv.ENCODING_CHANNELS.get(enc, 3)
    step = w * c if step is None else step
    m = Image(height=h, width=w, encoding=enc, step=step)
    m.data = bytes(step * h if nbytes is None else nbytes)
    return m


@pytest.mark.parametrize("msg, words", [
    (_raw_image(enc="16UC1"), "unsupported image encoding '16UC1'"),
    (_raw_image(enc="32FC1"), "unsupported image encoding '32FC1'"),
    (_raw_image(enc="yuyv", w=5, step=10), "yuyv image of odd width 5: YUV 4:2:2 packs pixels in pairs"),
    (_raw_image(enc="RGB8"), "unsupported"),
    (_raw_image(enc=""), "unsupported"),
    # lying: says rgb8 but each row holds mono8 pixels
    (_raw_image(enc="rgb8", step=5), "step 5 is shorter than one row"),
    (_raw_image(nbytes=4 * 15 - 1), "59 bytes, expected step * height"),
    (_raw_image(nbytes=4 * 15 + 3), "63 bytes"),
    (_raw_image(h=0, w=5, nbytes=0), "empty image"),
    (_raw_image(h=5, w=0, nbytes=0), "empty image"),
    (_raw_image(h=5000, w=5000, step=0, nbytes=0), "exceeds the limit"),
])
def test_bad_images_are_rejected_with_a_reason(msg, words):
    with pytest.raises(cv.MessageError, match=words.replace("(", r"\(").replace("*", r"\*")):
        cv.image_to_rgb(msg)


def _camera_image(enc, rows, h, w, pad):
    """A sensor_msgs/Image as a driver fills it: the encoded rows, ``pad`` junk bytes after each."""
    data, step = raw.pad_rows(rows, pad)
    return Image(height=h, width=w, encoding=enc, step=step, data=data)


@pytest.mark.parametrize("enc, order", [("yuv422", "uyvy"), ("uyvy", "uyvy"), ("yuv422_yuy2", "yuyv"),
                                        ("yuyv", "yuyv")])
@pytest.mark.parametrize("h, w, pad", [(6, 8, 0), (5, 10, 6), (1, 2, 3)])
def test_yuv422_images_decode_to_the_rgb_they_were_made_from(enc, order, h, w, pad):
    # each pixel pair one colour, which 4:2:2 keeps: only the rounding to bytes stands between
    rgb = np.random.default_rng(h * w + pad).integers(0, 256, (h, w // 2, 3), dtype=np.uint8).repeat(2, axis=1)
    out = cv.image_to_rgb(_camera_image(enc, raw.encode_yuv422(rgb, order), h, w, pad))
    assert out.shape == (h, w, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.abs(out.astype(int) - rgb).max() <= 2


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("h, w, pad", [(8, 10, 0), (7, 9, 3), (2, 3, 1), (5, 2, 0)])
def test_bayer_images_keep_every_sample_and_a_flat_colour(pattern, h, w, pad):
    enc = f"bayer_{pattern}8"
    rgb = np.random.default_rng(h * w + pad).integers(0, 256, (h, w, 3), dtype=np.uint8)
    mosaic = raw.encode_bayer(rgb, pattern)
    out = cv.image_to_rgb(_camera_image(enc, mosaic, h, w, pad))
    assert out.shape == (h, w, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    # demosaicing fills in the two missing channels of a pixel, never the one it sampled
    sampled = np.take_along_axis(out, raw.bayer_channel_map(pattern, h, w)[..., None], 2)[..., 0]
    np.testing.assert_array_equal(sampled, mosaic)
    # a flat colour comes back flat, border pixels included (a swapped pattern swaps red and blue)
    flat = np.broadcast_to(np.array([200, 90, 30], np.uint8), (h, w, 3))
    np.testing.assert_array_equal(cv.image_to_rgb(_camera_image(enc, raw.encode_bayer(flat, pattern), h, w, pad)),
                                  flat)


# ---------------------------------------------------------------------------- 16-bit and semi-planar
# where the 16-bit encodings keep their channels (the 8-bit names with 16 for 8)
CHANNELS_16 = {"rgb16": [0, 1, 2], "bgr16": [2, 1, 0], "rgba16": [0, 1, 2, None], "bgra16": [2, 1, 0, None],
               "mono16": [0]}


def _in_channel_order(rgb, enc, alpha):
    """(H, W, 3) -> (H, W, C) in ``enc``'s channel order, ``alpha`` where it has alpha."""
    return np.stack([rgb[..., i] if i is not None else np.full(rgb.shape[:2], alpha, rgb.dtype)
                     for i in CHANNELS_16[enc]], axis=-1)


@pytest.mark.parametrize("enc", list(CHANNELS_16))
@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("h, w, pad", [(4, 6, 0), (3, 5, 7), (1, 1, 2)])
def test_16bit_images_scale_to_8bit_in_either_byte_order(enc, big_endian, h, w, pad):
    v = np.random.default_rng(h * w + pad).integers(0, 65536, (h, w, 3), dtype=np.uint16)
    if enc == "mono16":
        v[..., 1] = v[..., 2] = v[..., 0]
    native = _in_channel_order(v, enc, 1234)
    data, step = raw.pad_rows(raw.samples16(native, big_endian), pad)
    msg = Image(height=h, width=w, encoding=enc, is_bigendian=int(big_endian), step=step, data=data)
    np.testing.assert_array_equal(cv.image_to_numpy(msg), native)
    out = cv.image_to_rgb(msg)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    # full range to full range, rounded: v * 255 / 65535 = v / 257
    np.testing.assert_array_equal(out, np.round(v / 257.0).astype(np.uint8))


def test_16bit_values_map_to_known_8bit_values():
    v = np.array([[0, 128, 129, 257, 32767, 32896, 65406, 65535]], np.uint16)
    msg = Image(height=1, width=8, encoding="mono16", is_bigendian=0, step=16, data=raw.samples16(v, False).tobytes())
    assert cv.image_to_rgb(msg)[0, :, 0].tolist() == [0, 0, 1, 1, 127, 128, 254, 255]
    # the same bytes read big-endian are other numbers: 0x8000 (32768) is 0x0080 (128) swapped
    swapped = Image(height=1, width=1, encoding="mono16", is_bigendian=1, step=2, data=bytes([0x80, 0x00]))
    assert cv.image_to_rgb(swapped)[0, 0].tolist() == [128] * 3
    swapped.is_bigendian = 0
    assert cv.image_to_rgb(swapped)[0, 0].tolist() == [0] * 3


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("h, w, pad", [(8, 10, 0), (7, 9, 3)])
def test_16bit_bayer_images_keep_every_sample_and_a_flat_colour(pattern, big_endian, h, w, pad):
    enc = f"bayer_{pattern}16"
    v = np.random.default_rng(h * w + pad).integers(0, 65536, (h, w, 3), dtype=np.uint16)
    mosaic = raw.encode_bayer(v, pattern)
    data, step = raw.pad_rows(raw.samples16(mosaic, big_endian), pad)
    out = cv.image_to_rgb(Image(height=h, width=w, encoding=enc, is_bigendian=int(big_endian), step=step, data=data))
    assert out.shape == (h, w, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    sampled = np.take_along_axis(out, raw.bayer_channel_map(pattern, h, w)[..., None], 2)[..., 0]
    np.testing.assert_array_equal(sampled, np.round(mosaic / 257.0).astype(np.uint8))
    flat = np.broadcast_to(np.array([200 * 257, 90 * 257, 30 * 257], np.uint16), (h, w, 3))
    data, step = raw.pad_rows(raw.samples16(raw.encode_bayer(flat, pattern), big_endian), pad)
    flat_msg = Image(height=h, width=w, encoding=enc, is_bigendian=int(big_endian), step=step, data=data)
    np.testing.assert_array_equal(cv.image_to_rgb(flat_msg),
                                  np.broadcast_to(np.array([200, 90, 30], np.uint8), (h, w, 3)))


def _semi_planar_image(enc, rgb, pad):
    data, step = raw.pad_planes(*raw.encode_semi_planar(rgb, enc), pad)
    return Image(height=rgb.shape[0], width=rgb.shape[1], encoding=enc, step=step, data=data)


@pytest.mark.parametrize("enc", ["nv12", "nv21", "nv24"])
@pytest.mark.parametrize("h, w, pad", [(6, 8, 0), (4, 10, 6), (2, 2, 3)])
def test_semi_planar_yuv_images_decode_to_the_rgb_they_were_made_from(enc, h, w, pad):
    # 4:2:0 keeps one colour per 2 x 2 block, 4:4:4 every pixel's: only the rounding to bytes
    # stands between
    rng = np.random.default_rng(h * w + pad)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8) if enc == "nv24" else \
        rng.integers(0, 256, (h // 2, w // 2, 3), dtype=np.uint8).repeat(2, axis=0).repeat(2, axis=1)
    out = cv.image_to_rgb(_semi_planar_image(enc, rgb, pad))
    assert out.shape == (h, w, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.abs(out.astype(int) - rgb).max() <= 2


@pytest.mark.parametrize("h, w, pad", [(3, 5, 2), (1, 1, 0), (7, 2, 1)])
def test_nv24_of_odd_size_decodes(h, w, pad):
    """4:4:4 has a chroma pair per pixel, so any size is whole (unlike 4:2:0)."""
    rgb = np.random.default_rng(h * w + pad).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = cv.image_to_rgb(_semi_planar_image("nv24", rgb, pad))
    assert out.shape == (h, w, 3) and np.abs(out.astype(int) - rgb).max() <= 2


@pytest.mark.parametrize("enc", ["nv12", "nv21", "nv24"])
def test_semi_planar_yuv_known_colours(enc):
    """Video-range BT.601 by hand: Y 16..235, chroma 16..240 around 128, as the cameras send."""
    colours = {(235, 128, 128): (255, 255, 255), (16, 128, 128): (0, 0, 0), (126, 128, 128): (128, 128, 128),
               (81, 90, 240): (255, 0, 0), (145, 54, 34): (0, 255, 0), (41, 240, 110): (0, 0, 255)}
    h, w = 2, 4
    pairs = h * w if enc == "nv24" else (h // 2) * (w // 2)
    for (y, cb, cr), rgb in colours.items():
        first, second = (cr, cb) if enc == "nv21" else (cb, cr)
        msg = Image(height=h, width=w, encoding=enc, step=w, data=bytes([y] * h * w + [first, second] * pairs))
        out = cv.image_to_rgb(msg)
        assert np.abs(out.astype(int) - rgb).max() <= 2, (enc, (y, cb, cr), out[0, 0].tolist(), rgb)


@pytest.mark.parametrize("msg, words", [
    # 4:2:0 pairs rows and columns
    (Image(height=4, width=5, encoding="nv12", step=5, data=bytes(30)), "nv12 image of odd width 5"),
    (Image(height=3, width=4, encoding="nv21", step=4, data=bytes(18)), "nv21 image of odd height 3"),
    # the luma plane only (a driver that forgot the chroma), or the chroma of 4:2:0 under nv24
    (Image(height=4, width=6, encoding="nv12", step=6, data=bytes(24)),
     "nv12 image data has 24 bytes, expected 36: a luma plane of 4 rows of step 6 bytes, then a chroma plane "
     "of 2 rows of 6 bytes"),
    (Image(height=4, width=6, encoding="nv24", step=6, data=bytes(36)),
     "nv24 image data has 36 bytes, expected 72: a luma plane of 4 rows of step 6 bytes, then a chroma plane "
     "of 4 rows of 2 * step = 12 bytes"),
    (Image(height=4, width=6, encoding="nv12", step=4, data=bytes(24)), "step 4 is shorter than one row of 6 nv12"),
    # 16 bit: two bytes a channel
    (Image(height=2, width=5, encoding="rgb16", step=15, data=bytes(30)), "step 15 is shorter than one row of 5 rgb16 "
                                                                          "pixels (30 bytes)"),
    (Image(height=2, width=5, encoding="mono16", step=10, data=bytes(19)), "19 bytes, expected step * height"),
    (Image(height=2, width=3, encoding="bayer_rggb16", step=3, data=bytes(6)), "step 3 is shorter than one row"),
])
def test_bad_16bit_and_semi_planar_images_are_rejected_with_a_reason(msg, words):
    with pytest.raises(cv.MessageError, match=re.escape(words)):
        cv.image_to_rgb(msg)


def test_semi_planar_planes_come_as_opencv_reads_them():
    """image_to_numpy gives the planes without their padding, one after the other, W bytes a row."""
    rgb = np.random.default_rng(3).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    for enc in ("nv12", "nv24"):
        luma, chroma = raw.encode_semi_planar(rgb, enc)
        for pad in (0, 5):
            planes = cv.image_to_numpy(_semi_planar_image(enc, rgb, pad))
            np.testing.assert_array_equal(planes[..., 0], np.concatenate([luma, chroma.reshape(-1, 6)]))


def test_numpy_to_image_writes_16bit_little_endian():
    v = np.random.default_rng(4).integers(0, 65536, (3, 4, 3), dtype=np.uint16)
    msg = cv.numpy_to_image(v, "rgb16", header(), step=4 * 6 + 3)
    assert msg.step == 27 and msg.is_bigendian == 0 and len(msg.data) == 27 * 3
    assert bytes(msg.data)[:6] == raw.samples16(v, False).tobytes()[:6]
    np.testing.assert_array_equal(cv.image_to_numpy(msg), v)
    np.testing.assert_array_equal(cv.image_to_rgb(msg), np.round(v / 257.0).astype(np.uint8))
    with pytest.raises(cv.MessageError, match=r"rgb16 needs an \(H, W, 3\) uint16 array"):
        cv.numpy_to_image(v.astype(np.uint8), "rgb16")
    with pytest.raises(cv.MessageError, match="nv12 is semi-planar"):
        cv.numpy_to_image(np.zeros((2, 2, 1), np.uint8), "nv12")


def test_numpy_to_image_checks_its_input():
    with pytest.raises(cv.MessageError, match="needs an"):
        cv.numpy_to_image(np.zeros((2, 2, 3), np.float32), "rgb8")
    with pytest.raises(cv.MessageError, match="shorter"):
        cv.numpy_to_image(np.zeros((2, 2, 3), np.uint8), "rgb8", step=5)
    with pytest.raises(cv.MessageError, match="unsupported"):
        cv.numpy_to_image(np.zeros((2, 2, 3), np.uint8), "32FC3")
    assert cv.numpy_to_image(np.zeros((2, 3), np.uint8), "mono8").step == 3


def test_compressed_images_decode_to_rgb():
    rgb = np.random.default_rng(2).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", rgb[..., ::-1])
    msg = CompressedImage(header=header(), format="png")
    msg.data = png.tobytes()
    np.testing.assert_array_equal(cv.compressed_to_rgb(msg), rgb)
    for data, words in ((b"", "no data"), (b"not an image at all", "cannot decode")):
        bad = CompressedImage(format="jpeg")
        bad.data = data
        with pytest.raises(cv.MessageError, match=words):
            cv.compressed_to_rgb(bad)
    with pytest.raises(cv.MessageError, match="exceeds"):
        cv.compressed_to_rgb(msg, max_pixels=100)


@pytest.mark.parametrize("data", [
    b"PF\n0 4\n-1\n" + bytes(48),        # PFM of width 0
    b"PF\n4 -4\n-1\n" + bytes(192),      # PFM of negative height
    b"P7\nWIDTH 0\nHEIGHT 4\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n" + bytes(48),   # PAM of width 0
], ids=["pfm_width_0", "pfm_negative_height", "pam_width_0"])
def test_a_compressed_image_whose_header_opencv_refuses_is_a_message_error(data):
    """OpenCV's decoders raise cv2.error (no ValueError) on some headers instead of returning None;
    it left compressed_to_rgb, and the node's image callback, which drops MessageError only."""
    msg = CompressedImage(format="pfm")
    msg.data = data
    with pytest.raises(cv.MessageError, match=r"cannot decode compressed image \('pfm', \d+ bytes\).*size"):
        cv.compressed_to_rgb(msg)


def test_a_png_chunk_longer_than_the_message_is_refused_before_decoding(monkeypatch):
    """A 1.4 kB PNG whose IDAT chunk declares 4 GB made OpenCV allocate the 4 GB and take
    seconds before it gave up: a chunk that runs past the data is refused first."""
    import hand25d_ros.messages as messages
    ok, png = cv2.imencode(".png", np.zeros((20, 30, 3), np.uint8))
    data = bytearray(png.tobytes())
    assert data[37:41] == b"IDAT"
    data[33:37] = (0xF5000000).to_bytes(4, "big")
    msg = CompressedImage(format="png")
    msg.data = bytes(data)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a PNG whose chunk runs past the end of the data")
    monkeypatch.setattr(messages.cv2, "imdecode", no_decoding)
    with pytest.raises(cv.MessageError, match=r"PNG chunk b'IDAT' at byte 33 declares 4110417920 bytes"):
        cv.compressed_to_rgb(msg)
    # chunks as they should be pass the check (trailing bytes after IEND are OpenCV's business)
    monkeypatch.undo()
    msg.data = png.tobytes() + b"\x00" * 5
    assert cv.compressed_to_rgb(msg).shape == (20, 30, 3)


def test_a_compressed_image_too_large_is_refused_before_decoding(monkeypatch):
    """A few kilobytes of PNG can decode to gigabytes: the header's size decides first."""
    import hand25d_ros.messages as messages
    ok, png = cv2.imencode(".png", np.zeros((3000, 2000), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    msg = CompressedImage(format="png")
    msg.data = png.tobytes()
    assert len(msg.data) < 50_000

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded an image the header already showed too large")
    monkeypatch.setattr(messages.cv2, "imdecode", no_decoding)
    with pytest.raises(cv.MessageError, match="2000 x 3000 pixels exceeds the limit of 1000000"):
        cv.compressed_to_rgb(msg, max_pixels=1_000_000)


def radiance_rle(width, height):
    """A Radiance HDR image of one colour, run-length coded: about 8 bytes per 127 pixels."""
    line = bytes([2, 2, width >> 8, width & 255])
    runs, left = b"", width
    while left:
        n = min(127, left)
        runs, left = runs + bytes([128 + n, 128]), left - n
    return b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n" % (height, width) + (line + runs * 4) * height


def test_a_radiance_hdr_image_too_large_is_refused_before_decoding(monkeypatch):
    """Pillow does not read Radiance HDR, so its size went unjudged: 1.6 MB of run-length
    coded HDR decoded to a 5000 x 5000 float image (360 MB more memory) before the size was
    refused. Its text header gives the size."""
    import hand25d_ros.messages as messages
    small = CompressedImage(format="hdr")
    small.data = radiance_rle(40, 30)
    assert cv.compressed_to_rgb(small).shape == (30, 40, 3)
    msg = CompressedImage(format="hdr")
    msg.data = radiance_rle(5000, 5000)[:100_000]   # the header says it all

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded an image the header already showed too large")
    monkeypatch.setattr(messages.cv2, "imdecode", no_decoding)
    with pytest.raises(cv.MessageError, match="5000 x 5000 pixels exceeds the limit of 1000000"):
        cv.compressed_to_rgb(msg, max_pixels=1_000_000)


# ---------------------------------------------------------------------------- intrinsics
K0 = np.array([[500.0, 0, 320], [0, 505.0, 240], [0, 0, 1]])


def test_rectified_uses_P_and_raw_uses_K_with_distortion():
    info = cv.intrinsics_to_camera_info(K0, 640, 480, header(), D=[0.1, -0.05, 0, 0, 0.01])
    P = np.zeros((3, 4))
    P[:, :3] = [[480.0, 0, 310], [0, 481.0, 250], [0, 0, 1]]
    info.p = P.ravel().tolist()
    K, D, model = cv.camera_info_to_intrinsics(info, "rectified")
    np.testing.assert_array_equal(K, P[:, :3])
    assert D is None
    K, D, model = cv.camera_info_to_intrinsics(info, "raw")
    np.testing.assert_array_equal(K, K0)
    np.testing.assert_array_equal(D, [0.1, -0.05, 0, 0, 0.01])
    assert model == "plumb_bob"
    assert cv.expected_image_size(info) == (640, 480)
    assert cv.expected_image_size(CameraInfo()) is None


@pytest.mark.parametrize("source", ["rectified", "raw"])
@pytest.mark.parametrize("edit, words", [
    (lambda M: M * 0, "focal lengths"),
    (lambda M: np.where(np.arange(M.size).reshape(M.shape) == 0, np.nan, M), "NaN or inf"),
    (lambda M: np.where(np.arange(M.size).reshape(M.shape) == 4, np.inf, M), "NaN or inf"),
    (lambda M: np.where(np.arange(M.size).reshape(M.shape) == 0, -500.0, M), "focal lengths"),
])
def test_bad_camera_info_is_rejected(source, edit, words):
    info = cv.intrinsics_to_camera_info(K0, 640, 480)
    if source == "rectified":
        info.p = edit(np.asarray(info.p)).tolist()
    else:
        info.k = edit(np.asarray(info.k)).tolist()
    with pytest.raises(cv.MessageError, match=words):
        cv.camera_info_to_intrinsics(info, source)


def test_more_bad_camera_info():
    info = cv.intrinsics_to_camera_info(K0, 640, 480, D=[np.nan, 0, 0, 0, 0])
    with pytest.raises(cv.MessageError, match="CameraInfo.d contains non-finite"):
        cv.camera_info_to_intrinsics(info, "raw")
    info = cv.intrinsics_to_camera_info(K0, 640, 480, distortion_model="fancy_model")
    with pytest.raises(cv.MessageError, match="unsupported distortion model 'fancy_model'"):
        cv.camera_info_to_intrinsics(info, "raw")
    info = cv.intrinsics_to_camera_info(K0, 640, 480)
    info.k = [500.0, 0, 320, 0, 505.0, 240, 0, 0, 2.0]
    with pytest.raises(cv.MessageError, match="not a camera matrix"):
        cv.camera_info_to_intrinsics(info, "raw")
    with pytest.raises(cv.MessageError, match="intrinsics source"):
        cv.camera_info_to_intrinsics(info, "projection")


@pytest.mark.parametrize("source", ["rectified", "raw"])
@pytest.mark.parametrize("K, words", [
    ([[1.25, 0, 0.5], [0, 1.7, 0.5], [0, 0, 1]], "field of view"),       # normalised intrinsics
    ([[0.0036, 0, 0.0018], [0, 0.0036, 0.0013], [0, 0, 1]], "field of view"),   # metres
    ([[1e6, 0, 320], [0, 1e6, 240], [0, 0, 1]], "field of view"),
    ([[500, 0, -1e42], [0, 505, 240], [0, 0, 1]], "principal point cx"),   # once published inf
    ([[500, 0, 320], [0, 505, 1e6], [0, 0, 1]], "principal point cy"),
    ([[500, 1e6, 320], [0, 505, 240], [0, 0, 1]], "skew"),
])
def test_camera_matrix_no_camera_has_is_rejected(source, K, words):
    """A K that cannot be this camera's (units, another image's) is refused with the reason,
    also when the CameraInfo leaves its size to the image."""
    info = cv.intrinsics_to_camera_info(np.asarray(K, float), 640, 480)
    with pytest.raises(cv.MessageError, match=words):
        cv.camera_info_to_intrinsics(info, source)
    info.width = info.height = 0
    cv.camera_info_to_intrinsics(info, source)    # nothing to judge it by
    with pytest.raises(cv.MessageError, match=words):
        cv.camera_info_to_intrinsics(info, source, image_size=(640, 480))


def test_the_bundled_frames_pass_the_camera_check():
    """Their principal points lie well off-centre (crops of a larger view): the demo sends
    them to the node, which must take them."""
    import json
    from hand25d_ros._checks import check_camera_intrinsics
    from hand25d_ros.ros.demo import bundled_samples_dir
    ann = json.loads((bundled_samples_dir() / "annotations.json").read_text())
    samples = ann["samples"] if isinstance(ann, dict) else ann
    assert samples
    for s in samples:
        h, w = cv2.imread(str(bundled_samples_dir() / s["image"])).shape[:2]
        check_camera_intrinsics(np.asarray(s["K"]), w, h, s["image"])


@pytest.mark.parametrize("model, n, ok", [
    ("plumb_bob", 5, True), ("plumb_bob", 4, True), ("plumb_bob", 8, True), ("plumb_bob", 0, True),
    ("plumb_bob", 3, False), ("plumb_bob", 6, False), ("rational_polynomial", 8, True),
    ("rational_polynomial", 7, False), ("equidistant", 4, True), ("equidistant", 5, False),
])
def test_distortion_coefficients_must_fit_the_model(model, n, ok):
    info = cv.intrinsics_to_camera_info(K0, 640, 480, D=[0.01] * n, distortion_model=model)
    if ok:
        _, D, got = cv.camera_info_to_intrinsics(info, "raw")
        assert got == model and D.size == n
    else:
        with pytest.raises(cv.MessageError, match=f"{model} distortion needs .* coefficients, CameraInfo.d has {n}"):
            cv.camera_info_to_intrinsics(info, "raw")


def test_binning_and_roi_give_the_intrinsics_of_the_published_image():
    info = cv.intrinsics_to_camera_info(K0, 640, 480)
    info.binning_x = info.binning_y = 2
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 100, 40, 400, 300
    K, _, _ = cv.camera_info_to_intrinsics(info, "rectified")
    np.testing.assert_allclose(K, [[250.0, 0, 110], [0, 252.5, 100], [0, 0, 1]])
    assert cv.expected_image_size(info) == (200, 150)
    # a pixel of the full image maps to the binned ROI image the same way through both K
    X = np.array([0.05, -0.02, 0.6])
    full = (K0 @ X)[:2] / X[2]
    binned = (K @ X)[:2] / X[2]
    np.testing.assert_allclose(binned, (full - (100, 40)) / 2)


@pytest.mark.parametrize("roi", [(2000, 0, 640, 480), (600, 0, 100, 100), (0, 400, 640, 100)])
def test_a_roi_outside_the_sensor_is_rejected(roi):
    """The principal point was judged before the ROI moved it: a ROI past the sensor's edge
    (x_offset 2000 of a 640 px sensor) put it 1680 px left of the published image, and the
    node lifted hands with that K instead of dropping the CameraInfo."""
    info = cv.intrinsics_to_camera_info(K0, 640, 480)
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = roi
    for source in ("rectified", "raw"):
        with pytest.raises(cv.MessageError, match=r"CameraInfo roi .* reaches past its 640 x 480 sensor"):
            cv.camera_info_to_intrinsics(info, source)
    info.width = info.height = 0    # no sensor size to judge it by
    cv.camera_info_to_intrinsics(info, "rectified")


# ---------------------------------------------------------------------------- keypoint outputs
def test_keypoint_cloud_layout_and_round_trip():
    P = hand_pose()
    uv = np.random.default_rng(0).uniform(0, 640, (21, 2))
    conf = np.linspace(0, 1, 21)
    msg = cv.keypoints_to_cloud(header(), P, uv, conf)
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 21, 36, 36 * 21)
    # the single-hand fields keep their offsets; hand_id and is_left follow
    assert [f.name for f in msg.fields] == ["x", "y", "z", "u", "v", "confidence", "id", "hand_id", "is_left"]
    assert [f.offset for f in msg.fields] == [0, 4, 8, 12, 16, 20, 24, 28, 32]
    assert [f.datatype for f in msg.fields] == [PointField.FLOAT32] * 6 + [PointField.UINT32] * 2 + [PointField.INT8]
    assert all(f.count == 1 for f in msg.fields) and not msg.is_bigendian and msg.is_dense
    back = cv.cloud_to_array(deserialize_message(serialize_message(msg), PointCloud2))
    np.testing.assert_array_equal(back["id"], np.arange(21))
    assert set(back["hand_id"].tolist()) == {0} and set(back["is_left"].tolist()) == {-1}
    np.testing.assert_allclose(np.stack([back["x"], back["y"], back["z"]], 1), P, atol=1e-7)
    np.testing.assert_allclose(np.stack([back["u"], back["v"]], 1), uv, rtol=1e-6)
    np.testing.assert_allclose(back["confidence"], conf, atol=1e-7)
    assert msg.header.frame_id == "cam_optical" and msg.header.stamp.nanosec == 345


def test_a_keypoint_beyond_float32_makes_the_cloud_not_dense():
    """The cloud's float32 cannot hold 1e39: it holds inf, and is_dense, computed from the
    float64 input, said True (every point valid) for a cloud with an inf in it."""
    P = hand_pose()
    P[8, 2] = 1e39
    msg = cv.keypoints_to_cloud(header(), P, np.zeros((21, 2)), np.ones(21))
    back = cv.cloud_to_array(msg)
    assert np.isinf(back["z"][8]) and not msg.is_dense
    assert cv.keypoints_to_cloud(header(), hand_pose(), np.zeros((21, 2)), np.ones(21)).is_dense


def test_pose_array_and_palm_pose_carry_the_documented_orientations():
    P = hand_pose(1)
    frames = hand_frames(P)
    pa = cv.keypoints_to_pose_array(header(), P, frames)
    assert len(pa.poses) == 21 and pa.header.frame_id == "cam_optical"
    for k, pose in enumerate(pa.poses):
        np.testing.assert_allclose([pose.position.x, pose.position.y, pose.position.z], P[k])
        o = pose.orientation
        R = Rotation.from_quat([o.x, o.y, o.z, o.w]).as_matrix()
        np.testing.assert_allclose(R, frames.joint_rotations[k], atol=1e-9)
        if k in (5, 6, 7):  # x points to the next joint of the finger
            d = P[k + 1] - P[k]
            np.testing.assert_allclose(R[:, 0], d / np.linalg.norm(d), atol=1e-9)
    ps = cv.palm_to_pose_stamped(header(), frames)
    np.testing.assert_allclose([ps.pose.position.x, ps.pose.position.y, ps.pose.position.z], (P[0] + P[5] + P[17]) / 3)
    o = ps.pose.orientation
    np.testing.assert_allclose(Rotation.from_quat([o.x, o.y, o.z, o.w]).as_matrix(), frames.palm_rotation, atol=1e-9)


def _matrix(tf):
    r, t = tf.transform.rotation, tf.transform.translation
    M = np.eye(4)
    M[:3, :3] = Rotation.from_quat([r.x, r.y, r.z, r.w]).as_matrix()
    M[:3, 3] = (t.x, t.y, t.z)
    return M


def test_tf_chains_palm_and_keypoints_to_the_camera_frame():
    P = hand_pose(2)
    frames = hand_frames(P)
    msg = cv.hand_to_tf(header(), P, frames, prefix="left/")
    msg = deserialize_message(serialize_message(msg), tf2_msgs.msg.TFMessage)
    tfs = {t.child_frame_id: t for t in msg.transforms}
    assert len(msg.transforms) == 22 and len(tfs) == 22
    palm = tfs["left/palm"]
    assert palm.header.frame_id == "cam_optical"
    assert palm.header.stamp.sec == 12 and palm.header.stamp.nanosec == 345
    M_palm = _matrix(palm)
    for k, name in enumerate(kp.KEYPOINT_NAMES):
        t = tfs[f"left/{name}"]
        assert t.header.frame_id == "left/palm" and t.header.stamp == palm.header.stamp
        M = M_palm @ _matrix(t)
        np.testing.assert_allclose(M[:3, 3], P[k], atol=1e-9)
        np.testing.assert_allclose(M[:3, :3], frames.joint_rotations[k], atol=1e-9)
    assert cv.keypoint_frame_names("")[8] == "index_tip" and cv.palm_frame_name("r_") == "r_palm"


def test_markers_spheres_bones_by_finger_palm_arrow_and_delete_all():
    P = hand_pose(3)
    frames = hand_frames(P)
    ma = cv.hand_to_markers(header(), P, frames, joint_radius_m=0.01, bone_width_m=0.005, lifetime_s=0.25)
    joints, bones, palm = ma.markers
    assert (joints.type, bones.type, palm.type) == (Marker.SPHERE_LIST, Marker.LINE_LIST, Marker.ARROW)
    assert {m.ns for m in ma.markers} == {"joints", "bones", "palm"}
    for m in ma.markers:
        assert m.action == Marker.ADD and m.header.frame_id == "cam_optical"
        assert (m.lifetime.sec, m.lifetime.nanosec) == (0, 250_000_000)
        assert m.pose.orientation.w == 1.0
    assert len(joints.points) == 21 and joints.scale.x == pytest.approx(0.02)
    assert len(bones.points) == 40 and len(bones.colors) == 40
    for i, (child, parent) in enumerate(kp.BONES):
        c = bones.colors[2 * i]
        assert (c.r, c.g, c.b) == pytest.approx(kp.keypoint_color_rgb(child))
        assert bones.points[2 * i + 1].x == pytest.approx(P[child][0])
    thumb_tip = joints.colors[4]
    assert (thumb_tip.r, thumb_tip.g, thumb_tip.b) == pytest.approx(kp.FINGER_COLORS_RGB[0])
    a, b = palm.points
    d = np.array([b.x - a.x, b.y - a.y, b.z - a.z])
    np.testing.assert_allclose(d, 0.05 * frames.palm_rotation[:, 2], atol=1e-9)
    deserialize_message(serialize_message(ma), type(ma))
    gone = cv.delete_all_markers(header())
    assert len(gone.markers) == 1 and gone.markers[0].action == Marker.DELETEALL
    assert cv.hand_to_markers(header(), P, frames, lifetime_s=0).markers[0].lifetime.sec == 0


# ---------------------------------------------------------------------------- several hands
def _hands():
    out = []
    for i, (hand_id, is_left) in enumerate(((7, True), (9, False), (12, None))):
        P = hand_pose(10 + i) + (0.1 * i, 0.0, 0.0)
        uv = np.random.default_rng(i).uniform(0, 640, (21, 2))
        out.append(cv.HandOutput(hand_id, is_left, P, uv, np.full(21, 0.5 + 0.1 * i), hand_frames(P)))
    return out


def test_several_hands_share_one_cloud_pose_array_and_tf_message_in_one_order():
    hands = _hands()
    cloud = deserialize_message(serialize_message(cv.hands_to_cloud(header(), hands)), PointCloud2)
    a = cv.cloud_to_array(cloud)
    assert cloud.width == 63 and a["hand_id"].tolist() == [7] * 21 + [9] * 21 + [12] * 21
    assert a["is_left"].tolist() == [1] * 21 + [0] * 21 + [-1] * 21
    np.testing.assert_array_equal(a["id"], np.tile(np.arange(21), 3))
    np.testing.assert_allclose(np.stack([a["x"], a["y"], a["z"]], 1), np.concatenate([h.xyz_m for h in hands]),
                               atol=1e-7)
    poses = cv.hands_to_pose_array(header(), hands)
    assert len(poses.poses) == 63
    palms = cv.palms_to_pose_array(header(), hands)
    for pose, h in zip(palms.poses, hands):
        np.testing.assert_allclose([pose.position.x, pose.position.y, pose.position.z], h.frames.palm_origin)
    tf = cv.hands_to_tf(header(), hands, prefix="hand_")
    names = {t.child_frame_id: t.header.frame_id for t in tf.transforms}
    assert len(tf.transforms) == 66 and names["hand_9_palm"] == "cam_optical"
    assert names["hand_9_index_tip"] == "hand_9_palm" and names["hand_12_wrist"] == "hand_12_palm"
    assert cv.hands_to_cloud(header(), []).width == 0


def test_markers_per_hand_id_with_labels_and_deletes_for_lost_hands():
    hands = _hands()[:2]
    ma = cv.hands_to_markers(header(), hands, gone_ids={3}, lifetime_s=0.25)
    deserialize_message(serialize_message(ma), type(ma))
    added = {m.ns: m for m in ma.markers if m.action == Marker.ADD}
    assert set(added) == {f"hand{i}/{ns}" for i in (7, 9) for ns in cv.MARKER_NAMESPACES}
    assert added["hand7/label"].text == "hand 7 left" and added["hand9/label"].text == "hand 9 right"
    assert added["hand7/label"].type == Marker.TEXT_VIEW_FACING and added["hand7/label"].scale.z > 0
    deleted = [m for m in ma.markers if m.action == Marker.DELETE]
    assert {m.ns for m in deleted} == {f"hand3/{ns}" for ns in cv.MARKER_NAMESPACES}
    assert cv.hand_label(_hands()[2]) == "hand 12"


class _NS:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def _detection(cx, cy, w, h, scores=(), vision_msgs_4=True):
    pos = _NS(x=cx, y=cy)
    center = _NS(position=pos, theta=0.0) if vision_msgs_4 else _NS(x=cx, y=cy, theta=0.0)
    results = [_NS(hypothesis=_NS(class_id="hand", score=s)) if vision_msgs_4 else _NS(id=0, score=s) for s in scores]
    return _NS(bbox=_NS(center=center, size_x=w, size_y=h), results=results)


@pytest.mark.parametrize("v4", [True, False])
def test_rois_from_detection2d_arrays_of_both_vision_msgs_layouts(v4):
    msg = _NS(header=header(), detections=[_detection(50.0, 60.0, 20.0, 30.0, (0.2, 0.9), v4),
                                           _detection(10.0, 10.0, 4.0, 4.0, (), v4)])
    (box1, s1), (box2, s2) = cv.rois_from_msg(msg)
    assert box1 == (40.0, 45.0, 20.0, 30.0) and s1 == 0.9
    assert box2 == (8.0, 8.0, 4.0, 4.0) and np.isnan(s2)


def test_rois_from_polygon_pairs_of_corners():
    msg = cv.boxes_to_polygon(header(), [(10, 20, 30, 40), (100, 50, 5, 6)])
    assert [b for b, _ in cv.rois_from_msg(msg)] == [(10.0, 20.0, 30.0, 40.0), (100.0, 50.0, 5.0, 6.0)]
    msg.polygon.points = list(msg.polygon.points)[:3]   # an unpaired point: a NaN box
    out = cv.rois_from_msg(msg)
    assert len(out) == 2 and np.all(np.isnan(out[1][0]))
    swapped = cv.boxes_to_polygon(header(), [(10, 20, 30, 40)])
    swapped.polygon.points = list(reversed(swapped.polygon.points))
    assert cv.rois_from_msg(swapped)[0][0] == (10.0, 20.0, 30.0, 40.0)


def test_clean_rois_clips_rejects_and_keeps_the_best():
    nan = float("nan")
    res = cv.clean_rois([((10, 10, 50, 50), nan), ((-20, -20, 40, 40), nan), ((700, 10, 20, 20), nan),
                         ((10, 10, 0, 20), nan), ((nan, 0, 5, 5), nan), ((630, 10, 12, 12), nan),
                         ((100, 100, 2, 2), nan)], 640, 480, max_hands=5)
    assert res.boxes == [(10.0, 10.0, 50.0, 50.0), (-0.5, -0.5, 20.5, 20.5), (630.0, 10.0, 9.5, 12.0)]
    assert (res.bad, res.outside, res.extra) == (3, 1, 0)
    # too many: the best scores when all have one, else the largest
    boxes = [((0, 0, 10, 10), 0.9), ((20, 0, 30, 30), 0.1), ((60, 0, 20, 20), 0.5)]
    assert cv.clean_rois(boxes, 640, 480, 2).boxes == [(0, 0, 10, 10), (60, 0, 20, 20)]
    res = cv.clean_rois([(b, nan) for b, _ in boxes], 640, 480, 2)
    assert res.boxes == [(20, 0, 30, 30), (60, 0, 20, 20)] and res.extra == 1


def test_the_demo_finds_a_pip_installs_share_files_without_a_ros_environment(tmp_path, monkeypatch):
    """pip puts config/ under <prefix>/share/hand25d_ros; with no ament index sourced the demo
    ran its node without the params and DDS profile files and lost half its frames."""
    import sys
    from hand25d_ros.ros import demo
    share = tmp_path / "share" / "hand25d_ros" / "config"
    share.mkdir(parents=True)
    (share / "only_installed.yaml").write_text("x: 1\n")
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert demo._find_share_file("config", "only_installed.yaml") == share / "only_installed.yaml"
    assert demo._find_share_file("config", "hand25d.yaml").is_file()          # the source tree's first
    assert demo._find_share_file("config", "nowhere.yaml") is None


def _reference_pose(p, q):
    from geometry_msgs.msg import Point, Pose, Quaternion
    return Pose(position=Point(x=float(p[0]), y=float(p[1]), z=float(p[2])),
                orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])))


def _numbers(msg) -> np.ndarray:
    """Every position/translation and orientation number of a pose or TF message, in order."""
    if hasattr(msg, "transforms"):
        parts = [(t.transform.translation, t.transform.rotation) for t in msg.transforms]
    else:
        parts = [(p.position, p.orientation) for p in (msg.poses if hasattr(msg, "poses") else [msg.pose])]
    return np.array([[v.x, v.y, v.z, q.x, q.y, q.z, q.w] for v, q in parts], dtype=np.float64)


def test_pose_and_tf_messages_equal_a_field_by_field_reference_bit_for_bit():
    # the fast builders (fields filled in place, quaternions from one cached call per hand) must
    # give the numbers of messages built the plain way, one conversion per rotation
    import json
    from importlib import resources
    from geometry_msgs.msg import PoseArray, PoseStamped, Quaternion, TransformStamped, Vector3
    from tf2_msgs.msg import TFMessage
    from hand25d_ros.pose_frames import rotation_to_quaternion
    ann = json.loads((resources.files("hand25d_ros") / "samples" / "annotations.json").read_text())["samples"]
    hd = header()
    for a, b in zip(ann[0::2], ann[1::2]):       # two real hands a frame
        hands = []
        for i, s in enumerate((a, b)):
            xyz = np.array(s["joints_3d_mm"]) / 1000.0
            hands.append(cv.HandOutput(3 + i, bool(s["is_left"]), xyz, np.array(s["joints_2d_px"]), np.full(21, 0.8),
                                       hand_frames(xyz)))
        ref_poses, ref_palms, ref_tf = [], [], []
        for h in hands:
            f = h.frames
            R_p, o_p = f.palm_rotation, f.palm_origin
            ref_poses += [_reference_pose(p, rotation_to_quaternion(R)) for p, R in zip(h.xyz_m, f.joint_rotations)]
            ref_palms.append(_reference_pose(o_p, rotation_to_quaternion(R_p)))
            palm = f"hand_{h.prefix}palm"

            def tf(parent_header, child, t, q):
                msg = TransformStamped(header=parent_header, child_frame_id=child)
                msg.transform.translation = Vector3(x=float(t[0]), y=float(t[1]), z=float(t[2]))
                msg.transform.rotation = Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))
                return msg
            ref_tf.append(tf(hd, palm, o_p, rotation_to_quaternion(R_p)))
            child = Header(stamp=hd.stamp, frame_id=palm)
            # the translations as hand_to_tf computes them: a matmul row by row rounds otherwise
            t_rel = (h.xyz_m - o_p) @ R_p
            for name, t, R in zip(kp.KEYPOINT_NAMES, t_rel, f.joint_rotations):
                ref_tf.append(tf(child, f"hand_{h.prefix}{name}", t, rotation_to_quaternion(R_p.T @ R)))
        pairs = [(cv.hands_to_pose_array(hd, hands), PoseArray(header=hd, poses=ref_poses)),
                 (cv.palms_to_pose_array(hd, hands), PoseArray(header=hd, poses=ref_palms)),
                 (cv.palm_to_pose_stamped(hd, hands[0].frames), PoseStamped(header=hd, pose=ref_palms[0])),
                 (cv.hands_to_tf(hd, hands), TFMessage(transforms=ref_tf))]
        for fast, ref in pairs:
            assert fast == ref
            # == compares every field; the bits too, which == does not (-0.0 == 0.0)
            np.testing.assert_array_equal(_numbers(fast).view(np.int64), _numbers(ref).view(np.int64))

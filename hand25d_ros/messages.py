"""ROS message contents -> numpy, without ROS: images and camera intrinsics.

The functions read a message's fields only (``encoding``, ``height``, ``step``, ``data``;
``p``, ``k``, ``d``, ``roi``, ``binning_x`` ...), so they take rclpy messages (the node,
``ros/conversions.py``) and rosbags' deserialised ones (``bag.py``) alike. Bad input raises
``MessageError`` (a ValueError) that says what was expected and what came.
"""
from __future__ import annotations

import io
import re
import struct
import warnings

import cv2
import numpy as np

from ._checks import check_camera_intrinsics, check_distortion

# channels of each supported encoding (sensor_msgs/image_encodings.hpp names): the last axis of
# image_to_numpy's array; one byte each, two for SIXTEEN_BIT_ENCODINGS
ENCODING_CHANNELS: dict[str, int] = {
    "rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1,
    "rgb16": 3, "bgr16": 3, "rgba16": 4, "bgra16": 4, "mono16": 1,
    # packed YUV 4:2:2, two pixels in four bytes (V4L2's UYVY and YUYV; "yuv422" and
    # "yuv422_yuy2" are ROS' older, deprecated names of the same two)
    "uyvy": 2, "yuv422": 2, "yuyv": 2, "yuv422_yuy2": 2,
    # semi-planar YUV (V4L2's NV12, NV21, NV24): a plane of Y, one byte a pixel, which ``step``
    # describes, then a plane of interleaved chroma pairs; image_to_numpy gives the planes
    # one after the other, W bytes a row (one channel)
    "nv12": 1, "nv21": 1, "nv24": 1,
    # raw Bayer mosaics, named by their top-left 2 x 2 block read row by row
    "bayer_rggb8": 1, "bayer_bggr8": 1, "bayer_gbrg8": 1, "bayer_grbg8": 1,
    "bayer_rggb16": 1, "bayer_bggr16": 1, "bayer_gbrg16": 1, "bayer_grbg16": 1,
}
# read in pixel pairs (YUV) and demosaiced (Bayer) on the way to RGB
YUV422_ENCODINGS = ("uyvy", "yuv422", "yuyv", "yuv422_yuy2")
BAYER_ENCODINGS = ("bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8",
                   "bayer_rggb16", "bayer_bggr16", "bayer_gbrg16", "bayer_grbg16")
SIXTEEN_BIT_ENCODINGS = ("rgb16", "bgr16", "rgba16", "bgra16", "mono16",
                         "bayer_rggb16", "bayer_bggr16", "bayer_gbrg16", "bayer_grbg16")
# chroma pairs: one per 2 x 2 block (4:2:0; H / 2 rows as long as the luma rows, padding
# included) or one per pixel (4:4:4; H rows twice as long), as the kernel defines them
YUV420_SEMI_PLANAR = ("nv12", "nv21")
YUV444_SEMI_PLANAR = ("nv24",)
# OpenCV names a Bayer pattern by the second and third pixel of its second row, not by the
# top-left block as ROS does: ROS rggb is OpenCV's BayerBG (newer OpenCV aliases it BayerRGGB;
# the old names exist in every version this package takes). The 16-bit encodings convert as
# their 8-bit namesakes (OpenCV takes both depths).
_TO_RGB = {
    "bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB, "mono8": cv2.COLOR_GRAY2RGB,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY, "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "yuyv": cv2.COLOR_YUV2RGB_YUYV, "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV,
    "nv12": cv2.COLOR_YUV2RGB_NV12, "nv21": cv2.COLOR_YUV2RGB_NV21,
    "bayer_rggb8": cv2.COLOR_BayerBG2RGB, "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg8": cv2.COLOR_BayerGR2RGB, "bayer_grbg8": cv2.COLOR_BayerGB2RGB,
}
_TO_RGB.update({e: _TO_RGB[e.replace("16", "8")] for e in SIXTEEN_BIT_ENCODINGS if e != "rgb16"})
# larger images are refused (a 16k x 16k image is a bug upstream, not a hand)
DEFAULT_MAX_PIXELS = 4096 * 4096
# an image stamp this far behind the newest one means a restarted source (a looping or restarted
# recording), not a reordered frame: start over instead of dropping everything from now on
STAMP_RESET_NS = 1_000_000_000
# a CameraInfo stream stamped this near an image keeps a latched CameraInfo from standing in for
# the image's own (which is then on its way, or missing), in the node and in hand25d bag alike
LIVE_CAMERA_INFO_WINDOW_NS = 1_000_000_000


class MessageError(ValueError):
    """A message that cannot be converted; the text says what is wrong with it."""


class UnsupportedEncoding(MessageError):
    """An image encoding this package does not read."""



def image_to_numpy(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, C) array in the message's own channel order.

    Supports ``ENCODING_CHANNELS``; any row padding in ``step`` is skipped. The result is a
    read-only view of the message's buffer where possible (copy it to modify it). uint8, or
    uint16 in this machine's byte order for ``SIXTEEN_BIT_ENCODINGS`` (``is_bigendian`` says
    the message's). YUV 4:2:2 gives its two bytes per pixel as they come, Bayer the raw mosaic
    (one channel), semi-planar YUV its planes one after the other, W bytes a row, as OpenCV
    reads NV12: (H * 3 / 2, W, 1) for nv12 and nv21, (3 * H, W, 1) for nv24.

    Raises:
        MessageError: unsupported encoding, zero or huge size, a step shorter than a row,
            data whose length is not what step and height give, YUV 4:2:2 of an odd width or
            YUV 4:2:0 of an odd width or height.
    """
    enc = msg.encoding
    if enc not in ENCODING_CHANNELS:
        raise UnsupportedEncoding(f"unsupported image encoding {enc!r}; supported: {', '.join(ENCODING_CHANNELS)}")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise MessageError(f"empty image: {w} x {h}")
    if h * w > max_pixels:
        raise MessageError(f"image of {w} x {h} pixels exceeds the limit of {max_pixels} pixels")
    _check_chroma_pairs(enc, w, h)
    c = ENCODING_CHANNELS[enc]
    row = w * c * (2 if enc in SIXTEEN_BIT_ENCODINGS else 1)
    if step < row:
        raise MessageError(f"step {step} is shorter than one row of {w} {enc} pixels ({row} bytes): "
                           "the encoding does not match the data")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if enc in YUV420_SEMI_PLANAR or enc in YUV444_SEMI_PLANAR:
        return _semi_planar_planes(buf, enc, h, w, step)
    if buf.size != step * h:
        raise MessageError(f"image data has {buf.size} bytes, expected step * height = {step} * {h} = {step * h}")
    rows = buf.reshape(h, step)[:, :row]
    if enc in SIXTEEN_BIT_ENCODINGS:
        rows = _native_uint16(rows, bool(msg.is_bigendian))
    return rows.reshape(h, w, c)


def _check_chroma_pairs(enc: str, w: int, h: int) -> None:
    """YUV 4:2:2 shares chroma between the two pixels of a pair, 4:2:0 between the four of a
    2 x 2 block: an odd width (or height) leaves the last pixel half a pair, so the driver or
    the size is wrong."""
    if enc in YUV422_ENCODINGS and w % 2:
        raise MessageError(f"{enc} image of odd width {w}: YUV 4:2:2 packs pixels in pairs (4 bytes per "
                           "2 pixels), so its width must be even")
    if enc in YUV420_SEMI_PLANAR:
        for name, size in (("width", w), ("height", h)):
            if size % 2:
                raise MessageError(f"{enc} image of odd {name} {size}: YUV 4:2:0 has one chroma pair per "
                                   "2 x 2 pixels, so its width and height must be even")


def _semi_planar_planes(buf: np.ndarray, enc: str, h: int, w: int, step: int) -> np.ndarray:
    """The Y plane (H rows of ``step`` bytes) and the chroma plane after it (4:2:0: H / 2 rows
    of ``step`` bytes; 4:4:4: H rows of 2 * ``step``), padding dropped, as (rows, W, 1)."""
    if enc in YUV420_SEMI_PLANAR:
        chroma_rows, chroma_step, chroma = h // 2, step, f"{h // 2} rows of {step} bytes"
    else:
        chroma_rows, chroma_step, chroma = h, 2 * step, f"{h} rows of 2 * step = {2 * step} bytes"
    expected = h * step + chroma_rows * chroma_step
    if buf.size != expected:
        raise MessageError(f"{enc} image data has {buf.size} bytes, expected {expected}: a luma plane of {h} rows "
                           f"of step {step} bytes, then a chroma plane of {chroma}")
    if step == w:   # no padding: the buffer as it is
        return buf.reshape(-1, w, 1)
    luma = buf[: h * step].reshape(h, step)[:, :w]
    pairs = buf[h * step:].reshape(chroma_rows, chroma_step)[:, : chroma_step // step * w]
    return np.concatenate([luma, pairs.reshape(-1, w)])[:, :, None]


def _native_uint16(rows: np.ndarray, big_endian: bool) -> np.ndarray:
    """(H, row bytes) uint8 -> (H, row bytes / 2) uint16 in this machine's byte order (a view
    where the message's order is the machine's)."""
    return rows.view(">u2" if big_endian else "<u2").astype(np.uint16, copy=False)


def image_to_rgb(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB (contiguous). Raises MessageError."""
    a = image_to_numpy(msg, max_pixels)
    enc = msg.encoding
    if enc in ("rgb8", "rgb16"):
        rgb = a
    elif enc in BAYER_ENCODINGS:
        # OpenCV's demosaicing fills the outermost rows and columns by copying their
        # neighbours, losing the border's own samples; a 2-pixel mirror (which keeps the
        # pattern's phase) lets every pixel be interpolated from its own neighbourhood
        mosaic = cv2.copyMakeBorder(np.ascontiguousarray(a), 2, 2, 2, 2, cv2.BORDER_REFLECT_101)
        rgb = cv2.cvtColor(mosaic, _TO_RGB[enc])[2:-2, 2:-2]
    elif enc in YUV444_SEMI_PLANAR:
        rgb = _nv24_to_rgb(a[:, :, 0], int(msg.height))
    else:
        rgb = cv2.cvtColor(np.ascontiguousarray(a), _TO_RGB[enc])
    if enc in SIXTEEN_BIT_ENCODINGS:
        rgb = _to_8bit(np.ascontiguousarray(rgb))
    return np.ascontiguousarray(rgb)


def _nv24_to_rgb(planes: np.ndarray, h: int) -> np.ndarray:
    """NV24 planes (3 * H, W) -> (H, W, 3) RGB. OpenCV has no NV24 conversion, but NV24's chroma
    plane (a Cb Cr pair per pixel, H rows of 2 * W bytes) is the chroma plane of an NV12 image
    twice as wide and high whose Y is each of NV24's repeated 2 x 2: OpenCV decodes that, and
    every other pixel of every other row is NV24's, with the BT.601 video-range arithmetic of
    nv12, nv21 and YUV 4:2:2 (the same colours a camera sends as any of them)."""
    luma, pairs = planes[:h], planes[h:]
    w = luma.shape[1]
    doubled = np.empty((3 * h, 2 * w), np.uint8)
    # nearest-neighbour resizing by 2 repeats each pixel 2 x 2, and by 1/2 keeps the top-left
    # one of each 2 x 2 (both exactly; several times faster than numpy's repeat and [::2, ::2])
    doubled[: 2 * h] = cv2.resize(np.ascontiguousarray(luma), (2 * w, 2 * h), interpolation=cv2.INTER_NEAREST)
    doubled[2 * h:] = pairs.reshape(h, 2 * w)
    return cv2.resize(cv2.cvtColor(doubled, cv2.COLOR_YUV2RGB_NV12), (w, h), interpolation=cv2.INTER_NEAREST)


def _to_8bit(rgb16: np.ndarray) -> np.ndarray:
    """uint16 -> uint8, full range to full range (round(v * 255 / 65535) = round(v / 257)).

    The network was trained on 8-bit images, so 16-bit pixels are brought to that range, and
    by a fixed scale, not each frame's min/max: a stretch per frame would change brightness
    with the scene, which no 8-bit camera does. A camera whose 10- or 12-bit samples sit in the
    low bits of the 16 gives a dark image; its driver should shift them to the top bits, as
    the 16-bit encodings mean full range."""
    return cv2.convertScaleAbs(rgb16, alpha=1.0 / 257.0)   # rounds, exact for every 16-bit value


def compressed_to_rgb(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG, PNG, ...) -> (H, W, 3) uint8 RGB. Raises MessageError."""
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size == 0:
        raise MessageError("compressed image has no data")
    # a few kilobytes of PNG can decode to gigabytes: refuse by the header's size first
    size = _encoded_size(buf, max_pixels)
    if size is not None and size[0] * size[1] > max_pixels:
        raise MessageError(f"image of {size[0]} x {size[1]} pixels exceeds the limit of {max_pixels}")
    _check_png_chunks(buf)
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)  # BGR, 3 channels, 8 bit
    except cv2.error as exc:
        # most bad data gives None, but some headers (a PFM or PAM of width 0, a BMP wider
        # than OpenCV's limit) fail an assertion inside OpenCV instead
        raise MessageError(f"cannot decode compressed image ({msg.format!r}, {buf.size} bytes): "
                           f"{getattr(exc, 'err', str(exc)).strip()}") from None
    if image is None or image.size == 0:
        raise MessageError(f"cannot decode compressed image ({msg.format!r}, {buf.size} bytes)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise MessageError(f"image of {image.shape[1]} x {image.shape[0]} pixels exceeds the limit of {max_pixels}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png_chunks(buf: np.ndarray) -> None:
    """Refuse a PNG with a chunk that declares more bytes than the data has left.

    OpenCV's PNG reader allocates a chunk's declared length before reading it: a 1.4 kB PNG
    whose IDAT claims 4 GB took 4 GB and seconds to be refused. A PNG's chunks are few (8 kB
    each as libpng and OpenCV write them), so walking them is cheap; the walk stops at IEND,
    and a PNG that ends inside a chunk header is left to the decoder (which gives None)."""
    if buf.size < 8 or buf[:8].tobytes() != PNG_SIGNATURE:
        return
    i, n = 8, buf.size
    while i + 8 <= n:
        length = struct.unpack_from(">I", buf, i)[0]
        kind = buf[i + 4: i + 8].tobytes()
        left = n - i - 12   # after this chunk's length, type and CRC
        if length > left:
            raise MessageError(f"PNG chunk {kind!r} at byte {i} declares {length} bytes, but the message has "
                               f"{max(left, 0)} left: a corrupt or truncated PNG")
        if kind == b"IEND":
            return
        i += 12 + length


# a Radiance HDR header: "#?RADIANCE" or "#?RGBE", lines of variables, an empty line, then the
# resolution: two axes with their sizes, the slower first ("-Y 480 +X 640" as most write it)
_RADIANCE_SIGNATURES = (b"#?RADIANCE", b"#?RGBE")
_RADIANCE_RESOLUTION = re.compile(rb"\n\n([-+])([XY]) +(\d+) +([-+])([XY]) +(\d+)")


def _radiance_size(buf: np.ndarray):
    """(width, height) from a Radiance HDR header, which Pillow does not read; None when it
    is not one. Its run-length coding packs some 16 pixels into a byte: 1.6 MB decoded to a
    5000 x 5000 float image before its size could be judged."""
    head = buf[:65536].tobytes()
    if not head.startswith(_RADIANCE_SIGNATURES):
        return None
    m = _RADIANCE_RESOLUTION.search(head)
    if m is None or m.group(2) == m.group(5):
        return None
    sizes = {m.group(2): int(m.group(3)), m.group(5): int(m.group(6))}
    return sizes[b"X"], sizes[b"Y"]


def _encoded_size(buf: np.ndarray, max_pixels: int):
    """(width, height) from a compressed image's header, without decoding it; None where
    neither Pillow nor :func:`_radiance_size` knows the format (OpenCV may still decode it)."""
    size = _radiance_size(buf)
    if size is not None:
        return size
    from PIL import Image as PILImage
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)  # the caller judges the size
            with PILImage.open(io.BytesIO(buf)) as im:
                return im.size
    except PILImage.DecompressionBombError:
        # Pillow refuses over 2 * MAX_IMAGE_PIXELS before telling the size
        bomb = 2 * (PILImage.MAX_IMAGE_PIXELS or 0)
        return (bomb + 1, 1) if bomb >= max_pixels else None
    except Exception:  # noqa: BLE001 - not a format Pillow reads; OpenCV decides
        return None


# ---------------------------------------------------------------------------- intrinsics
INTRINSICS_SOURCES = ("rectified", "raw")


def camera_info_to_intrinsics(msg, source: str = "rectified", image_size=None):
    """CameraInfo -> the intrinsics of the image it describes.

    Args:
        msg: sensor_msgs/CameraInfo.
        source: ``"rectified"``: the image is rectified; use ``P[:, :3]`` and no distortion.
            ``"raw"``: the image is raw; use ``K`` and ``D``/``distortion_model``.
        image_size: (width, height) of the image, for the plausibility check of a CameraInfo
            that does not give its size (``width`` and ``height`` 0).

    Returns:
        ``(K, D, distortion_model)``: K (3, 3) float64 for the image as published (CameraInfo
        binning and ROI applied), D the distortion coefficients (None for rectified).

    Raises:
        MessageError: zeros, NaN or a malformed matrix (an uncalibrated camera publishes zeros),
            a camera matrix no camera of that image size has (:func:`_checks.check_camera_intrinsics`),
            a ROI reaching past the sensor (when the CameraInfo gives its size), distortion
            coefficients the model does not have.
    """
    if source not in INTRINSICS_SOURCES:
        raise MessageError(f"intrinsics source must be one of {INTRINSICS_SOURCES}, got {source!r}")
    if source == "rectified":
        M = np.asarray(msg.p, dtype=np.float64)
        if M.size != 12:
            raise MessageError(f"CameraInfo.p must have 12 values, got {M.size}")
        K = M.reshape(3, 4)[:, :3].copy()
        name = "P"
        D, model = None, ""
    else:
        M = np.asarray(msg.k, dtype=np.float64)
        if M.size != 9:
            raise MessageError(f"CameraInfo.k must have 9 values, got {M.size}")
        K = M.reshape(3, 3).copy()
        name = "K"
        model = msg.distortion_model or "plumb_bob"
        try:
            D = check_distortion(msg.d, model, "CameraInfo.d")
        except ValueError as exc:
            raise MessageError(str(exc)) from None
    if not np.all(np.isfinite(K)):
        raise MessageError(f"CameraInfo {name} contains NaN or inf: {K.ravel().tolist()}")
    fx, fy = K[0, 0], K[1, 1]
    if not (fx > 0 and fy > 0):
        raise MessageError(f"CameraInfo {name} has focal lengths fx={fx}, fy={fy}; both must be > 0 "
                           "(an uncalibrated camera publishes zeros)")
    if not (np.allclose(K[2], (0.0, 0.0, 1.0)) and K[1, 0] == 0.0):
        raise MessageError(f"CameraInfo {name} is not a camera matrix: rows {K.tolist()}")
    # the whole sensor's size, which K (before its ROI and binning) describes
    width, height = (int(msg.width), int(msg.height)) if msg.width and msg.height else (image_size or (0, 0))
    if width and height:
        try:
            check_camera_intrinsics(K, width, height, f"CameraInfo {name}")
        except ValueError as exc:
            raise MessageError(str(exc)) from None
    if msg.width and msg.height:
        _check_roi(msg)
    K = _apply_binning_and_roi(K, msg)
    return K, D, model


def is_uncalibrated(msg) -> bool:
    """Whether a CameraInfo says its camera is uncalibrated: K all zeros, as sensor_msgs/CameraInfo
    asks of such a camera and webcam drivers publish without a calibration file."""
    K = np.asarray(msg.k, dtype=np.float64)
    return K.size == 9 and not np.any(K)


def _check_roi(msg) -> None:
    """A CameraInfo ROI within its sensor (``width`` x ``height``), as sensor_msgs asks: K is
    judged before the ROI moves its principal point, so a ROI past the sensor's edge put it
    far outside the published image unnoticed."""
    roi = msg.roi
    x, y, w, h = int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)
    if w and h and (x + w > msg.width or y + h > msg.height):
        raise MessageError(f"CameraInfo roi (x_offset {x}, y_offset {y}, width {w}, height {h}) reaches past "
                           f"its {msg.width} x {msg.height} sensor")


def _apply_binning_and_roi(K: np.ndarray, msg) -> np.ndarray:
    """Intrinsics of the published image: crop by ``msg.roi`` then bin (as image_geometry)."""
    roi = msg.roi
    bx, by = max(1, int(msg.binning_x)), max(1, int(msg.binning_y))
    if roi.width == 0 and roi.height == 0 and roi.x_offset == 0 and roi.y_offset == 0 and bx == 1 and by == 1:
        return K
    K = K.copy()
    K[0, 2] -= roi.x_offset
    K[1, 2] -= roi.y_offset
    K[0] /= bx
    K[1] /= by
    return K


def expected_image_size(msg) -> tuple[int, int] | None:
    """(width, height) of the images this CameraInfo describes, or None when it does not say."""
    w, h = int(msg.width), int(msg.height)
    if w == 0 or h == 0:
        return None
    if msg.roi.width and msg.roi.height:
        w, h = int(msg.roi.width), int(msg.roi.height)
    bx, by = max(1, int(msg.binning_x)), max(1, int(msg.binning_y))
    return w // bx, h // by


# Names the outputs may carry: TF frame ids (tf2 refuses a leading '/'), frame-name prefixes
# and topic namespaces. The node's parameters and ``hand25d bag``'s options are checked with these.
FRAME_ID_PATTERN = r"^[A-Za-z0-9_]+(/[A-Za-z0-9_]+)*$|^$"
FRAME_PREFIX_PATTERN = r"^([A-Za-z0-9_][A-Za-z0-9_/]*)?$"
NAMESPACE_PATTERN = r"^/?([A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*)?/?$"


class NoFrameId(MessageError):
    """An image without a frame id (and none given to use instead)."""


def output_frame_id(header_frame_id: str, override: str = "") -> tuple[str, bool]:
    """The frame an image's outputs are published in: ``override`` or else the image's
    ``header.frame_id``, without a leading '/' (a ROS 1 habit that tf2 refuses).

    Returns:
        (frame id, whether a leading '/' was dropped).

    Raises:
        NoFrameId when both are empty; MessageError for a frame id with whitespace.
    """
    frame = override or header_frame_id
    if not frame:
        raise NoFrameId("the image has an empty header.frame_id")
    stripped = frame.lstrip("/")
    if not stripped or any(c.isspace() for c in stripped):
        raise MessageError(f"header.frame_id {frame!r} is not a frame name tf2 takes")
    return stripped, stripped != frame


# TF frame prefixes: ROS-free, for the node, its consumers and ``hand25d bag`` alike
DEFAULT_NODE_NAME = "hand25d"   # hand25d_node's name unless remapped


def auto_frame_prefix(namespace: str, node_name: str) -> str:
    """The TF frame prefix of a node whose ``frame_prefix`` is empty: ``hand_`` behind the
    node's namespace and, unless it is the default ``hand25d``, its name (``hand_`` for
    /hand25d, ``cam2/hand_`` for /cam2/hand25d, ``left/hand_`` for /left).

    /tf is one topic for all nodes: with one fixed prefix, two nodes (two cameras) both
    broadcast ``hand_0_palm``, each under its own camera frame, and tf2 sees one frame whose
    parent flips between the cameras. Node names are unique, so these prefixes are too."""
    parts = [p for p in namespace.split("/") if p]
    if node_name != DEFAULT_NODE_NAME:
        parts.append(node_name)
    return "/".join(parts + ["hand_"])


def frame_prefix_of_topic(topic: str) -> str:
    """The default TF frame prefix of the node that publishes ``topic`` (one of its ``~/``
    topics, e.g. ``/cam2/hand25d/keypoints`` -> ``cam2/hand_``), for consumers and ``hand25d
    bag``; ``hand_`` when the topic names no node."""
    node = topic.rsplit("/", 1)[0]
    if not node.strip("/"):
        return "hand_"
    namespace, name = node.rsplit("/", 1)
    return auto_frame_prefix(namespace or "/", name)

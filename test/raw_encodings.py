"""Camera encodings built from their definitions with plain numpy, independent of the
package and of OpenCV: what a UVC webcam (YUV 4:2:2) or a machine-vision camera (Bayer)
puts in a sensor_msgs/Image.

- YUV 4:2:2 (V4L2 packed formats, kernel.org pixfmt-packed-yuv): each pair of pixels is
  4 bytes, ``U Y0 V Y1`` (UYVY, ROS ``uyvy``/``yuv422``) or ``Y0 U Y1 V`` (YUYV, ROS
  ``yuyv``/``yuv422_yuy2``); Y, U (Cb), V (Cr) by ITU-R BT.601 in limited ("video")
  range, which UVC cameras send.
- Bayer: one byte per pixel, the channel of pixel (r, c) given by the pattern's
  top-left 2 x 2 block read row by row (``rggb``: R at (0, 0), G at (0, 1) and (1, 0), B at (1, 1)).
"""
import numpy as np

RGB_INDEX = {"r": 0, "g": 1, "b": 2}


def bt601_limited(rgb: np.ndarray):
    """(H, W, 3) uint8 RGB -> float Y, Cb, Cr (BT.601, Y in [16, 235], chroma in [16, 240])."""
    r, g, b = (rgb[..., i].astype(np.float64) / 255.0 for i in range(3))
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return y, cb, cr


def encode_yuv422(rgb: np.ndarray, order: str) -> np.ndarray:
    """(H, W, 3) RGB, W even -> (H, W * 2) bytes of a YUV 4:2:2 image; ``order`` "uyvy" or
    "yuyv". Each pair's chroma is the mean of its two pixels'."""
    h, w, _ = rgb.shape
    assert w % 2 == 0
    y, cb, cr = bt601_limited(rgb)
    q = lambda x: np.clip(np.round(x), 0, 255).astype(np.uint8)  # noqa: E731
    y = q(y)
    u = q((cb[:, 0::2] + cb[:, 1::2]) / 2)
    v = q((cr[:, 0::2] + cr[:, 1::2]) / 2)
    out = np.empty((h, w // 2, 4), np.uint8)
    if order == "uyvy":
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = u, y[:, 0::2], v, y[:, 1::2]
    elif order == "yuyv":
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = y[:, 0::2], u, y[:, 1::2], v
    else:
        raise ValueError(order)
    return out.reshape(h, w * 2)


def bayer_channel_map(pattern: str, h: int, w: int) -> np.ndarray:
    """(H, W) index of the RGB channel each pixel of a ``pattern`` ("rggb", ...) mosaic samples."""
    block = np.array([[RGB_INDEX[pattern[0]], RGB_INDEX[pattern[1]]], [RGB_INDEX[pattern[2]], RGB_INDEX[pattern[3]]]])
    return block[np.arange(h)[:, None] % 2, np.arange(w)[None, :] % 2]


def encode_bayer(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """(H, W, 3) RGB -> (H, W) mosaic: each pixel keeps its pattern's channel only."""
    ch = bayer_channel_map(pattern, *rgb.shape[:2])
    return np.take_along_axis(rgb, ch[..., None], 2)[..., 0]


def pad_rows(rows: np.ndarray, pad: int) -> tuple[bytes, int]:
    """(H, row bytes) -> (data, step) with ``pad`` junk bytes after each row."""
    h, n = rows.shape
    out = np.full((h, n + pad), 0xA5, np.uint8)
    out[:, :n] = rows
    return out.tobytes(), n + pad


# ---------------------------------------------------------------------------- semi-planar YUV
# V4L2's NV12/NV21 (kernel.org pixfmt-yuv-planar) and NV24 (pixfmt-nv24): a plane of Y, one
# byte per pixel, then one plane of interleaved chroma: Cb Cr (NV12, NV24) or Cr Cb (NV21).
# 4:2:0 keeps one pair per 2 x 2 block (H / 2 rows of W bytes); 4:4:4 one pair per pixel
# (H rows of 2 * W bytes). With padded rows, the chroma rows of 4:2:0 have the luma rows'
# padding, those of 4:4:4 twice as much.
def encode_semi_planar(rgb: np.ndarray, encoding: str) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) RGB -> (luma rows (H, W), chroma rows) of an ``nv12``, ``nv21`` (H, W even;
    each block's chroma the mean of its four pixels') or ``nv24`` image."""
    h, w, _ = rgb.shape
    y, cb, cr = bt601_limited(rgb)
    q = lambda x: np.clip(np.round(x), 0, 255).astype(np.uint8)  # noqa: E731
    if encoding in ("nv12", "nv21"):
        assert h % 2 == 0 and w % 2 == 0
        cb, cr = (c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)) for c in (cb, cr))
    first, second = (cb, cr) if encoding in ("nv12", "nv24") else (cr, cb)
    chroma = np.stack([q(first), q(second)], axis=-1)
    return q(y), chroma.reshape(chroma.shape[0], -1)


def pad_planes(luma: np.ndarray, chroma: np.ndarray, pad: int) -> tuple[bytes, int]:
    """Planes -> (data, step): ``pad`` junk bytes after each luma row and as many after each
    chroma row of 4:2:0 (chroma rows as long as luma rows), twice as many for 4:4:4."""
    y, step = pad_rows(luma, pad)
    uv, _ = pad_rows(chroma, pad * chroma.shape[1] // luma.shape[1])
    return y + uv, step


# ---------------------------------------------------------------------------- 16 bit
def samples16(values: np.ndarray, big_endian: bool) -> np.ndarray:
    """(H, W, C) or (H, W) 16-bit samples -> (H, W * C * 2) bytes, each sample's two bytes in
    the given order (sensor_msgs/Image ``is_bigendian``)."""
    v = np.asarray(values).astype(">u2" if big_endian else "<u2")
    return v.view(np.uint8).reshape(v.shape[0], -1)

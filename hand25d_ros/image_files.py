"""Image files read and written as bytes: OpenCV's own file functions crash the process on a
name that is not UTF-8 (a Latin-1 zip, an SMB mount), so the bytes go through
``np.fromfile`` / ``Path.write_bytes`` and OpenCV only decodes and encodes."""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np


def read_image_file(path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """``cv2.imread(path, flags)`` for any file name (BGR; EXIF orientation applied as
    imread does). Raises ValueError saying why the file cannot be read."""
    return decode_image(_read_bytes(path), flags)


def read_photo(path) -> tuple[np.ndarray, int]:
    """(BGR image as photo viewers show it, the EXIF orientation OpenCV applied to it: 1-8, 1
    where there is none), from one read of the file. Raises ValueError as
    :func:`read_image_file`."""
    data = _read_bytes(path)
    bgr = decode_image(data, cv2.IMREAD_COLOR)
    try:
        from PIL import Image
        with Image.open(io.BytesIO(data.tobytes())) as im:
            orientation = int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a format Pillow does not read has no orientation for us
        orientation = 1
    return bgr, orientation if orientation in range(1, 9) else 1


def _read_bytes(path) -> np.ndarray:
    try:
        return np.fromfile(path, np.uint8)
    except OSError as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None


def decode_image(data: np.ndarray, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """An image file's bytes (uint8 array) -> the image, as :func:`read_image_file`."""
    try:
        image = cv2.imdecode(data, flags)
    except cv2.error as exc:      # e.g. over OpenCV's pixel limit
        raise ValueError(str(exc).strip().splitlines()[-1]) from None
    if image is None:
        raise ValueError("not an image file OpenCV can decode")
    return image


def write_image_file(path, image: np.ndarray) -> None:
    """``cv2.imwrite(path, image)`` for any file name, in the format of its extension (PNG
    without one). Raises OSError when it cannot be encoded or written."""
    path = Path(path)
    try:
        ok, buf = cv2.imencode(path.suffix or ".png", image)
    except cv2.error:            # an extension OpenCV has no encoder for
        ok = False
    if not ok:
        raise OSError(f"cannot encode {path} as {path.suffix or '.png'}")
    path.write_bytes(buf.tobytes())

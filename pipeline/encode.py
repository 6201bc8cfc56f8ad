"""Pixels to the stored JPEG bytes."""

from __future__ import annotations

import numpy as np
import simplejpeg


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """Encode (H, W, 3) uint8 RGB (sRGB) as a baseline JFIF JPEG.

    The output carries no EXIF, GPS, XMP or ICC segment: the pixels are already
    upright sRGB, and a stored avatar must not leak where or with what it was
    taken. Chroma is kept at full resolution (4:4:4): the files are small and
    the avatar model sees lip and eye edges undimmed. The accurate integer DCT
    (fastdct=False) keeps libjpeg-turbo's output identical for identical input.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    return bytes(
        simplejpeg.encode_jpeg(
            np.ascontiguousarray(rgb),
            quality=quality,
            colorspace="RGB",
            colorsubsampling="444",
            fastdct=False,
        )
    )

"""A graded set made from accepted photos: each degraded at four strengths, for
choosing the quality limits (`avatar-prep eval ... --graded`).

Every degradation is a pure function of an upright (H, W, 3) uint8 RGB image,
the face's forehead-to-chin length in its pixels (so blur scales with the face,
not the file) and a level 1 (mildest) to 4 (strongest), and returns the file a
user would upload: a lossless PNG of the result, or the JPEG itself for
compression. Light is scaled in linear light (sRGB decoded), as a camera's
exposure would.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

LEVELS = (1, 2, 3, 4)

# Per degradation, the strength at each level (see each function).
GAUSSIAN_SIGMA = (0.002, 0.01, 0.03, 0.08)  # of the face length
MOTION_LENGTH = (0.01, 0.05, 0.15, 0.4)  # of the face length
UNDER_EXPOSURE = (0.5, 0.15, 0.06, 0.02)  # linear light kept: -1, -2.7, -4, -5.6 EV
OVER_EXPOSURE = (1.3, 2.5, 5.0, 12.0)  # linear light gain: +0.4, +1.3, +2.3, +3.6 EV
JPEG_QUALITY = (60, 25, 10, 3)


def gaussian_blur(rgb: np.ndarray, face: float, level: int) -> bytes:
    """Out of focus: a Gaussian of sigma GAUSSIAN_SIGMA[level] face lengths."""
    sigma = max(GAUSSIAN_SIGMA[level - 1] * face, 0.3)
    return png(cv2.GaussianBlur(rgb, (0, 0), sigma))


def motion_blur(rgb: np.ndarray, face: float, level: int) -> bytes:
    """Camera shake: a horizontal line kernel MOTION_LENGTH[level] face lengths long."""
    length = max(round(MOTION_LENGTH[level - 1] * face), 2)
    kernel = np.full((1, length), 1.0 / length, dtype=np.float32)
    return png(cv2.filter2D(rgb, -1, kernel, borderType=cv2.BORDER_REFLECT))


def under_exposure(rgb: np.ndarray, face: float, level: int) -> bytes:
    """Too little light: linear light times UNDER_EXPOSURE[level]."""
    return png(exposed(rgb, UNDER_EXPOSURE[level - 1]))


def over_exposure(rgb: np.ndarray, face: float, level: int) -> bytes:
    """Too much light: linear light times OVER_EXPOSURE[level], clipped at white."""
    return png(exposed(rgb, OVER_EXPOSURE[level - 1]))


def heavy_jpeg(rgb: np.ndarray, face: float, level: int) -> bytes:
    """Over-compression: the JPEG at quality JPEG_QUALITY[level]."""
    return jpeg(rgb, JPEG_QUALITY[level - 1])


def png(rgb: np.ndarray) -> bytes:
    """A lossless PNG of (H, W, 3) uint8 RGB pixels (fast compression)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """(H, W, 3) uint8 RGB pixels saved as a user's camera or app would: Pillow's
    JPEG at `quality`."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


DEGRADATIONS: dict[str, Callable[[np.ndarray, float, int], bytes]] = {
    "gaussian_blur": gaussian_blur,
    "motion_blur": motion_blur,
    "under_exposure": under_exposure,
    "over_exposure": over_exposure,
    "heavy_jpeg": heavy_jpeg,
}


def exposed(rgb: np.ndarray, gain: float | tuple[float, float, float]) -> np.ndarray:
    """(H, W, 3) uint8 sRGB with its linear light times `gain`, clipped at white;
    a (red, green, blue) gain is light of a colour (warm light: blue lowest)."""
    srgb = rgb.astype(np.float32) / 255
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    linear = np.clip(linear * np.asarray(gain, dtype=np.float32), 0.0, 1.0)
    out = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.round(out * 255).astype(np.uint8)

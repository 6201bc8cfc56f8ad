"""Bytes to upright sRGB pixels: sniff, check limits from the header, decode.

OWNER: decode helper. Contract (other stages are written against it):

    probe(data, settings) -> Probe      # header only, no pixel decode; raises ImageError
    decode(data, probe, reduction) -> Decoded

`reduction` is 1, 2, 4 or 8: JPEG uses DCT scaling (nearly free); other formats
decode fully and are reduced with INTER_AREA.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.settings import PipelineSettings


@dataclass(frozen=True)
class Probe:
    """What the header says. `width`/`height` are the UPRIGHT size (EXIF applied)."""

    format: str  # jpeg, png, webp, gif, bmp, tiff, heic, avif
    width: int
    height: int
    orientation: int  # EXIF orientation 1..8 (1 when absent)
    bytes: int

    @property
    def dct_scalable(self) -> bool:
        return self.format == "jpeg"


@dataclass(frozen=True)
class Decoded:
    """`rgb`: (H, W, 3) uint8, RGB, sRGB, upright, C-contiguous.
    `scale`: decoded pixels per upright source pixel (1.0, 0.5, 0.25 or 0.125,
    approximately when the source side is not divisible)."""

    rgb: np.ndarray
    scale: float


def probe(data: bytes, settings: PipelineSettings) -> Probe:
    raise NotImplementedError


def decode(data: bytes, probe: Probe, reduction: int = 1) -> Decoded:
    raise NotImplementedError

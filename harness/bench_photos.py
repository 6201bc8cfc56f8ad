"""The JPEGs the benches time, made at run time from a sample photo, and how a
figure is judged against its target."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

NOISE_SIGMA, NOISE_SEED, NOISE_BAND_ROWS = 5.0, 20250101, 256


def make_jpeg(
    source: Path, megapixels: float, path: Path, seed: int = NOISE_SEED
) -> dict[str, Any]:
    """Write an upright, metadata-free quality-90 JPEG of at most `megapixels`
    million pixels with `source`'s aspect ratio: Lanczos-resampled, plus
    Gaussian noise of sigma `NOISE_SIGMA` (from `seed`) so it compresses, and
    decodes, like a phone photo rather than a smooth enlargement; another seed
    makes another file of the same size and cost. Returns its path, size and
    megapixels."""
    with Image.open(source) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    scale = math.sqrt(megapixels * 1e6 / (image.width * image.height))
    width, height = math.floor(image.width * scale), math.floor(image.height * scale)
    rgb = np.asarray(image.resize((width, height), Image.Resampling.LANCZOS))
    noisy = np.empty_like(rgb)
    rng = np.random.default_rng(seed)
    for top in range(0, height, NOISE_BAND_ROWS):  # in bands: a 50 MP float copy is 1.2 GB
        band = rgb[top : top + NOISE_BAND_ROWS]
        noise = rng.normal(0.0, NOISE_SIGMA, band.shape)
        noisy[top : top + NOISE_BAND_ROWS] = np.clip(band + noise.round(), 0, 255)
    Image.fromarray(noisy).save(path, quality=90)
    return {
        "file": str(path),
        "width": width,
        "height": height,
        "megapixels": round(width * height / 1e6, 2),
        "bytes": path.stat().st_size,
    }


def verdict(ok: bool) -> str:
    """How a figure against its target is printed."""
    return "met" if ok else "MISSED"

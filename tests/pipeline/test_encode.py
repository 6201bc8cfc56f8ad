"""The stored JPEG: faithful, metadata-free, the same bytes every time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import simplejpeg
from PIL import Image

from pipeline.encode import encode_jpeg


def segments(jpeg: bytes) -> list[int]:
    """The marker bytes of every segment before the entropy-coded scan."""
    assert jpeg[:2] == b"\xff\xd8", "not a JPEG"
    markers, pos = [], 2
    while pos < len(jpeg):
        assert jpeg[pos] == 0xFF
        marker = jpeg[pos + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan: the header is over
            break
        pos += 2 + int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
    return markers


@pytest.fixture(scope="module")
def photo(sample_path: Callable[[str], Path]) -> np.ndarray:
    """A 512 px square of a real portrait: skin, hair and a suit."""
    with Image.open(sample_path("accept_portrait.jpg")) as im:
        return np.asarray(im.convert("RGB"))[300:812, 350:862]


def test_output_has_no_exif_xmp_or_icc_segment(photo: np.ndarray) -> None:
    markers = segments(encode_jpeg(photo, 92))
    app = {m for m in markers if 0xE1 <= m <= 0xEF}  # APP1 EXIF/XMP, APP2 ICC, ...
    assert app == set()
    assert 0xE0 in markers  # plain JFIF
    assert 0xC0 in markers  # baseline, which every decoder reads


def test_round_trip_is_faithful(photo: np.ndarray) -> None:
    decoded = simplejpeg.decode_jpeg(encode_jpeg(photo, 92), colorspace="RGB")
    assert decoded.shape == photo.shape
    assert np.abs(decoded.astype(int) - photo).mean() < 2.0


def test_quality_is_applied(photo: np.ndarray) -> None:
    assert len(encode_jpeg(photo, 60)) < len(encode_jpeg(photo, 95))


def test_same_pixels_give_the_same_bytes(photo: np.ndarray) -> None:
    first = encode_jpeg(photo, 92)
    assert encode_jpeg(photo.copy(), 92) == first
    # A non-contiguous view of the same pixels is encoded the same.
    padded = np.zeros((photo.shape[0], photo.shape[1] + 5, 3), dtype=np.uint8)
    padded[:, :-5] = photo
    assert encode_jpeg(padded[:, :-5], 92) == first


def test_refuses_anything_but_rgb_uint8() -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        encode_jpeg(np.zeros((8, 8, 4), dtype=np.uint8), 90)
    with pytest.raises(ValueError, match="uint8 RGB"):
        encode_jpeg(np.zeros((8, 8, 3), dtype=np.float32), 90)

"""pipeline.color: ICC profiles to sRGB, alpha onto grey, 16-bit grey to 8 bit."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from pipeline import color
from pipeline.color import BACKGROUND, composite_on_background, to_rgb, to_srgb

# Chromaticities (x, y) from the standards: SMPTE EG 432-1 (Display P3), IEC 61966-2-1 (sRGB).
P3 = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
SRGB = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
D65 = (0.3127, 0.3290)


def rgb_to_xyz(primaries, white) -> np.ndarray:
    def xyz(x, y):
        return np.array([x / y, 1.0, (1 - x - y) / y])

    columns = np.stack([xyz(*p) for p in primaries], axis=1)
    return columns * np.linalg.solve(columns, xyz(*white))


def srgb_decode(v: np.ndarray) -> np.ndarray:
    v = v / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    v = np.clip(linear, 0.0, 1.0)
    return 255 * np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def p3_to_srgb_oracle(rgb: np.ndarray) -> np.ndarray:
    """Display P3 (sRGB curve, D65) -> sRGB by the matrices alone: both whites are D65,
    so no adaptation; out-of-gamut values clip."""
    matrix = np.linalg.inv(rgb_to_xyz(SRGB, D65)) @ rgb_to_xyz(P3, D65)
    return srgb_encode(srgb_decode(rgb.astype(float)) @ matrix.T)


@pytest.fixture(scope="module")
def p3_profile(sample_path) -> bytes:
    with Image.open(sample_path("display_p3.jpg")) as im:
        profile = im.info["icc_profile"]
    described = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))
    assert "Display P3" in described
    return profile


COLOURS = np.array(
    [
        [255, 0, 0],  # P3 red: outside sRGB, clips to the sRGB red
        [230, 40, 40],  # a saturated red
        [220, 80, 60],
        [40, 200, 60],
        [30, 60, 210],
        [250, 200, 170],  # skin
        [90, 60, 50],
    ],
    np.uint8,
)


def test_display_p3_converts_as_the_matrices_say(p3_profile):
    tile = np.ascontiguousarray(np.repeat(COLOURS[None], 4, axis=0))
    out = to_srgb(tile, p3_profile)
    expected = p3_to_srgb_oracle(COLOURS)
    assert np.abs(out[0].astype(float) - expected).max() <= 2.0
    # Saturated P3 colours are not the same numbers in sRGB: untagged would be wrong.
    assert np.abs(out[0, 1:5].astype(int) - COLOURS[1:5]).max() > 15


def test_display_p3_keeps_grey_grey(p3_profile):
    ramp = np.repeat(np.arange(0, 256, 5, dtype=np.uint8)[:, None], 3, axis=1)[None]
    out = to_srgb(np.ascontiguousarray(ramp), p3_profile).astype(int)
    assert np.abs(out - ramp).max() <= 1
    assert (out.max(axis=2) - out.min(axis=2)).max() <= 1


def test_srgb_broken_or_mismatched_profiles_change_nothing(sample_path):
    rgb = np.ascontiguousarray(np.repeat(COLOURS[None], 2, axis=0))
    with Image.open(sample_path("accept_portrait.jpg")) as im:
        srgb = im.info["icc_profile"]
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    for profile in (None, srgb, b"not a profile at all", lab):
        assert to_srgb(rgb, profile) is rgb


def test_one_transform_per_profile_not_per_image(p3_profile):
    color._srgb_transform.cache_clear()
    rgb = np.ascontiguousarray(np.repeat(COLOURS[None], 2, axis=0))
    for _ in range(3):
        to_srgb(rgb, bytes(bytearray(p3_profile)))  # equal bytes, a new object each time
    info = color._srgb_transform.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_composite_is_exactly_rounded_for_every_alpha():
    values = np.arange(256, dtype=np.uint8)
    rgb = np.repeat(values[:, None, None], 256, axis=1).repeat(3, axis=2)  # rgb[v, a] = v
    alpha = np.repeat(values[None, :], 256, axis=0)
    out = composite_on_background(rgb, alpha).astype(float)
    a = alpha[..., None] / 255.0
    exact = rgb * a + BACKGROUND * (1 - a)
    assert np.abs(out - exact).max() <= 0.5 + 1e-9
    assert (out[:, 0] == BACKGROUND).all()  # alpha 0
    assert (out[:, 255] == rgb[:, 255]).all()  # alpha 255


def test_to_rgb_modes():
    """Every Pillow mode a decoder hands over comes out as (H, W, 3) uint8."""
    levels = np.array([[0, 1000, 40000, 65535]], np.int32).repeat(4, axis=0)
    cases = {
        "I;16": Image.fromarray(levels.astype(np.uint16)),
        "I": Image.fromarray(levels - 500),  # 32-bit signed: negative clips to 0
        "1": Image.new("1", (4, 4), 1),
        "L": Image.new("L", (4, 4), 77),
        "P": Image.new("RGB", (4, 4), (10, 20, 30)).quantize(4),
        "RGBA": Image.new("RGBA", (4, 4), (255, 0, 0, 0)),
        "CMYK": Image.new("CMYK", (4, 4), (0, 255, 255, 0)),
    }
    for mode, im in cases.items():
        assert im.mode == mode
        out = to_rgb(im, None)
        assert out.shape == (4, 4, 3) and out.dtype == np.uint8, mode
    assert to_rgb(cases["I;16"], None)[0, :, 0].tolist() == [0, 4, 156, 255]
    assert to_rgb(cases["I"], None)[0, :, 0].tolist() == [0, 2, 154, 253]
    assert tuple(to_rgb(cases["RGBA"], None)[0, 0]) == (BACKGROUND,) * 3
    assert tuple(to_rgb(cases["CMYK"], None)[0, 0]) == (255, 0, 0)
    assert tuple(to_rgb(cases["P"], None)[0, 0]) == (10, 20, 30)

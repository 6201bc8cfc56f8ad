"""pipeline.decode: every format to the right upright sRGB pixels, limits from the
header, and precise errors. Real files from sample_images/ where they fit,
synthetic ones (made here) for the exact cases."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import struct
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import Callable

import cv2
import numpy as np
import pillow_heif
import pytest
import simplejpeg
from PIL import ExifTags, Image, ImageOps

from pipeline.decode import Decoded, decode
from pipeline.errors import ImageError
from pipeline.probe import Probe, probe
from pipeline.settings import PipelineSettings

SETTINGS = PipelineSettings()
LANCZOS = Image.Resampling.LANCZOS


def load(data: bytes, reduction: int = 1, settings: PipelineSettings = SETTINGS) -> Decoded:
    return decode(data, probe(data, settings), reduction)


def encode(im: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    if fmt == "HEIF":
        pillow_heif.from_pillow(im).save(buf, **options)
    else:
        im.save(buf, fmt, **options)
    return buf.getvalue()


def mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two same-shape arrays, in 8-bit levels."""
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.fixture(scope="module")
def portrait(sample_path: Callable) -> Image.Image:
    """The original the portrait samples were made from, decoded by Pillow (the oracle)."""
    return Image.open(sample_path("accept_portrait.jpg")).convert("RGB")


@pytest.fixture(scope="module")
def astronaut(sample_path: Callable) -> Image.Image:
    return Image.open(sample_path("accept_astronaut.png")).convert("RGB")


# --- every format: size, format, pixels --------------------------------------

# file, sniffed format, upright (width, height), reference, largest mean abs difference
FORMAT_CASES = [
    ("accept_portrait.jpg", "jpeg", (1200, 1200), "portrait", 0.5),
    ("progressive.jpg", "jpeg", (1200, 1200), "portrait", 0.5),
    ("cmyk.jpg", "jpeg", (1200, 1200), "portrait", 1.0),
    ("ycck.jpg", "jpeg", (1200, 1200), "portrait", 1.0),
    ("display_p3.jpg", "jpeg", (1200, 1200), "portrait", 1.0),
    ("webp.webp", "webp", (1200, 1200), "portrait", 3.0),
    ("avif.avif", "avif", (1200, 1200), "portrait", 3.0),
    ("heic.heic", "heic", (1200, 1200), "portrait", 3.0),
    ("tiff.tiff", "tiff", (600, 600), "portrait@600", 0.0),
    ("16bit.png", "png", (400, 400), "portrait@400", 0.0),
    ("accept_astronaut.png", "png", (512, 512), "astronaut", 0.0),
    ("bmp.bmp", "bmp", (512, 512), "astronaut", 0.0),
    ("gif.gif", "gif", (512, 512), "astronaut", 4.0),  # 256 colours, no dither
    ("exif_rotated_6.jpg", "jpeg", (900, 1200), "portrait[:, 150:1050]", 2.0),
    ("exif_rotated_8.png", "png", (384, 512), "astronaut[:, 64:448]", 0.0),
]


def reference(name: str, portrait: Image.Image, astronaut: Image.Image) -> np.ndarray:
    return {
        "portrait": lambda: np.asarray(portrait),
        "portrait@600": lambda: np.asarray(portrait.resize((600, 600), LANCZOS)),
        "portrait@400": lambda: np.asarray(portrait.resize((400, 400), LANCZOS)),
        "astronaut": lambda: np.asarray(astronaut),
        "portrait[:, 150:1050]": lambda: np.asarray(portrait)[:, 150:1050],
        "astronaut[:, 64:448]": lambda: np.asarray(astronaut)[:, 64:448],
    }[name]()


@pytest.mark.parametrize(("name", "fmt", "size", "ref", "tolerance"), FORMAT_CASES)
def test_format_decodes_to_the_right_size_and_pixels(
    sample_bytes, portrait, astronaut, name, fmt, size, ref, tolerance
):
    data = sample_bytes(name)
    found = probe(data, SETTINGS)
    assert (found.format, found.width, found.height, found.bytes) == (fmt, *size, len(data))
    out = decode(data, found)
    assert out.scale == 1.0
    assert out.rgb.dtype == np.uint8
    assert out.rgb.flags.c_contiguous and out.rgb.flags.writeable
    assert out.rgb.shape == (size[1], size[0], 3)
    assert mad(out.rgb, reference(ref, portrait, astronaut)) <= tolerance


def test_every_sample_probes_as_pillow_sees_it_upright(samples_dir):
    images = [p for p in samples_dir.iterdir() if p.suffix not in (".py", ".md")]
    assert len(images) >= 25
    for path in images:
        data = path.read_bytes()
        found = probe(data, SETTINGS.model_copy(update={"min_side": 1}))
        if found.format == "heic":
            continue  # Pillow cannot open HEIC without the plugin registered
        with Image.open(path) as im:
            upright = ImageOps.exif_transpose(im)
            assert (found.width, found.height) == upright.size, path.name


def test_cmyk_samples_are_what_they_claim(sample_bytes):
    """Both go through Pillow: libjpeg-turbo's RGB output cannot take CMYK or YCCK."""
    for name, colorspace in (("cmyk.jpg", "CMYK"), ("ycck.jpg", "YCCK")):
        assert simplejpeg.decode_jpeg_header(sample_bytes(name))[2] == colorspace


def test_grayscale_jpeg_is_grey_rgb(sample_bytes, portrait):
    rgb = load(sample_bytes("gray.jpg")).rgb
    assert rgb.shape == (1200, 1200, 3)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert mad(rgb[..., 0], np.asarray(portrait.convert("L"))) < 0.5


def test_gif_gives_its_first_frame(sample_bytes, astronaut):
    rgb = load(sample_bytes("gif.gif")).rgb
    first, second = np.asarray(astronaut), np.asarray(astronaut)[:, ::-1]
    assert mad(rgb, first) < 4.0
    assert mad(rgb, second) > 40.0


def test_large_jpeg_reduced_matches_the_portrait_it_was_made_from(sample_bytes, portrait):
    out = load(sample_bytes("large_12mp.jpg"), reduction=8)
    assert out.rgb.shape == (375, 500, 3)
    small = cv2.resize(
        np.asarray(portrait.crop((0, 0, 1200, 900))), (500, 375), interpolation=cv2.INTER_AREA
    )
    assert mad(out.rgb, small) < 2.0


# --- EXIF orientation ----------------------------------------------------------


def asymmetric_image(height: int = 48, width: int = 80) -> np.ndarray:
    """No flip or rotation of this equals another: gradients in x and y plus a block
    off every axis of symmetry."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = x * 255 // (width - 1)
    rgb[..., 1] = y * 255 // (height - 1)
    rgb[8:20, 12:36, 2] = 255
    return rgb


# How each EXIF orientation is shown (EXIF 2.32, Orientation tag).
SHOWN = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: a[::-1, ::-1],  # turned 180
    4: lambda a: a[::-1],  # mirrored top-bottom
    5: lambda a: a.transpose(1, 0, 2),  # mirrored along the main diagonal
    6: lambda a: np.rot90(a, -1),  # turned 90 clockwise
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],  # mirrored along the other diagonal
    8: lambda a: np.rot90(a, 1),  # turned 90 counter-clockwise
}


def with_orientation(rgb: np.ndarray, orientation: int, fmt: str, **options: object) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return encode(Image.fromarray(rgb), fmt, exif=exif.tobytes(), **options)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_eight_orientations_exactly(orientation):
    stored = asymmetric_image()
    data = with_orientation(stored, orientation, "PNG")
    expected = SHOWN[orientation](stored)
    with Image.open(io.BytesIO(data)) as im:  # the table above agrees with Pillow's
        assert np.array_equal(np.asarray(ImageOps.exif_transpose(im)), expected)
    found = probe(data, SETTINGS.model_copy(update={"min_side": 1}))
    assert (found.orientation, found.width, found.height) == (
        orientation,
        expected.shape[1],
        expected.shape[0],
    )
    out = decode(data, found)
    assert out.rgb.flags.c_contiguous
    assert np.array_equal(out.rgb, expected)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("reduction", [1, 4])
def test_orientations_of_jpeg_at_full_and_reduced_scale(orientation, reduction):
    stored = cv2.resize(asymmetric_image(), (320, 192), interpolation=cv2.INTER_LINEAR)
    data = with_orientation(stored, orientation, "JPEG", quality=95)
    out = load(data, reduction)
    expected = SHOWN[orientation](
        cv2.resize(stored, None, fx=1 / reduction, fy=1 / reduction, interpolation=cv2.INTER_AREA)
    )
    assert mad(out.rgb, expected) < 3.0


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF", "WEBP"])
def test_containers_with_their_own_rotation_come_out_upright(fmt):
    """HEIF and AVIF store rotation as irot/imir boxes (libheif applies them; Pillow's AVIF
    plugin reports them as the EXIF tag); WebP keeps an EXIF chunk."""
    stored = cv2.resize(asymmetric_image(), (160, 96), interpolation=cv2.INTER_LINEAR)
    data = with_orientation(stored, 6, fmt, quality=90)
    out = load(data)
    assert out.rgb.shape == (160, 96, 3)
    assert mad(out.rgb, SHOWN[6](stored)) < 4.0


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow says so; we carry on
def test_broken_exif_block_counts_as_upright():
    data = encode(Image.fromarray(asymmetric_image()), "JPEG", exif=b"Exif\x00\x00MM\x00*garbage")
    found = probe(data, SETTINGS.model_copy(update={"min_side": 1}))
    assert found.orientation == 1


# --- reduction -----------------------------------------------------------------


@pytest.mark.parametrize("reduction", [1, 2, 4, 8])
def test_jpeg_dct_reduction_sizes_and_scale(sample_bytes, reduction):
    data = sample_bytes("large_12mp.jpg")
    full = load(data).rgb
    out = load(data, reduction)
    assert out.scale == 1 / reduction
    assert out.rgb.shape == (3000 // reduction, 4000 // reduction, 3)
    area = cv2.resize(full, None, fx=1 / reduction, fy=1 / reduction, interpolation=cv2.INTER_AREA)
    assert mad(out.rgb, area) < 2.0


@pytest.mark.parametrize("reduction", [2, 4, 8])
def test_reduction_of_sides_not_divisible(reduction):
    """1001x751: every path rounds each side up, a partial block at the end (as
    libjpeg's DCT scaling does)."""
    rgb = cv2.resize(asymmetric_image(), (1001, 751), interpolation=cv2.INTER_LINEAR)
    jpeg = load(encode(Image.fromarray(rgb), "JPEG", quality=95), reduction)
    png = load(encode(Image.fromarray(rgb), "PNG"), reduction)
    assert jpeg.rgb.shape[:2] == (math.ceil(751 / reduction), math.ceil(1001 / reduction))
    assert png.rgb.shape[:2] == (math.ceil(751 / reduction), math.ceil(1001 / reduction))
    assert jpeg.scale == png.scale == 1 / reduction
    rows, cols = png.rgb.shape[:2]
    assert mad(jpeg.rgb[: rows - 1, : cols - 1], png.rgb[: rows - 1, : cols - 1]) < 3.0


@pytest.mark.parametrize("mode", ["CMYK", "RGB", "L"])
@pytest.mark.parametrize("reduction", [2, 4, 8])
def test_a_side_shorter_than_the_reduction_keeps_one_pixel(mode, reduction):
    """A 24x4 JPEG (the fuzzer's find: CMYK, decoded through Pillow, whose
    resize was left no rows and raised cv2.error) comes out with each side
    rounded up, as from libjpeg: 4 rows at 1/8 are one."""
    tiny = Image.new(mode, (24, 4), 128 if mode == "L" else None)
    data = encode(tiny, "JPEG", quality=90)
    found = probe(data, SETTINGS.model_copy(update={"min_side": 1}))
    out = decode(data, found, reduction)
    assert out.rgb.shape == (math.ceil(4 / reduction), math.ceil(24 / reduction), 3)


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("cmyk.jpg", (1200, 1200)),  # Pillow's DCT scaling
        ("ycck.jpg", (1200, 1200)),
        ("exif_rotated_6.jpg", (900, 1200)),  # upright after reduction, 900 / 8 not whole
        ("heic.heic", (1200, 1200)),  # full decode, then INTER_AREA
        ("palette.png", (600, 600)),
    ],
)
def test_reduction_on_other_paths(sample_bytes, name, size):
    """Blocks are reduced in the stored image, then turned upright."""
    data = sample_bytes(name)
    found = probe(data, SETTINGS)
    stored = decode(data, dataclasses.replace(found, orientation=1)).rgb
    for reduction in (2, 8):
        out = decode(data, found, reduction)
        assert out.rgb.flags.c_contiguous
        # JPEG's DCT scaling rounds a side up (900 / 8 -> 113); the rest divide evenly.
        assert out.rgb.shape == (
            math.ceil(size[1] / reduction),
            math.ceil(size[0] / reduction),
            3,
        )
        area = cv2.resize(
            stored, None, fx=1 / reduction, fy=1 / reduction, interpolation=cv2.INTER_AREA
        )
        expected = SHOWN[found.orientation](area)
        rows, cols = (
            min(out.rgb.shape[0], expected.shape[0]),
            min(out.rgb.shape[1], expected.shape[1]),
        )
        # Compare away from the edge where the partial block landed (the start, here).
        assert mad(out.rgb[-rows + 1 :, -cols + 1 :], expected[-rows + 1 :, -cols + 1 :]) < 2.0


def test_other_reductions_are_refused(sample_bytes):
    data = sample_bytes("accept_portrait.jpg")
    with pytest.raises(ValueError, match="reduction"):
        decode(data, probe(data, SETTINGS), 3)


# --- alpha, palette, 16 bit, colour ---------------------------------------------


def test_alpha_is_composited_on_grey_not_black(sample_bytes, astronaut):
    data = sample_bytes("alpha.png")
    rgb = load(data).rgb
    with Image.open(io.BytesIO(data)) as im:
        alpha = np.asarray(im)[..., 3]
    assert (alpha[0, 0], alpha[-1, -1]) == (0, 0)
    assert (rgb[alpha == 0] == 128).all()  # the stored RGB there is 0: black
    opaque = alpha == 255
    assert np.array_equal(rgb[opaque], np.asarray(astronaut)[opaque])
    half = (alpha > 100) & (alpha < 155)
    assert half.sum() > 1000
    a = alpha[half, None].astype(float) / 255
    blended = np.asarray(astronaut)[half] * a + 128 * (1 - a)
    assert np.abs(rgb[half] - blended).max() <= 1


def test_palette_with_transparent_index(sample_bytes, portrait):
    data = sample_bytes("palette.png")
    rgb = load(data).rgb
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "P" and im.info["transparency"] == 255
        transparent = np.asarray(im) == 255
    assert transparent[0, 0] and transparent.sum() > 10_000
    assert (rgb[transparent] == 128).all()
    inside = np.asarray(portrait.resize((600, 600), LANCZOS))[~transparent]
    assert mad(rgb[~transparent], inside) < 6.0  # 255 colours, no dither


def test_grey_with_alpha_and_rgb_with_trns():
    la = Image.new("LA", (64, 64), (200, 255))
    la.putpixel((0, 0), (200, 0))
    la.putpixel((1, 0), (200, 51))  # 20% opaque
    rgb = load(encode(la, "PNG"), settings=SETTINGS.model_copy(update={"min_side": 1})).rgb
    assert tuple(rgb[0, 0]) == (128, 128, 128)
    assert tuple(rgb[0, 1]) == (142, 142, 142)  # 0.2 * 200 + 0.8 * 128 = 142.4
    assert tuple(rgb[5, 5]) == (200, 200, 200)
    im = Image.new("RGB", (64, 64), (10, 200, 30))
    im.putpixel((3, 3), (1, 2, 3))
    rgb = load(encode(im, "PNG", transparency=(1, 2, 3)), settings=SETTINGS).rgb
    assert tuple(rgb[3, 3]) == (128, 128, 128)
    assert tuple(rgb[0, 0]) == (10, 200, 30)


def test_16bit_pngs_scale_to_8bit_exactly(sample_bytes, portrait):
    rgb16 = load(sample_bytes("16bit.png")).rgb
    assert np.array_equal(rgb16, np.asarray(portrait.resize((400, 400), LANCZOS)))
    gray = load(sample_bytes("16bit_gray.png")).rgb
    expected = np.asarray(portrait.convert("L").resize((400, 400), LANCZOS))
    assert np.array_equal(gray[..., 0], expected)
    assert np.array_equal(gray[..., 2], expected)


def test_16bit_grey_is_scaled_not_clipped():
    levels = np.array([[0, 257, 40000, 65535]], np.uint16).repeat(64, axis=0).repeat(16, axis=1)
    rgb = load(encode(Image.fromarray(levels), "PNG")).rgb
    assert rgb[0, ::16, 0].tolist() == [0, 1, 156, 255]  # Pillow's convert gives 255 for 40000


def test_display_p3_profile_is_converted_to_srgb(sample_bytes, portrait):
    data = sample_bytes("display_p3.jpg")
    found = probe(data, SETTINGS)
    assert found.icc_profile is not None
    tagged = decode(data, found).rgb
    untagged = decode(data, dataclasses.replace(found, icc_profile=None)).rgb
    assert mad(tagged, np.asarray(portrait)) < 1.0
    assert mad(untagged, np.asarray(portrait)) > 1.5  # P3 numbers shown as sRGB: duller


def test_probe_carries_the_profile_only_when_there_is_one(sample_bytes):
    assert probe(sample_bytes("bmp.bmp"), SETTINGS).icc_profile is None
    assert isinstance(probe(sample_bytes("heic.heic"), SETTINGS), Probe)


# --- errors ----------------------------------------------------------------------


def error_of(data: bytes, settings: PipelineSettings = SETTINGS, reduction: int = 1) -> ImageError:
    with pytest.raises(ImageError) as caught:
        decode(data, probe(data, settings), reduction)
    return caught.value


def test_empty_is_missing():
    error = error_of(b"")
    assert error.code == "image.missing"
    assert error.param == "image"


@pytest.mark.parametrize(
    ("data", "looks_like"),
    [
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "an SVG drawing"),
        (b"<svg width='10' height='10'></svg>", "an SVG drawing"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "a PDF document"),
        (b"hello, this is a text file\n", "text"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(40), "a ZIP archive"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(40), "a video"),
        (b"\x00\x00\x00\x0cJXL \r\n\x87\n" + bytes(40), "a JPEG XL image"),
        (b"BM this is not a bitmap header at all", "text"),
        (bytes(range(256)) * 4, None),
    ],
)
def test_not_an_image_is_unsupported_format(data, looks_like):
    error = error_of(data)
    assert error.code == "image.unsupported_format"
    assert "JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC/HEIF or AVIF" in error.message
    if looks_like:
        assert looks_like in error.message
    (check,) = error.checks
    assert (check.name, check.passed) == ("format", False)
    assert "HEIC" in str(check.limit)


TRUNCATABLE = [
    "accept_portrait.jpg",
    "progressive.jpg",
    "cmyk.jpg",
    "ycck.jpg",
    "gray.jpg",
    "accept_astronaut.png",
    "palette.png",
    "16bit_gray.png",
    "webp.webp",
    "heic.heic",
    "avif.avif",
    "tiff.tiff",
    "bmp.bmp",
]


@pytest.mark.parametrize(
    ("name", "kept"),
    [(name, kept) for name in TRUNCATABLE for kept in (0.3, 0.98)]
    # The GIF's first frame (the one decoded) ends near 50%: after it, nothing is missing.
    + [("gif.gif", 0.3), ("gif.gif", 0.45)],
)
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # the cut TIFF's directory
def test_truncated_is_unreadable_never_half_decoded(sample_bytes, name, kept):
    data = sample_bytes(name)
    for reduction in (1, 8):
        error = error_of(data[: int(len(data) * kept)], reduction=reduction)
        assert error.code == "image.unreadable"
        assert "corrupt or truncated" in error.message


@pytest.mark.parametrize("name", ["accept_portrait.jpg", "progressive.jpg", "accept_astronaut.png"])
def test_corrupt_data_is_unreadable(sample_bytes, name):
    """JPEG entropy data that libjpeg flags (strict mode), PNG data failing its CRC."""
    data = bytearray(sample_bytes(name))
    middle = len(data) // 2
    data[middle : middle + 2000] = np.random.default_rng(7).bytes(2000)
    assert error_of(bytes(data)).code == "image.unreadable"


def test_garbage_after_a_magic_number_is_unreadable():
    for magic in (b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"II*\x00"):
        assert error_of(magic + bytes(200)).code == "image.unreadable"


def test_too_large_is_checked_first_on_bytes():
    data = b"\xff\xd8\xff" + bytes(25_300_000 - 3)  # not even a valid JPEG: size comes first
    error = error_of(data)
    assert error.code == "image.too_large"
    assert error.message == "The image is 25.3 MB; the limit is 20 MB."
    (check,) = error.checks
    assert (check.name, check.passed, check.value, check.limit) == (
        "file_size",
        False,
        25_300_000,
        20_000_000,
    )


def test_too_large_follows_the_setting(sample_bytes):
    data = sample_bytes("large_12mp.jpg")
    error = error_of(data, SETTINGS.model_copy(update={"max_bytes": 1_000_000}))
    assert error.code == "image.too_large"
    assert error.message == f"The image is {len(data) / 1e6:.1f} MB; the limit is 1 MB."


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header says width x height; its one IDAT holds a few bytes, so any
    attempt to decode it fails as truncated, never as too big."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(64)))
        + chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real 64x64 JPEG with its frame header patched to claim width x height."""
    data = bytearray(encode(Image.new("RGB", (64, 64), (90, 120, 150)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("bomb", [png_claiming(100_000, 100_000), jpeg_claiming(60_000, 60_000)])
def test_decompression_bomb_refused_from_the_header(bomb):
    assert len(bomb) < 1000
    tracemalloc.start()
    with pytest.raises(ImageError) as caught:
        probe(bomb, SETTINGS)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000
    error = caught.value
    assert error.code == "image.too_many_pixels"
    (check,) = error.checks
    assert isinstance(check.value, int) and check.value > 3_000_000_000
    assert check.limit == 50_000_000
    assert "the limit is 50 megapixels" in error.message


def test_too_many_pixels_follows_the_setting(sample_bytes):
    error = error_of(
        sample_bytes("large_12mp.jpg"), SETTINGS.model_copy(update={"max_pixels": 10_000_000})
    )
    assert error.code == "image.too_many_pixels"
    assert error.message == (
        "The image is 4000x3000 pixels (12.0 megapixels); the limit is 10 megapixels."
    )
    assert (error.checks[0].value, error.checks[0].limit) == (12_000_000, 10_000_000)


def test_too_small_uses_the_upright_short_side():
    error = error_of(encode(Image.new("RGB", (48, 60), "white"), "PNG"))
    assert error.code == "image.too_small"
    assert error.message == (
        "The image is 48x60 pixels; its shorter side must be at least 64 pixels."
    )
    assert (error.checks[0].name, error.checks[0].value, error.checks[0].limit) == (
        "min_side",
        48,
        64,
    )
    # Stored 200x60 turned by Orientation 6: upright 60x200, the short side is still 60.
    turned = with_orientation(np.zeros((60, 200, 3), np.uint8), 6, "JPEG")
    error = error_of(turned)
    assert error.message.startswith("The image is 60x200 pixels")


def test_thumbnail_above_min_side_passes(sample_bytes):
    found = probe(sample_bytes("reject_face_too_small_thumbnail.jpg"), SETTINGS)
    assert (found.width, found.height) == (112, 112)


def test_probe_reads_the_header_only(sample_path):
    """Peak memory (Linux VmHWM, reset before each step) of a fresh process: probing a
    12 MP JPEG adds next to nothing, while decoding it needs its 36 MB of pixels (which
    shows the measure sees a decode even when its memory is freed again)."""
    script = """
import json, re, sys
from pathlib import Path
from pipeline.decode import decode
from pipeline.probe import probe
from pipeline.settings import PipelineSettings

def status(field):
    text = Path("/proc/self/status").read_text()
    return int(re.search(field + r":\\s+(\\d+) kB", text).group(1)) * 1024

def peak_growth(step):
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = status("VmRSS")
    step()
    return status("VmHWM") - before

data = Path(sys.argv[1]).read_bytes()
found = probe(data, PipelineSettings())
print(json.dumps({
    "probe": peak_growth(lambda: probe(data, PipelineSettings())),
    "decode": peak_growth(lambda: decode(data, found)),
}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(sample_path("large_12mp.jpg"))],
        capture_output=True,
        text=True,
        check=True,
    )
    grown = json.loads(done.stdout)
    assert grown["probe"] < 2_000_000
    assert grown["decode"] > 30_000_000


@pytest.mark.filterwarnings("ignore")  # Pillow warns about the damaged EXIF it skips
@pytest.mark.parametrize("name", [*TRUNCATABLE, "gif.gif", "exif_rotated_6.jpg", "display_p3.jpg"])
def test_damaged_headers_give_image_errors_and_nothing_else(sample_bytes, name):
    """Seeded damage to the first 2 KB (markers, chunk headers, EXIF, ICC) and cuts:
    every outcome is a decoded image or an ImageError, never another exception that
    would reach a caller as a 500 or stop a batch."""
    data = sample_bytes(name)
    rng = np.random.default_rng(sum(name.encode()))
    settings = SETTINGS.model_copy(update={"min_side": 1})
    for attempt in range(20):
        damaged = bytearray(data)
        for position in rng.integers(0, min(len(data), 2048), size=int(rng.integers(1, 6))):
            damaged[position] = int(rng.integers(0, 256))
        if attempt % 3 == 0:
            damaged = damaged[: int(rng.integers(8, len(damaged)))]
        try:
            out = load(bytes(damaged), int(rng.choice([1, 8])), settings)
        except ImageError as error:
            assert error.code in ("image.unreadable", "image.unsupported_format")
        else:
            assert out.rgb.dtype == np.uint8 and out.rgb.ndim == 3


@pytest.mark.parametrize("quality", [100, 95, 75, 50, 25, 10, 3, 1])
def test_probe_reads_the_jpeg_quality_from_its_tables(quality: int) -> None:
    rgb = np.random.default_rng(quality).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)

    assert probe(buffer.getvalue(), SETTINGS).jpeg_quality == pytest.approx(quality, abs=1)


def test_probe_has_no_jpeg_quality_for_other_formats() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="PNG")

    assert probe(buffer.getvalue(), SETTINGS).jpeg_quality is None

"""Bytes to upright sRGB pixels: sniff, check limits from the header, decode.

Contract (other stages are written against it):

    probe(data, settings) -> Probe      # header only, no pixel decode; raises ImageError
    decode(data, probe, reduction) -> Decoded

`reduction` is 1, 2, 4 or 8, and every format decodes at that scale in memory
of about the output's size: JPEG by DCT scaling (libjpeg-turbo); PNG, WebP and
TIFF by libvips, streamed a few rows at a time and shrunk as they come (WebP by
libwebp's own scaled decode); GIF and BMP through Pillow at one byte per pixel
(palette indices), turned into colour a band of rows at a time; HEIC and AVIF
decode whole (their codecs offer nothing smaller) and are reduced band by band.
What a decoder must hold whatever the scale (the coefficients of a progressive
JPEG, a WebP frame at full scale, a whole HEIC, a TIFF strip, ...) is estimated
from the header by `probe`, which refuses an image whose estimate passes
`max_decoder_bytes` (see `_held_bytes`): the lower pixel cap of that variant.
Every decoder's own exceptions become an ImageError in one place, `_decoding`.
"""

from __future__ import annotations

import builtins
import io
import math
import re
import struct
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pillow_heif
import simplejpeg
from PIL import (
    AvifImagePlugin,
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageCms,
    ImageFile,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)
from pillow_heif import HeifImageFile

from pipeline.color import BACKGROUND, to_rgb, to_srgb
from pipeline.errors import ImageError
from pipeline.record import Check
from pipeline.settings import PipelineSettings
from pipeline.sniff import ACCEPTED_NAMES, describe, sniff

if TYPE_CHECKING:
    import pyvips

REDUCTIONS = (1, 2, 4, 8)
_ORIENTATION_TAG = 0x0112


# The header parser of each sniffed format. Calling the plugin class itself (not
# Image.open) tries no other format, needs no plugin registered, and skips Pillow's
# own decompression-bomb check, a module global with its own limit: ours, from the
# settings, runs instead, before any pixel is decoded. (A few plugins run Pillow's
# check inside their header parse all the same, the GIF one for a frame larger
# than its screen: `_decoding` turns that into image.too_many_pixels.)
_OPENERS: dict[str, Callable[[io.BytesIO], ImageFile.ImageFile]] = {
    "jpeg": JpegImagePlugin.JpegImageFile,
    "png": PngImagePlugin.PngImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
    "gif": GifImagePlugin.GifImageFile,
    "bmp": BmpImagePlugin.BmpImageFile,
    "tiff": TiffImagePlugin.TiffImageFile,
    "heic": HeifImageFile,
    "avif": AvifImagePlugin.AvifImageFile,
}

# What the decoders raise on malformed or truncated data: Pillow's own list of
# header-parse failures (SyntaxError, IndexError, TypeError, struct.error, as in
# Image.open), OSError/EOFError for pixel data, ValueError from simplejpeg and
# pillow-heif, RuntimeError from libheif and libavif (and pyvips.Error from libvips,
# see `_decoding`: libvips is loaded on the first decode that needs it)
# (its loaders fail on the first error, see `_VIPS_OPTIONS`), KeyError and
# ArithmeticError from tag values Pillow's TIFF and EXIF readers do not expect,
# and PyCMSError from an ICC transform that cannot take the pixels.
_MALFORMED = (
    OSError,
    EOFError,
    SyntaxError,
    LookupError,
    TypeError,
    struct.error,
    ValueError,
    RuntimeError,
    ArithmeticError,
    ImageCms.PyCMSError,
)

# Source pixels converted to RGB in one go: bounds the working copies of the
# colour conversion (a few bytes per pixel each) whatever the image's size.
_BAND_PIXELS = 1 << 19
# Rows fetched from a streaming libvips loader at a time: its own caches grow with
# the request (measured: 20-40 MB at this size, twice that at 8 times it).
_VIPS_BAND_PIXELS = 1 << 16

# libvips loaders: stream top to bottom, and fail on the first decoder error
# (a truncated or corrupt file) instead of handing back a half-grey image.
_VIPS_OPTIONS = {"access": "sequential", "fail_on": "error"}
_VIPS_LOADERS = {"png": "pngload_buffer", "webp": "webpload_buffer", "tiff": "tiffload_buffer"}
_VIPS_DTYPES = {"uchar": np.uint8, "ushort": np.uint16, "float": np.float32}
# Colour spaces libvips knows and the pipeline does not: converted to sRGB by libvips.
_VIPS_TO_SRGB = frozenset({"lab", "labs", "labq", "xyz", "yxy", "lch", "cmc", "hsv", "scrgb"})


# The JPEG standard's luminance quantization table (ITU T.81 Annex K), row by
# row as Pillow reports tables: libjpeg and most encoders scale it by quality.
_STANDARD_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.float64,
).ravel()


@dataclass(frozen=True)
class Probe:
    """What the header says. `width`/`height` are the UPRIGHT size (EXIF applied).
    `jpeg_quality`: the libjpeg quality (1-100) a JPEG's luminance table was
    made with, estimated from the table; None for other formats."""

    format: str  # jpeg, png, webp, gif, bmp, tiff, heic, avif
    width: int
    height: int
    orientation: int  # EXIF orientation 1..8 (1 when absent)
    bytes: int
    # The embedded colour profile (`builtins.`: the field above shadows the type here).
    icc_profile: builtins.bytes | None = field(default=None, repr=False)
    jpeg_quality: int | None = None

    @property
    def dct_scalable(self) -> bool:
        """Whether `decode` at 1/reduction costs about the reduced size: true of every
        format now (the name is from when only JPEG's DCT scaling did; the
        orchestrator picks its reductions by it)."""
        return True

    @property
    def stored_size(self) -> tuple[int, int]:
        """(width, height) as stored, before the EXIF orientation is applied."""
        if self.orientation >= 5:
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True)
class Decoded:
    """`rgb`: (H, W, 3) uint8, RGB, sRGB, upright, C-contiguous, writable.
    `scale`: decoded pixels per upright source pixel, 1 / reduction. Each decoded pixel
    averages a reduction x reduction block of the STORED image, blocks counted from the
    stored origin; a stored side not divisible by the reduction ends in one partial
    block, which EXIF orientation may move to the start of the upright axis. So
    x_source = x_decoded / scale holds to within one decoded pixel, exactly when the
    sides divide evenly."""

    rgb: np.ndarray
    scale: float


def probe(data: bytes, settings: PipelineSettings) -> Probe:
    """Check `data` against the limits in `settings` from its header alone (no pixel is
    decoded, nothing the size of the image is allocated) and say what it is.

    Raises ImageError with code image.missing, image.too_large (checked first, on the
    byte count), image.unsupported_format, image.unreadable, image.too_many_pixels
    (more pixels than `max_pixels`, or than the format's decoder can hold in
    `max_decoder_bytes`) or image.too_small."""
    if not data:
        raise ImageError(
            "No image was sent: the file is empty.", code="image.missing", param="image"
        )
    if len(data) > settings.max_bytes:
        raise _limit_error(
            "image.too_large",
            f"The image is {len(data) / 1e6:.1f} MB; the limit is {settings.max_bytes / 1e6:g} MB.",
            name="file_size",
            value=len(data),
            limit=settings.max_bytes,
            hint="Export the photo as a JPEG; a 12 MP phone photo is 3 to 6 MB.",
        )
    fmt = sniff(data)
    if fmt is None:
        looks_like = describe(data)
        shown = f" (it looks like {looks_like})" if looks_like else ""
        raise _limit_error(
            "image.unsupported_format",
            f"The file is not a supported image{shown}; send a {ACCEPTED_NAMES} image.",
            name="format",
            value=looks_like or "unknown",
            limit=ACCEPTED_NAMES,
            hint="Send the photo itself, as a phone or camera saved it.",
        )
    with _decoding(fmt, settings.max_pixels):
        return _probe_header(data, fmt, settings)


def _probe_header(data: bytes, fmt: str, settings: PipelineSettings) -> Probe:
    im = _OPENERS[fmt](io.BytesIO(data))
    stored_w, stored_h = im.size
    if stored_w <= 0 or stored_h <= 0:
        raise _unreadable(fmt)
    pixels = stored_w * stored_h
    if pixels > settings.max_pixels:
        raise _too_many_pixels(stored_w, stored_h, settings.max_pixels)
    held = _held_bytes(data, im, fmt)
    if held is not None and held[0] > settings.max_decoder_bytes:
        held_bytes, why = held
        cap = pixels * settings.max_decoder_bytes // held_bytes
        raise _too_many_pixels(stored_w, stored_h, cap, why)
    orientation = _orientation(im)
    width, height = (stored_h, stored_w) if orientation >= 5 else (stored_w, stored_h)
    if min(width, height) < settings.min_side:
        raise _limit_error(
            "image.too_small",
            f"The image is {width}x{height} pixels; its shorter side must be at least "
            f"{settings.min_side} pixels.",
            name="min_side",
            value=min(width, height),
            limit=settings.min_side,
            hint="Send the original photo, not a thumbnail.",
        )
    return Probe(
        format=fmt,
        width=width,
        height=height,
        orientation=orientation,
        bytes=len(data),
        icc_profile=im.info.get("icc_profile") or None,
        jpeg_quality=_jpeg_quality(im),
    )


def _held_bytes(data: bytes, im: ImageFile.ImageFile, fmt: str) -> tuple[int, str] | None:
    """What the decoder of `im` must hold in memory whatever the output scale, in
    bytes, and why (a clause for the error message); None when it streams (baseline
    JPEG, PNG that is not interlaced). Each figure is the data structure the codec
    keeps, checked against measurements by tests/pipeline/test_decode_bounds.py."""
    pixels = im.width * im.height
    if fmt == "jpeg":
        if not im.info.get("progressive"):
            return None
        # libjpeg keeps every DCT coefficient (2 bytes per sample) until the last scan;
        # with its buffers and the output, measured 2.06 bytes per sample.
        layers = getattr(im, "layer", None) or [(0, 1, 1, 0)] * len(im.mode)
        h_max = max(h for _, h, _, _ in layers)
        v_max = max(v for _, _, v, _ in layers)
        samples = sum(h * v for _, h, v, _ in layers) / (h_max * v_max)
        return int(2.1 * samples * pixels), "a progressive JPEG keeps all its coefficients"
    if fmt == "png":
        # IHDR is the first chunk: bit depth at byte 24, colour type 25, interlace 28.
        if len(data) < 29 or data[28] == 0:
            return None
        depth, colour = data[24], data[25]
        channels = {0: 1, 2: 3, 3: 4, 4: 2, 6: 4}.get(colour, 4)
        per_pixel = channels * (2 if depth == 16 else 1)
        return per_pixel * pixels, "an interlaced PNG is read whole before its first row"
    if fmt == "webp":
        return _webp_held(data, pixels)
    if fmt == "tiff":
        return _tiff_held(im)
    if fmt in ("gif", "bmp"):
        # Pillow decodes the whole frame in its own mode: palette indices and grey
        # at 1 byte per pixel, colour at 4 (a colour BMP is bounded by max_bytes).
        per_pixel = 1 if im.mode in ("1", "L", "P") else 4
        return per_pixel * pixels, f"a {fmt.upper()} is decoded whole"
    if fmt == "heic":
        # libheif's decoded planes and the RGB it converts them to (measured: 4.8
        # bytes per pixel at 8 bits, 8.9 at 10 bits).
        deep = int(im.info.get("bit_depth", 8) or 8) > 8
        return int((9.5 if deep else 5.0) * pixels), "an HEIC image is decoded whole"
    if fmt == "avif":
        # libavif's YUV and alpha planes and its RGB(A) output (measured: 8.7 bytes
        # per pixel for RGB, 12.3 for RGBA at 8 bits).
        return int(12.5 * pixels), "an AVIF image is decoded whole"
    return None


def _webp_held(data: bytes, pixels: int) -> tuple[int, str] | None:
    """libwebp decodes a frame whole into libvips' buffer (RGBA, 4 bytes per pixel)
    unless asked for a smaller scale, and a lossless one (VP8L) whole at any scale
    (its back references may reach any earlier pixel): measured 3.7-4.8 bytes per
    pixel. An animation is drawn on a canvas of that size, which libvips keeps next
    to the frame, and libvips does not scale it: measured 12.2."""
    chunks = {data[i : i + 4] for i in range(12, min(len(data), 4096) - 3)}
    if b"ANIM" in chunks and data[12:16] == b"VP8X":
        return 13 * pixels, "an animated WebP is drawn whole on a canvas"
    return 5 * pixels, "a WebP is decoded whole at full scale"


def _tiff_held(im: ImageFile.ImageFile) -> tuple[int, str] | None:
    """libtiff reads a strip, or a row of tiles, at a time: its bytes, uncompressed."""
    tags = getattr(im, "tag_v2", {})
    bits = tags.get(258, (1,))
    bits_per_pixel = sum(bits) if isinstance(bits, tuple) else int(bits)
    samples = int(tags.get(277, 1) or 1)
    if isinstance(bits, tuple) and len(bits) < samples:
        bits_per_pixel = bits[0] * samples
    if 322 in tags and 323 in tags:
        tile_w, tile_h = max(1, int(tags[322])), max(1, int(tags[323]))
        row_bytes = math.ceil(im.width / tile_w) * tile_w * bits_per_pixel // 8
        held = tile_h * row_bytes
    else:
        rows = min(int(tags.get(278, im.height) or im.height), im.height)
        held = rows * math.ceil(im.width * bits_per_pixel / 8)
    return held, "a TIFF is read a strip at a time and its strips are this large"


def _jpeg_quality(im: Image.Image) -> int | None:
    """The libjpeg quality whose scaling of the standard luminance table gives
    `im`'s own, or None when `im` is no JPEG. libjpeg scales the table by
    5000/q percent below quality 50 and by 200 - 2q above, clamping entries at
    255 (1 at the other end), so the scale is the median ratio of the entries
    that were not clamped."""
    tables = getattr(im, "quantization", None)
    if not tables or len(tables.get(0, ())) != _STANDARD_LUMA.size:
        return None
    table = np.asarray(tables[0], dtype=np.float64)
    free = (table > 1) & (table < 255)
    if not free.any():  # every entry clamped: the best or the worst there is
        return 100 if table.max() <= 1 else 1
    scale = 100 * float(np.median(table[free] / _STANDARD_LUMA[free]))
    quality = 5000 / scale if scale > 100 else (200 - scale) / 2
    return int(min(max(round(quality), 1), 100))


def decode(data: bytes, probe: Probe, reduction: int = 1) -> Decoded:
    """Decode `data` (already accepted by `probe`) to upright sRGB pixels at
    1 / `reduction` of the source size (`reduction` in 1, 2, 4, 8).

    Raises ImageError image.unreadable for corrupt or truncated data (never returns
    a half-decoded image), image.too_many_pixels when the decoder itself finds the
    image too large for memory."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, not {reduction}")
    with _decoding(probe.format):
        if probe.format == "jpeg":
            rgb = _decode_jpeg(data, probe, reduction)
        elif probe.format in _VIPS_LOADERS:
            rgb = _decode_vips(data, probe, reduction)
        else:
            rgb = _decode_whole(data, probe, reduction)
    # Writable and owning its memory whichever decoder made it: callers may draw on
    # it in place. (A no-op for the banded paths, which fill an array of their own.)
    rgb = np.require(rgb, requirements=("C", "W", "O"))
    return Decoded(rgb=rgb, scale=1.0 / reduction)


@contextmanager
def _decoding(fmt: str, max_pixels: int | None = None) -> Iterator[None]:
    """The one place where what a decoder raises becomes an ImageError: bombs and
    running out of memory are image.too_many_pixels (`max_pixels` the limit to
    name, when known), every other decoder failure is image.unreadable. Our own
    ImageErrors pass through."""
    try:
        yield
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb(exc, max_pixels) from exc
    except MemoryError as exc:
        raise _limit_error(
            "image.too_many_pixels",
            f"The {fmt.upper()} image needs more memory to decode than is allowed.",
            name="pixel_count",
            value="unknown",
            limit="memory",
            hint="Resize the photo; 12 megapixels is plenty for an avatar.",
        ) from exc
    except _MALFORMED as exc:
        raise _unreadable(fmt) from exc
    except Exception as exc:
        vips = sys.modules.get("pyvips")
        if vips is not None and isinstance(exc, vips.Error):  # libvips: the first error
            raise _unreadable(fmt) from exc
        raise


def _decode_jpeg(data: bytes, probe: Probe, reduction: int) -> np.ndarray:
    rgb = _decode_simplejpeg(data, reduction)
    rgb = _decode_pillow_jpeg(data, reduction) if rgb is None else to_srgb(rgb, probe.icc_profile)
    return _upright(rgb, probe.orientation)


def _decode_simplejpeg(data: bytes, reduction: int) -> np.ndarray | None:
    """libjpeg-turbo via simplejpeg, scaled in the DCT; None for CMYK/YCCK, which it
    cannot turn into RGB. Strict: a warning (truncated, corrupt entropy data) is an error."""
    height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    if colorspace in ("CMYK", "YCCK"):
        return None
    # The smallest of libjpeg's n/8 scales that is at least this size is 1/reduction.
    return simplejpeg.decode_jpeg(
        data,
        "RGB",
        min_height=math.ceil(height / reduction),
        min_width=math.ceil(width / reduction),
        strict=True,
    )


def _decode_pillow_jpeg(data: bytes, reduction: int) -> np.ndarray:
    """CMYK and YCCK JPEG (Pillow undoes Adobe's inverted CMYK), DCT-scaled too.
    Pillow picks the scale from width // requested width, so ask for the floor size;
    it reports the source box the scale covers."""
    im = _OPENERS["jpeg"](io.BytesIO(data))
    if reduction > 1:
        stored_width = im.width
        drafted = im.draft(im.mode, (max(1, im.width // reduction), max(1, im.height // reduction)))
        if drafted is not None:
            reduction //= round(stored_width / drafted[1][2])
    im.load()
    rgb = to_rgb(im, im.info.get("icc_profile"))
    if reduction == 1:
        return rgb
    # fx/fy (not a dsize) keep the mapping exactly x_src = reduction * x_dst.
    return cv2.resize(rgb, None, fx=1 / reduction, fy=1 / reduction, interpolation=cv2.INTER_AREA)


# --- PNG, WebP, TIFF: libvips, streamed -------------------------------------------


def _decode_vips(data: bytes, probe: Probe, reduction: int) -> np.ndarray:
    """At full scale, rows come out of the loader a few at a time and are turned into
    sRGB RGB band by band, straight into their upright place in the output. Reduced,
    libvips composites alpha on grey, shrinks the rows as they come (block averages)
    and rounds them to 8 bits, and only that small image is held. Nothing the size
    of the source is held either way (but see `_webp_held`)."""
    options: dict[str, str | float] = dict(_VIPS_OPTIONS)
    scaled = probe.format == "webp" and reduction > 1
    if scaled:
        options["scale"] = 1 / reduction  # libwebp decodes straight to the smaller size
    image = getattr(_vips().Image, _VIPS_LOADERS[probe.format])(data, **options)
    width, height = probe.stored_size
    # The decoder must be reading the image the probe judged: the same size, or the
    # scaled size (libwebp's rounding), or (an animation: libvips does not scale
    # those) the same size again, to be shrunk here.
    if scaled and (image.width, image.height) == (width, height):
        scaled = False
    shrink = reduction if scaled else 1
    if abs(image.width * shrink - width) >= shrink or abs(image.height * shrink - height) >= shrink:
        raise _unreadable(probe.format)
    image = _vips_normalised(image)
    cmyk = image.interpretation == "cmyk"
    if reduction > 1:
        # Small: the whole reduced image in one evaluation (libvips' own strip loop,
        # far leaner than fetching regions of a shrinking pipeline).
        image = _vips_reduced(image, 1 if scaled else reduction)
        chunks: Iterator[tuple[int, int, builtins.bytes]] = iter(
            [(0, image.height, image.write_to_memory())]
        )
    else:
        chunks = _vips_rows(image)
    dtype = _VIPS_DTYPES[image.format]
    canvas = _Canvas(image.width, image.height, probe.orientation)
    step = max(1, _BAND_PIXELS // image.width)
    for top, count, pixels in chunks:
        rows = np.frombuffer(pixels, dtype).reshape(count, image.width, image.bands)
        for start in range(0, count, step):
            band = rows[start : start + step]
            place = slice(top + start, top + start + len(band))
            canvas.stored[place] = _band_to_rgb(band, cmyk, probe.icc_profile)
    return canvas.rgb


@cache
def _vips() -> ModuleType:
    """pyvips, loaded on the first decode that needs it (libvips adds 14 MB to a
    process: the API, which only probes, never pays it). libvips keeps recent
    operations and their pixels in a cache for reuse; a decoder that sees each file
    once only pays for it in memory. Loaders marked untrusted stay blocked."""
    import pyvips

    pyvips.cache_set_max(0)
    pyvips.block_untrusted_set(True)
    return pyvips


def _vips_rows(image: pyvips.Image) -> Iterator[tuple[int, int, builtins.bytes]]:
    """(top, count, pixels) of a streaming image, a few rows at a time, in order."""
    region = _vips().Region.new(image)
    rows = max(1, _VIPS_BAND_PIXELS // image.width)
    for top in range(0, image.height, rows):
        count = min(rows, image.height - top)
        yield top, count, region.fetch(0, top, image.width, count)


def _vips_normalised(image: pyvips.Image) -> pyvips.Image:
    """Pixels as `_band_to_rgb` takes them: 8 or 16 bit integers or 32-bit float; grey,
    grey + alpha, RGB, RGBA or CMYK; other colour spaces in sRGB."""
    if image.coding != "none" or image.interpretation in _VIPS_TO_SRGB:
        image = image.colourspace("srgb")
    if image.format in ("complex", "dpcomplex"):
        raise _unreadable("tiff")
    if image.format == "double":
        image = image.cast("float")
    elif image.format not in _VIPS_DTYPES:
        # Signed and 32-bit integers, read as Pillow reads its mode "I": 0-65535.
        image = image.cast("ushort")
    if image.interpretation == "cmyk" and image.bands >= 4:
        return image.extract_band(0, n=4) if image.bands > 4 else image  # alpha on CMYK: rare
    if image.bands > 4 or (image.bands == 4 and image.interpretation == "cmyk"):
        image = image.extract_band(0, n=3)
    return image


def _vips_reduced(image: pyvips.Image, reduction: int) -> pyvips.Image:
    """Alpha composited on `BACKGROUND` (in the file's colour space), then block
    averages of reduction x reduction pixels from the origin, a partial block at the
    end of a side (rounded up, as libjpeg does), then 8 bits per sample (16-bit
    values / 257, rounded: the same as `_band_to_rgb`)."""
    maximum = {"uchar": 255, "ushort": 65535}.get(image.format, 255)
    if image.hasalpha() and image.interpretation != "cmyk":
        background = [BACKGROUND * maximum / 255] * (image.bands - 1)
        image = image.flatten(background=background, max_alpha=maximum)
    if reduction > 1:
        image = image.shrink(reduction, reduction, ceil=True)
    if image.format == "uchar":
        return image
    if maximum == 65535:
        image = image / 257
    return image.rint().cast("uchar")


def _band_to_rgb(band: np.ndarray, cmyk: bool, icc_profile: bytes | None) -> np.ndarray:
    """(rows, width, bands) pixels of any depth -> (rows, width, 3) uint8 sRGB,
    alpha composited, by the same rules as `pipeline.color.to_rgb`."""
    if band.dtype == np.uint16:
        # 16 bits to 8 by value * 255 / 65535, rounded (as for 16-bit grey in color.py).
        band = ((band.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif band.dtype != np.uint8:
        band = np.nan_to_num(band, nan=0.0).clip(0, 255).round().astype(np.uint8)
    count, width, bands = band.shape
    if cmyk:
        return to_rgb(Image.frombytes("CMYK", (width, count), band.tobytes()), icc_profile)
    if bands == 1:
        return to_rgb(Image.fromarray(np.ascontiguousarray(band[..., 0])), icc_profile)
    return to_rgb(Image.fromarray(np.ascontiguousarray(band)), icc_profile)


# --- GIF, BMP, HEIC, AVIF: decoded whole, reduced band by band --------------------


def _decode_whole(data: bytes, probe: Probe, reduction: int) -> np.ndarray:
    """Formats whose codec gives the whole image at once; `probe` has bounded what
    that holds (`_held_bytes`). The colour conversion and the reduction then go a
    band of rows at a time into the output."""
    width, height = probe.stored_size
    icc = probe.icc_profile
    bands: Callable[[int, int], np.ndarray]
    if probe.format == "heic":
        heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
        pixels = np.asarray(heif)  # libheif's own buffer, no copy
        bands = _array_bands(pixels, icc)
        size = heif.size
    elif probe.format == "avif":
        pixels = _avif_pixels(data)
        bands = _array_bands(pixels, icc)
        size = (pixels.shape[1], pixels.shape[0])
    else:  # gif, bmp: Pillow, palette indices or grey at a byte per pixel
        im = _OPENERS[probe.format](io.BytesIO(data))
        im.load()
        bands = _pillow_bands(im, icc)
        size = im.size
    if size != (width, height):
        raise _unreadable(probe.format)
    return _reduce_bands(width, height, reduction, probe.orientation, bands)


def _pillow_bands(im: Image.Image, icc_profile: bytes | None) -> Callable[[int, int], np.ndarray]:
    """Rows of a loaded Pillow image as sRGB RGB. One byte per pixel (palette, grey,
    bilevel) goes through a 256-entry table made by `to_rgb` itself: transparency,
    grey background and colour profile are then one lookup per pixel."""
    if im.mode not in ("P", "L", "1"):

        def converted(top: int, bottom: int) -> np.ndarray:
            return to_rgb(im.crop((0, top, im.width, bottom)), icc_profile)

        return converted
    entries = Image.frombytes("L", (256, 1), bytes(range(256)))
    if im.mode == "P":
        entries = entries.convert("P")
        entries.putpalette(im.getpalette() or [])
    entries.info = {k: v for k, v in im.info.items() if k == "transparency"}
    table = to_rgb(entries, icc_profile)[0]
    if im.mode == "1":
        table = table[[0, 255]]  # a bilevel image reads as 0 and 1

    def looked_up(top: int, bottom: int) -> np.ndarray:
        return table[np.asarray(im.crop((0, top, im.width, bottom)), dtype=np.uint8)]

    return looked_up


def _avif_pixels(data: bytes) -> np.ndarray:
    """The first frame as (H, W, channels) uint8, straight from libavif's output: the
    plugin's `load` would copy it into a Pillow image first (4 bytes per pixel more)."""
    im = _OPENERS["avif"](io.BytesIO(data))
    channels = len(im.mode)
    decoder = getattr(im, "_decoder", None)
    if decoder is None:  # a Pillow without the decoder object: the plain way
        im.load()
        return np.asarray(im)
    frame = decoder.get_frame(0)[0]
    if len(frame) != im.width * im.height * channels:
        raise _unreadable("avif")
    return np.frombuffer(frame, np.uint8).reshape(im.height, im.width, channels)


def _array_bands(pixels: np.ndarray, icc_profile: bytes | None) -> Callable[[int, int], np.ndarray]:
    def bands(top: int, bottom: int) -> np.ndarray:
        band = np.ascontiguousarray(pixels[top:bottom])
        if band.ndim == 3 and band.shape[2] == 1:
            band = band[..., 0]
        return to_rgb(Image.fromarray(band), icc_profile)

    return bands


def _reduce_bands(
    width: int,
    height: int,
    reduction: int,
    orientation: int,
    bands: Callable[[int, int], np.ndarray],
) -> np.ndarray:
    """Stored rows [top, bottom) from `bands` (as sRGB RGB) -> block averages (INTER_AREA
    on whole blocks: bands start on multiples of `reduction`) -> their upright place.
    A side not divisible by the reduction ends in one partial block (rounded up, as
    libjpeg and `_vips_reduced` do)."""
    out_w, out_h = math.ceil(width / reduction), math.ceil(height / reduction)
    canvas = _Canvas(out_w, out_h, orientation)
    step = max(1, _BAND_PIXELS // (width * reduction)) * reduction
    done = 0
    for top in range(0, height, step):
        bottom = min(height, top + step)
        end = out_h if bottom == height else min(out_h, bottom // reduction)
        if end <= done:
            continue
        rgb = bands(top, bottom)
        if rgb.shape[:2] != (end - done, out_w):
            rgb = cv2.resize(rgb, (out_w, end - done), interpolation=cv2.INTER_AREA)
        canvas.stored[done:end] = rgb
        done = end
    return canvas.rgb


class _Canvas:
    """The upright output, and a view of it in stored order (`stored`): writing rows of
    the stored image into the view puts them where EXIF orientation shows them, so no
    turned copy of the whole image is ever made."""

    def __init__(self, stored_width: int, stored_height: int, orientation: int) -> None:
        shape = (stored_height, stored_width) if orientation < 5 else (stored_width, stored_height)
        self.rgb = np.empty((*shape, 3), np.uint8)
        self.stored = _STORED_VIEW[orientation](self.rgb)


# Upright array -> a view of it in stored order: the inverse of each `_upright` step.
_STORED_VIEW: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda u: u,
    2: lambda u: u[:, ::-1],
    3: lambda u: u[::-1, ::-1],
    4: lambda u: u[::-1],
    5: lambda u: u.transpose(1, 0, 2),
    6: lambda u: np.rot90(u, 1),
    7: lambda u: u[::-1, ::-1].transpose(1, 0, 2),
    8: lambda u: np.rot90(u, -1),
}


def _orientation(im: Image.Image) -> int:
    """EXIF Orientation 1..8 from what the header parse already holds; 1 when absent or
    invalid. Never `im.getexif()`: on a PNG without eXIf it decodes the whole image.
    pillow-heif applies HEIF's own rotation and resets this tag to 1; Pillow's AVIF
    plugin reports AVIF's rotation as this tag."""
    if isinstance(im, TiffImagePlugin.TiffImageFile):
        value = im.tag_v2.get(_ORIENTATION_TAG, 1)
    else:
        raw = im.info.get("exif")
        if not raw:
            return 1
        exif = Image.Exif()
        try:
            exif.load(raw)
        except _MALFORMED:
            return 1  # a broken EXIF block must not cost an otherwise good photo
        value = exif.get(_ORIENTATION_TAG, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Stored pixels (H, W, 3) -> as the EXIF `orientation` says they are shown.
    2-4 flip or turn in place, 5-8 swap width and height."""
    if orientation == 2:
        rgb = cv2.flip(rgb, 1)
    elif orientation == 3:
        rgb = cv2.rotate(rgb, cv2.ROTATE_180)
    elif orientation == 4:
        rgb = cv2.flip(rgb, 0)
    elif orientation == 5:
        rgb = cv2.transpose(rgb)
    elif orientation == 6:
        rgb = cv2.rotate(rgb, cv2.ROTATE_90_CLOCKWISE)
    elif orientation == 7:
        rgb = cv2.flip(cv2.transpose(rgb), -1)
    elif orientation == 8:
        rgb = cv2.rotate(rgb, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return rgb


def _limit_error(
    code: str, message: str, *, name: str, value: int | str, limit: int | str, hint: str
) -> ImageError:
    """An ImageError with the one check that failed, so clients see value and limit."""
    check = Check(name, False, value, limit, hint, code=code)
    return ImageError(message, code=code, param="image", checks=(check,))


def _too_many_pixels(width: int, height: int, limit: int, why: str = "") -> ImageError:
    pixels = width * height
    reason = f"{why}, so " if why else ""
    return _limit_error(
        "image.too_many_pixels",
        f"The image is {width}x{height} pixels ({pixels / 1e6:.1f} megapixels); "
        f"{reason}the limit is {_megapixels(limit)} megapixels.",
        name="pixel_count",
        value=pixels,
        limit=limit,
        hint="Resize the photo; 12 megapixels is plenty for an avatar.",
    )


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:g}" if pixels % 1_000_000 == 0 else f"{pixels / 1e6:.1f}"


def _bomb(exc: Exception, max_pixels: int | None) -> ImageError:
    """Pillow's own decompression-bomb check fired inside a plugin's header parse
    (a GIF frame declared larger than its screen): the size it names is far past
    any limit of ours."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = int(found.group(1)) if found else 0
    shown = f"declares {pixels / 1e6:.0f} megapixels" if pixels else "declares too many pixels"
    limit = f"; the limit is {_megapixels(max_pixels)} megapixels" if max_pixels else ""
    return _limit_error(
        "image.too_many_pixels",
        f"The image {shown}{limit}.",
        name="pixel_count",
        value=pixels or "unknown",
        limit=max_pixels or "unknown",
        hint="Resize the photo; 12 megapixels is plenty for an avatar.",
    )


def _unreadable(fmt: str) -> ImageError:
    return ImageError(
        f"The {fmt.upper()} image is corrupt or truncated and cannot be decoded; "
        "send the original file again.",
        code="image.unreadable",
        param="image",
    )

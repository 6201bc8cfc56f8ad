"""What an image is, from its header alone: format, upright size, orientation,
colour profile and JPEG quality, checked against the limits before any pixel is
decoded.

    probe(data, settings) -> Probe      # no pixel decode; raises ImageError

`probe` refuses an image whose decoder would hold more than `max_decoder_bytes`
whatever the output scale (see `_held_bytes`): the lower pixel cap of that
variant. `pipeline.decode` decodes what it accepted. Every decoder's own
exceptions, the header parsers' here and the pixel decoders' there, become an
ImageError in one place, `decoding`.
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

import numpy as np
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

from pipeline.errors import ImageError
from pipeline.record import Check
from pipeline.settings import PipelineSettings
from pipeline.sniff import ACCEPTED_NAMES, describe, sniff

_ORIENTATION_TAG = 0x0112


# The header parser of each sniffed format. Calling the plugin class itself (not
# Image.open) tries no other format, needs no plugin registered, and skips Pillow's
# own decompression-bomb check, a module global with its own limit: ours, from the
# settings, runs instead, before any pixel is decoded. (A few plugins run Pillow's
# check inside their header parse all the same, the GIF one for a frame larger
# than its screen: `decoding` turns that into image.too_many_pixels.)
OPENERS: dict[str, Callable[[io.BytesIO], ImageFile.ImageFile]] = {
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
# see `decoding`: libvips is loaded on the first decode that needs it)
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
    def stored_size(self) -> tuple[int, int]:
        """(width, height) as stored, before the EXIF orientation is applied."""
        if self.orientation >= 5:
            return self.height, self.width
        return self.width, self.height


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
    with decoding(fmt, settings.max_pixels):
        return _probe_header(data, fmt, settings)


def _probe_header(data: bytes, fmt: str, settings: PipelineSettings) -> Probe:
    im = OPENERS[fmt](io.BytesIO(data))
    stored_w, stored_h = im.size
    if stored_w <= 0 or stored_h <= 0:
        raise unreadable(fmt)
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


@contextmanager
def decoding(fmt: str, max_pixels: int | None = None) -> Iterator[None]:
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
        raise _pixel_count_error(
            f"The {fmt.upper()} image needs more memory to decode than is allowed.",
            value="unknown",
            limit="memory",
        ) from exc
    except _MALFORMED as exc:
        raise unreadable(fmt) from exc
    except Exception as exc:
        vips = sys.modules.get("pyvips")
        if vips is not None and isinstance(exc, vips.Error):  # libvips: the first error
            raise unreadable(fmt) from exc
        raise


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


def _limit_error(
    code: str, message: str, *, name: str, value: int | str, limit: int | str, hint: str
) -> ImageError:
    """An ImageError with the one check that failed, so clients see value and limit."""
    check = Check(name, False, value, limit, hint, code=code)
    return ImageError(message, code=code, param="image", checks=(check,))


def _pixel_count_error(message: str, *, value: int | str, limit: int | str) -> ImageError:
    """An image.too_many_pixels error: its `pixel_count` check failed with `value`
    against `limit`, with the one hint every such error gives."""
    return _limit_error(
        "image.too_many_pixels",
        message,
        name="pixel_count",
        value=value,
        limit=limit,
        hint="Resize the photo; 12 megapixels is plenty for an avatar.",
    )


def _too_many_pixels(width: int, height: int, limit: int, why: str = "") -> ImageError:
    pixels = width * height
    reason = f"{why}, so " if why else ""
    return _pixel_count_error(
        f"The image is {width}x{height} pixels ({pixels / 1e6:.1f} megapixels); "
        f"{reason}the limit is {_megapixels(limit)} megapixels.",
        value=pixels,
        limit=limit,
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
    return _pixel_count_error(
        f"The image {shown}{limit}.",
        value=pixels or "unknown",
        limit=max_pixels or "unknown",
    )


def unreadable(fmt: str) -> ImageError:
    return ImageError(
        f"The {fmt.upper()} image is corrupt or truncated and cannot be decoded; "
        "send the original file again.",
        code="image.unreadable",
        param="image",
    )

"""Bytes to upright sRGB pixels: sniff, check limits from the header, decode.

Contract (other stages are written against it):

    probe(data, settings) -> Probe      # header only, no pixel decode; raises ImageError
    decode(data, probe, reduction) -> Decoded

`reduction` is 1, 2, 4 or 8: JPEG uses DCT scaling (nearly free); other formats
decode fully and are reduced with INTER_AREA.
"""

from __future__ import annotations

import builtins
import io
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import simplejpeg
from PIL import (
    AvifImagePlugin,
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageFile,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)
from pillow_heif import HeifImageFile

from pipeline.color import to_rgb, to_srgb
from pipeline.errors import ImageError
from pipeline.record import Check
from pipeline.settings import PipelineSettings
from pipeline.sniff import ACCEPTED_NAMES, describe, sniff

REDUCTIONS = (1, 2, 4, 8)
_ORIENTATION_TAG = 0x0112

# The header parser of each sniffed format. Calling the plugin class itself (not
# Image.open) tries no other format, needs no plugin registered, and skips Pillow's
# own decompression-bomb check, a module global with its own limit: ours, from the
# settings, runs instead, before any pixel is decoded.
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
# pillow-heif, RuntimeError from libheif.
_MALFORMED = (
    OSError,
    EOFError,
    SyntaxError,
    IndexError,
    TypeError,
    struct.error,
    ValueError,
    RuntimeError,
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
    def dct_scalable(self) -> bool:
        return self.format == "jpeg"


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
    byte count), image.unsupported_format, image.unreadable, image.too_many_pixels or
    image.too_small."""
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
    im = _open(data, fmt)
    stored_w, stored_h = im.size
    if stored_w <= 0 or stored_h <= 0:
        raise _unreadable(fmt)
    pixels = stored_w * stored_h
    if pixels > settings.max_pixels:
        raise _limit_error(
            "image.too_many_pixels",
            f"The image is {stored_w}x{stored_h} pixels ({pixels / 1e6:.1f} megapixels); "
            f"the limit is {settings.max_pixels / 1e6:g} megapixels.",
            name="pixel_count",
            value=pixels,
            limit=settings.max_pixels,
            hint="Resize the photo; 12 megapixels is plenty for an avatar.",
        )
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

    Raises ImageError image.unreadable for corrupt or truncated data: never returns
    a half-decoded image."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, not {reduction}")
    rgb = _decode_jpeg(data, reduction) if probe.format == "jpeg" else None
    if rgb is None:
        rgb = _decode_pillow(data, probe.format, reduction)
    else:
        rgb = to_srgb(rgb, probe.icc_profile)
    # Writable and owning its memory whichever decoder made it (an array from Pillow
    # is a read-only view of a bytes object): callers may draw on it in place.
    rgb = np.require(_upright(rgb, probe.orientation), requirements=("C", "W", "O"))
    return Decoded(rgb=rgb, scale=1.0 / reduction)


def _decode_jpeg(data: bytes, reduction: int) -> np.ndarray | None:
    """libjpeg-turbo via simplejpeg, scaled in the DCT; None for CMYK/YCCK, which it
    cannot turn into RGB. Strict: a warning (truncated, corrupt entropy data) is an error."""
    try:
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
    except ValueError as exc:
        raise _unreadable("jpeg") from exc


def _decode_pillow(data: bytes, fmt: str, reduction: int) -> np.ndarray:
    """Every other format, and CMYK JPEG (Pillow undoes Adobe's inverted CMYK)."""
    im = _open(data, fmt)
    if fmt == "jpeg" and reduction > 1:
        # DCT scaling for CMYK JPEG too. Pillow picks the scale from width // requested
        # width, so ask for the floor size; it reports the source box the scale covers.
        stored_width = im.width
        drafted = im.draft(im.mode, (max(1, im.width // reduction), max(1, im.height // reduction)))
        if drafted is not None:
            reduction //= round(stored_width / drafted[1][2])
    try:
        im.load()
        rgb = to_rgb(im, im.info.get("icc_profile"))
    except _MALFORMED as exc:
        raise _unreadable(fmt) from exc
    if reduction == 1:
        return rgb
    # fx/fy (not a dsize) keep the mapping exactly x_src = reduction * x_dst.
    return cv2.resize(rgb, None, fx=1 / reduction, fy=1 / reduction, interpolation=cv2.INTER_AREA)


def _open(data: bytes, fmt: str) -> ImageFile.ImageFile:
    """Parse the header with the plugin of the sniffed format (no pixels yet)."""
    try:
        return _OPENERS[fmt](io.BytesIO(data))
    except _MALFORMED as exc:
        raise _unreadable(fmt) from exc


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


def _unreadable(fmt: str) -> ImageError:
    return ImageError(
        f"The {fmt.upper()} image is corrupt or truncated and cannot be decoded; "
        "send the original file again.",
        code="image.unreadable",
        param="image",
    )

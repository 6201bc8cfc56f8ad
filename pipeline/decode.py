"""Bytes to upright sRGB pixels, for an image `pipeline.probe` accepted.

    decode(data, probe, reduction) -> Decoded

`reduction` is 1, 2, 4 or 8, and every format decodes at that scale in memory
of about the output's size: JPEG by DCT scaling (libjpeg-turbo); PNG, WebP and
TIFF by libvips, streamed a few rows at a time and shrunk as they come (WebP by
libwebp's own scaled decode); GIF and BMP through Pillow at one byte per pixel
(palette indices), turned into colour a band of rows at a time; HEIC and AVIF
decode whole (their codecs offer nothing smaller) and are reduced band by band.
What a decoder must hold whatever the scale (the coefficients of a progressive
JPEG, a WebP frame at full scale, a whole HEIC, a TIFF strip, ...) was bounded
by the probe. Every decoder's own exceptions become an ImageError in one place,
`pipeline.probe.decoding`.
"""

from __future__ import annotations

import builtins
import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pillow_heif
import simplejpeg
from PIL import Image

from pipeline.color import BACKGROUND, to_rgb, to_srgb
from pipeline.probe import OPENERS, Probe, decoding, unreadable

if TYPE_CHECKING:
    import pyvips

REDUCTIONS = (1, 2, 4, 8)


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


def decode(data: bytes, probe: Probe, reduction: int = 1) -> Decoded:
    """Decode `data` (already accepted by `probe`) to upright sRGB pixels at
    1 / `reduction` of the source size (`reduction` in 1, 2, 4, 8).

    Raises ImageError image.unreadable for corrupt or truncated data (never returns
    a half-decoded image), image.too_many_pixels when the decoder itself finds the
    image too large for memory."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, not {reduction}")
    with decoding(probe.format):
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
    im = OPENERS["jpeg"](io.BytesIO(data))
    if reduction > 1:
        stored_width = im.width
        drafted = im.draft(im.mode, (max(1, im.width // reduction), max(1, im.height // reduction)))
        if drafted is not None:
            reduction //= round(stored_width / drafted[1][2])
    im.load()
    rgb = to_rgb(im, im.info.get("icc_profile"))
    if reduction == 1:
        return rgb
    height, width = rgb.shape[:2]
    if min(height, width) < reduction:
        # A side shorter than the reduction (a few pixels) would be left none by
        # fx/fy; it is one partial block, one pixel, as libjpeg rounds up.
        size = (math.ceil(width / reduction), math.ceil(height / reduction))
        return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    # fx/fy (not a dsize) keep the mapping exactly x_src = reduction * x_dst.
    return cv2.resize(rgb, None, fx=1 / reduction, fy=1 / reduction, interpolation=cv2.INTER_AREA)


# --- PNG, WebP, TIFF: libvips, streamed -------------------------------------------


def _decode_vips(data: bytes, probe: Probe, reduction: int) -> np.ndarray:
    """At full scale, rows come out of the loader a few at a time and are turned into
    sRGB RGB band by band, straight into their upright place in the output. Reduced,
    libvips composites alpha on grey, shrinks the rows as they come (block averages)
    and rounds them to 8 bits, and only that small image is held. Nothing the size
    of the source is held either way (but see `pipeline.probe._webp_held`)."""
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
        raise unreadable(probe.format)
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
        raise unreadable("tiff")
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
    that holds (`pipeline.probe._held_bytes`). The colour conversion and the reduction then go a
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
        im = OPENERS[probe.format](io.BytesIO(data))
        im.load()
        bands = _pillow_bands(im, icc)
        size = im.size
    if size != (width, height):
        raise unreadable(probe.format)
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
    im = OPENERS["avif"](io.BytesIO(data))
    channels = len(im.mode)
    decoder = getattr(im, "_decoder", None)
    if decoder is None:  # a Pillow without the decoder object: the plain way
        im.load()
        return np.asarray(im)
    frame = decoder.get_frame(0)[0]
    if len(frame) != im.width * im.height * channels:
        raise unreadable("avif")
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

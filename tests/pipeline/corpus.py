"""A corpus of images made at test time, for the decode bounds (test_decode_bounds.py)
and the fuzzer's seeds (fuzz_decode.py): every accepted format in every mode and bit
depth Pillow writes (plus the 16-bit RGB and RGBA that only libvips writes here), at
the pixel cap, at the lower cap of the variants whose decoder holds the whole image
(see `pipeline.probe._held_bytes`), and cut short. Nothing is committed: `make`
writes them under a temporary folder.

Each image is one flat colour (part transparent in modes with alpha) with a 256 px
block of noise near the origin, alpha included: the entropy decoders and the
compositing do some work, the encoders finish in a second or two and the files stay
small, as a decompression bomb's would. The variants refused for their size at the
full cap are small files whose header claims it, which is what a bomb is.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pillow_heif
import pyvips
from PIL import Image

from pipeline.settings import PipelineSettings
from sample_images import SAMPLES

SETTINGS = PipelineSettings()
# The largest square within the pixel cap: 7071 x 7071 = 49,999,041 pixels.
CAP_SIDE = math.isqrt(SETTINGS.max_pixels)


def side_for(bytes_per_pixel: float) -> int:
    """The largest square a decoder holding `bytes_per_pixel` may decode within
    `max_decoder_bytes` (its own lower pixel cap)."""
    return math.isqrt(int(SETTINGS.max_decoder_bytes / bytes_per_pixel)) - 1


@dataclass(frozen=True)
class Entry:
    name: str
    make: Callable[[], bytes]
    # True: within every limit, so it must decode; False: it must be refused (with
    # one of the codes in `refusals`); None: either (a cut file may still decode).
    accepted: bool | None = True
    refusals: tuple[str, ...] = ()


def canvas(mode: str, side: int, fill: object) -> Image.Image:
    """`side` x `side` of `fill` in `mode`, with a 256 px block of noise at (64, 64)."""
    im = Image.new(mode, (side, side), fill)  # type: ignore[arg-type]
    raw = len(Image.new(mode, (256, 256)).tobytes())
    noise = np.random.default_rng(len(mode)).integers(0, 256, raw, dtype=np.uint8).tobytes()
    block = Image.frombytes(mode, (256, 256), noise)
    if mode == "P":
        im.putpalette(bytes(range(256)) * 3)
        block.putpalette(bytes(range(256)) * 3)
    if mode in ("F", "I"):
        block = Image.fromarray(
            np.random.default_rng(1).uniform(0, 255, (256, 256)).astype(np.float32)
        ).convert(mode)
    im.paste(block, (64, 64))  # with alpha, the block's is noise too
    return im


def save(im: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **options)
    return buffer.getvalue()


def pillow(mode: str, fmt: str, side: int = CAP_SIDE, fill: object = 0, **options: object):
    return lambda: save(canvas(mode, side, fill), fmt, **options)


def rotated(mode: str, fmt: str, orientation: int, side: int = CAP_SIDE, **options: object):
    def make() -> bytes:
        exif = Image.Exif()
        exif[0x0112] = orientation
        return save(canvas(mode, side, 90), fmt, exif=exif.tobytes(), **options)

    return make


def with_profile(fmt: str, **options: object):
    """RGB tagged Display P3 (the sample's own profile): converted to sRGB band by band."""

    def make() -> bytes:
        with Image.open(SAMPLES / "display_p3.jpg") as tagged:
            profile = tagged.info["icc_profile"]
        return save(canvas("RGB", CAP_SIDE, (120, 140, 160)), fmt, icc_profile=profile, **options)

    return make


def vips16(bands: int, fmt: str, side: int = CAP_SIDE):
    """16-bit RGB or RGBA: libvips writes them (Pillow has no such mode to save)."""

    def make() -> bytes:
        image = (pyvips.Image.black(side, side, bands=bands) + 30000).cast("ushort")
        image = image.copy(interpretation="rgb16")
        if fmt == "png":
            return bytes(image.pngsave_buffer(compression=1, bitdepth=16))
        return bytes(image.tiffsave_buffer(compression="deflate"))

    return make


def heic(side: int, deep: bool = False):
    def make() -> bytes:
        if deep:
            pixels = np.full((side, side, 3), 30000, np.uint16)
            heif = pillow_heif.from_bytes("RGB;16", (side, side), pixels.tobytes())
        else:
            heif = pillow_heif.from_pillow(canvas("RGB", side, (120, 140, 160)))
        buffer = io.BytesIO()
        heif.save(buffer, quality=30, enc_params={"preset": "ultrafast"})
        return buffer.getvalue()

    return make


def animated_webp(side: int):
    def make() -> bytes:
        first = canvas("RGBA", side, (120, 140, 160, 255))
        second = first.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return save(first, "WEBP", save_all=True, append_images=[second], lossless=False)

    return make


def animated_gif(side: int):
    def make() -> bytes:
        first = canvas("P", side, 7)
        second = first.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        return save(first, "GIF", save_all=True, append_images=[second], transparency=7)

    return make


def claiming(make: Callable[[], bytes], fmt: str, side: int = CAP_SIDE):
    """A small file whose header is patched to claim `side` x `side`: its decoder's
    lower cap (or the pixel cap) must refuse it from the header."""

    def patched() -> bytes:
        data = bytearray(make())
        if fmt == "jpeg":  # the SOF2 segment: precision, then height and width
            sof = data.index(b"\xff\xc2")
            data[sof + 5 : sof + 9] = struct.pack(">HH", side, side)
        elif fmt == "webp":  # VP8L: signature byte, then 14 bits each of width-1, height-1
            bits = int.from_bytes(data[21:25], "little")
            bits = (bits & ~((1 << 28) - 1)) | (side - 1) | ((side - 1) << 14)
            data[21:25] = bits.to_bytes(4, "little")
        elif fmt == "heic":  # every `ispe` box: version and flags, width, height
            at = data.find(b"ispe")
            while at >= 0:
                data[at + 8 : at + 16] = struct.pack(">II", side, side)
                at = data.find(b"ispe", at + 4)
        return bytes(data)

    return patched


def gif_frame_bomb(side: int) -> bytes:
    screen = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0, 0, 0)
    frame = b"," + struct.pack("<HHHHB", 0, 0, side, side, 0)
    return screen + frame + b"\x02\x02\x4c\x01\x00;"


def bmp_side(bytes_per_pixel: float, header: int = 1078) -> int:
    """The largest square BMP within max_bytes (rows padded to 4 bytes)."""
    side = math.isqrt(int((SETTINGS.max_bytes - header) / bytes_per_pixel))
    while header + side * (math.ceil(side * bytes_per_pixel / 4) * 4) > SETTINGS.max_bytes:
        side -= 1
    return side


TOO_MANY = ("image.too_many_pixels",)
DEFLATE = {"compression": "tiff_adobe_deflate"}

# Bytes per pixel the decoders hold, as pipeline.probe estimates them: the
# variants with their own lower cap are made at it (and at the full cap, refused).
PROGRESSIVE_420, PROGRESSIVE_444, PROGRESSIVE_CMYK = 3 * 1.05, 6 * 1.05, 8 * 1.05
WEBP, ANIMATED_WEBP, HEIC_8, HEIC_DEEP, AVIF = 5, 13, 5.0, 9.5, 12.5

ENTRIES: list[Entry] = [
    # JPEG: baseline streams at any size; progressive keeps its coefficients.
    Entry("jpeg-L", pillow("L", "JPEG", fill=120, quality=90)),
    Entry("jpeg-RGB-420", pillow("RGB", "JPEG", fill=(120, 140, 160), quality=90)),
    Entry("jpeg-RGB-444", pillow("RGB", "JPEG", fill=(120, 140, 160), subsampling=0)),
    Entry("jpeg-CMYK", pillow("CMYK", "JPEG", fill=(10, 20, 30, 40), quality=90)),
    Entry("jpeg-RGB-exif6", rotated("RGB", "JPEG", 6, quality=90)),
    Entry("jpeg-RGB-display-p3", with_profile("JPEG", quality=90)),
    Entry("png-RGB-display-p3", with_profile("PNG", compress_level=1)),
    Entry(
        "jpeg-progressive-420-cap",
        pillow("RGB", "JPEG", side_for(PROGRESSIVE_420), fill=(120, 140, 160), progressive=True),
    ),
    Entry(
        "jpeg-progressive-444-cap",
        pillow(
            "RGB",
            "JPEG",
            side_for(PROGRESSIVE_444),
            fill=(120, 140, 160),
            progressive=True,
            subsampling=0,
        ),
    ),
    Entry(
        "jpeg-progressive-CMYK-cap",
        pillow("CMYK", "JPEG", side_for(PROGRESSIVE_CMYK), fill=(10, 20, 30, 40), progressive=True),
    ),
    Entry(
        "jpeg-progressive-444-50mp",
        claiming(pillow("RGB", "JPEG", 64, progressive=True, subsampling=0), "jpeg"),
        accepted=False,
        refusals=TOO_MANY,
    ),
    # PNG: every mode Pillow saves, and 16-bit colour from libvips; streamed.
    Entry("png-1", pillow("1", "PNG", fill=1, compress_level=1)),
    Entry("png-L", pillow("L", "PNG", fill=120, compress_level=1)),
    Entry("png-LA", pillow("LA", "PNG", fill=(120, 200), compress_level=1)),
    Entry("png-P", pillow("P", "PNG", fill=7, compress_level=1)),
    Entry("png-P-transparent", pillow("P", "PNG", fill=7, transparency=7, compress_level=1)),
    Entry("png-RGB", pillow("RGB", "PNG", fill=(120, 140, 160), compress_level=1)),
    Entry("png-RGBA", pillow("RGBA", "PNG", fill=(120, 140, 160, 200), compress_level=1)),
    Entry("png-RGBA-exif8", rotated("RGBA", "PNG", 8, compress_level=1)),
    Entry("png-I;16", pillow("I;16", "PNG", fill=30000, compress_level=1)),
    Entry("png-RGB16-vips", vips16(3, "png")),
    Entry("png-RGBA16-vips", vips16(4, "png")),
    # WebP: libwebp decodes a frame whole at full scale (shrink-on-load below it).
    Entry(
        "webp-RGB-lossy-cap",
        pillow("RGB", "WEBP", side_for(WEBP), fill=(120, 140, 160), quality=80, method=0),
    ),
    Entry(
        "webp-RGBA-lossy-cap",
        pillow("RGBA", "WEBP", side_for(WEBP), fill=(120, 140, 160, 200), method=0),
    ),
    Entry(
        "webp-RGBA-lossless-cap",
        pillow(
            "RGBA",
            "WEBP",
            side_for(WEBP),
            fill=(120, 140, 160, 255),
            lossless=True,
            quality=0,
            method=0,
        ),
    ),
    Entry(
        "webp-RGB-lossless-50mp",
        claiming(pillow("RGB", "WEBP", 64, lossless=True), "webp"),
        accepted=False,
        refusals=TOO_MANY,
    ),
    Entry("webp-animated-cap", animated_webp(side_for(ANIMATED_WEBP))),
    # GIF: one byte per pixel, whatever the transparency.
    Entry("gif-L", pillow("L", "GIF", fill=120)),
    Entry("gif-P", pillow("P", "GIF", fill=7)),
    Entry("gif-P-transparent", pillow("P", "GIF", fill=7, transparency=7)),
    Entry("gif-animated", animated_gif(CAP_SIDE)),
    # Pillow's own decompression_bomb.gif in kind: a 1x1 screen and a frame of 65535 x
    # 65535, which Pillow's GIF reader refuses with its own exception as it parses.
    Entry("gif-frame-bomb", lambda: gif_frame_bomb(65535), accepted=False, refusals=TOO_MANY),
    # BMP: uncompressed, so max_bytes bounds all but 1-bit below the pixel cap.
    Entry("bmp-1", pillow("1", "BMP", fill=1)),
    Entry("bmp-P", pillow("P", "BMP", bmp_side(1), fill=7)),
    Entry("bmp-L", pillow("L", "BMP", bmp_side(1), fill=120)),
    Entry("bmp-RGB", pillow("RGB", "BMP", bmp_side(3, 54), fill=(120, 140, 160))),
    Entry("bmp-RGBA", pillow("RGBA", "BMP", bmp_side(4, 122), fill=(120, 140, 160, 200))),
    # TIFF: every mode Pillow saves, compressed so 50 MP fit max_bytes; strips stream.
    Entry("tiff-1-group4", pillow("1", "TIFF", fill=1, compression="group4")),
    Entry("tiff-L-lzw", pillow("L", "TIFF", fill=120, compression="tiff_lzw")),
    Entry("tiff-L-packbits", pillow("L", "TIFF", fill=120, compression="packbits")),
    Entry("tiff-LA", pillow("LA", "TIFF", fill=(120, 200), **DEFLATE)),
    Entry("tiff-P", pillow("P", "TIFF", fill=7, **DEFLATE)),
    Entry("tiff-RGB", pillow("RGB", "TIFF", fill=(120, 140, 160), **DEFLATE)),
    Entry("tiff-RGB-jpeg", pillow("RGB", "TIFF", fill=(120, 140, 160), compression="jpeg")),
    Entry("tiff-RGBA", pillow("RGBA", "TIFF", fill=(120, 140, 160, 200), **DEFLATE)),
    Entry("tiff-CMYK", pillow("CMYK", "TIFF", fill=(10, 20, 30, 40), **DEFLATE)),
    Entry("tiff-YCbCr", pillow("YCbCr", "TIFF", fill=(120, 140, 160), **DEFLATE)),
    # 8-bit CIELab: libvips refuses Pillow's (as Pillow could not convert it to RGB).
    Entry(
        "tiff-LAB",
        pillow("LAB", "TIFF", fill=(60, 130, 120), **DEFLATE),
        accepted=False,
        refusals=("image.unreadable",),
    ),
    Entry("tiff-I;16", pillow("I;16", "TIFF", fill=30000, **DEFLATE)),
    Entry("tiff-I;16B", pillow("I;16B", "TIFF", fill=30000, **DEFLATE)),
    Entry("tiff-I", pillow("I", "TIFF", fill=30000, **DEFLATE)),
    Entry("tiff-F", pillow("F", "TIFF", fill=100.5, **DEFLATE)),
    Entry("tiff-RGB-exif6", rotated("RGB", "TIFF", 6, **DEFLATE)),
    Entry("tiff-RGB16-vips", vips16(3, "tiff")),
    Entry("tiff-RGBA16-vips", vips16(4, "tiff")),
    Entry(
        "tiff-RGB-raw-over-max-bytes",
        pillow("RGB", "TIFF", math.isqrt(SETTINGS.max_bytes // 3) + 10, fill=(120, 140, 160)),
        accepted=False,
        refusals=("image.too_large",),
    ),
    # HEIC and AVIF: decoded whole, so each has its own cap.
    Entry("heic-RGB-cap", heic(side_for(HEIC_8))),
    Entry("heic-RGB-10bit-cap", heic(side_for(HEIC_DEEP), deep=True)),
    Entry("heic-RGB-50mp", claiming(heic(64), "heic"), accepted=False, refusals=TOO_MANY),
    Entry("avif-RGB-cap", pillow("RGB", "AVIF", side_for(AVIF), fill=(120, 140, 160), speed=10)),
    Entry(
        "avif-RGBA-cap",
        pillow("RGBA", "AVIF", side_for(AVIF), fill=(120, 140, 160, 255), speed=10),
    ),
]

# Cut short: one of each decoder path, at a half and near the end.
TRUNCATED = [
    "jpeg-RGB-420",
    "jpeg-progressive-420-cap",
    "jpeg-CMYK",
    "png-RGBA",
    "png-RGBA16-vips",
    "webp-RGB-lossy-cap",
    "webp-RGBA-lossless-cap",
    "gif-P-transparent",
    "bmp-1",
    "tiff-RGBA",
    "tiff-RGB-jpeg",
    "heic-RGB-cap",
    "avif-RGB-cap",
]
CUTS = (0.5, 0.97)


def write_entry(name: str, folder: str) -> list[str]:
    """Make entry `name` and its cuts in `folder`; the file names written."""
    entry = next(e for e in ENTRIES if e.name == name)
    data = entry.make()
    written = [name]
    Path(folder, name).write_bytes(data)
    if name in TRUNCATED:
        for cut in CUTS:
            cut_name = f"{name}-cut{int(cut * 100)}"
            Path(folder, cut_name).write_bytes(data[: int(len(data) * cut)])
            written.append(cut_name)
    return written


def expectation(file_name: str) -> Entry:
    """The entry a written file came from, with what is expected of it."""
    base, _, cut = file_name.partition("-cut")
    entry = next(e for e in ENTRIES if e.name == base)
    if cut:
        return Entry(file_name, entry.make, accepted=None, refusals=entry.refusals)
    return entry

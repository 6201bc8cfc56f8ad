"""Which image format some bytes are, from their first bytes only.

Never from a file name, an extension or a declared Content-Type: clients get
those wrong (a PNG called photo.jpg) and attackers choose them.
"""

from __future__ import annotations

# Every format the pipeline decodes, as named in records and `Probe.format`.
FORMATS = ("jpeg", "png", "webp", "gif", "bmp", "tiff", "heic", "avif")
ACCEPTED_NAMES = "JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC/HEIF or AVIF"

# ISO-BMFF brands (the `ftyp` box). HEIC files name an HEVC brand, AVIF files
# an AV1 one; `mif1`/`msf1` alone is a generic HEIF still or sequence.
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"})
_HEIF_GENERIC_BRANDS = frozenset({b"mif1", b"msf1"})

# BITMAPINFOHEADER sizes of the BMP versions; "BM" alone is too weak a signature.
_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})

# Common things that are not images, named in the error so people know what they sent.
_NOT_IMAGES = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xff\x0a", "a JPEG XL image"),
    (b"\x00\x00\x00\x0cJXL ", "a JPEG XL image"),
)


def sniff(data: bytes) -> str | None:
    """The format (one of `FORMATS`) the bytes start like, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:2] == b"BM" and int.from_bytes(data[14:18], "little") in _BMP_HEADER_SIZES:
        return "bmp"
    # Classic TIFF (42) and BigTIFF (43), little- and big-endian.
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if data[4:8] == b"ftyp":
        return _sniff_isobmff(data)
    return None


def _sniff_isobmff(data: bytes) -> str | None:
    """HEIC or AVIF from the `ftyp` box: the major brand decides, then the compatible
    brands (some encoders write major brand `mif1` and list `avif` as compatible)."""
    size = int.from_bytes(data[:4], "big")
    if size < 16:
        return None
    major = data[8:12]
    compatible = {data[i : i + 4] for i in range(16, min(size, len(data)) - 3, 4)}
    if major in _AVIF_BRANDS:
        return "avif"
    if major in _HEIC_BRANDS:
        return "heic"
    if compatible & _AVIF_BRANDS:
        return "avif"
    if (compatible & _HEIC_BRANDS) or (({major} | compatible) & _HEIF_GENERIC_BRANDS):
        return "heic"
    return None  # an MP4/MOV video or another ISO-BMFF file


def describe(data: bytes) -> str | None:
    """What unsupported bytes look like ("a PDF document"), when it is recognisable."""
    for magic, name in _NOT_IMAGES:
        if data.startswith(magic):
            return name
    head = data[:512].lstrip().lower()
    if b"<svg" in head or (head.startswith(b"<?xml") and b"svg" in head):
        return "an SVG drawing"
    if head.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if data[4:8] == b"ftyp":
        return "a video or another ISO media file"
    try:
        data[:512].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text"

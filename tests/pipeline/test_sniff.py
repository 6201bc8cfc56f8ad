"""pipeline.sniff: the format from the first bytes only."""

from __future__ import annotations

import struct

import pytest

from pipeline.sniff import FORMATS, describe, sniff

BY_EXTENSION = {
    ".jpg": "jpeg",
    ".png": "png",
    ".webp": "webp",
    ".gif": "gif",
    ".bmp": "bmp",
    ".tiff": "tiff",
    ".heic": "heic",
    ".avif": "avif",
}


def test_every_sample_is_sniffed_as_what_it_is(samples_dir):
    """The samples' extensions are right (make_samples.py encodes each itself)."""
    seen = set()
    for path in samples_dir.iterdir():
        if path.suffix in BY_EXTENSION:
            assert sniff(path.read_bytes()) == BY_EXTENSION[path.suffix], path.name
            seen.add(BY_EXTENSION[path.suffix])
    assert seen == set(FORMATS)


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    """An ISO-BMFF file start: the ftyp box, then the start of a meta box."""
    body = major + struct.pack(">I", 0) + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00\x00\x00\x21meta"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (ftyp(b"heic", b"mif1", b"heic"), "heic"),  # iPhone
        (ftyp(b"heix", b"mif1", b"heix"), "heic"),  # 10-bit HEIC
        (ftyp(b"mif1", b"mif1", b"heic", b"miaf"), "heic"),
        (ftyp(b"msf1", b"msf1"), "heic"),  # a generic HEIF sequence: libheif decides
        (ftyp(b"avif", b"avif", b"mif1", b"miaf", b"MA1B"), "avif"),  # libavif
        (ftyp(b"mif1", b"mif1", b"avif", b"miaf"), "avif"),  # major brand is generic
        (ftyp(b"avis", b"avis", b"msf1"), "avif"),  # an AVIF sequence
        (ftyp(b"isom", b"isom", b"iso2", b"mp41"), None),  # MP4 video
        (ftyp(b"qt  ", b"qt  "), None),  # QuickTime
        (b"\x00\x00\x00\x08ftypheic", None),  # a box too short to hold a brand list
    ],
)
def test_iso_media_brands(data, expected):
    assert sniff(data) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xd8\xff\xe1", "jpeg"),
        (b"\xff\xd8\xfe", None),  # the third byte of every JPEG marker is 0xff
        (b"\x89PNG\r\n\x1a\n", "png"),
        (b"\x89PNG\r\n", None),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),  # audio
        (b"GIF87a", "gif"),
        (b"GIF89a", "gif"),
        (b"GIF90a", None),
        (b"BM" + bytes(12) + struct.pack("<I", 40), "bmp"),
        (b"BM" + bytes(12) + struct.pack("<I", 124), "bmp"),
        (b"BMW in the subject line", None),  # "BM" alone is not enough
        (b"II*\x00", "tiff"),
        (b"MM\x00*", "tiff"),
        (b"II+\x00", "tiff"),  # BigTIFF
        (b"", None),
    ],
)
def test_magic_numbers(data, expected):
    assert sniff(data) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"%PDF-1.4", "a PDF document"),
        (b"  <svg xmlns='http://www.w3.org/2000/svg'>", "an SVG drawing"),
        (b'<?xml version="1.0"?><!DOCTYPE svg><svg/>', "an SVG drawing"),
        (b"<!DOCTYPE html><html>", "an HTML page"),
        (b"PK\x03\x04", "a ZIP archive"),
        (b"\x1f\x8b\x08", "a gzip archive"),
        (b"\xff\x0a\xfa", "a JPEG XL image"),
        (ftyp(b"isom", b"mp41"), "a video or another ISO media file"),
        (b"name,expected\nd001.png,accept\n", "text"),
        (bytes(range(128, 256)), None),
    ],
)
def test_describe_what_is_not_an_image(data, expected):
    assert describe(data) == expected

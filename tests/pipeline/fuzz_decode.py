"""A coverage-guided fuzzer (atheris, libFuzzer) over sniff, probe and decode.

    python -m tests.pipeline.fuzz_decode -max_total_time=25 CORPUS_DIR SEED_DIR

Every input is sniffed, described, probed and, when the probe accepts it, decoded
at a reduction picked from its length. The only outcome besides pixels is an
ImageError with a code probe and decode document; anything else (another
exception, a crash in native code, a hang past -timeout, memory past
-rss_limit_mb) is a finding: libFuzzer stops, prints it and saves the input as
an artifact. Coverage is traced in the Python of the pipeline and of Pillow's
plugins (the header parsers that run before any codec); the codecs themselves
are native code run as they ship. `seeds(folder)` writes small valid images of
every format and mode to start from (test_decode_fuzz.py runs all of this).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["pipeline", "PIL", "pillow_heif"]):
    import numpy as np
    import pillow_heif
    from PIL import Image

    from pipeline.decode import decode
    from pipeline.errors import ImageError
    from pipeline.probe import probe
    from pipeline.settings import PipelineSettings
    from pipeline.sniff import describe, sniff

from tests.pipeline.decode_bounds_runner import DECODE_CODES

# Smaller limits than the service's keep each run fast; the code paths are the same.
SETTINGS = PipelineSettings(
    max_pixels=4_000_000, max_decoder_bytes=24_000_000, min_side=1, max_bytes=1_000_000
)
REDUCTIONS = (1, 2, 4, 8)


def test_one_input(data: bytes) -> None:
    sniff(data)
    describe(data)
    try:
        found = probe(data, SETTINGS)
        out = decode(data, found, REDUCTIONS[len(data) % 4])
    except ImageError as error:
        if error.code not in DECODE_CODES:
            raise AssertionError(f"undocumented code {error.code}") from error
        return
    assert out.rgb.dtype == np.uint8 and out.rgb.ndim == 3 and out.rgb.shape[2] == 3


# (mode, format, save options): small images of what Pillow writes, to mutate.
SEEDS = [
    ("RGB", "JPEG", {"quality": 80}),
    ("RGB", "JPEG", {"progressive": True, "subsampling": 0}),
    ("L", "JPEG", {}),
    ("CMYK", "JPEG", {}),
    ("1", "PNG", {}),
    ("L", "PNG", {}),
    ("LA", "PNG", {}),
    ("P", "PNG", {"transparency": 3}),
    ("RGB", "PNG", {}),
    ("RGBA", "PNG", {}),
    ("I;16", "PNG", {}),
    ("RGB", "WEBP", {"quality": 70}),
    ("RGBA", "WEBP", {"lossless": True}),
    ("P", "GIF", {"transparency": 3}),
    ("L", "GIF", {}),
    ("1", "BMP", {}),
    ("P", "BMP", {}),
    ("RGB", "BMP", {}),
    ("RGBA", "BMP", {}),
    ("RGB", "TIFF", {"compression": "tiff_adobe_deflate"}),
    ("RGBA", "TIFF", {"compression": "tiff_lzw"}),
    ("CMYK", "TIFF", {}),
    ("I;16", "TIFF", {}),
    ("F", "TIFF", {}),
    ("1", "TIFF", {"compression": "group4"}),
    ("RGB", "TIFF", {"compression": "jpeg"}),
    ("RGB", "AVIF", {"speed": 10}),
]


def seeds(folder: Path) -> None:
    """Write the seed inputs into `folder`: each a 24x20 image with some structure."""
    rng = np.random.default_rng(3)
    for index, (mode, fmt, options) in enumerate(SEEDS):
        size = len(Image.new(mode, (24, 20)).tobytes())
        im = Image.frombytes(mode, (24, 20), rng.integers(0, 256, size, np.uint8).tobytes())
        if mode == "P":
            im.putpalette(bytes(range(256)) * 3)
        if mode == "F":
            im = Image.fromarray(rng.uniform(0, 255, (20, 24)).astype(np.float32))
        buffer = io.BytesIO()
        im.save(buffer, fmt, **options)
        (folder / f"seed-{index:02d}.{fmt.lower()}").write_bytes(buffer.getvalue())
    heic = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (24, 20), (90, 120, 150))).save(heic, quality=50)
    (folder / "seed-heic.heic").write_bytes(heic.getvalue())
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = io.BytesIO()
    Image.new("RGB", (24, 20), (90, 120, 150)).save(rotated, "JPEG", exif=exif.tobytes())
    (folder / "seed-exif6.jpeg").write_bytes(rotated.getvalue())


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--seeds"]:
        seeds(Path(sys.argv[2]))
    else:
        main()

"""Issue 12, finding 1: bombs that Pillow's own readers refuse as they parse (a GIF
frame declared larger than its 1x1 screen, as Pillow's Tests/images/
decompression_bomb.gif) are image.too_many_pixels wherever the pipeline runs, and
so is an image whose decoder would hold more than max_decoder_bytes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from pipeline.errors import ImageError
from pipeline.probe import probe
from pipeline.settings import PipelineSettings
from tests.pipeline.corpus import claiming, gif_frame_bomb, pillow

SETTINGS = PipelineSettings()
BOMB = gif_frame_bomb(65535)


def test_the_gif_bomb_is_what_pillow_refuses_itself() -> None:
    assert len(BOMB) < 44
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(BOMB))


def test_probe_calls_the_gif_bomb_too_many_pixels() -> None:
    with pytest.raises(ImageError) as caught:
        probe(BOMB, SETTINGS)
    error = caught.value
    assert error.code == "image.too_many_pixels"
    assert error.message == "The image declares 4295 megapixels; the limit is 50 megapixels."
    (check,) = error.checks
    assert (check.name, check.value, check.limit) == ("pixel_count", 65535 * 65535, 50_000_000)


def test_prepare_calls_it_too_many_pixels(models) -> None:
    from pipeline import prepare

    with pytest.raises(ImageError) as caught:
        prepare(BOMB, models, SETTINGS)
    assert caught.value.code == "image.too_many_pixels"


def test_the_command_line_rejects_it_with_a_record(tmp_path: Path) -> None:
    source, out = tmp_path / "bomb.gif", tmp_path / "out"
    source.write_bytes(BOMB)
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "prepare", str(source), "-o", str(out), "--json"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    record = json.loads((out / "result.json").read_text())
    assert record["verdict"] == "reject"
    assert record["error"]["code"] == "image.too_many_pixels"


@pytest.mark.parametrize(
    ("make", "fmt", "why"),
    [
        (pillow("RGB", "WEBP", 64, lossless=True), "webp", "a WebP is decoded whole"),
        (
            pillow("RGB", "JPEG", 64, progressive=True, subsampling=0),
            "jpeg",
            "a progressive JPEG keeps all its coefficients",
        ),
    ],
)
def test_a_decoder_that_would_hold_too_much_has_its_own_lower_cap(make, fmt, why) -> None:
    """40 MP is within max_pixels, but these decoders hold 5 and 6 bytes per pixel."""
    data = claiming(make, fmt, side=6325)()
    with pytest.raises(ImageError) as caught:
        probe(data, SETTINGS)
    error = caught.value
    assert error.code == "image.too_many_pixels"
    assert why in error.message
    (check,) = error.checks
    assert check.value == 6325 * 6325
    assert check.limit < check.value <= SETTINGS.max_pixels

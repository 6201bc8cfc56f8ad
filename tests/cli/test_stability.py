"""`avatar-prep eval --stability`: the variants of a real photo, and the verdicts
that must hold under them (cli/stability.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from cli.stability import VARIANTS, Variation, format_stability, stability
from pipeline import FaceModels, PipelineSettings
from pipeline.decode import decode
from pipeline.probe import probe
from sample_images import SAMPLES
from tests.cli.test_eval import write_labels

SETTINGS = PipelineSettings()


def pixels(data: bytes) -> np.ndarray:
    return decode(data, probe(data, SETTINGS)).rgb


def test_each_variant_is_the_photo_changed_as_named() -> None:
    rgb = pixels((SAMPLES / "accept_portrait.jpg").read_bytes())
    height, width = rgb.shape[:2]
    mirrored = pixels(VARIANTS["mirrored"](rgb))
    assert np.array_equal(mirrored, rgb[:, ::-1])
    assert pixels(VARIANTS["75% size"](rgb)).shape == (round(height * 0.75), round(width * 0.75), 3)
    cropped = pixels(VARIANTS["3% cropped"](rgb))
    dy, dx = round(height * 0.03), round(width * 0.03)
    assert np.array_equal(cropped, rgb[dy : height - dy, dx : width - dx])
    resaved = VARIANTS["re-saved"](rgb)
    assert resaved[:2] == b"\xff\xd8"  # a JPEG, close to the photo
    assert np.abs(pixels(resaved).astype(int) - rgb).mean() < 3
    brighter = pixels(VARIANTS["+0.2 EV"](rgb)).astype(int)
    assert (brighter >= rgb).all() and 2 < (brighter - rgb).mean() < 15
    tilted = pixels(VARIANTS["tilted 15°"](rgb))
    assert tilted.shape == rgb.shape
    assert (tilted[0, 0] == 128).all()  # a corner turned out of the frame is grey
    middle = (slice(height // 2 - 2, height // 2 + 3), slice(width // 2 - 2, width // 2 + 3))
    assert np.abs(tilted[middle].astype(int) - rgb[middle]).mean() < 12  # turned about it
    sepia = pixels(VARIANTS["sepia"](rgb)).astype(int)
    # One warm tone: red over green over blue everywhere, the lightness kept in order.
    assert (sepia[..., 0] >= sepia[..., 1]).all() and (sepia[..., 1] >= sepia[..., 2]).all()
    grey = rgb.mean(axis=2)
    assert np.corrcoef(grey.ravel(), sepia[..., 1].ravel())[0, 1] > 0.95
    grainy = VARIANTS["grain"](rgb)
    assert grainy[:2] == b"\xff\xd8"
    assert 3 < np.abs(pixels(grainy).astype(int) - rgb).mean() < 8
    for apply in VARIANTS.values():
        assert apply(rgb) == apply(rgb)  # deterministic


def test_a_frontal_portrait_holds_and_a_cat_stays_out_under_every_variant() -> None:
    photos = {
        "portrait": ((SAMPLES / "accept_portrait.jpg").read_bytes(), ""),
        "cat": ((SAMPLES / "reject_animal.png").read_bytes(), "face.none"),
        "not an image": (b"plain text", "image.unsupported_format"),
    }
    with FaceModels.load() as models:
        varied = stability(photos, models, SETTINGS)

    assert {v.file for v in varied} == {"portrait", "cat"}  # nothing to vary in the text
    portrait = [v for v in varied if v.file == "portrait"]
    assert [v.variant for v in portrait] == list(VARIANTS)
    assert all(v.code == "" and not v.changed for v in portrait)
    cat = [v for v in varied if v.file == "cat"]
    assert all(v.code in {"face.none", "face.not_human"} and not v.flipped for v in cat)


def test_the_report_counts_flips_apart_from_other_codes() -> None:
    varied = [
        Variation("a.jpg", "mirrored", "face.not_frontal", ""),
        Variation("b.jpg", "mirrored", "face.too_small", "face.multiple"),
        Variation("c.jpg", "mirrored", "", ""),
        Variation("a.jpg", "75% size", "", ""),
        Variation("b.jpg", "75% size", "face.multiple", "face.multiple"),
        Variation("c.jpg", "75% size", "", ""),
    ]
    assert [v.flipped for v in varied[:3]] == [True, False, False]
    assert [v.changed for v in varied[:3]] == [True, True, False]
    text = format_stability(varied)
    assert "stability (3 photos" in text
    assert "  mirrored    accept <-> reject   1   other rejection code   1   same   1" in text
    assert "  75% size    accept <-> reject   0   other rejection code   0   same   3" in text
    assert "accept/reject held under every variant: 2 of 3; the code too: 1 of 3" in text
    assert "  a.jpg mirrored: accept -> face.not_frontal  (accept/reject)" in text
    assert "  b.jpg mirrored: face.multiple -> face.too_small\n" in text + "\n"


@pytest.mark.slow
def test_eval_stability_on_sample_photos(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for name in ("accept_portrait.jpg", "reject_no_face.png"):
        shutil.copy(SAMPLES / name, images / name)
    labels = write_labels(
        tmp_path / "labels.csv",
        [("accept_portrait.jpg", "accept", ""), ("reject_no_face.png", "reject:no_face", "")],
    )
    assert main(["eval", str(images), "--labels", str(labels), "--stability"]) == 0
    text = capsys.readouterr().out.split("stability (")[1]
    assert text.startswith("2 photos")
    assert "accept/reject held under every variant: 2 of 2; the code too: 2 of 2" in text

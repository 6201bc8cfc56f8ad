"""The graded set: degradations of a real photo and what the quality checks say
of the mildest and the strongest (cli/degrade.py, cli/graded.py)."""

from __future__ import annotations

import numpy as np
import pytest

from cli.degrade import DEGRADATIONS, LEVELS, under_exposure
from cli.graded import GradedOutcome, format_graded, graded
from pipeline import FaceModels, PipelineSettings, prepare
from pipeline.decode import decode
from pipeline.probe import probe
from sample_images import SAMPLES

SETTINGS = PipelineSettings()

# The code the strongest level of each degradation must be rejected with (blur
# so strong that no face is left to find is a fair outcome too).
STRONGEST = {
    "gaussian_blur": {"face.too_blurry", "face.none"},
    "motion_blur": {"face.too_blurry", "face.none"},
    "under_exposure": {"face.too_dark"},
    "over_exposure": {"face.too_bright"},
    "heavy_jpeg": {"image.too_compressed"},
}


@pytest.fixture(scope="module")
def portrait_graded() -> list[GradedOutcome]:
    data = (SAMPLES / "accept_portrait.jpg").read_bytes()
    with FaceModels.load() as models:
        return graded({"portrait": data}, models, SETTINGS)


def test_every_degradation_is_an_image_of_the_same_size_and_deterministic() -> None:
    data = (SAMPLES / "accept_portrait.jpg").read_bytes()
    rgb = decode(data, probe(data, SETTINGS), 4).rgb
    for apply in DEGRADATIONS.values():
        for level in LEVELS:
            out = apply(rgb, 120.0, level)
            info = probe(out, SETTINGS)
            assert (info.height, info.width) == rgb.shape[:2]
            assert out == apply(rgb, 120.0, level)


def test_less_light_is_darker_at_every_level() -> None:
    rgb = np.full((8, 8, 3), 180, np.uint8)
    means = []
    for level in LEVELS:
        data = under_exposure(rgb, 10.0, level)
        means.append(decode(data, probe(data, PipelineSettings(min_side=8))).rgb.mean())
    assert means == sorted(means, reverse=True) and means[-1] < 40


def test_heavy_compression_is_the_jpeg_itself() -> None:
    rgb = np.full((64, 64, 3), 128, np.uint8)
    qualities = [
        probe(DEGRADATIONS["heavy_jpeg"](rgb, 10.0, level), SETTINGS).jpeg_quality
        for level in LEVELS
    ]
    assert qualities == [60, 25, 10, 3]


def test_the_mildest_level_is_accepted_and_the_strongest_rejected(
    portrait_graded: list[GradedOutcome],
) -> None:
    by = {(o.degradation, o.level): o for o in portrait_graded}
    for degradation, codes in STRONGEST.items():
        mildest, strongest = by[(degradation, LEVELS[0])], by[(degradation, LEVELS[-1])]
        assert mildest.outcome == "accept", mildest
        assert strongest.outcome == "reject", strongest
        assert set(strongest.codes) <= codes, strongest
        for level in LEVELS[1:-1]:
            assert by[(degradation, level)].outcome != "accept", (degradation, level)


def test_a_framing_warning_is_the_photos_own_not_the_degradations() -> None:
    # The rotated sample's head reaches the top edge of its 4:3 (a headroom
    # warning) before any degradation: its mildest copies are still accepted.
    data = (SAMPLES / "exif_rotated_6.jpg").read_bytes()
    with FaceModels.load() as models:
        assert {c.code for c in prepare(data, models, SETTINGS).warnings} == {"face.framing"}
        outcomes = graded({"rotated": data}, models, SETTINGS)
    mildest = [o for o in outcomes if o.level == LEVELS[0]]
    assert {o.outcome for o in mildest} == {"accept"}, mildest
    assert not any("face.framing" in o.codes for o in outcomes if o.outcome == "warn"), outcomes


def test_the_table_counts_each_cell(portrait_graded: list[GradedOutcome]) -> None:
    text = format_graded(portrait_graded)

    assert "gaussian_blur   level 4: accept   0  warn   0  reject   1" in text
    assert "as promised: " in text

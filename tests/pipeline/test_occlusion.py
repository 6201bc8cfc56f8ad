"""The covered-mouth warning on real photos: the sample portraits as they are
and with a face mask painted over the mouth, and the dev set's masked selfie."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from cli.degrade import png
from pipeline import FaceModels, PipelineSettings, Prepared, prepare
from pipeline.decode import decode
from pipeline.occlusion import mouth_detail
from pipeline.probe import probe
from pipeline.quality import face_pixels

SETTINGS = PipelineSettings()
PORTRAITS = ("accept_portrait.jpg", "accept_hopper.jpg", "accept_astronaut.png")
MASKED_SELFIE = Path(__file__).resolve().parents[3] / "shared" / "faces" / "images" / "d025.jpg"
MASK_COLOURS = ((235, 236, 238), (140, 185, 225))  # white, surgical blue


def mouth_check(prepared: Prepared) -> tuple[float, bool]:
    """The mouth_visible check's value and whether it passed."""
    (check,) = (c for c in prepared.checks if c.name == "mouth_visible")
    return float(check.value), check.passed


def masked(data: bytes, prepared: Prepared, colour: tuple[int, int, int]) -> bytes:
    """The photo with a face mask painted over it, from halfway between the
    eyes and the nose tip down past the chin: a rounded outline with soft
    edges, shaded as a curved surface (lighter in the middle, darker at the
    sides and bottom), with a fine fabric grain."""
    rgb = decode(data, probe(data, SETTINGS)).rgb
    marks = prepared.face.landmarks
    x, y, w, h = prepared.face.box
    eyes_y = (marks["left_eye"][1] + marks["right_eye"][1]) / 2
    top = (eyes_y + marks["nose"][1]) / 2
    bottom = min(rgb.shape[0] - 1, y + h * 1.02)
    outline = np.array(
        [
            (x + w * 0.12, top),
            (x + w * 0.88, top),
            (x + w * 0.86, (top + bottom) / 2),
            (x + w * 0.65, bottom),
            (x + w * 0.35, bottom),
            (x + w * 0.14, (top + bottom) / 2),
        ],
        dtype=np.int32,
    )
    shape = np.zeros(rgb.shape[:2], dtype=np.float32)
    cv2.fillPoly(shape, [outline], 1.0)
    edge = max(1.0, w / 150)
    alpha = cv2.GaussianBlur(shape, (0, 0), edge)[..., None]
    rows, cols = np.mgrid[0 : rgb.shape[0], 0 : rgb.shape[1]].astype(np.float64)
    across = (cols - (x + w / 2)) / (w * 0.4)
    down = np.clip((rows - top) / max(bottom - top, 1.0), 0.0, 1.0)
    shade = (1.0 - 0.25 * np.clip(across, -1, 1) ** 2 - 0.15 * down)[..., None]
    grain = cv2.GaussianBlur(
        np.random.default_rng(0).normal(0.0, 6.0, rgb.shape).astype(np.float32), (0, 0), edge
    )
    fabric = np.clip(np.array(colour, dtype=np.float64) * shade + grain, 0, 255)
    out = rgb * (1.0 - alpha) + fabric * alpha
    return png(np.round(out).astype(np.uint8))


@pytest.mark.parametrize("name", PORTRAITS)
def test_a_visible_mouth_is_not_warned_about(
    sample_bytes: Callable[[str], bytes], models: FaceModels, name: str
) -> None:
    value, passed = mouth_check(prepare(sample_bytes(name), models, SETTINGS))
    assert passed, value


@pytest.mark.parametrize("name", PORTRAITS)
@pytest.mark.parametrize("colour", MASK_COLOURS)
def test_a_face_mask_over_the_mouth_is_warned_about(
    sample_bytes: Callable[[str], bytes],
    models: FaceModels,
    name: str,
    colour: tuple[int, int, int],
) -> None:
    data = sample_bytes(name)
    prepared = prepare(masked(data, prepare(data, models, SETTINGS), colour), models, SETTINGS)
    value, passed = mouth_check(prepared)
    assert not passed and value < SETTINGS.min_mouth_detail
    (warning,) = (c for c in prepared.checks if c.code == "face.mouth_covered")
    assert warning.severity == "warn" and "mouth looks covered" in warning.message


@pytest.mark.skipif(not MASKED_SELFIE.is_file(), reason="../shared/faces not present")
def test_the_selfie_in_a_face_mask_is_accepted_with_the_warning(models: FaceModels) -> None:
    value, passed = mouth_check(prepare(MASKED_SELFIE.read_bytes(), models, SETTINGS))
    assert not passed and value < SETTINGS.min_mouth_detail


def test_a_mouth_outside_the_crop_tells_nothing() -> None:
    luma = face_pixels(np.full((512, 512, 3), 128, dtype=np.uint8)).luma
    points = np.full((468, 2), -50.0)
    assert mouth_detail(luma, points) == 1.0

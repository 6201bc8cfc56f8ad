"""Sharpness, brightness and the drawn share, measured on real aligned faces."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import simplejpeg

from cli.degrade import exposed, png
from pipeline import FaceModels, PipelineSettings, prepare
from pipeline.decode import decode
from pipeline.landmarks import LEFT_EYE, RIGHT_EYE, fit_faces
from pipeline.probe import probe
from pipeline.quality import (
    QUALITY_SIDE,
    FaceQuality,
    eye_whites,
    face_pixels,
    measure,
    photo_sharpness,
    relative_sharpness,
)
from tests.pipeline.conftest import candidates_in, rejection

SETTINGS = PipelineSettings()
DIM = SETTINGS.warn_brightness
NO_EYES = 0.0  # no eye whites read: the brightness is the skin's
SHARED = Path(__file__).resolve().parents[3] / "shared"
EVAL_IMAGES = SHARED / "faces" / "images"
DARK_SKIN = SHARED / "faces2" / "images" / "e2064.jpg"


# Quality measures need the 1:1 of photos the default limits reject.
LENIENT = SETTINGS.model_copy(update={"min_sharpness": 0.0, "min_brightness": 0.0})


def square(data: bytes, models: FaceModels, settings: PipelineSettings = LENIENT) -> np.ndarray:
    """The accepted image's 1:1 rendition as (S, S, 3) uint8 RGB."""
    jpeg = prepare(data, models, settings).renditions["1:1"].data
    return np.asarray(simplejpeg.decode_jpeg(jpeg, colorspace="RGB"))


@pytest.fixture(scope="module")
def portrait(sample_bytes: Callable[[str], bytes], models: FaceModels) -> np.ndarray:
    return square(sample_bytes("accept_portrait.jpg"), models)


def cartoon(rgb: np.ndarray) -> np.ndarray:
    """A cel-shaded drawing of a photo: smoothed, posterised to 6 levels per
    channel, with dark ink lines where the photo has edges."""
    flat = rgb
    for _ in range(4):
        flat = cv2.bilateralFilter(flat, 9, 75, 75)
    flat = (flat // 43) * 43 + 21
    edges = cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 60, 120)
    ink = cv2.dilate(edges, np.ones((2, 2), np.uint8)) > 0
    flat[ink] = 20
    return flat


def test_a_studio_portrait_passes_every_quality_limit(portrait: np.ndarray) -> None:
    q = measure(face_pixels(portrait), DIM, NO_EYES)

    assert q.sharpness > 2 * SETTINGS.min_sharpness
    assert SETTINGS.warn_brightness < q.brightness < 250
    assert q.drawn_share < SETTINGS.max_drawn_share
    assert set(q.to_dict()) == {"sharpness", "brightness", "blown_share"}


def test_blur_lowers_sharpness_below_the_limit(
    portrait: np.ndarray, sample_bytes: Callable[[str], bytes], models: FaceModels
) -> None:
    blurry = measure(
        face_pixels(square(sample_bytes("reject_too_blurry.jpg"), models)), DIM, NO_EYES
    )
    sharp = measure(face_pixels(portrait), DIM, NO_EYES)

    assert blurry.sharpness < SETTINGS.min_sharpness < sharp.sharpness
    # Blur is not drawing: the smooth face is not flat fill by the contrast it has.
    assert blurry.drawn_share < SETTINGS.max_drawn_share


def test_darkness_lowers_brightness_below_the_limit_but_does_not_look_drawn(
    sample_bytes: Callable[[str], bytes], models: FaceModels
) -> None:
    dark = measure(face_pixels(square(sample_bytes("reject_too_dark.jpg"), models)), DIM, NO_EYES)

    assert dark.brightness < SETTINGS.min_brightness
    assert dark.drawn_share < SETTINGS.max_drawn_share


def test_a_cel_shaded_face_looks_drawn(portrait: np.ndarray) -> None:
    drawn = measure(face_pixels(cartoon(portrait)), DIM, NO_EYES)

    photo = measure(face_pixels(portrait), DIM, NO_EYES)
    assert drawn.drawn_share > SETTINGS.max_drawn_share > photo.drawn_share


@pytest.mark.skipif(not EVAL_IMAGES.is_dir(), reason="../shared/faces not present")
def test_an_anime_drawing_looks_drawn(models: FaceModels) -> None:
    rejected = rejection((EVAL_IMAGES / "d024.jpg").read_bytes(), models)

    photo = next(c for c in rejected.checks if c.name == "photo")
    assert isinstance(photo.value, float)
    assert photo.value > SETTINGS.max_drawn_share


def test_measures_do_not_depend_on_the_output_size(
    portrait: np.ndarray, sample_bytes: Callable[[str], bytes], models: FaceModels
) -> None:
    big = measure(
        face_pixels(
            square(
                sample_bytes("accept_portrait.jpg"),
                models,
                SETTINGS.model_copy(update={"output_size": 1024}),
            )
        ),
        DIM,
        NO_EYES,
    )
    small = measure(face_pixels(portrait), DIM, NO_EYES)

    assert big.sharpness == pytest.approx(small.sharpness, rel=0.25)
    assert big.brightness == pytest.approx(small.brightness, abs=2)
    assert big.drawn_share == pytest.approx(small.drawn_share, abs=0.03)


def test_measure_is_pure(portrait: np.ndarray) -> None:
    before = portrait.copy()

    once = measure(face_pixels(portrait), DIM, NO_EYES)
    assert once == measure(face_pixels(portrait), DIM, NO_EYES)
    np.testing.assert_array_equal(portrait, before)
    assert isinstance(measure(face_pixels(portrait), DIM, NO_EYES), FaceQuality)


def test_a_face_washed_out_by_warm_light_counts_as_blown(
    sample_bytes: Callable[[str], bytes], models: FaceModels
) -> None:
    """Warm (tungsten-like) light, then two stops too much of it: red and green
    run out on the skin while blue does not, so most of the face is a flat
    yellow-white whose luma stays under white. That is blown out, as a white
    face is; the warm cast alone is not."""
    data = sample_bytes("accept_portrait.jpg")
    rgb = decode(data, probe(data, SETTINGS)).rgb
    warm = (1.0, 0.8, 0.45)

    cast = prepare(png(exposed(rgb, warm)), models, SETTINGS)
    washed = rejection(png(exposed(rgb, tuple(4 * g for g in warm))), models)

    assert cast.face.quality["blown_share"] < SETTINGS.warn_blown_share
    assert not [c for c in cast.checks if c.code == "face.too_bright" and not c.passed]
    assert washed.code == "face.too_bright"
    assert washed.face is not None
    assert washed.face.quality["blown_share"] > SETTINGS.max_blown_share


def test_the_whites_of_open_eyes_are_read_and_eyes_outside_the_crop_tell_nothing() -> None:
    luma = np.full((QUALITY_SIDE, QUALITY_SIDE), 90.0, dtype=np.float32)
    points = np.zeros((468, 2))
    for eye, (cx, cy) in ((RIGHT_EYE, (90, 120)), (LEFT_EYE, (166, 120))):
        angles = np.linspace(0, 2 * np.pi, len(eye), endpoint=False)
        points[list(eye)] = np.c_[cx + 20 * np.cos(angles), cy + 8 * np.sin(angles)]
        cv2.ellipse(luma, (cx, cy), (20, 8), 0, 0, 360, (210.0,), thickness=-1)
        cv2.circle(luma, (cx, cy), 6, (40.0,), thickness=-1)  # the iris

    assert eye_whites(luma, points) == pytest.approx(210.0)
    assert eye_whites(luma, points - 400) == 0.0
    # A reflection filling one lens of a pair of glasses lights neither eye.
    cv2.ellipse(luma, (166, 120), (20, 8), 0, 0, 360, (255.0,), thickness=-1)
    assert eye_whites(luma, points) == pytest.approx(210.0)


def test_the_brightness_is_the_eye_whites_where_brighter_than_the_skin(
    portrait: np.ndarray,
) -> None:
    skin = measure(face_pixels(portrait), DIM, NO_EYES)

    assert measure(face_pixels(portrait), DIM, skin.brightness - 20).brightness == skin.brightness
    assert measure(face_pixels(portrait), DIM, 250.0).brightness == 250.0


@pytest.mark.skipif(not DARK_SKIN.is_file(), reason="../shared/faces2 not present")
def test_very_dark_skin_one_stop_under_is_not_called_dim(models: FaceModels) -> None:
    """A girl with very dark skin in daylight: her lit skin reads about 145 and
    one stop under about 104, under the dim warning (110), where the other
    accepted faces one stop under read 116 and up. The whites of her eyes say
    the light is fine."""
    data = DARK_SKIN.read_bytes()
    rgb = decode(data, probe(data, SETTINGS)).rgb
    prepared = prepare(png(exposed(rgb, 0.5)), models, SETTINGS)

    (darkness,) = (c for c in prepared.checks if c.name == "brightness")
    assert darkness.passed and float(darkness.value) > SETTINGS.warn_brightness


def test_relative_sharpness_of_two_faces(
    sample_bytes: Callable[[str], bytes], models: FaceModels
) -> None:
    """Two men photographed apart (two photos side by side): about as sharp as
    each other either way round; the same face blurred reads a few hundredths."""
    small, candidates = candidates_in(sample_bytes("reject_multiple_faces.jpg"), models)
    first, second = fit_faces(small, candidates, models, 2)

    assert 0.3 < relative_sharpness(small, second, first) < 3
    assert relative_sharpness(small, first, first) == pytest.approx(1.0)
    blurred = cv2.GaussianBlur(small, (0, 0), 4)
    assert relative_sharpness(blurred, first, first) == pytest.approx(1.0)
    mixed = small.copy()
    x, y, w, h = (round(v) for v in second.box)
    mixed[y : y + h, x : x + w] = blurred[y : y + h, x : x + w]
    assert relative_sharpness(mixed, second, first) < 0.1


@pytest.mark.parametrize(
    "name",
    ["accept_portrait.jpg", "reject_no_face.png", "reject_animal.png", "not_a_photo.png"],
)
def test_a_photo_in_focus_is_far_sharper_as_a_whole_than_a_heavily_blurred_one(
    sample_bytes: Callable[[str], bytes], name: str
) -> None:
    # The graded set's strongest blurs (cli/degrade.py: a Gaussian of 8% of a
    # face's length, shake of 40%) for a face of 40% of the height: a face can
    # no longer be found in such a photo.
    rgb = cv2.imdecode(np.frombuffer(sample_bytes(name), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    rgb = np.ascontiguousarray(rgb)
    face = 0.4 * rgb.shape[0]
    shake = np.full((1, round(0.4 * face)), 1 / round(0.4 * face), dtype=np.float32)

    assert photo_sharpness(rgb) > 5 * SETTINGS.min_photo_sharpness
    assert (
        photo_sharpness(cv2.GaussianBlur(rgb, (0, 0), 0.08 * face)) < SETTINGS.min_photo_sharpness
    )
    assert photo_sharpness(cv2.filter2D(rgb, -1, shake)) < SETTINGS.min_photo_sharpness

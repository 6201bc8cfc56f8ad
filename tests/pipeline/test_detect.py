"""Face candidates from the detector passes, on real photos."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from pipeline import FaceModels, PipelineSettings
from pipeline.detect import Candidate, detect, detect_mirrored
from tests.pipeline.conftest import at_detection_size, candidates_in

SETTINGS = PipelineSettings()


@pytest.fixture(scope="module")
def portrait(sample_bytes: Callable[[str], bytes]) -> np.ndarray:
    """accept_portrait.jpg (one frontal face) at detection size: (640, 640, 3)."""
    data = sample_bytes("accept_portrait.jpg")
    return at_detection_size(data)


def turn_clockwise(
    point: tuple[float, float], width: int, height: int, turns: int
) -> tuple[float, float]:
    """Where `point` of a width x height image lands in np.rot90(image, -turns)."""
    x, y = point
    for _ in range(turns):
        x, y = height - y, x
        width, height = height, width
    return (x, y)


def inside(point: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    x, y, w, h = box
    return x <= point[0] <= x + w and y <= point[1] <= y + h


def test_finds_the_face_with_keypoints_in_mediapipe_order(
    portrait: np.ndarray, models: FaceModels
) -> None:
    candidates = detect(portrait, models, SETTINGS.min_detection_score)

    assert candidates, "no candidate on a frontal portrait"
    best = candidates[0]
    assert best.score >= SETTINGS.min_detection_score
    right_eye, left_eye, nose, mouth = best.keypoints[:4]
    # Upright face: the subject's right eye is on the image's left, eyes above
    # the nose, the nose above the mouth; all inside the box.
    assert right_eye[0] < left_eye[0]
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]
    for point in (right_eye, left_eye, nose, mouth):
        assert inside(point, best.box)
    # Both plain passes see this face: candidates overlap on it.
    assert all(inside(c.centre, best.box) for c in candidates)


def test_candidates_are_largest_first(
    sample_bytes: Callable[[str], bytes], models: FaceModels
) -> None:
    rgb, candidates = candidates_in(sample_bytes("reject_multiple_faces.jpg"), models)

    areas = [c.area for c in candidates]
    assert areas == sorted(areas, reverse=True)
    # Two men, side by side: candidates on the left and on the right half.
    half = rgb.shape[1] / 2
    assert any(c.centre[0] < half for c in candidates)
    assert any(c.centre[0] > half for c in candidates)


def test_min_score_filters(portrait: np.ndarray, models: FaceModels) -> None:
    assert detect(portrait, models, 1.0) == []


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_turned_detection_maps_back_to_the_image(
    portrait: np.ndarray, models: FaceModels, turns: int
) -> None:
    """The face lying sideways or upside down in the pixels, found by letting the
    detector see the pixels turned back: coordinates are those of the given image."""
    lying = np.ascontiguousarray(np.rot90(portrait, -turns))  # turned clockwise
    upright = detect(portrait, models, SETTINGS.min_detection_score)[0]

    found = detect(lying, models, SETTINGS.min_detection_score, quarter_turns=turns)

    assert found
    height, width = portrait.shape[:2]
    expected_nose = turn_clockwise(upright.keypoints[2], width, height, turns)
    nose = found[0].keypoints[2]
    assert np.hypot(nose[0] - expected_nose[0], nose[1] - expected_nose[1]) < 0.05 * width
    assert inside(expected_nose, found[0].box)


def test_canvas_pass_finds_a_face_that_fills_the_frame(
    portrait: np.ndarray, models: FaceModels
) -> None:
    face = detect(portrait, models, SETTINGS.min_detection_score)[0]
    x, y, w, h = (round(v) for v in face.box)
    # Crop to the face box itself: no margin at all around the face.
    tight = np.ascontiguousarray(portrait[y : y + h, x : x + w])

    found = detect(tight, models, SETTINGS.min_detection_score, canvas=True)

    assert found
    cx, cy = found[0].centre
    assert 0.3 * w < cx < 0.7 * w and 0.3 * h < cy < 0.7 * h


def test_no_candidate_on_an_object(
    sample_bytes: Callable[[str], bytes], models: FaceModels
) -> None:
    data = sample_bytes("reject_no_face.png")  # an espresso cup
    rgb = at_detection_size(data)

    found: list[Candidate] = []
    for canvas in (False, True):
        found += detect(rgb, models, SETTINGS.min_detection_score, canvas=canvas)

    assert found == []


@pytest.mark.parametrize("quarter_turns", [0, 1])
def test_the_mirrored_look_answers_in_the_photos_own_coordinates(
    portrait: np.ndarray, models: FaceModels, quarter_turns: int
) -> None:
    # The portrait lying on its side, turned upright for the detector, then
    # mirrored: the face comes back where the plain pass finds it, with the
    # subject's right eye first, as MediaPipe orders the keypoints.
    rgb = np.ascontiguousarray(np.rot90(portrait, -quarter_turns))
    plain = detect(rgb, models, SETTINGS.min_detection_score, quarter_turns)[0]
    (mirrored,) = detect_mirrored(rgb, models, SETTINGS.min_detection_score, quarter_turns)

    assert inside(mirrored.centre, plain.box) and inside(plain.centre, mirrored.box)
    for ours, theirs in zip(mirrored.keypoints[:4], plain.keypoints[:4], strict=True):
        assert np.hypot(ours[0] - theirs[0], ours[1] - theirs[1]) < 0.1 * plain.box[2]

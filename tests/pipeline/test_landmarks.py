"""Face Mesh confirmation, the five points and the head pose, on real photos."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline import FaceModels, PipelineSettings
from pipeline.detect import Candidate, detect
from pipeline.landmarks import Face, fit_faces, unfitted
from tests.documented import LANDMARK_NAMES
from tests.pipeline.conftest import at_detection_size, candidates_in, faces_in

SETTINGS = PipelineSettings()
EVAL_IMAGES = Path(__file__).resolve().parents[3] / "shared" / "faces" / "images"


@pytest.fixture(scope="module")
def portrait(sample_bytes: Callable[[str], bytes], models: FaceModels) -> tuple[np.ndarray, Face]:
    rgb, faces = faces_in(sample_bytes("accept_portrait.jpg"), models)
    assert len(faces) == 1
    return rgb, faces[0]


def test_five_points_of_a_frontal_face(portrait: tuple[np.ndarray, Face]) -> None:
    rgb, face = portrait
    p = face.five_points()

    assert set(p) == LANDMARK_NAMES
    # "left" is on the image's left for an upright face.
    assert p["left_eye"][0] < p["nose"][0] < p["right_eye"][0]
    assert p["mouth_left"][0] < p["nose"][0] < p["mouth_right"][0]
    eye_y = (p["left_eye"][1] + p["right_eye"][1]) / 2
    mouth_y = (p["mouth_left"][1] + p["mouth_right"][1]) / 2
    assert eye_y < p["nose"][1] < mouth_y
    # Proportions of a face: eye-to-mouth about 1 to 1.3 eye distances.
    eye_distance = p["right_eye"][0] - p["left_eye"][0]
    assert 0.8 < (mouth_y - eye_y) / eye_distance < 1.5
    # All points within the confirmed face box, inside the image.
    x, y, w, h = face.box
    assert min(x, y) >= 0 and x + w <= rgb.shape[1] and y + h <= rgb.shape[0]
    for px, py in p.values():
        assert x < px < x + w and y < py < y + h


def test_pose_of_a_frontal_face(portrait: tuple[np.ndarray, Face]) -> None:
    pose = portrait[1].pose()

    assert set(pose) == {"yaw", "pitch", "roll"}
    assert abs(pose["yaw"]) < 10
    assert abs(pose["pitch"]) < 15
    assert abs(pose["roll"]) < 10


def test_profile_reads_beyond_45_degrees_of_yaw(
    sample_bytes: Callable[[str], bytes], models: FaceModels
) -> None:
    # The cameraman (d001) looks to the image's right through his camera.
    _, faces = faces_in(sample_bytes("reject_not_frontal.png"), models)

    assert faces
    assert faces[0].pose()["yaw"] > 45


@pytest.mark.skipif(not EVAL_IMAGES.is_dir(), reason="../shared/faces not present")
def test_three_quarter_profile_reads_beyond_45_degrees_of_yaw(models: FaceModels) -> None:
    # d004: a woman turned about 60 degrees towards the image's right.
    _, faces = faces_in((EVAL_IMAGES / "d004.png").read_bytes(), models)

    assert faces
    assert faces[0].pose()["yaw"] > 45


def test_mirrored_face_mirrors_yaw(
    sample_bytes: Callable[[str], bytes], models: FaceModels
) -> None:
    data = sample_bytes("reject_not_frontal.png")
    rgb = at_detection_size(data)
    mirrored = np.ascontiguousarray(rgb[:, ::-1])
    faces = fit_faces(mirrored, detect(mirrored, models, SETTINGS.min_detection_score), models, 4)

    assert faces
    assert faces[0].pose()["yaw"] < -45


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_points_follow_a_face_turned_in_the_pixels(
    portrait: tuple[np.ndarray, Face], models: FaceModels, turns: int
) -> None:
    """A face lying sideways or upside down: the points are where the upright
    points went, assigned by anatomy (so the crop is not mirrored), and the roll
    says how far it is turned."""
    rgb, upright = portrait
    lying = np.ascontiguousarray(np.rot90(rgb, -turns))  # clockwise
    candidates = detect(lying, models, SETTINGS.min_detection_score, quarter_turns=turns)

    faces = fit_faces(lying, candidates, models, SETTINGS.max_faces_checked)

    assert len(faces) == 1
    size = rgb.shape[0]  # square image: every turn keeps the size
    for name, (x, y) in upright.five_points().items():
        for _ in range(turns):
            x, y = size - y, x
        got = faces[0].five_points()[name]
        assert np.hypot(got[0] - x, got[1] - y) < 0.02 * size, name
    roll = faces[0].pose()["roll"]
    assert abs((roll - 90 * turns + 180) % 360 - 180) < 10


def test_two_people_give_two_faces_of_similar_size(
    sample_bytes: Callable[[str], bytes], models: FaceModels
) -> None:
    _, faces = faces_in(sample_bytes("reject_multiple_faces.jpg"), models)

    assert len(faces) == 2
    assert faces[0].length >= faces[1].length > 0.8 * faces[0].length
    # Two different faces: neither box holds the other's centre.
    x, y, w, h = faces[1].box
    assert not faces[0].contains((x + w / 2, y + h / 2))


def test_landmark_model_confirms_no_face_on_an_object(
    sample_bytes: Callable[[str], bytes], models: FaceModels
) -> None:
    data = sample_bytes("reject_no_face.png")
    rgb = at_detection_size(data)
    # Even the detectors' weakest proposals, on the canvas too, are no face.
    candidates = detect(rgb, models, 0.3) + detect(rgb, models, 0.3, canvas=True)

    assert fit_faces(rgb, candidates, models, SETTINGS.max_faces_checked) == []


def test_max_faces_bounds_the_work(
    sample_bytes: Callable[[str], bytes], models: FaceModels
) -> None:
    rgb, candidates = candidates_in(sample_bytes("reject_multiple_faces.jpg"), models)

    assert len(fit_faces(rgb, candidates, models, 1)) == 1


def test_scaled_moves_every_point(portrait: tuple[np.ndarray, Face]) -> None:
    face = portrait[1]

    bigger = face.scaled(2.0, 3.0)

    assert bigger.score == face.score
    np.testing.assert_allclose(bigger.mesh[:, 0], face.mesh[:, 0] * 2)
    np.testing.assert_allclose(bigger.mesh[:, 1], face.mesh[:, 1] * 3)
    np.testing.assert_allclose(bigger.mesh[:, 2], face.mesh[:, 2] * 2)
    x, y, w, h = face.box
    np.testing.assert_allclose(bigger.box, (2 * x, 3 * y, 2 * w, 3 * h))


def test_rolled_face_in_a_non_square_image(
    portrait: tuple[np.ndarray, Face], models: FaceModels
) -> None:
    """The landmark model's region is square in pixels, not in normalised units:
    a rolled face in a wide image gets the same points as in a square one."""
    rgb, _ = portrait
    size = rgb.shape[0]
    turn = cv2.getRotationMatrix2D((size / 2, size / 2), 35, 1.0)  # counter-clockwise
    rolled = cv2.warpAffine(rgb, turn, (size, size), borderMode=cv2.BORDER_REFLECT)
    top = size // 5
    wide = np.ascontiguousarray(rolled[top : size - top])
    square = cv2.copyMakeBorder(wide, top, top, 0, 0, cv2.BORDER_CONSTANT, value=(128, 128, 128))

    def first_face(image: np.ndarray) -> Face:
        candidates = detect(image, models, SETTINGS.min_detection_score)
        return fit_faces(image, candidates, models, SETTINGS.max_faces_checked)[0]

    in_wide = first_face(wide).five_points()
    in_square = first_face(square).five_points()

    for name, (x, y) in in_square.items():
        assert np.hypot(in_wide[name][0] - x, in_wide[name][1] - (y - top)) < 0.01 * size, name
    assert first_face(wide).pose()["roll"] == pytest.approx(-35, abs=6)


def test_unfitted_keeps_one_strong_candidate_per_face_outside_the_fitted_ones(
    portrait: tuple[np.ndarray, Face],
) -> None:
    _, face = portrait
    x, y, w, h = face.box
    on_face = Candidate(box=(x + 10, y + 10, w - 20, h - 20), score=0.95, keypoints=())
    turned_away = Candidate(box=(0, 500, 120, 120), score=0.8, keypoints=())
    same_again = Candidate(box=(20, 520, 80, 80), score=0.9, keypoints=())
    weak = Candidate(box=(520, 0, 100, 100), score=0.6, keypoints=())
    assert not face.contains(turned_away.centre)

    kept = unfitted([on_face, turned_away, weak, same_again], [face], 0.7)

    assert kept == [turned_away]

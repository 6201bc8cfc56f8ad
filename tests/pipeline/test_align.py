"""Geometry of the FFHQ transform and the behaviour of the warp."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.align import (
    face_transform,
    framings,
    invert,
    output_scale,
    rebase,
)
from tests.pipeline.geometry import (
    UPRIGHT,
    apply,
    by_ratio,
    rotate_points,
)

# --- framings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (512, {"1:1": (512, 512), "4:3": (640, 480), "3:4": (480, 640)}),
        (256, {"1:1": (256, 256), "4:3": (320, 240), "3:4": (240, 320)}),
        (1024, {"1:1": (1024, 1024), "4:3": (1280, 960), "3:4": (960, 1280)}),
    ],
)
def test_framing_sizes(size: int, expected: dict[str, tuple[int, int]]) -> None:
    assert {k: (f.width, f.height) for k, f in by_ratio(size).items()} == expected


# --- the transform --------------------------------------------------------------------------


def test_upright_face_gives_the_ffhq_matrix() -> None:
    # eye_to_eye = 100, eye_to_mouth = 110: half side = max(2.0 * 100, 1.8 * 110) = 200,
    # so the 400 px square maps to 512 px (scale 1.28) and its centre, 0.1 * 110 below
    # the eye midpoint at (450, 511), lands on the output centre (256, 256).
    matrix = face_transform(UPRIGHT, by_ratio()["1:1"])
    expected = np.array([[1.28, 0.0, 256 - 1.28 * 450], [0.0, 1.28, 256 - 1.28 * 511]])
    np.testing.assert_allclose(matrix, expected, atol=1e-9)
    assert matrix.shape == (2, 3) and matrix.dtype == np.float64
    assert output_scale(matrix) == pytest.approx(1.28)


def test_a_long_face_is_sized_by_eye_to_mouth() -> None:
    # eye_to_mouth = 150 > eye_to_eye * 2.0 / 1.8: half side = 1.8 * 150 = 270.
    points = dict(UPRIGHT, mouth_left=(410.0, 650.0), mouth_right=(490.0, 650.0))
    matrix = face_transform(points, by_ratio()["1:1"])
    assert output_scale(matrix) == pytest.approx(512 / 540)
    np.testing.assert_allclose(apply(matrix, [(450.0, 515.0)]), [(256.0, 256.0)], atol=1e-9)


@pytest.mark.parametrize("degrees", [-40.0, -12.5, 7.0, 30.0, 90.0])
def test_a_rolled_face_is_turned_upright(degrees: float) -> None:
    rolled = rotate_points(UPRIGHT, degrees, about=(300.0, 200.0))
    upright_m = face_transform(UPRIGHT, by_ratio()["1:1"])
    rolled_m = face_transform(rolled, by_ratio()["1:1"])
    # The matrix undoes the roll: its rotation angle is the face's roll...
    angle = math.degrees(math.atan2(rolled_m[0, 1], rolled_m[0, 0]))
    assert angle == pytest.approx(degrees, abs=1e-9)
    # ...and every landmark lands where the upright face's does.
    names = list(UPRIGHT)
    np.testing.assert_allclose(
        apply(rolled_m, [rolled[n] for n in names]),
        apply(upright_m, [UPRIGHT[n] for n in names]),
        atol=1e-9,
    )


def test_the_eyes_are_level_and_the_output_is_not_mirrored() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        points = {k: tuple(np.array(v) + rng.normal(0, 8, 2)) for k, v in UPRIGHT.items()}
        matrix = face_transform(points, by_ratio()["1:1"])
        left, right = apply(matrix, [points["left_eye"], points["right_eye"]])
        assert left[0] < right[0]  # the image-left eye stays on the left
        assert np.linalg.det(matrix[:, :2]) > 0


def test_the_transform_is_a_similarity_for_any_landmarks() -> None:
    rng = np.random.default_rng(3)
    for framing in framings(512):
        for _ in range(25):
            points = {k: tuple(rng.uniform(0, 4000, 2)) for k in UPRIGHT}
            linear = face_transform(points, framing)[:, :2]
            s2 = np.linalg.det(linear)
            np.testing.assert_allclose(linear @ linear.T, s2 * np.eye(2), rtol=1e-9, atol=1e-12)


def test_degenerate_landmarks_are_refused() -> None:
    same = dict.fromkeys(UPRIGHT, (10.0, 10.0))
    with pytest.raises(ValueError, match="degenerate"):
        face_transform(same, by_ratio()["1:1"])


def test_the_inverse_maps_output_points_back_to_the_source() -> None:
    rolled = rotate_points(UPRIGHT, 23.0, about=(0.0, 0.0))
    for framing in framings(384):
        matrix = face_transform(rolled, framing)
        back = invert(matrix)
        source = np.array(list(rolled.values()))
        np.testing.assert_allclose(apply(back, apply(matrix, source)), source, atol=1e-9)
        corners = np.array([[0, 0], [framing.width, 0], [framing.width, framing.height]])
        np.testing.assert_allclose(apply(matrix, apply(back, corners)), corners, atol=1e-9)
    with pytest.raises(ValueError, match="singular"):
        invert(np.zeros((2, 3)))


def test_rebase_expresses_the_transform_for_a_reduced_decode() -> None:
    matrix = face_transform(UPRIGHT, by_ratio()["4:3"])
    for scale in (0.5, 0.25, 0.125):
        reduced = rebase(matrix, scale)
        source = np.array(list(UPRIGHT.values()))
        np.testing.assert_allclose(apply(reduced, source * scale), apply(matrix, source))
        assert output_scale(reduced) == pytest.approx(output_scale(matrix) / scale)


@pytest.mark.parametrize("ratio", ["4:3", "3:4"])
def test_head_and_shoulders_framings_contain_the_square_crop(ratio: str) -> None:
    rolled = rotate_points(UPRIGHT, -15.0, about=(450.0, 550.0))
    framing = by_ratio()[ratio]
    square = face_transform(rolled, by_ratio()["1:1"])
    wide = face_transform(rolled, framing)
    corners = np.array([[0.0, 0.0], [512, 0], [512, 512], [0, 512]])
    in_wide = apply(wide, apply(invert(square), corners))
    assert np.all(in_wide >= 0)
    assert np.all(in_wide[:, 0] <= framing.width) and np.all(in_wide[:, 1] <= framing.height)
    # Same orientation, the face smaller (more context), the head above the middle.
    assert output_scale(wide) < output_scale(square)
    eyes = apply(wide, [rolled["left_eye"], rolled["right_eye"]]).mean(axis=0)
    assert eyes[0] == pytest.approx(framing.width / 2)  # a symmetric face is centred
    assert eyes[1] < 0.45 * framing.height

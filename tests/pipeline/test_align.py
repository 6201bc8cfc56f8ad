"""Geometry of the FFHQ transform and the behaviour of the warp."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from pipeline.align import (
    FILL_FEATHER,
    Framing,
    face_transform,
    framings,
    invert,
    output_scale,
    rebase,
    warp,
    warp_together,
)

# An upright face: eyes 100 px apart on y = 500, mouth corners 110 px below.
UPRIGHT = {
    "left_eye": (400.0, 500.0),
    "right_eye": (500.0, 500.0),
    "nose": (450.0, 560.0),
    "mouth_left": (410.0, 610.0),
    "mouth_right": (490.0, 610.0),
}


def by_ratio(output_size: int = 512) -> dict[str, Framing]:
    return {f.aspect_ratio: f for f in framings(output_size)}


def apply(matrix: np.ndarray, points: npt.ArrayLike) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]


def rotate_points(points: dict, degrees: float, about: tuple[float, float]) -> dict:
    """Turn every point by `degrees` about `about`, in image axes (x right, y down),
    so a positive angle turns clockwise on screen."""
    a = math.radians(degrees)
    cx, cy = about
    out = {}
    for name, (x, y) in points.items():
        dx, dy = x - cx, y - cy
        cos, sin = math.cos(a), math.sin(a)
        out[name] = (cx + dx * cos - dy * sin, cy + dx * sin + dy * cos)
    return out


def gradient_image(width: int, height: int) -> np.ndarray:
    """R and G grow linearly with x and y across the image, B is constant: a
    pixel's colour says where in the source it came from."""
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    rgb[..., 0] = np.rint((np.arange(width) + 0.5) / width * 255)[None, :]
    rgb[..., 1] = np.rint((np.arange(height) + 0.5) / height * 255)[:, None]
    rgb[..., 2] = 128
    return rgb


def outside_distance(matrix: np.ndarray, shape: tuple[int, ...], framing: Framing) -> np.ndarray:
    """(height, width): how far (output px) each output pixel centre lies outside
    the source image of `shape`, brute force; 0 inside."""
    vs, us = np.mgrid[0 : framing.height, 0 : framing.width] + 0.5
    src = apply(invert(matrix), np.stack([us.ravel(), vs.ravel()], axis=1))
    dx = np.maximum(np.maximum(-src[:, 0], src[:, 0] - shape[1]), 0)
    dy = np.maximum(np.maximum(-src[:, 1], src[:, 1] - shape[0]), 0)
    return (np.hypot(dx, dy) * output_scale(matrix)).reshape(vs.shape)


# The five points of sample_images/accept_portrait.jpg (1200x1200), as MediaPipe places them.
PORTRAIT = {
    "left_eye": (554.6, 404.4),
    "right_eye": (756.6, 412.6),
    "nose": (653.7, 510.3),
    "mouth_left": (600.0, 621.7),
    "mouth_right": (690.0, 621.7),
}


@pytest.fixture(scope="module")
def load_photo(sample_path: Callable[[str], Path]) -> Callable[[str], np.ndarray]:
    def load(name: str) -> np.ndarray:
        with Image.open(sample_path(name)) as im:
            return np.asarray(im.convert("RGB"))

    return load


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


# --- the warp -------------------------------------------------------------------------------


def test_warp_samples_where_the_matrix_says() -> None:
    # One grey level per source pixel: pixel column i holds i, so the value at the
    # continuous position x is x - 0.5. A half-pixel slip would show.
    ramp = np.arange(256, dtype=np.uint8)
    rgb = np.stack(
        [
            np.tile(ramp, (256, 1)),
            np.tile(ramp[:, None], (1, 256)),
            np.full((256, 256), 128, np.uint8),
        ],
        axis=2,
    )
    # A face with its FFHQ centre at (128, 110), small enough that every framing fits.
    small = {k: (x * 0.25 + 15.5, y * 0.25 - 17.75) for k, (x, y) in UPRIGHT.items()}
    rolled = rotate_points(small, 10.0, about=(128.0, 110.0))
    for framing in framings(256):
        matrix = face_transform(rolled, framing)
        out, filled = warp(rgb, matrix, framing)
        assert out.shape == (framing.height, framing.width, 3) and out.dtype == np.uint8
        assert filled == 0.0
        vs, us = np.mgrid[0 : framing.height : 7, 0 : framing.width : 5]
        src = apply(invert(matrix), np.stack([us.ravel() + 0.5, vs.ravel() + 0.5], axis=1))
        got = out[vs.ravel(), us.ravel()].astype(float)
        np.testing.assert_allclose(got[:, :2], src - 0.5, atol=0.75)


def test_filled_ratio_at_the_edge_is_the_share_outside() -> None:
    # The 400 px square around (100, 511) spans x = -100 .. 300: a quarter lies left of
    # the image, and nothing else leaves it.
    points = {k: (x - 350.0, y) for k, (x, y) in UPRIGHT.items()}
    rng = np.random.default_rng(1)
    rgb = np.clip(rng.normal(140, 20, (1200, 900, 3)), 0, 255).astype(np.uint8)
    framing = by_ratio()["1:1"]
    out, filled = warp(rgb, face_transform(points, framing), framing)
    assert filled == pytest.approx(0.25, abs=1 / 512)
    outside = out[:, :120].astype(float)  # left of x = 128 in the output is the fill
    assert outside.mean() == pytest.approx(140, abs=6)  # the photo's own tone, not black
    assert outside.std() < 10  # blurred: the noise is gone


def test_fill_on_a_real_photo_is_seamless_and_not_black(
    load_photo: Callable[[str], np.ndarray],
) -> None:
    # The portrait cut at x = 600, through the nose: the image-left half of the face
    # and everything left of it are outside.
    rgb = load_photo("reject_cut_off.jpg")
    points = {k: (x - 600.0, y) for k, (x, y) in PORTRAIT.items()}
    for framing in framings(512):
        matrix = face_transform(points, framing)
        out, filled = warp(rgb, matrix, framing)
        edge_u = apply(matrix, [(0.0, 500.0)])[0][0]  # where the image's left edge lands
        assert 0.3 < filled < 0.8
        assert 0.8 * (edge_u / framing.width) < filled  # at least the strip left of the edge
        fill = out[:, : int(edge_u) - 2].astype(float)
        assert fill.mean() > 40 and np.percentile(fill.max(axis=2), 5) > 10
        # No seam: the step across the edge is no larger than steps inside the photo.
        col = round(edge_u)
        across = np.abs(out[:, col - 2].astype(float) - out[:, col + 1]).mean()
        inside = np.abs(out[:, col + 20].astype(float) - out[:, col + 23]).mean()
        assert across < inside * 2 + 4


def test_a_large_shrink_is_anti_aliased() -> None:
    # A one-pixel checkerboard shrunk 4x is mid grey; sampled naively it aliases.
    board = (np.indices((2000, 2000)).sum(axis=0) % 2 * 255).astype(np.uint8)
    rgb = np.repeat(board[..., None], 3, axis=2)
    points = {k: (x * 4 + 100, y * 3) for k, (x, y) in UPRIGHT.items()}
    points["mouth_left"] = (points["left_eye"][0] + 20, points["left_eye"][1] + 440)
    points["mouth_right"] = (points["right_eye"][0] - 20, points["right_eye"][1] + 440)
    framing = by_ratio(256)["1:1"]
    matrix = face_transform(points, framing)
    assert output_scale(matrix) < 0.2
    out, _ = warp(rgb, matrix, framing)
    assert abs(out.mean() - 127.5) < 3
    assert out.std() < 6


def test_a_large_shrink_keeps_the_geometry() -> None:
    rgb = gradient_image(3300, 3600)
    turned = rotate_points(UPRIGHT, 10, (450, 500))
    points = {k: (x * 3.5 + 80, y * 3.0 + 100) for k, (x, y) in turned.items()}
    for framing in framings(256):
        matrix = face_transform(points, framing)
        assert output_scale(matrix) < 0.5
        out, filled = warp(rgb, matrix, framing)
        assert filled == 0.0
        vs, us = np.mgrid[0 : framing.height : 19, 0 : framing.width : 23]
        src = apply(invert(matrix), np.stack([us.ravel() + 0.5, vs.ravel() + 0.5], axis=1))
        got = out[vs.ravel(), us.ravel()].astype(float)
        np.testing.assert_allclose(got[:, 0], src[:, 0] / 3300 * 255, atol=1.5)
        np.testing.assert_allclose(got[:, 1], src[:, 1] / 3600 * 255, atol=1.5)


def test_warp_is_deterministic(load_photo: Callable[[str], np.ndarray]) -> None:
    rgb = load_photo("accept_portrait.jpg")
    for framing in framings(512):
        matrix = face_transform(PORTRAIT, framing)
        first, filled_1 = warp(rgb, matrix, framing)
        second, filled_2 = warp(rgb.copy(), matrix.copy(), framing)
        assert first.tobytes() == second.tobytes() and filled_1 == filled_2


def test_a_crop_beside_the_image_is_all_fill_in_the_image_tones() -> None:
    rgb = np.zeros((100, 80, 3), dtype=np.uint8)
    rgb[...] = (200, 120, 40)
    beside = {k: (x + 400.0, y - 300.0) for k, (x, y) in UPRIGHT.items()}
    framing = by_ratio(256)["1:1"]
    out, filled = warp(rgb, face_transform(beside, framing), framing)
    assert filled == 1.0
    assert np.all(np.abs(out.astype(int) - (200, 120, 40)) <= 1)


def test_filled_ratio_counts_the_pixel_centres_outside() -> None:
    rgb = gradient_image(700, 500)
    rolled = rotate_points(UPRIGHT, 17.0, about=(450.0, 500.0))
    points = {k: (x - 300.0, y - 300.0) for k, (x, y) in rolled.items()}
    for framing in framings(256):
        matrix = face_transform(points, framing)
        _, filled = warp(rgb, matrix, framing)
        outside = outside_distance(matrix, rgb.shape, framing) > 0
        assert 0.1 < filled < 0.9
        assert filled == pytest.approx(np.count_nonzero(outside) / outside.size, abs=1e-12)


def test_the_fill_past_the_feather_is_smooth(load_photo: Callable[[str], np.ndarray]) -> None:
    # Past the feather the fill is all blur: no step where the faded reflection
    # ends and the blurred background begins, shrinking (bilinear) or enlarging
    # (bicubic). A blurred photo changes by at most a level or two per pixel.
    cut = load_photo("reject_cut_off.jpg")
    portrait = Image.fromarray(load_photo("accept_portrait.jpg"))
    small = np.asarray(portrait.resize((400, 400), Image.Resampling.LANCZOS))
    cases = [
        (cut, {k: (x - 600.0, y) for k, (x, y) in PORTRAIT.items()}),
        (small, {k: (x / 3 - 120.0, y / 3) for k, (x, y) in PORTRAIT.items()}),
        (small, {k: (x / 3 + 80.0, y / 3 + 120.0) for k, (x, y) in PORTRAIT.items()}),
    ]
    scales = []
    for rgb, points in cases:
        for framing in framings(512):
            matrix = face_transform(points, framing)
            out, filled = warp(rgb, matrix, framing)
            scales.append(output_scale(matrix))
            far = outside_distance(matrix, rgb.shape, framing)
            far = far > FILL_FEATHER * min(framing.width, framing.height) + 3
            assert filled > 0.1 and far.mean() > 0.05
            steps = np.abs(np.diff(out.astype(int), axis=1)).max(axis=2)
            assert steps[far[:, 1:] & far[:, :-1]].max() <= 3
            steps = np.abs(np.diff(out.astype(int), axis=0)).max(axis=2)
            assert steps[far[1:] & far[:-1]].max() <= 3
    assert min(scales) < 1 < max(scales)


# --- several framings at once ---------------------------------------------------------------


def test_framings_warped_together_match_each_warped_alone(
    load_photo: Callable[[str], np.ndarray],
) -> None:
    # The portrait's face at half size and low in the photo: the 4:3 lies inside
    # it and the 3:4 runs off its bottom, so together both take the fill path.
    rgb = load_photo("accept_portrait.jpg")
    points = {k: (655 + (x - 655) / 2, 600 + (y - 600) / 2 + 250) for k, (x, y) in PORTRAIT.items()}
    frames = [by_ratio()["4:3"], by_ratio()["3:4"]]
    matrices = [face_transform(points, f) for f in frames]
    alone = [warp(rgb, m, f) for m, f in zip(matrices, frames, strict=True)]
    together = warp_together(rgb, matrices, frames)
    assert alone[0][1] == 0.0 and alone[1][1] > 0.05
    for (out, filled), (ref, ref_filled), framing in zip(together, alone, frames, strict=True):
        assert out.shape == (framing.height, framing.width, 3) and out.dtype == np.uint8
        assert filled == ref_filled
        diff = np.abs(out.astype(int) - ref)
        assert diff.mean() < 0.2 and np.percentile(diff, 99) <= 2
    # The inside crop's pixels are the same through the fill path as through the
    # fast path that skips it.
    assert np.abs(together[0][0].astype(int) - alone[0][0]).max() <= 1
    again = warp_together(rgb.copy(), [m.copy() for m in matrices], frames)
    assert all(a.tobytes() == b.tobytes() for (a, _), (b, _) in zip(together, again, strict=True))


@pytest.mark.parametrize("size", [300, 512])
def test_framings_warped_together_are_cut_where_each_matrix_says(size: int) -> None:
    # At 512 the 4:3 and 3:4 are windows of one canvas, at 300 (shifts of
    # fractional pixels) they are warped one by one: both sample where they should.
    rgb = gradient_image(3000, 3000)
    rolled = rotate_points(UPRIGHT, -8.0, about=(450.0, 500.0))
    points = {k: (x * 2 + 600, y * 2 + 500) for k, (x, y) in rolled.items()}
    frames = list(framings(size)[1:])
    matrices = [face_transform(points, f) for f in frames]
    for (out, filled), matrix, framing in zip(
        warp_together(rgb, matrices, frames), matrices, frames, strict=True
    ):
        assert out.shape == (framing.height, framing.width, 3) and filled == 0.0
        vs, us = np.mgrid[0 : framing.height : 17, 0 : framing.width : 13]
        src = apply(invert(matrix), np.stack([us.ravel() + 0.5, vs.ravel() + 0.5], axis=1))
        got = out[vs.ravel(), us.ravel()].astype(float)
        np.testing.assert_allclose(got[:, 0], src[:, 0] / 3000 * 255, atol=1.5)
        np.testing.assert_allclose(got[:, 1], src[:, 1] / 3000 * 255, atol=1.5)


def test_framings_of_different_scales_are_not_warped_together() -> None:
    frames = framings(512)
    matrices = [face_transform(UPRIGHT, f) for f in frames]
    with pytest.raises(ValueError, match="one output scale"):
        warp_together(gradient_image(900, 1200), matrices, frames)

"""The warp: sampling, anti-aliasing, the fill outside the source, determinism."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.align import face_transform, framings, invert, output_scale
from pipeline.warp import FILL_FEATHER, warp, warp_together
from tests.pipeline.geometry import (
    PORTRAIT,
    UPRIGHT,
    apply,
    by_ratio,
    gradient_image,
    outside_distance,
    quarter_transform,
    rotate_points,
)


@pytest.fixture(scope="module")
def load_photo(sample_path: Callable[[str], Path]) -> Callable[[str], np.ndarray]:
    def load(name: str) -> np.ndarray:
        with Image.open(sample_path(name)) as im:
            return np.asarray(im.convert("RGB"))

    return load


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


def test_framings_warped_together_match_each_warped_alone_inside_the_photo(
    load_photo: Callable[[str], np.ndarray],
) -> None:
    # The portrait's face at half size and low in the photo: the 4:3 lies inside
    # it and the 3:4 runs off its bottom, so together both take the fill path.
    rgb = load_photo("accept_portrait.jpg")
    points = {k: (655 + (x - 655) / 2, 600 + (y - 600) / 2 + 250) for k, (x, y) in PORTRAIT.items()}
    frames = [by_ratio()["4:3"], by_ratio()["3:4"]]
    matrices = [quarter_transform(points, f) for f in frames]
    alone = [warp(rgb, m, f) for m, f in zip(matrices, frames, strict=True)]
    together = warp_together(rgb, matrices, frames)
    assert alone[0][1] == 0.0 and alone[1][1] > 0.05
    for (out, filled), (ref, ref_filled), matrix, framing in zip(
        together, alone, matrices, frames, strict=True
    ):
        assert out.shape == (framing.height, framing.width, 3) and out.dtype == np.uint8
        assert filled == ref_filled
        # The photo's own pixels are the same; only the fill differs (spread
        # against reflection), from where the bicubic kernel reaches the edge.
        inside = (outside_distance(matrix, rgb.shape, framing) == 0).astype(np.uint8)
        inside = cv2.erode(inside, np.ones((7, 7), np.uint8)) > 0
        diff = np.abs(out.astype(int) - ref)[inside]
        assert diff.mean() < 0.2 and np.percentile(diff, 99) <= 2
    again = warp_together(rgb.copy(), [m.copy() for m in matrices], frames)
    assert all(a.tobytes() == b.tobytes() for (a, _), (b, _) in zip(together, again, strict=True))


@pytest.mark.parametrize("size", [300, 512])
def test_framings_warped_together_are_cut_where_each_matrix_says(size: int) -> None:
    # At 512 the 4:3 and 3:4 are windows of one canvas, at 300 (shifts of
    # fractional pixels) they are warped one by one: both sample where they
    # should. The head's 8 degree roll stays (quarter turns only).
    rgb = gradient_image(3000, 3000)
    rolled = rotate_points(UPRIGHT, -8.0, about=(450.0, 500.0))
    points = {k: (x * 2 + 600, y * 2 + 500) for k, (x, y) in rolled.items()}
    frames = list(framings(size)[1:])
    matrices = [quarter_transform(points, f) for f in frames]
    for (out, filled), matrix, framing in zip(
        warp_together(rgb, matrices, frames), matrices, frames, strict=True
    ):
        assert out.shape == (framing.height, framing.width, 3) and filled == 0.0
        vs, us = np.mgrid[0 : framing.height : 17, 0 : framing.width : 13]
        src = apply(invert(matrix), np.stack([us.ravel() + 0.5, vs.ravel() + 0.5], axis=1))
        got = out[vs.ravel(), us.ravel()].astype(float)
        np.testing.assert_allclose(got[:, 0], src[:, 0] / 3000 * 255, atol=1.5)
        np.testing.assert_allclose(got[:, 1], src[:, 1] / 3000 * 255, atol=1.5)


def test_framings_of_different_scales_are_cut_one_by_one() -> None:
    rgb = gradient_image(900, 1200)
    frames = framings(512)
    matrices = [face_transform(UPRIGHT, f) for f in frames]
    together = warp_together(rgb, matrices, frames)
    for (out, filled), matrix, framing in zip(together, matrices, frames, strict=True):
        ((alone, alone_filled),) = warp_together(rgb, [matrix], [framing])
        assert out.tobytes() == alone.tobytes() and filled == alone_filled


def test_tilted_framings_are_not_cut_with_the_spread_fill() -> None:
    rolled = rotate_points(UPRIGHT, 10.0, about=(450.0, 500.0))
    frame = by_ratio()["4:3"]
    with pytest.raises(ValueError, match="quarter turns"):
        warp_together(gradient_image(900, 1200), [face_transform(rolled, frame)], [frame])

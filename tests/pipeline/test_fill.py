"""The spread fill of the head-and-shoulders framings and the seam measure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.align import framings
from pipeline.fill import photo_rect, seam_ratio, spread_fill
from pipeline.warp import warp_together
from tests.pipeline.geometry import PORTRAIT, by_ratio, outside_distance, quarter_transform


def textured(width: int, height: int, seed: int = 5) -> np.ndarray:
    """Noise around a horizontal ramp: texture and colour that change along
    the image, as a photo's background does."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(60, 200, width)[None, :, None]
    return np.clip(rng.normal(ramp, 12, (height, width, 3)), 0, 255).astype(np.uint8)


def matrix_for(scale: float, shift: tuple[float, float]) -> np.ndarray:
    return np.array([[scale, 0.0, shift[0]], [0.0, scale, shift[1]]])


def test_the_fill_continues_the_edge_and_softens_with_distance() -> None:
    # A 600 x 400 photo at scale 1, its bottom 80 rows of the 640 x 480 frame filled.
    rgb = textured(640, 400)
    frame = by_ratio()["4:3"]
    ((out, filled),) = warp_together(rgb, [matrix_for(1.0, (0.0, 0.0))], [frame])
    assert filled == pytest.approx(80 / 480)
    np.testing.assert_array_equal(out[:396], rgb[:396])  # the photo is untouched
    fill = out[400:].astype(float)
    # Next to the border the fill is the photo's own texture (mirrored)...
    # (a sixth of the first blur level already mixed in at half a pixel out).
    assert np.abs(fill[0] - rgb[399]).mean() < 3 and np.abs(fill[0] - rgb[399]).max() <= 12
    # ...far out it is soft: a tenth of the texture's pixel-to-pixel variation,
    # and the colour of the photo's edge above it, not grey or black.
    far = fill[-20:]
    assert (
        np.abs(np.diff(far, axis=1)).mean()
        < 0.1 * np.abs(np.diff(rgb[-20:].astype(float), axis=1)).mean()
    )
    edge_means = rgb[-40:].astype(float).mean(axis=0)
    np.testing.assert_allclose(far.mean(axis=0)[20:-20], edge_means[20:-20], atol=12)


def test_spread_fill_leaves_pixels_inside_the_photo_alone() -> None:
    out = textured(200, 100)
    before = out.copy()
    spread_fill(out, (20.0, 10.0, 180.0, 90.0))
    np.testing.assert_array_equal(out[10:90, 20:180], before[10:90, 20:180])
    assert not np.array_equal(out[:10], before[:10])
    photo = (0.0, 0.0, 200.0, 100.0)
    spread_fill(out, photo)  # nothing outside: nothing changes
    assert photo_rect(matrix_for(2.0, (-5.0, 3.0)), (50, 100, 3)) == (-5.0, 3.0, 195.0, 103.0)


def test_a_pasted_border_measures_a_seam_the_spread_one_does_not() -> None:
    rgb = textured(640, 400)
    matrix = matrix_for(1.0, (0.0, 0.0))
    ((spread, _),) = warp_together(rgb, [matrix], [by_ratio()["4:3"]])
    pasted = spread.copy()
    pasted[400:] = 128  # a flat band butted against the photo, as a pasted photo looks
    stepped = spread.copy()
    stepped[400:] = np.clip(spread[400:].astype(int) + 60, 0, 255).astype(np.uint8)
    assert seam_ratio(spread, matrix, (640, 400)) < 1.5
    assert seam_ratio(pasted, matrix, (640, 400)) > 3
    assert seam_ratio(stepped, matrix, (640, 400)) > 3
    # No border inside the frame: nothing to measure.
    assert seam_ratio(spread[:300], matrix, (640, 400)) is None


def test_a_real_portrait_filled_at_the_bottom_has_no_seam(
    sample_path: Callable[[str], Path],
) -> None:
    with Image.open(sample_path("accept_portrait.jpg")) as im:
        rgb = np.asarray(im.convert("RGB"))
    # The face low in the photo: the 3:4 runs off its bottom.
    points = {k: (655 + (x - 655) / 2, 600 + (y - 600) / 2 + 250) for k, (x, y) in PORTRAIT.items()}
    frame = framings(512)[2]
    matrix = quarter_transform(points, frame)
    ((out, filled),) = warp_together(rgb, [matrix], [frame])
    assert filled > 0.05
    assert (outside_distance(matrix, rgb.shape, frame) > 0).mean() == pytest.approx(
        filled, abs=0.01
    )
    ratio = seam_ratio(out, matrix, (rgb.shape[1], rgb.shape[0]))
    assert ratio is not None and ratio < 1.5

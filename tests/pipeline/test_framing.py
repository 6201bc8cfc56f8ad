"""The head-and-shoulders framing on synthetic landmarks and photo sizes: it
slides, then zooms, then fills, within the bounds in the settings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline import PipelineSettings
from pipeline.align import face_transform, framings, output_scale
from pipeline.framing import FILL_TOLERANCE, Fit, fit, quarter_turn
from tests.pipeline.geometry import UPRIGHT, apply, by_ratio, rotate_points

SETTINGS = PipelineSettings()
# UPRIGHT's FFHQ square: side 400 px centred on (450, 511). At 512 px the 4:3
# shows it at 320 px (0.8 output px per source px): an 800 x 600 px window
# from (50, 251), the square's centre on output (320, 208).
CENTRE = (450.0, 511.0)
HEAD_TOP = (450.0, 380.0)  # the top of the hair, 131 px above the square's centre
CHIN = (450.0, 680.0)  # 180 px below the eyes, 169 below the square's centre


def fitted(
    size: tuple[int, int], shift: tuple[float, float] = (0.0, 0.0), points: dict | None = None
) -> dict[str, Fit]:
    dx, dy = shift
    face = {k: (x + dx, y + dy) for k, (x, y) in (points or UPRIGHT).items()}
    top, chin = (HEAD_TOP[0] + dx, HEAD_TOP[1] + dy), (CHIN[0] + dx, CHIN[1] + dy)
    return fit(face, top, chin, size, framings(512)[1:], SETTINGS)


def window(result: Fit, ratio: str) -> np.ndarray:
    """The source rectangle (x0, y0, x1, y1) the framing shows (no turn)."""
    frame = by_ratio()[ratio]
    back = np.linalg.inv(np.vstack([result.matrix, [0, 0, 1]]))[:2]
    corners = apply(back, [(0.0, 0.0), (frame.width, frame.height)])
    return np.concatenate([corners.min(axis=0), corners.max(axis=0)])


def test_a_photo_with_room_keeps_todays_framing() -> None:
    fits = fitted((2000, 2000))
    for ratio, result in fits.items():
        assert (result.zoom, result.fill) == (1.0, 0.0)
        np.testing.assert_allclose(result.matrix, face_transform(UPRIGHT, by_ratio()[ratio]))
    np.testing.assert_allclose(window(fits["4:3"], "4:3"), [50, 251, 850, 851])
    # The head's top at 0.3 of the height: (208 - 0.8 * 131) / 480.
    assert fits["4:3"].headroom == pytest.approx((208 - 0.8 * 131) / 480)


def test_the_window_slides_before_it_zooms() -> None:
    # 800 px wide: the default window [50, 850] runs 50 px off the right edge.
    # Sliding it left by 50 source px (40 output px, under the 64 allowed)
    # puts it inside, so nothing is zoomed or filled.
    result = fitted((800, 2000))["4:3"]
    assert (result.zoom, result.fill) == (1.0, 0.0)
    np.testing.assert_allclose(window(result, "4:3"), [0, 251, 800, 851])
    eyes = apply(result.matrix, [UPRIGHT["left_eye"], UPRIGHT["right_eye"]]).mean(axis=0)
    assert eyes[0] == pytest.approx(320 + 40)


def test_it_zooms_in_only_as_far_as_it_must_and_both_framings_keep_one_size() -> None:
    # 700 px wide: sliding alone leaves fill. At zoom z the window is 800 / z
    # wide and slides at most 80 / z source px: inside from z = 320 / 250 = 1.28,
    # or one step less, where a sliver within FILL_TOLERANCE is left.
    fits = fitted((700, 2000))
    landscape = fits["4:3"]
    assert landscape.zoom == pytest.approx(1.27) and 0 < landscape.fill < FILL_TOLERANCE
    x0, _, x1, _ = window(landscape, "4:3")
    assert x1 == pytest.approx(700 + 800 / landscape.zoom * landscape.fill) and x0 > 0
    # The 3:4 (600 px wide at zoom 1) would fit unzoomed, but takes the same zoom
    # so the head keeps its size when a session switches.
    assert fits["3:4"].zoom == landscape.zoom and fits["3:4"].fill == pytest.approx(0, abs=1e-9)
    assert fitted((700, 2000), shift=(0.0, 0.0))["4:3"].zoom == landscape.zoom  # deterministic
    assert output_scale(fits["3:4"].matrix) == pytest.approx(output_scale(landscape.matrix))


def chin_room_zoom() -> float:
    """The closest zoom at which the 4:3 keeps UPRIGHT's eyes at min_eye_line
    and its chin min_chin_room above the bottom: at zoom z (0.8 z output px per
    source px) the eyes sit 11 px above the square's centre and the chin 169
    below, so 180 * 0.8 z <= (1 - min_chin_room - min_eye_line) * 480."""
    room = 1 - SETTINGS.min_chin_room - SETTINGS.min_eye_line
    return room * 480 / (180 * 0.8)


def test_a_photo_too_tight_is_filled_at_the_closest_zoom_the_chin_allows() -> None:
    # 300 px wide around the face: at the closest framing the window is still
    # 800 / z > 300 px wide, so the sides are filled; the head is cut at the top
    # (the frame is too short for it) rather than more of the frame invented.
    result = fitted((300, 2000), shift=(-300.0, 0.0))["4:3"]
    closest = chin_room_zoom()
    assert closest - 2 * 0.01 < result.zoom <= closest < SETTINGS.max_framing_zoom
    assert result.fill == pytest.approx(1 - 300 / (800 / result.zoom))
    x0, _, x1, _ = window(result, "4:3")
    assert x0 < 0 < 300 < x1
    chin_y = apply(result.matrix, [(CHIN[0] - 300, CHIN[1])])[0][1]
    assert chin_y <= (1 - SETTINGS.min_chin_room) * 480 + 1e-6
    assert result.headroom < 0


def test_the_eyes_never_rise_above_the_eye_line_range() -> None:
    # The face near the photo's top: the window would have to slide down until
    # the eyes sit higher than min_eye_line, so it zooms in (the fill above
    # shrinks with the zoom) and fills the top.
    result = fitted((2000, 2000), shift=(0.0, -400.0))["4:3"]
    assert result.fill > 0 and result.zoom > 1.4
    eye_x, eye_y = UPRIGHT["left_eye"]
    eye_y = apply(result.matrix, [(eye_x, eye_y - 400)])[0][1]
    assert eye_y == pytest.approx(SETTINGS.min_eye_line * 480, abs=0.5)


@pytest.mark.parametrize(("degrees", "quarters"), [(30.0, 0), (-44.0, 0), (80.0, 1), (-100.0, 3)])
def test_only_quarter_turns_are_undone(degrees: float, quarters: int) -> None:
    rolled = rotate_points(UPRIGHT, degrees, about=CENTRE)
    top = rotate_points({"top": HEAD_TOP}, degrees, about=CENTRE)["top"]
    chin = rotate_points({"chin": CHIN}, degrees, about=CENTRE)["chin"]
    fits = fit(rolled, top, chin, (3000, 3000), framings(512)[1:], SETTINGS)
    for result in fits.values():
        (a, b, _), (c, d, _) = result.matrix
        expected = [(1, 0), (0, 1), (-1, 0), (0, -1)][quarters]
        scale = output_scale(result.matrix)
        assert (a / scale, b / scale) == pytest.approx(expected)
        assert (a, b) == (d, -c)
        # The head keeps what is left of its roll.
        left, right = apply(result.matrix, [rolled["left_eye"], rolled["right_eye"]])
        tilt = math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))
        assert tilt == pytest.approx((degrees - 90 * quarters + 180) % 360 - 180, abs=1e-6)


def test_quarter_turn_is_exact() -> None:
    assert quarter_turn((math.cos(0.3), math.sin(0.3))) == (1.0, 0.0)
    assert quarter_turn((math.cos(1.4), math.sin(1.4))) == (0.0, 1.0)
    assert quarter_turn((-1.0, 1e-9)) == (-1.0, 0.0)
    assert quarter_turn((0.1, -0.99)) == (0.0, -1.0)

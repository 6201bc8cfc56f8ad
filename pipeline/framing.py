"""How the head-and-shoulders renditions are framed (the aspect ratios
themselves are `pipeline.aspect`'s).

The 1:1 is the FFHQ crop (`pipeline.align.face_transform`, roll undone
exactly). The 4:3 and 3:4 (`fit`) start from the same square at the size and
place `pipeline.align.framings` gives them (the face at 0.625 of its 1:1 size,
eyes about 0.42 and 0.36 of the height from the top) and then adapt to what
the photo has, minimising the output pixels that lie outside it (the fill):

- Orientation: only the nearest quarter turn of the face's roll is undone, so
  the photo's edges stay parallel to the frame's and a fill border is never
  tilted (a head tilted up to 45 degrees stays tilted, as in any
  head-and-shoulders shot).
- Position: the window slides within bounds (`PipelineSettings`): the face's
  centre at most `max_face_offcentre` of the width off the middle, the eye
  line between `min_eye_line` and `max_eye_line` of the height from the top,
  the chin (landmark 152) at least `min_chin_room` of the height above the
  bottom edge (a talking jaw opens), and the head's top (`Face.head_top`) at
  least `min_headroom` of the height below the top edge, or as close as the
  photo allows (a photo that cuts the hair is not given invented hair). Where
  the eye line and the chin leave no room for the whole head, its top is cut
  (the headroom check warns): cropped hair reads as a close-up, a frame
  invented around the head as a smear. Among the positions with the least
  fill, the one nearest today's placement (eyes at the same height, face
  centred) wins.
- Scale: zoom z in [1, `max_framing_zoom`] times today's face size, in steps
  of 1%, as long as the eye line and the chin's room both fit (about 2.1x on
  a typical face: hairline to just below the chin): the smallest z whose
  least fill is within `FILL_TOLERANCE` of the least at any z. Both framings
  take the same z (the head keeps its size when a session switches between
  them) when one z is within that tolerance for both; else each its own.

So the order is: slide, then zoom a little, and only then fill. In the
rotated source frame (q = R p, R the quarter turn) an output pixel u is
u = s (q - c) + f, with s = z * today's scale, c the FFHQ square's centre and
f the output point it lands on; the window is the axis-aligned rectangle
[c - f / s, c + (size - f) / s], so its overlap with the photo's (rotated)
rectangle is a product of two intervals and each axis is solved on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.align import Framing, Points, ffhq_square, square_transform
from pipeline.settings import PipelineSettings

# The zooms tried, in steps of this share of today's face size.
ZOOM_STEP = 0.01
# A zoom that saves less than this share of the frame's pixels from fill is not
# worth the tighter frame.
FILL_TOLERANCE = 0.005
# A fill this small is none (the overlap's floating-point rounding).
NO_FILL = 1e-9

Point = tuple[float, float]


@dataclass(frozen=True)
class Fit:
    """One adapted framing: `matrix` (2, 3) maps upright source (x, y) to output
    px; `zoom` is the face size over today's; `fill` the share of the frame
    outside the photo (continuous estimate; the warp counts pixel centres);
    `headroom` the head top's distance below the top edge over the frame
    height (negative: the head is cut)."""

    matrix: np.ndarray
    zoom: float
    fill: float
    headroom: float


@dataclass(frozen=True)
class _Place:
    """A position at one zoom: output point `f` of the square's centre, its fill."""

    zoom: float
    f: tuple[float, float]
    fill: float


def fit(
    points: Points,
    head_top: Point,
    chin: Point,
    size: tuple[int, int],
    frames: tuple[Framing, ...],
    settings: PipelineSettings,
) -> dict[str, Fit]:
    """The adapted transforms of `frames` (the head-and-shoulders framings of
    `pipeline.align.framings`) for a face with five `points`, `head_top`
    (see `Face.head_top`) and `chin` (x, y) in an upright source of `size`
    (width, height) px,
    by aspect ratio. See the module docstring for the rule. Raises ValueError
    when the points are degenerate."""
    square = ffhq_square(points)
    turn = quarter_turn(square.turn)
    cos, sin = turn
    rotate = np.array([[cos, sin], [-sin, cos]])
    width, height = size
    corners = np.array([[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]]) @ rotate.T
    low, high = corners.min(axis=0), corners.max(axis=0)
    # Plain floats: they enter `_places`' arithmetic on every zoom as scalars.
    photo = ((float(low[0]), float(low[1])), (float(high[0]), float(high[1])))
    rotated = rotate @ np.asarray(square.centre)
    centre = (float(rotated[0]), float(rotated[1]))
    eyes = rotate @ ((np.asarray(points["left_eye"]) + np.asarray(points["right_eye"])) / 2)
    top = rotate @ np.asarray(head_top)
    bottom = rotate @ np.asarray(chin)
    offsets = (
        float(eyes[1] - centre[1]),
        float(top[1] - centre[1]),
        float(bottom[1] - centre[1]),
    )
    zooms = [
        1 + i * ZOOM_STEP for i in range(round((settings.max_framing_zoom - 1) / ZOOM_STEP) + 1)
    ]
    rows = [_places(f, zooms, square.half_side, centre, photo, offsets, settings) for f in frames]
    # No larger zoom can do better once every framing fills nothing or no
    # longer fits (the eye line and the chin only get further apart), so the
    # zooms after the first such one are not considered. A photo with room
    # around the head stops at zoom 1; the dev sets are rich in tight crops,
    # and 27% of their photos and variants stop there, the median at the 41st.
    done = np.logical_and.reduce([~placed | (fill <= NO_FILL) for placed, _, fill in rows])
    count = int(np.argmax(done)) + 1 if done.any() else len(zooms)
    places = {
        frame.aspect_ratio: [
            _Place(zooms[i], (float(f[0, i]), float(f[1, i])), float(fill[i]))
            if placed[i]
            else None
            for i in range(count)
        ]
        for frame, (placed, f, fill) in zip(frames, rows, strict=True)
    }
    chosen = _choose(places)
    fits = {}
    for frame in frames:
        place = chosen[frame.aspect_ratio]
        matrix = square_transform(square, place.zoom * frame.face_side, place.f, turn)
        scale = place.zoom * frame.face_side / (2 * square.half_side)
        headroom = (place.f[1] + scale * offsets[1]) / frame.height
        fits[frame.aspect_ratio] = Fit(matrix, place.zoom, place.fill, headroom)
    return fits


def quarter_turn(turn: tuple[float, float]) -> tuple[float, float]:
    """The (cos, sin) of the quarter turn nearest the angle of `turn` (cos, sin),
    exactly 0 or +-1."""
    quarters = round(math.atan2(turn[1], turn[0]) / (math.pi / 2)) % 4
    return ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))[quarters]


def _places(
    frame: Framing,
    zooms: list[float],
    half_side: float,
    centre: Point,
    photo: tuple[Point, Point],
    offsets: tuple[float, float, float],
    settings: PipelineSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The least-fill position of `frame` at each of `zooms`, all at once:
    whether it fits there (False when, at a zoom above 1, the eye line cannot
    stay in its range with the chin's room kept), the output point f of the
    square's centre ((2, Z): x, y) and the fill (Z,). `centre`: the square's
    centre in the rotated source; `photo`: its (low, high) corners there;
    `offsets`: the eye line's, the head top's and the chin's height over the
    centre there. Each zoom is the same float arithmetic a loop over them
    would do, so the result does not depend on how many are asked."""
    zoom = np.asarray(zooms)
    scale = zoom * frame.face_side / (2 * half_side)
    width, height = frame.width, frame.height
    eye_offset, top_offset, chin_offset = offsets
    # Today's placement: the face centred, the eyes where they are at zoom 1.
    eye_line = frame.face_centre[1] + frame.face_side / (2 * half_side) * eye_offset
    nominal = (width / 2, eye_line - scale * eye_offset)
    off = settings.max_face_offcentre * width
    x_range = ((width / 2 - off), (width / 2 + off))
    # The bounds on f's height: the eye line in its range, the chin its room
    # above the bottom edge (a talking jaw opens), the head its room below the top.
    eye_low = settings.min_eye_line * height - scale * eye_offset
    eye_high = settings.max_eye_line * height - scale * eye_offset
    y_high = np.minimum(eye_high, (1 - settings.min_chin_room) * height - scale * chin_offset)
    cramped = y_high < eye_low
    placed = ~(cramped & (zoom > 1.0))
    y_high = np.where(cramped, eye_high, y_high)
    # No more room demanded above the head than the photo has: a photo that
    # cuts the hair is not given invented hair.
    head_low = np.minimum(
        settings.min_headroom * height - scale * top_offset,
        scale * (centre[1] - photo[0][1]),
    )
    # Where the head cannot keep its room, its top is cut (the headroom check
    # says so) rather than the frame filled: cropped hair reads as a close-up,
    # invented hair or shoulders as a smear.
    y_low = np.where(head_low <= y_high, np.maximum(eye_low, head_low), eye_low)
    f = np.empty((2, zoom.size))
    covered = np.ones(zoom.size)
    for axis, (low, high), length in ((0, x_range, width), (1, (y_low, y_high), height)):
        # In source units the window starts at centre - f / scale: f's range reversed.
        window = length / scale
        start = _best_start(
            centre[axis] - nominal[axis] / scale,
            (centre[axis] - high / scale, centre[axis] - low / scale),
            window,
            (photo[0][axis], photo[1][axis]),
        )
        inside = np.minimum(start + window, photo[1][axis]) - np.maximum(start, photo[0][axis])
        covered = covered * (np.maximum(0.0, inside) * scale / length)
        f[axis] = (centre[axis] - start) * scale
    return placed, f, 1.0 - covered


def _best_start(
    nominal: np.ndarray,
    allowed: tuple[np.ndarray, np.ndarray],
    length: np.ndarray,
    photo: tuple[float, float],
) -> np.ndarray:
    """Per element, where a window of `length` starting within `allowed`
    overlaps the interval `photo` most, nearest `nominal` among the best. The
    overlap is concave in the start, greatest on an interval: the window
    inside the photo, or the photo inside the window when the window is longer."""
    low, high = photo
    shorter = length <= high - low
    best = (np.where(shorter, low, high - length), np.where(shorter, high - length, low))
    lo, hi = np.maximum(best[0], allowed[0]), np.minimum(best[1], allowed[1])
    beside = np.where(allowed[1] < best[0], allowed[1], allowed[0])
    return np.where(lo <= hi, np.minimum(np.maximum(nominal, lo), hi), beside)


def _choose(places: dict[str, list[_Place | None]]) -> dict[str, _Place]:
    """Per framing, the smallest zoom whose fill is within FILL_TOLERANCE of its
    least; one zoom for all when one serves every framing so (see the module
    docstring). Zoom 1 is always possible."""
    least = {ar: min(p.fill for p in ps if p is not None) for ar, ps in places.items()}
    good = {
        ar: [p if p is not None and p.fill <= least[ar] + FILL_TOLERANCE else None for p in ps]
        for ar, ps in places.items()
    }
    for row in zip(*good.values(), strict=True):
        if all(p is not None for p in row):
            return {ar: p for ar, p in zip(good, row, strict=True) if p is not None}
    return {ar: next(p for p in ps if p is not None) for ar, ps in good.items()}

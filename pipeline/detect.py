"""Face candidates: where the BlazeFace detectors think faces are.

Both detectors look at a 128 or 192 px version of the image, so they run on a
reduced decode (`PipelineSettings.detect_side`). Each has a blind spot that
another pass covers: the full-range model finds small faces but misses faces
that fill the frame, the short-range one finds close-ups but not small faces,
and a face that fills the whole frame is found once the image sits on a larger
grey canvas. Candidates are proposals; the landmark model confirms them
(`pipeline.landmarks.fit_faces`), which removes most false positives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from pipeline.models import FaceModels
from pipeline.record import Box, Point

# The canvas for the third pass, as a multiple of the image's long side: a face
# that fills the frame then fills about half of what the detector sees, well
# inside the range it was trained on.
PAD_FACTOR = 2.0
PAD_GREY = (128, 128, 128)

# The tiled second look (`detect_tiled`): squares of this side, overlapping by
# a quarter so a face on a seam is whole in one of them. The full-range model
# sees a tile at 192 px and finds a face of about an eighth of that and up, so
# a 256 px tile of the 1280 px look finds faces of 30 px there: 2-3% of the
# frame height (a portrait pasted at 1.8% of a 2000 x 1500 frame is found;
# 384 px tiles missed some at 2.3-2.6% and lost a third of the small faces
# pasted into noise, which the person detector then called no one).
TILE_SIDE = 256
TILE_STEP = TILE_SIDE * 3 // 4


@dataclass(frozen=True)
class Candidate:
    """A face one detector pass proposes, in (x, y) pixels of the image given to
    `detect` (origin at its top-left corner, so a pixel's centre is i + 0.5).

    `keypoints` are MediaPipe's six, in its order: the subject's right eye (on
    the image's left for an upright face), left eye, nose tip, mouth centre,
    right ear tragion, left ear tragion.
    """

    box: Box  # x, y, width, height
    score: float
    keypoints: tuple[Point, ...]

    @property
    def centre(self) -> Point:
        x, y, w, h = self.box
        return (x + w / 2, y + h / 2)

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]


def detect(
    rgb: np.ndarray,
    models: FaceModels,
    min_score: float,
    quarter_turns: int = 0,
    canvas: bool = False,
) -> list[Candidate]:
    """Candidates scoring at least `min_score`, largest box first.

    Without `canvas`, the full-range and short-range passes on the image (they
    overlap, so one face usually yields two candidates); with it, the
    full-range pass on the image centred on a grey canvas PAD_FACTOR times its
    long side, for a face that fills the whole frame. Only such a face needs
    the canvas, and two faces cannot both fill the frame, so callers run it
    only when the plain passes found nothing.

    `rgb`: (H, W, 3) uint8 RGB. With `quarter_turns` k the detectors see
    `np.rot90(rgb, k)` (k x 90 degrees counter-clockwise), for faces that are
    sideways or upside down in the pixels; coordinates are still those of `rgb`.
    """

    def passes(turned: np.ndarray) -> list[Candidate]:
        if canvas:
            padded, offset = on_canvas(turned, PAD_FACTOR)
            return _run(models.full_range, padded, offset)
        return [*_run(models.full_range, turned, (0, 0)), *_run(models.short_range, turned, (0, 0))]

    return _turned_passes(rgb, quarter_turns, min_score, passes)


def on_canvas(rgb: np.ndarray, factor: float) -> tuple[np.ndarray, tuple[int, int]]:
    """`rgb` ((H, W, 3) uint8) centred on a PAD_GREY square `factor` times its
    long side, and where its top-left corner landed (left, top) in px."""
    height, width = rgb.shape[:2]
    side = round(factor * max(height, width))
    top, left = (side - height) // 2, (side - width) // 2
    canvas = cv2.copyMakeBorder(
        rgb,
        top,
        side - height - top,
        left,
        side - width - left,
        cv2.BORDER_CONSTANT,
        value=PAD_GREY,
    )
    return canvas, (left, top)


def detect_mirrored(
    rgb: np.ndarray,
    models: FaceModels,
    min_score: float,
    quarter_turns: int = 0,
    short_range: bool = False,
) -> list[Candidate]:
    """The full-range pass of `detect` (and with `short_range` the short-range
    one too) on `rgb` turned by `quarter_turns` (as `detect`) and mirrored
    left to right, largest box first, in `rgb`'s coordinates with MediaPipe's
    keypoint order (the subject's right eye first). The detector's misses
    and errors are not symmetric: a face turned or distorted one way that it
    does not find may be found mirrored, and its key points land elsewhere."""
    detectors = (models.full_range, models.short_range) if short_range else (models.full_range,)

    def passes(turned: np.ndarray) -> list[Candidate]:
        mirrored = np.ascontiguousarray(turned[:, ::-1])
        side = turned.shape[1]
        return [_unmirror(c, side) for d in detectors for c in _run(d, mirrored, (0, 0))]

    return _turned_passes(rgb, quarter_turns, min_score, passes)


def _turned_passes(
    rgb: np.ndarray,
    quarter_turns: int,
    min_score: float,
    passes: Callable[[np.ndarray], list[Candidate]],
) -> list[Candidate]:
    """The candidates `passes` finds on `rgb` turned by `quarter_turns` (as
    `np.rot90`, contiguous), those scoring at least `min_score` mapped back to
    `rgb`'s coordinates, largest box first."""
    height, width = rgb.shape[:2]
    found = passes(np.ascontiguousarray(np.rot90(rgb, quarter_turns)))
    candidates = [_unturn(c, quarter_turns, width, height) for c in found if c.score >= min_score]
    return sorted(candidates, key=lambda c: (-c.area, -c.score))


def _unmirror(candidate: Candidate, width: int) -> Candidate:
    """Map a candidate found on an image mirrored left to right (`width` px
    wide) back. Each keypoint pair (eyes, ears) swaps places: what was the
    subject's right eye on the mirror image is their left one."""
    x, y, w, h = candidate.box
    points = [(width - px, py) for px, py in candidate.keypoints]
    for right, left in ((0, 1), (4, 5)):
        if left < len(points):
            points[right], points[left] = points[left], points[right]
    return Candidate(box=(width - x - w, y, w, h), score=candidate.score, keypoints=tuple(points))


def _run(detector: Any, rgb: np.ndarray, offset: tuple[int, int]) -> list[Candidate]:
    """One detector pass; coordinates are moved by -offset (undoing a canvas)."""
    result = detector.process(rgb)
    height, width = rgb.shape[:2]
    ox, oy = offset
    out = []
    for detection in result.detections or ():
        data = detection.location_data
        rel = data.relative_bounding_box
        box = (
            rel.xmin * width - ox,
            rel.ymin * height - oy,
            rel.width * width,
            rel.height * height,
        )
        keypoints = tuple((k.x * width - ox, k.y * height - oy) for k in data.relative_keypoints)
        out.append(Candidate(box=box, score=float(detection.score[0]), keypoints=keypoints))
    return out


def _unturn(candidate: Candidate, quarter_turns: int, width: int, height: int) -> Candidate:
    """Map a candidate found on np.rot90(image, k) back to the image (width x height)."""
    k = quarter_turns % 4
    if k == 0:
        return candidate

    def back(p: Point) -> Point:
        x, y = p
        if k == 1:  # rot90 counter-clockwise: (x, y) -> (y, width - x)
            return (width - y, x)
        if k == 2:  # (x, y) -> (width - x, height - y)
            return (width - x, height - y)
        return (y, height - x)  # k == 3, clockwise: (x, y) -> (height - y, x)

    x, y, w, h = candidate.box
    corners = np.array([back(p) for p in ((x, y), (x + w, y), (x, y + h), (x + w, y + h))])
    x0, y0 = corners.min(axis=0)
    x1, y1 = corners.max(axis=0)
    return Candidate(
        box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
        score=candidate.score,
        keypoints=tuple(back(p) for p in candidate.keypoints),
    )


def detect_tiled(rgb: np.ndarray, models: FaceModels, min_score: float) -> list[Candidate]:
    """Full-range candidates scoring at least `min_score` in overlapping
    TILE_SIDE squares covering `rgb` ((H, W, 3) uint8 RGB), highest score first,
    one per face (a candidate centred inside a kept one's box is the same face
    seen from a neighbouring tile). For faces too small for the whole-image
    passes: people far away, a team photo. Coordinates are `rgb`'s."""
    height, width = rgb.shape[:2]
    found: list[Candidate] = []
    for top in _tile_starts(height):
        for left in _tile_starts(width):
            tile = np.ascontiguousarray(rgb[top : top + TILE_SIDE, left : left + TILE_SIDE])
            found += _run(models.full_range, tile, (-left, -top))
    kept: list[Candidate] = []
    for candidate in sorted(found, key=lambda c: -c.score):
        if candidate.score < min_score:
            break
        if not any(box_contains(k.box, candidate.centre) for k in kept):
            kept.append(candidate)
    return kept


def _tile_starts(length: int) -> list[int]:
    """Starts of TILE_SIDE windows every TILE_STEP px, the last one flush with the end."""
    starts = list(range(0, max(length - TILE_SIDE, 0) + 1, TILE_STEP))
    if starts[-1] + TILE_SIDE < length:
        starts.append(length - TILE_SIDE)
    return starts


def box_contains(box: Box, point: Point) -> bool:
    """Whether (x, y) `point` lies in `box` (x, y, width, height), edges included."""
    x, y, w, h = box
    return x <= point[0] <= x + w and y <= point[1] <= y + h

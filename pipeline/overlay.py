"""A picture of a pipeline record, for people who would rather look than read:
the face box, the 5 landmarks, the other candidate faces, the outline of each
rendition's crop in the source, and the verdict."""

from __future__ import annotations

import textwrap
from typing import Any

import cv2
import numpy as np

from pipeline.align import invert, transform_points
from pipeline.aspect import AspectRatio
from pipeline.decode import decode
from pipeline.encode import encode_jpeg
from pipeline.probe import probe
from pipeline.settings import PipelineSettings

# A preview, not a deliverable: small enough to open anywhere, large enough to
# judge a landmark.
PREVIEW_LONG_SIDE = 1024
PREVIEW_QUALITY = 85

# RGB colours.
ACCEPT_COLOUR = (40, 200, 70)
REJECT_COLOUR = (230, 40, 40)
CANDIDATE_COLOUR = (255, 200, 0)
MARGIN_COLOUR = (48, 48, 48)
CROP_COLOURS = {
    AspectRatio.SQUARE: (0, 220, 255),
    AspectRatio.LANDSCAPE: (255, 80, 220),
    AspectRatio.PORTRAIT: (255, 255, 255),
}
LANDMARK_COLOURS = {
    "left_eye": (0, 120, 255),
    "right_eye": (255, 60, 60),
    "nose": (255, 255, 0),
    "mouth_left": (0, 120, 255),
    "mouth_right": (255, 60, 60),
}
FONT = cv2.FONT_HERSHEY_SIMPLEX


def render_overlay(data: bytes, record: dict[str, Any], settings: PipelineSettings) -> bytes:
    """JPEG bytes of `draw_overlay` on the upright image in `data`, decoded at
    most `PREVIEW_LONG_SIDE` px on its long side (a cheap DCT-scaled decode for
    JPEG). `record` is `Prepared.to_dict()` or `Rejected.to_record()` of the
    same bytes. Raises ImageError as `probe` and `decode` do."""
    info = probe(data, settings)
    reduction = 1
    while reduction < 8 and max(info.width, info.height) / reduction > PREVIEW_LONG_SIDE:
        reduction *= 2
    rgb = decode(data, info, reduction).rgb
    scale = rgb.shape[1] / info.width  # exact, where 1 / reduction is rounded
    long_side = max(rgb.shape[:2])
    if long_side > PREVIEW_LONG_SIDE:  # even 1/8 was too big (over ~8000 px)
        shrink = PREVIEW_LONG_SIDE / long_side
        size = (max(round(rgb.shape[1] * shrink), 1), max(round(rgb.shape[0] * shrink), 1))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        scale *= shrink
    return encode_jpeg(draw_overlay(rgb, scale, record), PREVIEW_QUALITY)


def draw_overlay(rgb: np.ndarray, scale: float, record: dict[str, Any]) -> np.ndarray:
    """A new (H', W', 3) uint8 RGB picture of `record` on `rgb` ((H, W, 3) uint8
    RGB, the upright source at `scale` pixels per source pixel).

    Top to bottom: the verdict banner, then `rgb` inside a dark margin wide
    enough to show every crop outline whole (a crop that leaves the photo is
    visibly filled there), each side's margin at most half the photo's long side.
    Record coordinates are upright source (x, y); a missing face, candidates
    or images are skipped."""
    height, width = rgb.shape[:2]
    unit = max(1, round(max(height, width) / 400))  # a line width that reads at any size
    accepted = record.get("verdict") == "accept"
    quads = {
        ratio: _crop_quad(image) * scale for ratio, image in (record.get("images") or {}).items()
    }
    corners = np.vstack([np.array([[0.0, 0.0], [width, height]]), *quads.values()])
    limit = max(height, width) // 2
    left, top = np.clip(np.ceil(-corners.min(axis=0)) + 2 * unit, 0, limit).astype(int)
    right, bottom = np.clip(
        np.ceil(corners.max(axis=0) - (width, height)) + 2 * unit, 0, limit
    ).astype(int)
    canvas_w = width + left + right
    lines, font_scale, thickness, line_h = _banner_text(record, accepted, canvas_w)
    banner_h = line_h * len(lines) + line_h // 2
    out = np.empty((banner_h + top + height + bottom, canvas_w, 3), dtype=np.uint8)
    out[:banner_h] = ACCEPT_COLOUR if accepted else REJECT_COLOUR
    out[banner_h:] = MARGIN_COLOUR
    out[banner_h + top : banner_h + top + height, left : left + width] = rgb
    for i, line in enumerate(lines):
        origin = (round(line_h * 0.3), line_h * (i + 1))
        cv2.putText(out, line, origin, FONT, font_scale, (255, 255, 255), thickness, cv2.LINE_AA)

    offset = np.array([left, banner_h + top], dtype=np.float64)
    for box in record.get("candidates") or []:
        _draw_box(out, box, scale, offset, CANDIDATE_COLOUR, unit)
    for ratio, quad in quads.items():
        colour = CROP_COLOURS.get(ratio, (255, 255, 255))
        points = np.rint(quad + offset).astype(np.int32)
        cv2.polylines(out, [points], True, colour, unit, cv2.LINE_AA)
        label_at = (int(points[0, 0]) + 3 * unit, int(points[0, 1]) + 12 * unit)
        cv2.putText(out, ratio, label_at, FONT, 0.4 * unit, colour, unit, cv2.LINE_AA)
    face = record.get("face")
    if face:
        colour = ACCEPT_COLOUR if accepted else REJECT_COLOUR
        _draw_box(out, face["box"], scale, offset, colour, unit * 2)
        for name, point in face["landmarks"].items():
            x, y = np.rint(np.asarray(point) * scale + offset).astype(int)
            cv2.circle(out, (x, y), unit * 3, LANDMARK_COLOURS.get(name, (255, 255, 255)), -1)
            cv2.circle(out, (x, y), unit * 3, (0, 0, 0), max(unit // 2, 1))
    return out


def _crop_quad(image: dict[str, Any]) -> np.ndarray:
    """(4, 2): the rendition's output rectangle mapped back to upright source (x, y)
    through the inverse of its transform (a rotated rectangle)."""
    back = invert(np.asarray(image["transform"], dtype=np.float64))
    w, h = image["width"], image["height"]
    corners = np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])
    return transform_points(back, corners)


def _draw_box(
    out: np.ndarray, box: list[float], scale: float, offset: np.ndarray, colour: Any, width: int
) -> None:
    x0, y0 = np.rint(np.asarray(box[:2]) * scale + offset).astype(int)
    x1, y1 = np.rint((np.asarray(box[:2]) + box[2:]) * scale + offset).astype(int)
    cv2.rectangle(out, (x0, y0), (x1, y1), colour, width)


def _banner_text(
    record: dict[str, Any], accepted: bool, width: int
) -> tuple[list[str], float, int, int]:
    """The banner's lines (ACCEPT and any warnings, or REJECT, the code and the
    message wrapped), and a font scale, thickness and line height that fit about
    50 characters across `width` px."""
    if accepted:
        warnings = record.get("warnings") or []
        names = ", ".join(w["name"] for w in warnings)
        lines = ["ACCEPT" + (f"  warnings: {names}" if warnings else "")]
    else:
        error = record.get("error") or {}
        lines = [f"REJECT  {error.get('code', '')}"]
        lines += textwrap.wrap(error.get("message", ""), width=48)
    font_scale = width / (50 * cv2.getTextSize("n", FONT, 1.0, 1)[0][0] * 1.15)
    thickness = max(1, round(font_scale * 1.5))
    line_h = round(cv2.getTextSize("Ag", FONT, font_scale, thickness)[0][1] * 1.8)
    return lines, font_scale, thickness, line_h

"""A picture of a pipeline record, for people who would rather look than read:
the face box, the 5 landmarks, the other candidate faces, the outline of each
rendition's crop in the source, and the verdict."""

from __future__ import annotations

import textwrap
from typing import Any

import cv2
import numpy as np

from pipeline.align import invert
from pipeline.decode import decode, probe
from pipeline.encode import encode_jpeg
from pipeline.settings import PipelineSettings

# A preview, not a deliverable: small enough to open anywhere, large enough to
# judge a landmark.
PREVIEW_LONG_SIDE = 1024
PREVIEW_QUALITY = 85

# RGB colours.
ACCEPT_COLOUR = (40, 200, 70)
REJECT_COLOUR = (230, 40, 40)
CANDIDATE_COLOUR = (255, 200, 0)
CROP_COLOURS = {"1:1": (0, 220, 255), "4:3": (255, 80, 220), "3:4": (255, 255, 255)}
LANDMARK_COLOURS = {
    "left_eye": (0, 120, 255),
    "right_eye": (255, 60, 60),
    "nose": (255, 255, 0),
    "mouth_left": (0, 120, 255),
    "mouth_right": (255, 60, 60),
}
FONT = cv2.FONT_HERSHEY_SIMPLEX


def render_overlay(data: bytes, record: dict[str, Any], settings: PipelineSettings) -> bytes:
    """JPEG bytes of the image in `data` (at most `PREVIEW_LONG_SIDE` px on its
    long side) with `record` drawn on it. `record` is `Prepared.to_dict()` or
    `Rejected.to_record()` of the same bytes. Raises ImageError as `probe` and
    `decode` do."""
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
    """A copy of `rgb` ((H, W, 3) uint8 RGB, the upright source at `scale`
    pixels per source pixel) with `record` drawn on it. Record coordinates are
    upright source (x, y); a missing face, candidates or images are skipped."""
    out = np.ascontiguousarray(rgb).copy()
    unit = max(1, round(max(out.shape[:2]) / 400))  # line width that reads at any size
    accepted = record.get("verdict") == "accept"
    for box in record.get("candidates") or []:
        _draw_box(out, box, scale, CANDIDATE_COLOUR, unit)
    for aspect_ratio, image in (record.get("images") or {}).items():
        _draw_crop(out, aspect_ratio, image, scale, unit)
    face = record.get("face")
    if face:
        _draw_box(out, face["box"], scale, ACCEPT_COLOUR if accepted else REJECT_COLOUR, unit * 2)
        for name, (x, y) in face["landmarks"].items():
            centre = (round(x * scale), round(y * scale))
            cv2.circle(out, centre, unit * 3, LANDMARK_COLOURS.get(name, (255, 255, 255)), -1)
            cv2.circle(out, centre, unit * 3, (0, 0, 0), max(unit // 2, 1))
    _draw_banner(out, record, accepted)
    return out


def _draw_box(out: np.ndarray, box: list[float], scale: float, colour: Any, width: int) -> None:
    x, y, w, h = (v * scale for v in box)
    cv2.rectangle(out, (round(x), round(y)), (round(x + w), round(y + h)), colour, width)


def _draw_crop(
    out: np.ndarray, aspect_ratio: str, image: dict[str, Any], scale: float, unit: int
) -> None:
    """The rendition's output rectangle mapped back into the source: a rotated quad."""
    back = invert(np.asarray(image["transform"], dtype=np.float64))
    w, h = image["width"], image["height"]
    corners = np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])
    quad = (corners @ back[:, :2].T + back[:, 2]) * scale
    colour = CROP_COLOURS.get(aspect_ratio, (255, 255, 255))
    cv2.polylines(out, [np.rint(quad).astype(np.int32)], True, colour, unit, cv2.LINE_AA)
    label_at = (round(quad[0, 0]) + 3 * unit, round(quad[0, 1]) + 12 * unit)
    cv2.putText(out, aspect_ratio, label_at, FONT, 0.4 * unit, colour, unit, cv2.LINE_AA)


def _draw_banner(out: np.ndarray, record: dict[str, Any], accepted: bool) -> None:
    """A strip across the top: ACCEPT (and any warnings) or REJECT, the code and
    the message, wrapped to the image width."""
    if accepted:
        warnings = record.get("warnings") or []
        lines = ["ACCEPT" + (f"  warnings: {', '.join(warnings)}" if warnings else "")]
    else:
        error = record.get("error") or {}
        lines = [f"REJECT  {error.get('code', '')}"]
        lines += textwrap.wrap(error.get("message", ""), width=48)
    width = out.shape[1]
    # Size the font so 50 characters span the image: readable on any photo.
    font_scale = width / (50 * cv2.getTextSize("n", FONT, 1.0, 1)[0][0] * 1.15)
    thickness = max(1, round(font_scale * 1.5))
    line_h = round(cv2.getTextSize("Ag", FONT, font_scale, thickness)[0][1] * 1.8)
    banner_h = min(line_h * len(lines) + line_h // 2, out.shape[0])
    colour = np.array(ACCEPT_COLOUR if accepted else REJECT_COLOUR, dtype=np.float32)
    strip = out[:banner_h].astype(np.float32)
    out[:banner_h] = np.rint(strip * 0.25 + colour * 0.75).astype(np.uint8)
    for i, line in enumerate(lines):
        origin = (round(line_h * 0.3), line_h * (i + 1))
        cv2.putText(out, line, origin, FONT, font_scale, (255, 255, 255), thickness, cv2.LINE_AA)

"""Is the mouth covered, or are the eyes? A face mask, a scarf or a flat hand
over the mouth; dark glasses over the eyes.

A talking avatar moves the mouth it is given, and under a mask there is none.
Face Mesh still places a mouth there (it fits a whole face to what it sees),
so the points say where to look, not whether the mouth is visible. What is
there says it: the lips' outline and the line between them are edges, as the
eyes' lids, lashes and irises are, while a mask's fabric is a smooth surface.
So the measure is the detail (mean gradient) around the mouth over the detail
around the eyes, both on the aligned 1:1 crop's luma (`face_pixels`): a ratio of
two parts of one face, it does not move with the photo's blur, light or size.

Measured on both dev sets: every face accepted there reads 0.48 to 1.5
(a smiling child lowest, a downcast look and a grainy black-and-white photo
highest, beards 0.9-1.3), and under every degradation of the graded set 0.40
and up; the selfie in a face mask (`faces` d025) reads 0.095, and 0.06 to
0.15 under every degradation. A face blown out to white loses the mouth's
detail before the eyes' (0.18-0.36 at two stops of overexposure and more), so
the check is not read where highlights are already warned about.

Dark glasses are told by the light, not the detail: a lens darkens the skin
it covers, and a sunglass lens covers the top of the cheek under the eye as
well as the eye. So the measure is the luma of the skin just under each eye
over that of the cheek lower on the same side (`under_eye_light`): a ratio
within one side of one face, it does not move with the light's strength or
its side, nor with the skin's tone. Every face of both dev sets, whatever its
verdict (deep-set eyes, shadows, tinted aviators through which the eyes show),
reads 0.74 or more on its lighter side, and every graded copy accepted 0.72
or more (the tinted aviators four stops under); the one photo with sunglasses
(`faces2` e2058, a woman with a cap, too small a face to accept) reads 0.23.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.landmarks import LEFT_EYE, RIGHT_EYE

# Face Mesh points: the lips' outer contour (lower, then upper lip).
LOWER_LIP = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
UPPER_LIP = (409, 270, 269, 267, 0, 37, 39, 40, 185)
# Face Mesh points on the skin just under each eye (the top of the cheek, which a
# sunglass lens covers: 0.17-0.27 of the distance between the eyes below the
# eye's centre), and on the cheek below them (0.48-0.69 below it, lower than
# the bottom of large lenses), the subject's right side first.
UNDER_EYES = ((111, 117, 118, 119, 120, 121), (340, 346, 347, 348, 349, 350))
CHEEKS = ((36, 205, 187), (266, 425, 411))
# Radius (px of the luma, QUALITY_SIDE wide) of the disc read around each point.
SKIN_SPOT_RADIUS = 3
# Each box is its points' bounding box grown about its centre by this much,
# so it takes in the skin around the lips (or eyes) whose edge with them counts.
MOUTH_GROWTH = 1.4
EYES_GROWTH = 1.3


def mouth_detail(luma: np.ndarray, points: np.ndarray) -> float:
    """The mean gradient magnitude of `luma` (the aligned 1:1 crop's, see
    `pipeline.quality.face_pixels`) in the box around the lips over that in the
    box around both eyes (see MOUTH_GROWTH). `points`: the (468, 2) Face Mesh
    points (x, y) in `luma`'s pixels. 1.0 (nothing to tell) when either box
    has fewer than 3x3 pixels inside the crop or the eyes show no detail at all."""
    gradient = np.hypot(cv2.Sobel(luma, cv2.CV_32F, 1, 0), cv2.Sobel(luma, cv2.CV_32F, 0, 1))
    points = np.asarray(points, dtype=np.float64)
    mouth = _box_mean(gradient, points[[*LOWER_LIP, *UPPER_LIP]], MOUTH_GROWTH)
    eyes = _box_mean(gradient, points[[*RIGHT_EYE, *LEFT_EYE]], EYES_GROWTH)
    if mouth is None or eyes is None or eyes == 0.0:
        return 1.0
    return mouth / eyes


def under_eye_light(luma: np.ndarray, points: np.ndarray) -> float:
    """How light the skin under the eyes is next to the cheeks: per side, the
    median of `luma` (the aligned 1:1 crop's, see `pipeline.quality.face_pixels`)
    in discs around the UNDER_EYES points over that around the CHEEKS points;
    the larger of the two sides (dark glasses darken both; a shadow of the nose
    or the light's side, one). `points`: the (468, 2) Face Mesh points (x, y)
    in `luma`'s pixels. About 1 for a bare face; 1.0 (nothing to tell) where
    a cheek reads black."""
    points = np.asarray(points, dtype=np.float64)
    ratios = []
    for under, cheek in zip(UNDER_EYES, CHEEKS, strict=True):
        lit = _spots_median(luma, points[list(cheek)])
        if lit <= 0:
            return 1.0
        ratios.append(_spots_median(luma, points[list(under)]) / lit)
    return max(ratios)


def _spots_median(values: np.ndarray, points: np.ndarray) -> float:
    """The median of `values` (H, W) over discs of SKIN_SPOT_RADIUS around
    `points` ((N, 2) x, y); 0.0 when every disc lies outside the array."""
    mask = np.zeros(values.shape, dtype=np.uint8)
    for x, y in np.round(points).astype(np.int64):
        cv2.circle(mask, (int(x), int(y)), SKIN_SPOT_RADIUS, (1,), thickness=-1)
    inside = values[mask > 0]
    return float(np.median(inside)) if inside.size else 0.0


def _box_mean(values: np.ndarray, points: np.ndarray, growth: float) -> float | None:
    """The mean of `values` (H, W) in the bounding box of `points` ((N, 2) x, y)
    grown `growth` times about its centre and clipped to the array; None when
    fewer than 3x3 cells remain."""
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    cx, cy, half_w, half_h = (
        (x0 + x1) / 2,
        (y0 + y1) / 2,
        (x1 - x0) * growth / 2,
        (y1 - y0) * growth / 2,
    )
    height, width = values.shape
    left, right = max(0, round(cx - half_w)), min(width, round(cx + half_w))
    top, bottom = max(0, round(cy - half_h)), min(height, round(cy + half_h))
    if right - left < 3 or bottom - top < 3:
        return None
    return float(values[top:bottom, left:right].mean())

"""The fill of the head-and-shoulders framings (4:3, 3:4), and a measure of
its seam.

Those framings are cut with the photo's edges parallel to the frame's (see
`pipeline.framing`), so the part of the output outside the photo is up to four
axis-aligned strips. They are filled by spreading: the photo's edge pixels
stretched straight out (what `cv2.BORDER_REPLICATE` gives the warp), then
blurred more the further they are from the photo, so at the border colour and
texture run on without a step (the first few pixels mirror the photo, so its
texture continues), and far out only soft colour is left, as in an
out-of-focus background. Beyond those pixels nothing is mirrored, so no
second face or collar appears in the fill.

Coordinates: output pixels, origin at the top-left corner (pixel column i
covers [i, i + 1)), as in `pipeline.align`.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from pipeline.align import invert, output_scale, transform_points

# At distance d (output px) from the photo the fill is pyramid level
# log2(1 + d / SPREAD_START) (level k a blur of about 2**k px): the mirrored
# texture fades out over the first few pixels, streaks soon after, and the
# far fill is as soft as the old blurred reflection (chosen by eye on the dev
# sets' sheets against starts of 2 and 8 px, and against mirroring at every
# level, which shows ghosts of collars).
SPREAD_START = 4.0
# Levels of the blur pyramid: the last one is 2**SPREAD_LEVELS times smaller
# than the frame (10 px across a 640 px frame), as soft as a fill needs.
SPREAD_LEVELS = 6
# The seam measure's bands: within SEAM_BAND output px of the photo's border,
# against SEAM_BAND to SEAM_NEAR px from it on either side.
SEAM_BAND = 1.0
SEAM_NEAR = 8.0


def spread_fill(out: np.ndarray, photo: tuple[float, float, float, float]) -> None:
    """Blur the fill of `out` ((H, W, 3) uint8, its pixels outside the photo
    already the photo's edge pixels stretched out) in place, more with the
    distance from `photo`, the photo's rectangle (x0, y0, x1, y1) in output px.

    Only the strips outside the photo change; pixels whose centre lies inside
    it are left as they are."""
    height, width = out.shape[:2]
    x0, y0, x1, y1 = photo
    centres_x = np.arange(width, dtype=np.float32) + 0.5
    centres_y = np.arange(height, dtype=np.float32) + 0.5
    dx = np.maximum(np.maximum(x0 - centres_x, centres_x - x1), 0)
    dy = np.maximum(np.maximum(y0 - centres_y, centres_y - y1), 0)
    rows_in = np.flatnonzero(dy == 0)
    cols_in = np.flatnonzero(dx == 0)
    if len(rows_in) == 0 or len(cols_in) == 0:
        top, bottom, left, right = 0, height, 0, width  # the photo covers no pixel centre
    else:
        top, bottom = int(rows_in[0]), int(rows_in[-1]) + 1
        left, right = int(cols_in[0]), int(cols_in[-1]) + 1
    strips = [
        ((0, top), (0, width)),
        ((bottom, height), (0, width)),
        ((top, bottom), (0, left)),
        ((top, bottom), (right, width)),
    ]
    strips = [s for s in strips if s[0][0] < s[0][1] and s[1][0] < s[1][1]]
    if not strips:
        return
    # Only the levels the farthest fill pixel needs.
    farthest = max(
        float(np.hypot(dy[r0:r1].max(), dx[c0:c1].max())) for (r0, r1), (c0, c1) in strips
    )
    smalls = _pyramid(out, min(math.ceil(math.log2(1 + farthest / SPREAD_START)), SPREAD_LEVELS))
    # Level 0, what the border itself shows: the photo mirrored about its
    # edges, so its texture runs on across the border for a few pixels before
    # the blurred stretch takes over (stretched, not mirrored, further out: a
    # mirrored collar or shoulder would show as a ghost).
    rows, cols = _mirror_index(height, top, bottom), _mirror_index(width, left, right)
    for (r0, r1), (c0, c1) in strips:
        distance = np.sqrt(np.add.outer(np.square(dy[r0:r1]), np.square(dx[c0:c1])))
        level = np.minimum(np.log2(1 + distance / SPREAD_START), np.float32(SPREAD_LEVELS))
        blended = np.zeros((r1 - r0, c1 - c0, 3), np.float32)
        for k in range(math.ceil(float(level.max())) + 1):
            if k == 0:
                part = out[rows[r0:r1]][:, cols[c0:c1]]
            else:
                part = _enlarged_part(smalls[k - 1], (width, height), (r0, r1), (c0, c1))
            # Hat weights: each pixel mixes the two levels around its own.
            # (OpenCV, not numpy broadcasting: ten times faster on 3 channels.)
            weight = np.maximum(1 - np.abs(level - k), 0)
            cv2.accumulateProduct(part.astype(np.float32), cv2.merge([weight] * 3), blended)
        out[r0:r1, c0:c1] = cv2.convertScaleAbs(blended)  # rounded, saturated to uint8


def _mirror_index(count: int, low: int, high: int) -> np.ndarray:
    """Indices 0..count-1 reflected into [low, high) about its ends (the pixel
    next to the edge repeats the edge pixel, as BORDER_REFLECT)."""
    index = np.arange(count)
    index = np.where(index < low, 2 * low - 1 - index, index)
    index = np.where(index >= high, 2 * high - 1 - index, index)
    return np.clip(index, low, high - 1)


def _pyramid(image: np.ndarray, count: int) -> list[np.ndarray]:
    """`count` small blurs of `image` (uint8): level k (from 1) area-halved k
    times and smoothed with a one-cell Gaussian; enlarged back bilinearly
    (`_enlarged_part`) it is a blur of roughly 2**k px."""
    smalls = []
    small = image
    for _ in range(count):
        size = (max(small.shape[1] // 2, 1), max(small.shape[0] // 2, 1))
        small = cv2.resize(small, size, interpolation=cv2.INTER_AREA)
        smalls.append(cv2.GaussianBlur(small, (0, 0), 1.0, borderType=cv2.BORDER_REPLICATE))
    return smalls


def _enlarged_part(
    small: np.ndarray, size: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int]
) -> np.ndarray:
    """`cv2.resize(small, size, INTER_LINEAR)[rows, cols]`, computing only that part."""
    (r0, r1), (c0, c1) = rows, cols
    fx, fy = small.shape[1] / size[0], small.shape[0] / size[1]
    # resize samples output pixel x at (x + 0.5) * fx - 0.5 of `small`.
    back = np.array([[fx, 0.0, (c0 + 0.5) * fx - 0.5], [0.0, fy, (r0 + 0.5) * fy - 0.5]])
    return cv2.warpAffine(
        small,
        back,
        (c1 - c0, r1 - r0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def photo_rect(matrix: np.ndarray, shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    """The rectangle (x0, y0, x1, y1) in output px that `matrix` (2, 3; source
    (x, y) to output, axis-aligned: a scale and quarter turns) maps the
    source of `shape` (H, W, ...) to."""
    height, width = shape[:2]
    corners = transform_points(matrix, np.array([[0.0, 0.0], [width, height]]))
    (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def seam_ratio(out: np.ndarray, matrix: np.ndarray, source_size: tuple[int, int]) -> float | None:
    """How visible the border between photo and fill is in `out` ((H, W, 3)
    uint8 RGB, cut through `matrix` (2, 3, source (x, y) to output) from a
    source of `source_size` (width, height) px): the mean gradient energy
    (squared central differences of luma) within SEAM_BAND px of the border,
    over the mean from SEAM_BAND to SEAM_NEAR px of it on both sides. About 1
    for a border that does not show (texture runs on), well above 1 for a
    step or a line; None when the border does not cross the output. Any
    matrix, tilted or not (a measure, not on the request path)."""
    height, width = out.shape[:2]
    luma = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx = np.zeros_like(luma)
    gy = np.zeros_like(luma)
    gx[:, 1:-1] = (luma[:, 2:] - luma[:, :-2]) / 2
    gy[1:-1] = (luma[2:] - luma[:-2]) / 2
    energy = gx**2 + gy**2
    distance = _border_distance(matrix, source_size, (width, height))
    # Leave out the frame's own outermost pixels, where the differences are not taken.
    distance[[0, -1], :] = np.inf
    distance[:, [0, -1]] = np.inf
    seam = np.abs(distance) <= SEAM_BAND
    near = (np.abs(distance) > SEAM_BAND) & (np.abs(distance) <= SEAM_NEAR)
    if not seam.any() or not near.any():
        return None
    return float(energy[seam].mean() / max(float(energy[near].mean()), 1e-6))


def _border_distance(
    matrix: np.ndarray, source_size: tuple[int, int], size: tuple[int, int]
) -> np.ndarray:
    """(height, width) float64: each output pixel centre's distance (output px)
    from the source rectangle's border, negative inside, positive outside."""
    width, height = size
    vs, us = np.mgrid[0:height, 0:width] + 0.5
    back = invert(matrix)
    sx = back[0, 0] * us + back[0, 1] * vs + back[0, 2]
    sy = back[1, 0] * us + back[1, 1] * vs + back[1, 2]
    w, h = source_size
    inside = np.minimum(np.minimum(sx, w - sx), np.minimum(sy, h - sy))
    outside = np.hypot(
        np.maximum(np.maximum(-sx, sx - w), 0), np.maximum(np.maximum(-sy, sy - h), 0)
    )
    scale = output_scale(matrix)
    return np.where(inside >= 0, -inside, outside) * scale

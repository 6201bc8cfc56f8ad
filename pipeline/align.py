"""Similarity alignment of a face to FFHQ-style framings, and the warp that cuts them.

Coordinates are continuous (x, y) pixels with the origin at the top-left CORNER
of the image: pixel column i covers [i, i + 1), its centre is i + 0.5. With this
convention a reduced decode is a pure scaling (`rebase`), and MediaPipe's
normalised outputs times the image size land on it directly.

A transform is a 2x3 float64 matrix M mapping a source point (x, y, 1) to output
pixels, a similarity: [[s*cos, s*sin, tx], [-s*sin, s*cos, ty]] (rotation, uniform
scale, translation; no shear, no mirror).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Points = dict[str, tuple[float, float]]

# The FFHQ recipe (Karras et al., ffhq-dataset `recreate_aligned_images`): an
# oriented square around the eyes and mouth. Its half side is the larger of
# 2.0 eye distances (a wide face) and 1.8 eye-to-mouth distances (a long face),
# so a frontal face shows forehead, hair and chin with the same margins the
# avatar models were trained on. The centre sits 0.1 eye-to-mouth below the
# eyes, which puts the eyes a little above the middle of the square.
FFHQ_EYE_SPAN = 2.0
FFHQ_MOUTH_SPAN = 1.8
FFHQ_CENTRE_SHIFT = 0.1

# Head-and-shoulders framings, in units of the FFHQ square side Q. Both show the
# face at 0.625 of its 1:1 size, so the 4:3 covers 2.0 Q x 1.5 Q and the 3:4
# covers 1.5 Q x 2.0 Q of the source: the whole head with room for shoulders
# and, in the landscape framing, some background on either side. The square's
# centre is moved above the frame centre (0.1 Q in 4:3, 0.25 Q in 3:4) so the
# headroom above the square is 0.15 Q and 0.25 Q and the rest goes to the
# shoulders, as a camera operator frames a talking head.
WIDE_FACE_SCALE = 0.625
LANDSCAPE_LIFT = 0.1
PORTRAIT_LIFT = 0.25

# warpAffine samples without anti-aliasing; below this many output pixels per
# source pixel (a shrink of more than 2x) `warp` first area-reduces the region
# it needs, so the warp itself never shrinks by more than 2x.
MIN_WARP_SCALE = 0.5

# The fill outside the source: a reflection (it continues the colours at the
# border, so there is no seam), faded over this share of the output's short side
# into a Gaussian blur of it with a sigma of this share of the long side. The
# blur is strong enough that a mirrored head reads as a soft background, and the
# fade short enough that little mirrored detail shows near the border
# (chosen by eye on photos cut by the frame, against sigma 0.03 and fade 0.08).
FILL_BLUR_SIGMA = 0.07
FILL_FEATHER = 0.04


@dataclass(frozen=True)
class Framing:
    """One output rendition: its size in pixels and where the face goes in it.

    `face_side` is the output length (px) of the FFHQ square's side and
    `face_centre` the output point (x, y) its centre lands on.
    """

    aspect_ratio: str  # "1:1" | "4:3" | "3:4"
    width: int
    height: int
    face_side: float
    face_centre: tuple[float, float]


def framings(output_size: int) -> tuple[Framing, ...]:
    """The three renditions for a 1:1 side of `output_size` px (S): 1:1 is S x S,
    4:3 is round(5S/4) x round(15S/16) and 3:4 its transpose (640x480 and 480x640
    at S = 512). All three derive from the same FFHQ square (constants above)."""
    s = output_size
    wide = round(5 * s / 4)
    narrow = round(15 * s / 16)
    side = WIDE_FACE_SCALE * s
    return (
        Framing("1:1", s, s, float(s), (s / 2, s / 2)),
        Framing("4:3", wide, narrow, side, (wide / 2, narrow / 2 - LANDSCAPE_LIFT * side)),
        Framing("3:4", narrow, wide, side, (narrow / 2, wide / 2 - PORTRAIT_LIFT * side)),
    )


def face_transform(points: Points, framing: Framing) -> np.ndarray:
    """The similarity mapping upright source (x, y) to `framing`'s output pixels.

    `points` needs left_eye, right_eye, mouth_left and mouth_right ("left" = on
    the image's left). Returns a (2, 3) float64 matrix. The FFHQ square's x axis
    runs from the image-left eye towards the other, tilted towards perpendicular
    of eye-to-mouth so both pairs of points count; the output is never mirrored.
    Raises ValueError when the points are degenerate (eyes and mouth coincide).
    """
    left_eye = np.asarray(points["left_eye"], dtype=np.float64)
    right_eye = np.asarray(points["right_eye"], dtype=np.float64)
    mouth = (
        np.asarray(points["mouth_left"], dtype=np.float64)
        + np.asarray(points["mouth_right"], dtype=np.float64)
    ) / 2
    eye_avg = (left_eye + right_eye) / 2
    eye_to_eye = right_eye - left_eye
    eye_to_mouth = mouth - eye_avg
    # rot90 of eye_to_mouth (a downward vector turns to point image-right).
    x_axis = eye_to_eye + np.array([eye_to_mouth[1], -eye_to_mouth[0]])
    length = float(np.hypot(*x_axis))
    half_side = max(
        float(np.hypot(*eye_to_eye)) * FFHQ_EYE_SPAN,
        float(np.hypot(*eye_to_mouth)) * FFHQ_MOUTH_SPAN,
    )
    if length == 0.0 or half_side == 0.0:
        raise ValueError("degenerate landmarks: eyes and mouth do not span a face")
    cos, sin = x_axis / length
    centre = eye_avg + FFHQ_CENTRE_SHIFT * eye_to_mouth
    scale = framing.face_side / (2 * half_side)
    # Output = scale * R @ (p - centre) + face_centre, R rotating x_axis onto +x.
    linear = scale * np.array([[cos, sin], [-sin, cos]])
    translation = np.asarray(framing.face_centre, dtype=np.float64) - linear @ centre
    return np.hstack([linear, translation[:, None]])


def output_scale(matrix: np.ndarray) -> float:
    """Output pixels per source pixel of a similarity (the square root of |det|)."""
    (a, b, _), (c, d, _) = np.asarray(matrix, dtype=np.float64)
    return float(np.sqrt(abs(a * d - b * c)))


def rebase(matrix: np.ndarray, scale: float) -> np.ndarray:
    """The same transform for an image decoded at `scale` (decoded px per source
    px): it maps decoded (x, y) to the same output pixels."""
    out = np.array(matrix, dtype=np.float64)
    out[:, :2] /= scale
    return out


def invert(matrix: np.ndarray) -> np.ndarray:
    """The inverse (2, 3) affine: output pixels back to source (x, y).

    Written out for 2x2: np.linalg goes through LAPACK, whose thread pool costs
    milliseconds per call on a busy machine."""
    (a, b, tx), (c, d, ty) = np.asarray(matrix, dtype=np.float64)
    det = a * d - b * c
    if det == 0.0:
        raise ValueError("the transform is singular")
    linear = np.array([[d, -b], [-c, a]]) / det
    return np.hstack([linear, -(linear @ [tx, ty])[:, None]])


def warp(rgb: np.ndarray, matrix: np.ndarray, framing: Framing) -> tuple[np.ndarray, float]:
    """Cut `framing` out of `rgb` through `matrix` (which maps `rgb`'s own (x, y),
    so `rebase` it first for a reduced decode).

    `rgb`: (H, W, 3) uint8. Returns the (height, width, 3) uint8 output and
    filled_ratio, the share of output pixels whose centre lies outside `rgb`;
    those are filled with a blurred reflection of the image, never black.
    Sampling is bicubic when enlarging (measured on a portrait enlarged 1.5-2.5x:
    1.3-2.4 dB PSNR over bilinear) and bilinear otherwise (as good when
    shrinking, and 5-15x faster). warpAffine does not anti-alias, so for a
    shrink beyond 2x (`MIN_WARP_SCALE`) the needed region is first area-reduced;
    callers should still decode at a reduction that keeps the 1:1 within a 2x
    shrink, since that pass costs time. Deterministic: the same inputs give the
    same pixels.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    size = (framing.width, framing.height)
    corners = _source_corners(matrix, size)
    source, to_output = _source_region(rgb, matrix, corners)
    out = cv2.warpAffine(
        source,
        _pixel_centred(to_output),
        size,
        flags=cv2.INTER_CUBIC if output_scale(to_output) > 1.0 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    height, width = rgb.shape[:2]
    if corners.min() >= 0 and np.all(corners.max(axis=0) <= (width, height)):
        return out, 0.0  # the crop is convex: corners inside means all of it is
    outside = _outside_distance(matrix, rgb.shape, size)
    filled_ratio = float(np.count_nonzero(outside)) / outside.size
    if filled_ratio > 0:
        out = _blend_fill(out, outside)
    return out, filled_ratio


def _pixel_centred(matrix: np.ndarray) -> np.ndarray:
    """OpenCV puts pixel centres on integers: shift by half a pixel either side."""
    half = np.array([0.5, 0.5])
    out = matrix.copy()
    out[:, 2] = matrix[:, :2] @ half + matrix[:, 2] - half
    return out


def _source_region(
    rgb: np.ndarray, matrix: np.ndarray, corners: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The part of `rgb` the output samples (`corners`: its footprint), with the
    matrix that maps it to the output.

    Beyond a 2x shrink the part is area-reduced by the integer factor that
    leaves a shrink within 2x (integer factors take OpenCV's fast path). Where
    the footprint leaves the image, the part is padded with its reflection, the
    same pixels warpAffine's BORDER_REFLECT_101 would make, at a fraction of the
    cost of warpAffine's per-pixel border handling."""
    scale = output_scale(matrix)
    height, width = rgb.shape[:2]
    factor = int(1 / scale) if scale < MIN_WARP_SCALE else 1  # scale * factor in [0.5, 1)
    factor = min(factor, width, height)  # a block never exceeds the image
    reach = 3 * factor  # the bicubic kernel's reach (2 px) and rounding, in source px
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - reach
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + reach
    # The part inside the image (at least one block even when the footprint misses it),
    # in whole blocks: that trims less than `factor` source px, under one output px.
    inner_x0, inner_y0 = min(max(x0, 0), width - factor), min(max(y0, 0), height - factor)
    blocks_x = max((min(x1, width) - inner_x0) // factor, 1)
    blocks_y = max((min(y1, height) - inner_y0) // factor, 1)
    part = rgb[inner_y0 : inner_y0 + blocks_y * factor, inner_x0 : inner_x0 + blocks_x * factor]
    if factor > 1:
        part = cv2.resize(part, (blocks_x, blocks_y), interpolation=cv2.INTER_AREA)
    pad_left = max(-(-(inner_x0 - x0) // factor), 0)
    pad_top = max(-(-(inner_y0 - y0) // factor), 0)
    pad_right = max(-(-(x1 - inner_x0) // factor) - blocks_x, 0)
    pad_bottom = max(-(-(y1 - inner_y0) // factor) - blocks_y, 0)
    if pad_left or pad_top or pad_right or pad_bottom:
        part = cv2.copyMakeBorder(
            part, pad_top, pad_bottom, pad_left, pad_right, cv2.BORDER_REFLECT_101
        )
    # A part pixel (x, y) covers source (origin + factor * (x, y)).
    origin = (inner_x0 - factor * pad_left, inner_y0 - factor * pad_top)
    from_part = np.array([[factor, 0.0, origin[0]], [0.0, factor, origin[1]], [0.0, 0.0, 1.0]])
    return part, matrix @ from_part


def _source_corners(matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(4, 2): the output rectangle's corners mapped back to source (x, y)."""
    width, height = size
    corners = np.array([[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]])
    back = invert(matrix)
    return corners @ back[:, :2].T + back[:, 2]


def _outside_distance(
    matrix: np.ndarray, shape: tuple[int, ...], size: tuple[int, int]
) -> np.ndarray:
    """(height, width) float32: how far (in output px) each output pixel centre
    lies outside the source rectangle; 0 inside.

    The signed distance to the rectangle is linear along each edge, so it is
    computed on a 4x coarser grid and interpolated (16x fewer operations; exact
    but within a few pixels of the rectangle's corners)."""
    width, height = size
    coarse_w, coarse_h = -(-width // 4), -(-height // 4)
    back = invert(matrix)
    # Coarse sample j sits where cv2.resize puts it: the centre of its block.
    us = (np.arange(coarse_w) + 0.5) * (width / coarse_w)
    vs = (np.arange(coarse_h)[:, None] + 0.5) * (height / coarse_h)
    src_x = back[0, 0] * us + (back[0, 1] * vs + back[0, 2])
    src_y = back[1, 0] * us + (back[1, 1] * vs + back[1, 2])
    # Box signed distance: positive outside, minus the distance to the nearest edge inside.
    qx = np.maximum(-src_x, src_x - shape[1])
    qy = np.maximum(-src_y, src_y - shape[0])
    signed = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)
    signed = (signed * output_scale(matrix)).astype(np.float32)
    fine = cv2.resize(signed, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.maximum(fine, 0.0)


def _blend_fill(out: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """Fade from the reflected pixels into a strongly blurred copy of them with
    the distance outside the source. The blur runs at 1/8 size (the same look
    as a wide Gaussian for a fraction of its cost)."""
    height, width = out.shape[:2]
    small_size = (max(width // 8, 1), max(height // 8, 1))
    small = cv2.resize(out, small_size, interpolation=cv2.INTER_AREA)
    sigma = FILL_BLUR_SIGMA * max(width, height) / 8
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT_101)
    blurred = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    weight = np.minimum(outside / np.float32(FILL_FEATHER * min(width, height)), 1.0)
    return cv2.blendLinear(blurred, out, weight, 1.0 - weight)

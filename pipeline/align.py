"""Similarity alignment of a face to FFHQ-style framings (the geometry; `pipeline.warp`
cuts the pixels).

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

import numpy as np

from pipeline.aspect import AspectRatio

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


@dataclass(frozen=True)
class Framing:
    """One output rendition: its size in pixels and where the face goes in it.

    `face_side` is the output length (px) of the FFHQ square's side and
    `face_centre` the output point (x, y) its centre lands on.
    """

    aspect_ratio: str  # an AspectRatio
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
        Framing(AspectRatio.SQUARE, s, s, float(s), (s / 2, s / 2)),
        Framing(
            AspectRatio.LANDSCAPE,
            wide,
            narrow,
            side,
            (wide / 2, narrow / 2 - LANDSCAPE_LIFT * side),
        ),
        Framing(
            AspectRatio.PORTRAIT, narrow, wide, side, (narrow / 2, wide / 2 - PORTRAIT_LIFT * side)
        ),
    )


@dataclass(frozen=True)
class Square:
    """The FFHQ square of a face in upright source pixels: its `centre` (x, y),
    `half_side`, and `turn`, the (cos, sin) of the angle its x axis makes with
    the image's (clockwise on screen, as y points down)."""

    centre: tuple[float, float]
    half_side: float
    turn: tuple[float, float]


def ffhq_square(points: Points) -> Square:
    """The FFHQ square of the face whose five `points` are given.

    `points` needs left_eye, right_eye, mouth_left and mouth_right ("left" = on
    the image's left). The square's x axis runs from the image-left eye towards
    the other, tilted towards perpendicular of eye-to-mouth so both pairs of
    points count; it is never mirrored. Raises ValueError when the points are
    degenerate (eyes and mouth coincide).
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
    return Square((float(centre[0]), float(centre[1])), half_side, (float(cos), float(sin)))


def face_transform(points: Points, framing: Framing) -> np.ndarray:
    """The similarity mapping upright source (x, y) to `framing`'s output pixels:
    the FFHQ square (`ffhq_square`) turned exactly upright, its side
    `framing.face_side` and its centre on `framing.face_centre`. Returns a
    (2, 3) float64 matrix. Raises ValueError when the points are degenerate.
    """
    square = ffhq_square(points)
    return square_transform(square, framing.face_side, framing.face_centre, square.turn)


def square_transform(
    square: Square, side: float, centre: tuple[float, float], turn: tuple[float, float]
) -> np.ndarray:
    """The similarity giving `square` a side of `side` output px with its centre
    on output point `centre` (x, y), turned by minus the angle whose (cos, sin)
    is `turn` (`square.turn` sets it upright). A (2, 3) float64 matrix."""
    cos, sin = turn
    scale = side / (2 * square.half_side)
    # Output = scale * R @ (p - centre) + face centre, R turning `turn` onto +x.
    linear = scale * np.array([[cos, sin], [-sin, cos]])
    translation = np.asarray(centre, dtype=np.float64) - linear @ np.asarray(square.centre)
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


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points (x, y) mapped by the (2, 3) affine `matrix`."""
    return np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]


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

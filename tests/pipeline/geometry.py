"""Landmarks, images and measures shared by the pipeline's geometry tests (align, warp,
framing, fill) and the overlay's."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from pipeline.align import (
    Framing,
    ffhq_square,
    framings,
    invert,
    output_scale,
    square_transform,
)
from pipeline.framing import quarter_turn

# An upright face: eyes 100 px apart on y = 500, mouth corners 110 px below.
UPRIGHT = {
    "left_eye": (400.0, 500.0),
    "right_eye": (500.0, 500.0),
    "nose": (450.0, 560.0),
    "mouth_left": (410.0, 610.0),
    "mouth_right": (490.0, 610.0),
}


def by_ratio(output_size: int = 512) -> dict[str, Framing]:
    return {f.aspect_ratio: f for f in framings(output_size)}


def quarter_transform(points: dict, framing: Framing) -> np.ndarray:
    """`framing`'s default placement of the face with only the nearest quarter
    turn of its roll undone, as the head-and-shoulders framings are cut."""
    square = ffhq_square(points)
    return square_transform(
        square, framing.face_side, framing.face_centre, quarter_turn(square.turn)
    )


def apply(matrix: np.ndarray, points: npt.ArrayLike) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]


def rotate_points(points: dict, degrees: float, about: tuple[float, float]) -> dict:
    """Turn every point by `degrees` about `about`, in image axes (x right, y down),
    so a positive angle turns clockwise on screen."""
    a = math.radians(degrees)
    cx, cy = about
    out = {}
    for name, (x, y) in points.items():
        dx, dy = x - cx, y - cy
        cos, sin = math.cos(a), math.sin(a)
        out[name] = (cx + dx * cos - dy * sin, cy + dx * sin + dy * cos)
    return out


def gradient_image(width: int, height: int) -> np.ndarray:
    """R and G grow linearly with x and y across the image, B is constant: a
    pixel's colour says where in the source it came from."""
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    rgb[..., 0] = np.rint((np.arange(width) + 0.5) / width * 255)[None, :]
    rgb[..., 1] = np.rint((np.arange(height) + 0.5) / height * 255)[:, None]
    rgb[..., 2] = 128
    return rgb


def outside_distance(matrix: np.ndarray, shape: tuple[int, ...], framing: Framing) -> np.ndarray:
    """(height, width): how far (output px) each output pixel centre lies outside
    the source image of `shape`, brute force; 0 inside."""
    vs, us = np.mgrid[0 : framing.height, 0 : framing.width] + 0.5
    src = apply(invert(matrix), np.stack([us.ravel(), vs.ravel()], axis=1))
    dx = np.maximum(np.maximum(-src[:, 0], src[:, 0] - shape[1]), 0)
    dy = np.maximum(np.maximum(-src[:, 1], src[:, 1] - shape[0]), 0)
    return (np.hypot(dx, dy) * output_scale(matrix)).reshape(vs.shape)


# The five points of sample_images/accept_portrait.jpg (1200x1200), as MediaPipe places them.
PORTRAIT = {
    "left_eye": (554.6, 404.4),
    "right_eye": (756.6, 412.6),
    "nose": (653.7, 510.3),
    "mouth_left": (600.0, 621.7),
    "mouth_right": (690.0, 621.7),
}

"""The overlay draws what the record says, where it says, on the upright image."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import simplejpeg
from PIL import Image, ImageOps

from pipeline.align import face_transform, framings, invert
from pipeline.overlay import (
    ACCEPT_COLOUR,
    CANDIDATE_COLOUR,
    CROP_COLOURS,
    LANDMARK_COLOURS,
    REJECT_COLOUR,
    draw_overlay,
    render_overlay,
)
from pipeline.settings import PipelineSettings
from tests.pipeline.geometry import UPRIGHT

# The align tests' upright face, 50 px left and 100 px up: eyes on y = 400, inside BOX.
LANDMARKS = {name: (x - 50.0, y - 100.0) for name, (x, y) in UPRIGHT.items()}
BOX = (300.0, 320.0, 200.0, 240.0)


def accept_record(landmarks: dict = LANDMARKS, box: tuple = BOX) -> dict[str, Any]:
    """A record shaped like Prepared.to_dict(), with transforms made the real way."""
    images = {}
    for framing in framings(512):
        matrix = face_transform(landmarks, framing)
        images[framing.aspect_ratio] = {
            "width": framing.width,
            "height": framing.height,
            "content_type": "image/jpeg",
            "transform": matrix.round(6).tolist(),
            "filled_ratio": 0.0,
        }
    return {
        "verdict": "accept",
        "face": {
            "box": list(box),
            "score": 0.95,
            "landmarks": {k: list(v) for k, v in landmarks.items()},
            "pose": {"yaw": 0.0, "pitch": 0.0, "roll": 0.0},
            "quality": {"sharpness": 100.0, "brightness": 120.0},
        },
        "checks": [],
        "warnings": [],
        "images": images,
    }


def reject_record(face: dict | None, candidates: list[list[float]]) -> dict[str, Any]:
    """A record shaped like Rejected.to_record()."""
    return {
        "verdict": "reject",
        "error": {
            "code": "face.multiple",
            "message": "The image shows 2 faces of similar size; upload a photo of one person.",
            "param": "image",
        },
        "source": None,
        "face": face,
        "candidates": candidates,
        "checks": [],
    }


def grey(height: int = 900, width: int = 800) -> np.ndarray:
    return np.full((height, width, 3), 90, dtype=np.uint8)


def origin(out: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int]:
    """Where the grey test photo's top-left corner sits in the overlay (the banner
    and the margin have other colours)."""
    top, left = np.argwhere(np.all(out == 90, axis=2)).min(axis=0)
    assert np.all(out[top + shape[0] - 1, left : left + 8] == 90)  # the photo's last row
    return int(left), int(top)


def near(pixel: np.ndarray, colour: tuple[int, int, int], tol: int = 0) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - colour) <= tol))


def test_the_face_box_landmarks_and_crops_are_drawn_where_the_record_says() -> None:
    rgb = grey()
    record = accept_record()
    out = draw_overlay(rgb, 1.0, record)
    assert out.dtype == np.uint8 and np.all(rgb == 90), "a new picture; the input is left alone"
    ox, oy = origin(out, rgb.shape)
    x, y, w, h = BOX
    assert near(out[oy + int(y + h / 2), ox + int(x)], ACCEPT_COLOUR)  # left edge of the box
    assert near(out[oy + int(y + h), ox + int(x + w / 2)], ACCEPT_COLOUR)  # bottom edge
    assert near(out[oy + int(y + h / 2), ox + int(x + w / 2)], (90, 90, 90))  # inside
    for name, (lx, ly) in LANDMARKS.items():
        if name != "nose":  # the nose sits on no other drawing
            assert near(out[oy + int(ly), ox + int(lx)], LANDMARK_COLOURS[name])
    # Each crop outline runs through the middle of its output rectangle's edges, mapped
    # back to the source, even where that lies outside the photo (the 3:4 bottom does).
    for ratio, image in record["images"].items():
        back = invert(np.array(image["transform"]))
        w, h = image["width"], image["height"]
        for edge_mid in ([w / 2, 0.0], [w, h / 2], [w / 2, h], [0.0, h / 2]):
            bx, by = back[:, :2] @ edge_mid + back[:, 2] + (ox, oy)
            patch = out[int(by) - 1 : int(by) + 2, int(bx) - 1 : int(bx) + 2].reshape(-1, 3)
            assert any(near(p, CROP_COLOURS[ratio], tol=40) for p in patch), (ratio, edge_mid)
    assert near(out[oy + 880, ox + 780], (90, 90, 90))  # far from everything: untouched


def test_the_margin_shows_crops_that_leave_the_photo_and_nothing_else() -> None:
    rgb = grey()
    inside = draw_overlay(rgb, 1.0, reject_record(None, [list(BOX)]))
    ox, oy = origin(inside, rgb.shape)
    assert inside.shape[1] == rgb.shape[1] + 2 * ox  # no crops: a thin frame only
    assert inside.shape[0] - oy == rgb.shape[0] + ox
    outside = draw_overlay(rgb, 1.0, accept_record())
    ox, oy = origin(outside, rgb.shape)
    bottom = max(
        (invert(np.array(i["transform"]))[1] @ [i["width"] / 2, i["height"], 1.0])
        for i in accept_record()["images"].values()
    )
    assert bottom > rgb.shape[0]  # the 3:4 reaches below the photo...
    assert outside.shape[0] - oy > bottom  # ...and the margin makes room for it


def test_coordinates_follow_the_scale() -> None:
    rgb = grey(450, 400)
    out = draw_overlay(rgb, 0.5, accept_record())
    ox, oy = origin(out, rgb.shape)
    x, y, w, h = (v / 2 for v in BOX)
    assert near(out[oy + int(y + h / 2), ox + int(x)], ACCEPT_COLOUR)
    assert near(out[oy + int(y + h / 2), ox + int(x + w / 2)], (90, 90, 90))


def test_the_banner_says_accept_or_reject() -> None:
    accept = draw_overlay(grey(), 1.0, accept_record())
    reject = draw_overlay(grey(), 1.0, reject_record(None, []))
    # The strip has the verdict's colour and carries white text.
    assert near(np.median(accept[:4].reshape(-1, 3), axis=0), ACCEPT_COLOUR)
    assert near(np.median(reject[:4].reshape(-1, 3), axis=0), REJECT_COLOUR)
    for out in (accept, reject):
        banner_h = int(np.argmax(np.all(out[:, 0] != out[0, 0], axis=1)))
        assert np.count_nonzero(np.all(out[:banner_h] >= 200, axis=2)) > 50  # white text
    # A rejection also gives the message: its banner is taller than the one-line accept.
    banner = lambda out: int(np.argmax(np.any(out[:, 0] != out[0, 0], axis=1)))  # noqa: E731
    assert banner(reject) > 1.5 * banner(accept)


def test_a_rejection_shows_every_candidate_and_the_rejected_face() -> None:
    second = [560.0, 340.0, 180.0, 200.0]
    rgb = grey()
    record = reject_record(accept_record()["face"], [list(BOX), second])
    out = draw_overlay(rgb, 1.0, record)
    ox, oy = origin(out, rgb.shape)
    x, y, w, h = second
    assert near(out[oy + int(y + h / 2), ox + int(x + w)], CANDIDATE_COLOUR)
    x, y, w, h = BOX
    assert near(out[oy + int(y + h / 2), ox + int(x)], REJECT_COLOUR)  # the face, on top
    no_face = draw_overlay(rgb, 1.0, reject_record(None, [second]))
    ox, oy = origin(no_face, rgb.shape)
    assert near(no_face[oy + int(y + h / 2), ox + int(x)], (90, 90, 90))


def upright_preview(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """The photo as a person sees it, at `size` (w, h), decoded by Pillow: an
    independent reference for what render_overlay must draw on."""
    with Image.open(io.BytesIO(data)) as im:
        upright = ImageOps.exif_transpose(im).convert("RGB")
        return np.asarray(upright.resize(size, Image.Resampling.BOX))


@pytest.mark.parametrize(
    ("name", "preview_size"),
    [
        ("large_12mp.jpg", (1000, 750)),  # 4000 x 3000: 1/4, the largest within 1024 px
        ("exif_rotated_6.jpg", (450, 600)),  # stored 1200 x 900, upright 900 x 1200, halved
        ("accept_astronaut.png", (512, 512)),  # small enough as it is
    ],
)
def test_render_overlay_draws_the_record_on_an_upright_preview(
    name: str, preview_size: tuple[int, int], sample_bytes: Callable[[str], bytes]
) -> None:
    data = sample_bytes(name)
    width = preview_size[0]
    source_w = {"large_12mp.jpg": 4000, "exif_rotated_6.jpg": 900}.get(name, 512)
    scale = width / source_w
    # A face where the photo's middle is, with crops that leave it on some sides.
    unit = source_w / 1000
    landmarks = {k: (x * unit, y * unit) for k, (x, y) in LANDMARKS.items()}
    record = accept_record(landmarks, tuple(v * unit for v in BOX))
    overlay = simplejpeg.decode_jpeg(render_overlay(data, record, PipelineSettings()))
    expected = draw_overlay(upright_preview(data, preview_size), scale, record)
    assert overlay.shape == expected.shape
    assert np.abs(overlay.astype(int) - expected).mean() < 4.0


def test_render_overlay_of_a_very_wide_photo_fits_the_preview() -> None:
    # 9000 px wide: even 1/8 (1125 px) is over 1024, so the preview is shrunk further.
    xs = np.linspace(0, 255, 9000, dtype=np.float32)
    rgb = np.empty((1200, 9000, 3), dtype=np.uint8)
    rgb[...] = np.stack([xs, 255 - xs, np.full_like(xs, 100)], axis=1)[None].astype(np.uint8)
    data = simplejpeg.encode_jpeg(rgb, quality=90)
    box = [4000.0, 300.0, 600.0, 600.0]
    overlay = simplejpeg.decode_jpeg(
        render_overlay(data, reject_record(None, [box]), PipelineSettings())
    )
    expected = draw_overlay(
        upright_preview(data, (1024, 137)), 1024 / 9000, reject_record(None, [box])
    )
    assert overlay.shape == expected.shape
    assert np.abs(overlay.astype(int) - expected).mean() < 4.0

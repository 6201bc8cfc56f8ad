"""The overlay draws what the record says, where it says, on the upright image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simplejpeg

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

SAMPLES = Path(__file__).resolve().parents[2] / "sample_images"

LANDMARKS = {
    "left_eye": (350.0, 400.0),
    "right_eye": (450.0, 400.0),
    "nose": (400.0, 460.0),
    "mouth_left": (360.0, 510.0),
    "mouth_right": (440.0, 510.0),
}
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


def near(pixel: np.ndarray, colour: tuple[int, int, int], tol: int = 0) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - colour) <= tol))


def test_the_face_box_landmarks_and_crops_are_drawn_where_the_record_says() -> None:
    rgb = grey()
    record = accept_record()
    out = draw_overlay(rgb, 1.0, record)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.all(rgb == 90), "the input is left alone"
    x, y, w, h = BOX
    assert near(out[int(y + h / 2), int(x)], ACCEPT_COLOUR)  # left edge of the box
    assert near(out[int(y + h), int(x + w / 2)], ACCEPT_COLOUR)  # bottom edge
    assert near(out[int(y + h / 2), int(x + w / 2)], (90, 90, 90))  # inside: untouched
    for name, (lx, ly) in LANDMARKS.items():
        if name != "nose":  # the nose sits on no other drawing
            assert near(out[int(ly), int(lx)], LANDMARK_COLOURS[name])
    # Each crop outline runs through the middle of its output rectangle's top edge,
    # mapped back to the source.
    for ratio, image in record["images"].items():
        back = invert(np.array(image["transform"]))
        bx, by = back[:, :2] @ [image["width"] / 2, 0.0] + back[:, 2]
        patch = out[int(by) - 1 : int(by) + 2, int(bx) - 1 : int(bx) + 2].reshape(-1, 3)
        assert any(near(p, CROP_COLOURS[ratio], tol=40) for p in patch), ratio
    assert near(out[-5, -5], (90, 90, 90))  # far from everything: untouched


def test_coordinates_follow_the_scale() -> None:
    out = draw_overlay(grey(450, 400), 0.5, accept_record())
    x, y, w, h = (v / 2 for v in BOX)
    assert near(out[int(y + h / 2), int(x)], ACCEPT_COLOUR)
    assert near(out[int(y + h / 2), int(x + w / 2)], (90, 90, 90))


def test_the_banner_says_accept_or_reject() -> None:
    accept = draw_overlay(grey(), 1.0, accept_record())
    reject = draw_overlay(grey(), 1.0, reject_record(None, []))
    # The strip is tinted with the verdict's colour and carries white text.
    assert np.argmax(np.median(accept[:10, :].reshape(-1, 3), axis=0)) == 1  # green
    assert np.argmax(np.median(reject[:10, :].reshape(-1, 3), axis=0)) == 0  # red
    for out in (accept, reject):
        assert np.any(np.all(out[:200] >= 250, axis=2))
    # A rejection also gives the message: its banner is taller than the one-line accept.
    tinted = lambda out: int(np.count_nonzero(np.any(out[:, 400] != 90, axis=1)[:300]))  # noqa: E731
    assert tinted(reject) > tinted(accept)


def test_a_rejection_shows_every_candidate_and_the_rejected_face() -> None:
    second = [560.0, 340.0, 180.0, 200.0]
    record = reject_record(accept_record()["face"], [list(BOX), second])
    out = draw_overlay(grey(), 1.0, record)
    x, y, w, h = second
    assert near(out[int(y + h / 2), int(x + w)], CANDIDATE_COLOUR)
    x, y, w, h = BOX
    assert near(out[int(y + h / 2), int(x)], REJECT_COLOUR)  # the chosen face, drawn on top
    no_face = draw_overlay(grey(), 1.0, reject_record(None, [second]))
    assert near(no_face[int(y + h / 2), int(x)], (90, 90, 90))


def sample(name: str) -> bytes:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"sample image missing: {path}")
    return path.read_bytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    return simplejpeg.decode_jpeg(data, colorspace="RGB")


def test_render_overlay_of_a_12_mp_photo_is_a_small_decodable_jpeg() -> None:
    data = sample("large_12mp.jpg")  # 4000 x 3000
    landmarks = {k: (x * 4 + 300, y * 4) for k, (x, y) in LANDMARKS.items()}
    box = tuple(v * 4 for v in BOX)
    overlay = decode_jpeg(render_overlay(data, accept_record(landmarks, box), PipelineSettings()))
    assert overlay.shape == (750, 1000, 3)  # 1/4, the largest reduction within 1024 px
    x, y, _, h = (v / 4 for v in box)
    assert near(overlay[int(y + h / 2), int(x)], ACCEPT_COLOUR, tol=60)


def test_render_overlay_draws_on_the_upright_image() -> None:
    data = sample("exif_rotated_6.jpg")  # stored 1200 x 900, upright 900 x 1200
    box = (200.0, 700.0, 300.0, 300.0)
    record = reject_record(None, [list(box)])
    overlay = decode_jpeg(render_overlay(data, record, PipelineSettings()))
    assert overlay.shape == (600, 450, 3)  # upright, halved to fit 1024 px
    scale = overlay.shape[1] / 900
    x, y, _, h = (v * scale for v in box)
    assert near(overlay[int(y + h / 2), int(x)], CANDIDATE_COLOUR, tol=60)

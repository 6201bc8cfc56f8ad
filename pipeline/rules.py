"""The face rules: measured values against the limits in `PipelineSettings`,
and the verdict.

Every rule is a `Check` (name, passed, value, limit, hint, code). The checks
come in a fixed order and the first failed check that rejects decides the
error code, so one photo always gets the same, most fundamental, reason: is
there one face, is it a photo, does it face the camera, is it all in the
frame, does it have enough pixels, can it be seen. (A bigger photo does not
fix a profile or a cut-off face, so those come before size.) A failed check without a code (blur and
darkness, unless settings make them reject) is a warning on an accepted image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.landmarks import Face
from pipeline.quality import FaceQuality
from pipeline.record import Check
from pipeline.settings import PipelineSettings


@dataclass(frozen=True)
class Measures:
    """What the rules look at, for the main (largest) face.

    `others`: the size of each other person's face as a share of the main
    face's: forehead-to-chin length for fitted faces, box height for strong
    detections the landmark model could not fit (about 0.95 of that length).
    `upscale`: output pixels per source pixel of the 1:1 crop. `height_share`:
    the face's forehead-to-chin length over the frame's extent along the
    face's own up-down axis (the image height for an upright face).
    `outside_share`: the share of the face's landmarks outside the frame.
    Angles in degrees (see `Face.pose`).
    """

    others: tuple[float, ...]
    upscale: float
    height_share: float
    outside_share: float
    yaw: float
    pitch: float
    quality: FaceQuality


def measure(
    main: Face,
    others: list[float],
    width: int,
    height: int,
    upscale: float,
    quality: FaceQuality,
) -> Measures:
    """The measures of the `main` face in a `width` x `height` upright source
    (source pixels), with the sizes of the `others` relative to it (see
    `Measures`), its 1:1 `upscale` and its crop `quality`."""
    pose = main.pose()
    roll = math.radians(pose["roll"])
    extent = abs(math.cos(roll)) * height + abs(math.sin(roll)) * width
    x, y = main.mesh[:, 0], main.mesh[:, 1]
    inside = (x >= 0) & (x <= width) & (y >= 0) & (y <= height)
    return Measures(
        others=tuple(others),
        upscale=upscale,
        height_share=main.length / extent,
        outside_share=1.0 - float(np.count_nonzero(inside)) / len(inside),
        yaw=pose["yaw"],
        pitch=pose["pitch"],
        quality=quality,
    )


def no_face_check() -> Check:
    """The one check of an image in which no face was found."""
    return Check(
        name="face_count",
        passed=False,
        value=0,
        limit=1,
        hint="Use a photo in which one face is clearly visible and faces the camera.",
        code="face.none",
    )


def checks(m: Measures, settings: PipelineSettings) -> tuple[Check, ...]:
    """Every check of a face, in verdict order."""
    s = settings
    faces = 1 + sum(1 for share in m.others if share >= s.max_faces_ratio)
    q = m.quality
    return (
        Check(
            "face_count",
            faces == 1,
            faces,
            1,
            "Crop the photo to one person or use a solo portrait.",
            "face.multiple",
        ),
        Check(
            "photo",
            q.drawn_share <= s.max_drawn_share,
            round(q.drawn_share, 3),
            s.max_drawn_share,
            "Upload a photograph, not a drawing or a render.",
            "image.not_a_photo",
        ),
        Check(
            "yaw",
            abs(m.yaw) <= s.max_yaw_degrees,
            round(m.yaw, 1),
            s.max_yaw_degrees,
            "Use a photo in which the person looks straight at the camera.",
            "face.not_frontal",
        ),
        Check(
            "pitch",
            abs(m.pitch) <= s.max_pitch_degrees,
            round(m.pitch, 1),
            s.max_pitch_degrees,
            "Use a photo in which the head is level, neither looking up nor down.",
            "face.not_frontal",
        ),
        Check(
            "face_in_frame",
            m.outside_share <= s.max_cut_off_ratio,
            round(m.outside_share, 3),
            s.max_cut_off_ratio,
            "Use a photo in which the whole face is inside the frame.",
            "face.cut_off",
        ),
        Check(
            "face_resolution",
            m.upscale <= s.max_upscale,
            round(m.upscale, 2),
            s.max_upscale,
            "Use a larger or less compressed photo, or one taken closer to the face.",
            "face.too_small",
        ),
        Check(
            "face_share",
            m.height_share >= s.min_face_height_ratio,
            round(m.height_share, 3),
            s.min_face_height_ratio,
            "Use a portrait or head-and-shoulders photo, not a full-body shot.",
            "face.too_small",
        ),
        Check(
            "sharpness",
            q.sharpness >= s.min_sharpness,
            round(q.sharpness, 1),
            s.min_sharpness,
            "Use a sharp photo: hold the camera still, in good light.",
            "face.too_blurry" if s.reject_blurry else "",
        ),
        Check(
            "brightness",
            q.brightness >= s.min_brightness,
            round(q.brightness, 1),
            s.min_brightness,
            "Use a photo taken in good, even light.",
            "face.too_dark" if s.reject_dark else "",
        ),
    )


def verdict(all_checks: tuple[Check, ...]) -> Check | None:
    """The check that rejects the image (the first failed one with a code), or None."""
    return next((c for c in all_checks if not c.passed and c.code), None)


# What each failed check tells people: what was measured and what is allowed.
# Fields: value, limit, magnitude (|value|), size (the 1:1 output side).
MESSAGES = {
    "face.none": "No face was found in the image; upload a photo that shows one face clearly.",
    "face_count": "The image shows {value} faces of similar size; upload a photo of one person.",
    "photo": "The image looks drawn or rendered: {value:.0%} of the face is flat fill or hard "
    "line, at most {limit:.0%} is allowed; upload a photograph.",
    "face_resolution": "The face has too few pixels: it would be enlarged {value}x to fill the "
    "{size} px avatar, at most {limit}x is allowed; use a larger photo.",
    "face_share": "The face is too small a part of the photo: {value:.0%} of its height, at "
    "least {limit:.0%} is needed; use a portrait or head-and-shoulders photo.",
    "face_in_frame": "The face is cut off: {value:.0%} of it is outside the frame, at most "
    "{limit:.0%} is allowed; use a photo with the whole face in it.",
    "yaw": "The head is turned {magnitude:.0f} degrees to the side, at most {limit:.0f} "
    "degrees is allowed; use a photo facing the camera.",
    "pitch": "The head is tilted {magnitude:.0f} degrees up or down, at most {limit:.0f} "
    "degrees is allowed; use a photo with the head level.",
    "sharpness": "The face is blurry: sharpness {value}, at least {limit} is needed; use a "
    "sharp photo.",
    "brightness": "The face is too dark: brightness {value} of 255, at least {limit} is "
    "needed; use a photo taken in good light.",
}


def message(check: Check, settings: PipelineSettings) -> str:
    """The sentence for people about a failed `check`."""
    template = MESSAGES.get(check.code) or MESSAGES[check.name]
    value = check.value
    magnitude = abs(value) if isinstance(value, int | float) else value
    return template.format(
        value=value, limit=check.limit, magnitude=magnitude, size=settings.output_size
    )

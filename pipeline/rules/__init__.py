"""The face rules: measured values against the limits in `PipelineSettings`,
and the verdict.

Each rule is a `Rule` in a small module of this package (its value, limits,
code, hint and message); `RULES` puts them in verdict order, and the first
failed check whose severity is "reject" decides the error code, so one photo
always gets the same, most fundamental, reason: is there one face, is the
file more than compression blocks, is it a photo, does it face the camera, is
it all in the frame, does it have enough pixels, does it have a person's
proportions, can it be seen, is it human.
(A bigger photo does not fix a profile or a cut-off face, so those come before
size; a face too small, turned away or cut off cannot be judged human, nor its
proportions measured, so those come after; heavy compression before the photo
check and darkness before blur, since blocks look drawn and a dark face
measures soft; light and focus before the human checks, since a dark, blown
out or blurred face looks less like anyone's and the person telling us so
should hear what to fix, not that they do not look human; the room around the
head comes last, as the only reason about the crop rather than the face.)
A failed check of severity "warn" is a warning on an accepted image.

A new check is one new module here and one entry in `RULES`.
"""

from __future__ import annotations

from pipeline.record import Check
from pipeline.rules.base import Rule
from pipeline.rules.compression import COMPRESSION
from pipeline.rules.count import FACE_COUNT
from pipeline.rules.cover import EYES_VISIBLE, MOUTH_VISIBLE
from pipeline.rules.exposure import DARKNESS, HIGHLIGHTS
from pipeline.rules.expression import EYES_OPEN, MOUTH_CLOSED
from pipeline.rules.frame import FACE_IN_FRAME
from pipeline.rules.framing import FILL_1X1, FILL_3X4, FILL_4X3, HEADROOM
from pipeline.rules.human import HUMAN, PERSON
from pipeline.rules.measures import Measures, measure
from pipeline.rules.photo import PHOTO
from pipeline.rules.pose import PITCH, YAW
from pipeline.rules.proportions import PROPORTIONS
from pipeline.rules.sharpness import SHARPNESS
from pipeline.rules.size import FACE_RESOLUTION, FACE_SHARE
from pipeline.settings import PipelineSettings

RULES: tuple[Rule, ...] = (
    FACE_COUNT,
    COMPRESSION,
    PHOTO,
    YAW,
    PITCH,
    FACE_IN_FRAME,
    FACE_RESOLUTION,
    FACE_SHARE,
    PROPORTIONS,
    DARKNESS,
    HIGHLIGHTS,
    SHARPNESS,
    HUMAN,
    PERSON,
    FILL_4X3,
    FILL_3X4,
    FILL_1X1,
    HEADROOM,
    EYES_OPEN,
    MOUTH_CLOSED,
    MOUTH_VISIBLE,
    EYES_VISIBLE,
)

NO_FACE_MESSAGE = "No face was found in the image; upload a photo that shows one face clearly."
UNSEEN_FACE_MESSAGE = (
    "There is a person in the photo, but their face is too small, too blurred or turned "
    "too far away to be found; use a portrait or head-and-shoulders photo facing the camera."
)

__all__ = [
    "RULES",
    "Measures",
    "Rule",
    "checks",
    "measure",
    "no_face_check",
    "small_faces_check",
    "unseen_face_check",
    "verdict",
]


def checks(measures: Measures, settings: PipelineSettings) -> tuple[Check, ...]:
    """Every check of a face that applies to it, in verdict order."""
    return tuple(
        rule.check(measures, settings) for rule in RULES if rule.applies(measures, settings)
    )


def verdict(all_checks: tuple[Check, ...]) -> Check | None:
    """The check that rejects the image (the first failed one of severity "reject"), or None."""
    return next((c for c in all_checks if c.severity == "reject"), None)


def no_face_check() -> Check:
    """The one check of an image in which no face was found."""
    return _no_face_found(
        "face.none",
        "Use a photo in which one face is clearly visible and faces the camera.",
        NO_FACE_MESSAGE,
    )


def small_faces_check(
    heights: list[float],
    people: int,
    sharpness: float,
    jpeg_quality: int,
    settings: PipelineSettings,
) -> Check:
    """The check of a photo in which the first look found no face, in the
    order of `RULES`: the faces the tiled second look found, each as its
    height over the frame's, are a group when several (face.multiple); a file
    saved below `min_jpeg_quality` is too compressed (image.too_compressed),
    whatever is in it; one face is a person too far away (face.too_small).
    None found: face.too_blurry when the whole photo's `sharpness` (see
    `pipeline.quality.photo_sharpness`) is under `min_photo_sharpness`, no
    face could be found in it; else face.too_small when the person detector
    found `people` there, else face.none."""
    size = settings.output_size
    if len(heights) > 1:
        return FACE_COUNT.result(len(heights), 1, "reject", size)
    if jpeg_quality < settings.min_jpeg_quality:
        return COMPRESSION.result(jpeg_quality, settings.min_jpeg_quality, "reject", size)
    if heights:
        limit = settings.min_face_height_ratio
        return FACE_SHARE.result(round(heights[0], 3), limit, "reject", size)
    if sharpness < settings.min_photo_sharpness:
        return blurred_photo_check(sharpness, settings)
    return no_face_check() if not people else unseen_face_check()


def blurred_photo_check(sharpness: float, settings: PipelineSettings) -> Check:
    """The one check of a photo in which no face was found and which is too
    blurred, as a whole, for one to be found (`sharpness` of the whole photo
    under `min_photo_sharpness`)."""
    limit = settings.min_photo_sharpness
    return Check(
        name="photo_sharpness",
        passed=False,
        value=round(sharpness, 1),
        limit=limit,
        hint="Use a sharp photo: hold the camera still and let it focus on the face.",
        code="face.too_blurry",
        severity="reject",
        bound="min",
        message=f"The photo is too blurred to find a face in it: its sharpness is "
        f"{sharpness:.1f}, a photo in focus reads at least {limit:g}; use a sharp photo.",
    )


def unseen_face_check() -> Check:
    """The one check of an image with a person in it but no face to be found."""
    return _no_face_found(
        "face.too_small",
        "Use a portrait or head-and-shoulders photo in which the face is clearly visible.",
        UNSEEN_FACE_MESSAGE,
    )


def _no_face_found(code: str, hint: str, message: str) -> Check:
    """The failed face count (0 found, 1 needed) that rejects with `code`."""
    return Check(
        name="face_count",
        passed=False,
        value=0,
        limit=1,
        hint=hint,
        code=code,
        severity="reject",
        bound="min",
        message=message,
    )

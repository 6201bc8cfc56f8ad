"""What the rules look at: the measures of the main face of one image."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pipeline.landmarks import Face
from pipeline.proportions import stylisation
from pipeline.quality import FaceQuality

# The detectors see the whole photo at 128 (short range) to 192 px. A face
# shorter (forehead to chin) than this many of those 128 px has its nose tip a
# pixel or two off the eyes' midpoint, and that yaw is noise (a full-body shot
# would read as a profile), so only the mesh's yaw counts. (The length, not the
# eye distance, since that shrinks as the head turns.)
MIN_KEYPOINT_FACE = 25
DETECTOR_SIDE = 128


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
    Angles in degrees (see `Face.pose`): `yaw` is whichever of the mesh's
    and the detector nose's reading (`Face.nose_yaw`) turns further, the
    latter only when the face was MIN_KEYPOINT_FACE long for the detector
    (the mesh flattens near profile, the keypoints are noisy when small).
    `proportions`: the face's proportions against real faces' (see
    `pipeline.proportions.stylisation`; 0 for an average face, negative
    for a drawn character's). `human`: the full-range detector's
    score for the aligned face shown alone (see `pipeline.likeness`; 0 when it
    finds none). `people`: how many people the person detector finds in the
    photo, asked only where the human score is unsure (None when not asked:
    see `pipeline.people.second_opinion`). `jpeg_quality`: the quality a JPEG
    was saved at (see `Probe.jpeg_quality`), 100 for other formats. `eyes_open`: the more open
    eye's lid gap over its width (see `Face.openness`); `mouth_open`: the
    lips' gap over the mouth's width. `mouth_detail`: the detail around
    the mouth over that around the eyes (see `pipeline.occlusion`; low when
    a mask covers the mouth). `under_eye_light`: the light of the skin under
    the eyes over the cheeks' (see `pipeline.occlusion`; low under dark
    glasses). `fills`: the share of each rendition
    (by aspect ratio) outside the photo, to be filled; `headroom`: the smaller
    of the 4:3's and 3:4's room above the head (see `pipeline.framing.Fit`),
    negative when the head is cut.
    """

    others: tuple[float, ...]
    upscale: float
    height_share: float
    outside_share: float
    yaw: float
    pitch: float
    quality: FaceQuality
    proportions: float
    human: float
    jpeg_quality: int
    eyes_open: float
    mouth_open: float
    mouth_detail: float
    under_eye_light: float
    fills: Mapping[str, float]
    headroom: float
    people: int | None = None


def nose_decides(face: Face, size: tuple[int, int]) -> bool:
    """Whether the detector nose's yaw (`Face.nose_yaw`) is the face's yaw in
    a photo of `size` (width, height) px (in the face's pixels): the face is
    MIN_KEYPOINT_FACE long for the detector and the nose turns further than
    the mesh (which flattens near profile)."""
    large = face.length * DETECTOR_SIDE / max(size) >= MIN_KEYPOINT_FACE
    return large and abs(face.nose_yaw()[0]) > abs(face.pose()["yaw"])


def yaw_of(face: Face, size: tuple[int, int]) -> float:
    """The face's yaw in degrees (sign as in `Face.pose`) in a photo of
    `size` (width, height) px: the nose's reading where it decides (see
    `nose_decides`), else the mesh's."""
    return face.nose_yaw()[0] if nose_decides(face, size) else face.pose()["yaw"]


def measure(
    main: Face,
    others: list[float],
    size: tuple[int, int],
    upscale: float,
    quality: FaceQuality,
    human: float,
    jpeg_quality: int,
    mouth_detail: float,
    under_eye_light: float,
    fills: Mapping[str, float],
    headroom: float,
    people: int | None = None,
) -> Measures:
    """The measures of the `main` face in an upright source of `size` (width,
    height) px, with the sizes of the `others` relative to it (see
    `Measures`), its 1:1 `upscale`, its crop `quality`, `human` score, the
    file's `jpeg_quality`, its `mouth_detail` and `under_eye_light`, the renditions' `fills` and
    `headroom`, and the `people` the person detector found when asked."""
    width, height = size
    pose = main.pose()
    pose["yaw"] = yaw_of(main, size)
    roll = math.radians(pose["roll"])
    extent = abs(math.cos(roll)) * height + abs(math.sin(roll)) * width
    x, y = main.mesh[:, 0], main.mesh[:, 1]
    inside = (x >= 0) & (x <= width) & (y >= 0) & (y <= height)
    openness = main.openness()
    return Measures(
        others=tuple(others),
        upscale=upscale,
        height_share=main.length / extent,
        outside_share=1.0 - float(np.count_nonzero(inside)) / len(inside),
        yaw=pose["yaw"],
        pitch=pose["pitch"],
        quality=quality,
        proportions=stylisation(main),
        human=human,
        jpeg_quality=jpeg_quality,
        eyes_open=max(openness["right_eye"], openness["left_eye"]),
        mouth_open=openness["mouth"],
        mouth_detail=mouth_detail,
        under_eye_light=under_eye_light,
        fills=dict(fills),
        headroom=headroom,
        people=people,
    )

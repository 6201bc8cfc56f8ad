"""Second looks at the photo mirrored left to right, where the first look's
reading is in doubt.

The detectors are not symmetric: a face one of them misses may be found in
the mirror image, and the key points it places move. Mirroring changes nothing
a verdict should depend on, so where the first look leaves a doubt that
matters (someone unconfirmed beside the main face, a head turned close to the
limit) the mirror image is looked at too; elsewhere (every frontal photo) it
is not, and costs nothing.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.detect import Candidate, detect_mirrored
from pipeline.landmarks import Face, fit_faces, unfitted
from pipeline.models import FaceModels
from pipeline.rules.measures import nose_decides
from pipeline.settings import PipelineSettings
from pipeline.stopwatch import Stopwatch

# How close (degrees) to `max_yaw_degrees` the detector nose's reading must be
# for the head's turn to be read again on the mirror image. That reading moves
# by up to 9 degrees between a photo and its mirror image on the faces both
# dev sets accept (faces2 e2016: 14 and 5; e2064: 33 and 41, e2035: 36 and
# 42); further from the limit than this the verdict does not depend on it.
YAW_RECHECK_DEGREES = 10.0


def look_again_mirrored(
    rgb: np.ndarray,
    faces: list[Face],
    candidates: list[Candidate],
    models: FaceModels,
    settings: PipelineSettings,
    watch: Stopwatch,
) -> tuple[list[Face], list[Candidate]]:
    """`faces` (the main one first) and `candidates` of `rgb`, with what the
    full-range detector finds on the photo mirrored added, where the first
    look left a candidate outside every fitted face: someone it was unsure
    of (a head turned, a shouting face), whom the landmark model could not
    confirm there. The detector's misses are not symmetric, and mirrored it
    may find that person well enough to fit. Photos without such a
    candidate (every accepted photo of both dev sets) are not looked at again.
    The faces it adds only count as others; the main face stays."""
    if not unfitted(candidates, faces, settings.min_detection_score):
        return faces, candidates
    with watch("detect"):
        again = detect_mirrored(rgb, models, settings.min_detection_score, faces[0].upright_turns())
    new = [c for c in again if not any(f.contains(c.centre) for f in faces)]
    with watch("mesh"):
        found = fit_faces(rgb, new, models, settings.max_faces_checked - len(faces))
    return [*faces, *found], [*candidates, *new]


def read_yaw_both_ways(
    rgb: np.ndarray,
    face: Face,
    models: FaceModels,
    settings: PipelineSettings,
    watch: Stopwatch,
) -> Face:
    """The main `face` of `rgb` ((H, W, 3) uint8 RGB, the face in its
    pixels), its detector key points averaged with those both detectors place
    on it in the photo mirrored (the best-scoring candidate there centred in
    the face, mapped back), where its yaw is the nose's reading (see
    `nose_decides`) within YAW_RECHECK_DEGREES of the limit. The mean of a
    reading and its mirrored reading is the same for a photo and its mirror
    image. Otherwise, or where the mirror look does not find it, `face`."""
    size = (rgb.shape[1], rgb.shape[0])
    if not nose_decides(face, size):
        return face
    if abs(abs(face.nose_yaw()[0]) - settings.max_yaw_degrees) > YAW_RECHECK_DEGREES:
        return face
    with watch("detect"):
        again = detect_mirrored(
            rgb, models, settings.min_detection_score, face.upright_turns(), short_range=True
        )
    same = [c for c in again if face.contains(c.centre) and len(c.keypoints) == len(face.keypoints)]
    if not same:
        return face
    mirrored = max(same, key=lambda c: c.score).keypoints
    points = tuple(
        ((x + mx) / 2, (y + my) / 2)
        for (x, y), (mx, my) in zip(face.keypoints, mirrored, strict=True)
    )
    return dataclasses.replace(face, keypoints=points)

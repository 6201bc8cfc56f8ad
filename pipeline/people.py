"""Is anyone in the photo? BlazePose's person detector, asked where the face
detectors cannot tell.

A photo in which neither face detector (nor the tiled second look) finds a
face is either a photo of no one or of someone whose face is too small, too
blurred or turned away to find: a person far off on a beach, a figure from
behind. The two deserve different sentences (`face.none` against
`face.too_small`). MediaPipe's pose detector, shipped in the same wheel, finds
people by the whole figure, head and shoulders included. On both dev sets it
found no one in the 13 animals, the cup, the face mask, the clip-art or the
lawn, and people in all but 6 of the photos of people (profiles, couples, a
crowd: photos whose faces the face detectors find). It costs about 11 ms, so
it runs only where its answer decides something: on that no-face path, and as
the `second_opinion` on a face whose human second look is unsure (there
looking a second time, with room around the photo, where the first look finds
no one).
"""

from __future__ import annotations

import numpy as np

from pipeline.detect import on_canvas
from pipeline.models import FaceModels
from pipeline.settings import PipelineSettings

# The detector's own floor: every person it found on the dev sets scored 0.51
# or more, and it found nothing at all in the photos of no one.
MIN_PERSON_SCORE = 0.5
# The canvas of the second opinion's second look, as a multiple of the photo's
# long side. A head-and-shoulders photo cut by the frame on three sides can
# leave the detector no figure to find (faces2 e2035 saved at quality 60); with
# room around it, as the face detector's canvas gives a close-up, it is found.
# Over every photo of both dev sets and its stability variants (all asked):
# the plain look finds someone in 276 of 282 copies of accepted photos, this
# one in 261, either of them in 281; neither finds anyone in the 18 copies of
# the animals.
PERSON_CANVAS = 1.5


def count_people(rgb: np.ndarray, models: FaceModels) -> int:
    """How many people the pose detector finds in `rgb` ((H, W, 3) uint8 RGB,
    any size: the model sees it at 224 x 224, letterboxed)."""
    result = models.person().process(np.ascontiguousarray(rgb))
    return sum(1 for d in result.detections or () if d.score[0] >= MIN_PERSON_SCORE)


def second_opinion(
    rgb: np.ndarray,
    quarter_turns: int,
    human: float,
    brightness: float,
    settings: PipelineSettings,
    models: FaceModels,
) -> int | None:
    """How many people are in `rgb` ((H, W, 3) uint8 RGB) turned upright by
    `quarter_turns` (as `np.rot90`, the turn the face detectors found the face
    at), asked only where the face's `human` second look (see
    `pipeline.likeness`) is unsure, from `min_human_score` up to below
    `sure_human_score`: a monkey or a dog can score there (in copies of the
    dev sets' photos, it found no one in the 4 animal copies that did, and
    the person in 3 of the 4 copies of accepted faces that did, see
    `PipelineSettings.sure_human_score`). Not asked (None) where the face is
    dim (`brightness` under `warn_brightness`): in the dark the detector
    misses people it finds in good light, and the face is warned about the
    light anyway. Where the photo as it is shows no one, it is looked at
    again on a canvas (see PERSON_CANVAS)."""
    unsure = settings.min_human_score <= human < settings.sure_human_score
    if not unsure or brightness < settings.warn_brightness:
        return None
    upright = np.ascontiguousarray(np.rot90(rgb, quarter_turns))
    found = count_people(upright, models)
    return found or count_people(on_canvas(upright, PERSON_CANVAS)[0], models)

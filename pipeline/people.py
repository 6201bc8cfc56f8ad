"""Is anyone in a photo where no face was found? BlazePose's person detector.

A photo in which neither face detector (nor the tiled second look) finds a
face is either a photo of no one or of someone whose face is too small, too
blurred or turned away to find: a person far off on a beach, a figure from
behind. The two deserve different sentences (`face.none` against
`face.too_small`). MediaPipe's pose detector, shipped in the same wheel, finds
people by the whole figure, head and shoulders included. On both dev sets it
found no one in the 13 animals, the cup, the face mask, the clip-art or the
lawn, and people in all but 6 of the photos of people (profiles, couples, a
crowd: photos whose faces the face detectors find). It costs about 11 ms, so
it runs only on that no-face path, never on a photo with a face.
"""

from __future__ import annotations

import numpy as np

from pipeline.models import FaceModels

# The detector's own floor: every person it found on the dev sets scored 0.51
# or more, and it found nothing at all in the photos of no one.
MIN_PERSON_SCORE = 0.5


def count_people(rgb: np.ndarray, models: FaceModels) -> int:
    """How many people the pose detector finds in `rgb` ((H, W, 3) uint8 RGB,
    any size: the model sees it at 224 x 224, letterboxed)."""
    result = models.person().process(np.ascontiguousarray(rgb))
    return sum(1 for d in result.detections or () if d.score[0] >= MIN_PERSON_SCORE)

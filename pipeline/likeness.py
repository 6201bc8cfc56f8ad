"""Is the face a human face? The detector's second look, at the aligned face alone.

The first detection pass sees the whole photo at 128-192 px, where a dog's or a
monkey's face is face-shaped enough to score 0.5-0.9, and the landmark model
then fits a human mesh to anything face-like. Shown the aligned 1:1 crop on its
own, reduced to the full-range detector's own scale and centred on a grey
canvas, the same model answers a different question, with the face large, level
and centred: is this the kind of face you were trained on? Every human face of
both dev sets (grayscale, masked, dim, a hand at the cheek) scores 0.75 or more
there; the animals that passed the first look are not found at all.

One look's score moves with the resampling, though: a dog's frontal close-up
(`faces2` e2061) scores 0 as photographed and 0.76 with the camera tilted 15
degrees, the crop levelled either way. So a look under SURE_ALONE is taken
again on the crop mirrored and the two are averaged (see there).
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.detect import on_canvas
from pipeline.models import FaceModels

# The crop is shown at this side on a canvas twice as large: the face (about
# half the FFHQ square) then spans about a quarter of what the detector sees,
# the middle of the full-range model's range.
LIKENESS_SIDE = 192

# A first look at least this high is the score on its own; under it the mean of
# the look and the look at the crop mirrored is. Two views halve the variance of
# what resampling does to the score, and a photo and its mirror image then score
# the same. Over both dev sets and their `eval --stability` variants (tilted 15
# and 30 degrees both ways, sepia, grain, mirrored, smaller, cropped; 551 copies
# of accepted faces, 41 of animals reaching the look), no animal scored over
# 0.76 on one look and none over 0.70 on the mean (the sure limit is 0.75); 29%
# of the accepted faces' copies look twice (one more detector run: 9 ms on one core).
SURE_ALONE = 0.85


def human_score(square: np.ndarray, models: FaceModels) -> float:
    """How sure the full-range detector is that the aligned 1:1 crop `square`
    ((S, S, 3) uint8 RGB, any S) holds a human face at its centre, 0-1: its look
    at the crop (`_look`), or where that is under SURE_ALONE, the mean of that
    look and its look at the crop mirrored."""
    first = _look(square, models)
    if first >= SURE_ALONE:
        return first
    return (first + _look(np.ascontiguousarray(square[:, ::-1]), models)) / 2


def _look(square: np.ndarray, models: FaceModels) -> float:
    """The full-range detector's best score for a face centred in `square`,
    shown at LIKENESS_SIDE px on a grey canvas twice that side; 0.0 when it
    finds none there (a detection whose centre lies outside the crop's middle
    half is another thing)."""
    side = LIKENESS_SIDE
    small = cv2.resize(square, (side, side), interpolation=cv2.INTER_AREA)
    canvas, _ = on_canvas(small, 2.0)
    result = models.full_range.process(canvas)
    best = 0.0
    for detection in result.detections or ():
        box = detection.location_data.relative_bounding_box
        centre_x, centre_y = box.xmin + box.width / 2, box.ymin + box.height / 2
        # The crop's middle half is the canvas's middle quarter: 3/8 to 5/8.
        if 0.375 <= centre_x <= 0.625 and 0.375 <= centre_y <= 0.625:
            best = max(best, float(detection.score[0]))
    return best

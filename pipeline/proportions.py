"""Does the face have a person's proportions, or a drawn character's?

Character design (anime, 3D animation, dolls) draws the "baby schema": large,
wide-set eyes over a small nose, a small mouth and a short, narrow lower face.
Face Mesh fits its human template to such a face all the same, but it must
stretch it, and the stretch shows in four proportions measured against the
distance between the eyes' centres (so they hold at any scale and roll):
the lower lip to the chin, cheek to cheek at eye level, the mouth's corners,
and the nose's wings. Each is compared with its mean and spread on real
faces, and `stylisation` is the mean of the four z-scores: a real face reads
about 0, a drawn character's far below. An oil painting or a statue of real
proportions is not what this measures (see docs/verdict.md, "Proportions").
"""

from __future__ import annotations

import numpy as np

from pipeline.landmarks import (
    CHIN,
    LEFT_CHEEK_EDGE,
    LEFT_EYE_CORNERS,
    MOUTH_LEFT_CORNER,
    MOUTH_RIGHT_CORNER,
    RIGHT_CHEEK_EDGE,
    RIGHT_EYE_CORNERS,
    Face,
)

LOWER_LIP_BOTTOM = 17
NOSE_WINGS = (129, 358)

# Mean and standard deviation of each distance over the eye-centre distance,
# on the 45 real faces the pipeline accepts in the two labelled dev sets
# (a baby to old age, both sexes, several ancestries, yaw up to 35
# degrees). They agree with anthropometric tables for adults: a mouth about
# 0.85 and a face about 2.2 eye distances wide.
HUMAN = {
    "chin": (0.526, 0.069),
    "face_width": (2.215, 0.076),
    "mouth_width": (0.885, 0.140),
    "nose_width": (0.676, 0.046),
}


def proportions(face: Face) -> dict[str, float]:
    """The four distances of HUMAN over the eye-centre distance, in the image
    plane (the mesh's depth is a guess at a drawn face; its x and y are fitted
    to the pixels)."""
    mesh = face.mesh[:, :2]
    eyes = [mesh[list(corners)].mean(axis=0) for corners in (RIGHT_EYE_CORNERS, LEFT_EYE_CORNERS)]
    unit = max(float(np.linalg.norm(eyes[0] - eyes[1])), 1e-6)

    def apart(a: int, b: int) -> float:
        return float(np.linalg.norm(mesh[a] - mesh[b])) / unit

    return {
        "chin": apart(LOWER_LIP_BOTTOM, CHIN),
        "face_width": apart(RIGHT_CHEEK_EDGE, LEFT_CHEEK_EDGE),
        "mouth_width": apart(MOUTH_RIGHT_CORNER, MOUTH_LEFT_CORNER),
        "nose_width": apart(*NOSE_WINGS),
    }


def stylisation(face: Face) -> float:
    """Mean z-score of `proportions` against HUMAN: about 0 for a real face,
    negative as the lower face, mouth and nose shrink against the eyes."""
    measured = proportions(face)
    return sum((measured[k] - mean) / sd for k, (mean, sd) in HUMAN.items()) / len(HUMAN)

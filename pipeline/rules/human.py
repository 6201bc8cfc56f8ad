"""A living human face, not an animal, a statue or a doll that is face-shaped enough
for the detector at the photo's scale (see `pipeline.likeness`); where that
second look is unsure, a person must be found in the photo as well (see
`pipeline.people.second_opinion`)."""

from pipeline.rules.base import Rule, at_least

HUMAN = Rule(
    name="human",
    code="face.not_human",
    value=lambda m, s: m.human,
    limits=at_least(lambda s: s.min_human_score),
    # A real face half hidden (a hand and a phone at the cheek, `faces` d020) can
    # score as low as an animal's, so the hint names that fix too.
    hint="Upload a photo of a real person's face, uncovered and facing the camera, not an "
    "animal, a statue, a doll or a mask.",
    message="We could not recognise a person's face in this photo: the face check scores "
    "it {value:.2f}, at least {limit} is needed; upload a clear, uncovered photo of a real "
    "person's face.",
    digits=3,
)

PERSON = Rule(
    name="person",
    code="face.not_human",
    value=lambda m, s: m.people if m.people is not None else 0,
    limits=at_least(lambda s: 1),
    hint="Upload a clear photo of a person facing the camera, not of an animal, a statue "
    "or a doll.",
    message="We could not tell that this is a person: the face check was unsure of the face "
    "and no person was found in the photo; upload a clear photo of a person.",
    digits=0,
    applies=lambda m, s: m.people is not None,
)

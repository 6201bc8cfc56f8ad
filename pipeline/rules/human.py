"""A living human face, not an animal, a statue or a doll that is face-shaped enough
for the detector at the photo's scale (see `pipeline.likeness`)."""

from pipeline.rules.base import Rule

HUMAN = Rule(
    name="human",
    code="face.not_human",
    bound="min",
    value=lambda m, s: m.human,
    reject=lambda s: s.min_human_score,
    hint="Upload a photo of a real person's face, not an animal, a statue, a doll or a mask.",
    message="The face does not look human: shown the aligned face alone, the face detector "
    "scores it {value:.2f}, at least {limit} is needed; upload a photo of a person.",
    digits=3,
)

"""A person's proportions, not a drawn character's (see `pipeline.proportions`)."""

from pipeline.rules.base import Rule, at_least

PROPORTIONS = Rule(
    name="proportions",
    code="image.not_a_photo",
    value=lambda m, s: m.proportions,
    limits=at_least(lambda s: s.min_face_proportions),
    hint="Upload a photograph of a real person, not a cartoon, a render or a doll.",
    message="The face has a drawn character's proportions, not a person's: large eyes over "
    "a small nose, mouth and chin (a score of {value:.1f}, where real faces score about 0 "
    "and at least {limit} is needed); upload a photograph of a person.",
    digits=2,
)

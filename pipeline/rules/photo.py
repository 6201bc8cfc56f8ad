"""A photograph, not a drawing: flat fill and hard lines on the face."""

from pipeline.rules.base import Rule

PHOTO = Rule(
    name="photo",
    code="image.not_a_photo",
    bound="max",
    value=lambda m, s: m.quality.drawn_share,
    reject=lambda s: s.max_drawn_share,
    hint="Upload a photograph, not a drawing or a render.",
    message="The image looks drawn or rendered: {value:.0%} of the face is flat fill or hard "
    "line, at most {limit:.0%} is allowed; upload a photograph.",
    digits=3,
)

"""Enough face: pixels for the avatar, and a share of the frame that makes it the subject."""

from pipeline.rules.base import Rule, at_least, at_most

FACE_RESOLUTION = Rule(
    name="face_resolution",
    code="face.too_small",
    value=lambda m, s: m.upscale,
    limits=at_most(lambda s: s.max_upscale),
    hint="Use a larger or less compressed photo, or one taken closer to the face.",
    message="The face has too few pixels: it would be enlarged {value}x to fill the "
    "{size} px avatar, at most {limit}x is allowed; use a larger photo.",
    digits=2,
)

FACE_SHARE = Rule(
    name="face_share",
    code="face.too_small",
    value=lambda m, s: m.height_share,
    limits=at_least(lambda s: s.min_face_height_ratio),
    hint="Use a portrait or head-and-shoulders photo, not a full-body shot.",
    message="The face is too small a part of the photo: {value:.1%} of its height, at "
    "least {limit:.1%} is needed; use a portrait or head-and-shoulders photo.",
    digits=3,
)

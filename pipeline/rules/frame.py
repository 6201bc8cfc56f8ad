"""The whole face inside the photo."""

from pipeline.rules.base import Rule, at_most

FACE_IN_FRAME = Rule(
    name="face_in_frame",
    code="face.cut_off",
    value=lambda m, s: m.outside_share,
    limits=at_most(lambda s: s.max_cut_off_ratio),
    hint="Use a photo in which the whole face is inside the frame.",
    message="The face is cut off: {value:.0%} of it is outside the frame, at most "
    "{limit:.0%} is allowed; use a photo with the whole face in it.",
    digits=3,
)

"""Light on the face: near black or blown out rejects, dim or bright warns."""

from pipeline.rules.base import Rule, at_least, at_most

DARKNESS = Rule(
    name="brightness",
    code="face.too_dark",
    value=lambda m, s: m.quality.brightness,
    limits=at_least(lambda s: s.min_brightness, warn=lambda s: s.warn_brightness),
    hint="Use a photo taken in good, even light.",
    message="The face is too dark: its lit parts reach a brightness of {value} of 255, at "
    "least {limit} is needed; use a photo taken in good light.",
)

HIGHLIGHTS = Rule(
    name="highlights",
    code="face.too_bright",
    value=lambda m, s: m.quality.blown_share,
    limits=at_most(lambda s: s.max_blown_share, warn=lambda s: s.warn_blown_share),
    hint="Use a photo without glare or flash washing out the face.",
    message="The face is overexposed: {value:.0%} of it is blown out (no detail or colour "
    "left), at most {limit:.0%} is allowed; use a photo in softer light.",
    digits=3,
)

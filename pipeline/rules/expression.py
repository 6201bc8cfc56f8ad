"""An expression the avatar can start from: eyes open, mouth closed or slightly open.
These only warn: the renderer animates both, but starts from what it is given."""

from pipeline.rules.base import Rule, at_least, at_most

EYES_OPEN = Rule(
    name="eyes_open",
    code="face.eyes_closed",
    value=lambda m, s: m.eyes_open,
    limits=at_least(warn=lambda s: s.min_eye_openness),
    hint="Use a photo in which both eyes are open and visible (no sunglasses).",
    message="The eyes look closed or hidden: the lid gap is {value:.0%} of the eye's "
    "width, at least {limit:.0%} is expected; use a photo with the eyes open.",
    digits=3,
)

MOUTH_CLOSED = Rule(
    name="mouth_closed",
    code="face.mouth_open",
    value=lambda m, s: m.mouth_open,
    limits=at_most(warn=lambda s: s.max_mouth_openness),
    hint="Use a photo with a relaxed, closed or gently smiling mouth.",
    message="The mouth is wide open: the lips' gap is {value:.0%} of the mouth's width, "
    "at most {limit:.0%} is expected; use a photo with a relaxed mouth.",
    digits=3,
)

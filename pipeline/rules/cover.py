"""A mouth the avatar can move and eyes it can show: not covered by a mask, a
scarf, a hand or dark glasses. Only warns: the renderer can still animate what
it is given."""

from pipeline.rules.base import Rule, at_least

MOUTH_VISIBLE = Rule(
    name="mouth_visible",
    code="face.mouth_covered",
    value=lambda m, s: m.mouth_detail,
    limits=at_least(warn=lambda s: s.min_mouth_detail),
    hint="Use a photo without a face mask or anything in front of the mouth.",
    message="The mouth looks covered (a mask, a scarf or a hand): the mouth area has "
    "{value:.0%} of the eyes' detail, at least {limit:.0%} is expected; use a photo with "
    "the mouth visible.",
    digits=3,
    applies=lambda m, s: m.quality.blown_share <= s.warn_blown_share,
)

EYES_VISIBLE = Rule(
    name="eyes_visible",
    code="face.eyes_covered",
    value=lambda m, s: m.under_eye_light,
    limits=at_least(warn=lambda s: s.min_under_eye_light),
    hint="Use a photo without sunglasses or anything in front of the eyes.",
    message="The eyes look covered (dark glasses): the skin under them has {value:.0%} of the "
    "cheeks' light, at least {limit:.0%} is expected; use a photo with the eyes visible.",
    digits=3,
)

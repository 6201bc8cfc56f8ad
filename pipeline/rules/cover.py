"""A mouth the avatar can move: not covered by a mask, a scarf or a hand.
Only warns: the renderer can still animate what it is given."""

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

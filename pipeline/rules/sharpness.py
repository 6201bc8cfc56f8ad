"""A sharp face: heavy blur rejects, some blur warns."""

from pipeline.rules.base import Rule, at_least

SHARPNESS = Rule(
    name="sharpness",
    code="face.too_blurry",
    value=lambda m, s: m.quality.sharpness,
    limits=at_least(lambda s: s.min_sharpness, warn=lambda s: s.warn_sharpness),
    hint="Use a sharp photo: hold the camera still, in good light.",
    message="The face is blurry: sharpness {value}, at least {limit} is needed; use a sharp photo.",
)

"""A file compressed so hard that the face is blocks (JPEG, from its own tables)."""

from pipeline.rules.base import Rule, at_least

COMPRESSION = Rule(
    name="compression",
    code="image.too_compressed",
    value=lambda m, s: m.jpeg_quality,
    limits=at_least(lambda s: s.min_jpeg_quality, warn=lambda s: s.warn_jpeg_quality),
    hint="Send the original photo as the camera saved it, not a compressed copy.",
    message="The photo is compressed too hard: saved at JPEG quality {value}, at least "
    "{limit} is needed; send the original photo.",
    digits=0,
)

"""A photograph, not a drawing: flat fill and hard lines on the face.

Not judged on a JPEG compressed hard enough for its 8x8 blocks to show (saved
below `warn_jpeg_quality`): the measure counts each flat block as flat fill,
so it climbs with the compression, not with the drawing: the 47 photos the dev
sets label accept read at most 0.27 (limit 0.35) saved at quality 25, and 6 of
them were called drawn at quality 10. Such a file is warned about its compression
instead; the dev sets' drawings and renders are all saved at quality 75 or more.
"""

from pipeline.rules.base import Rule, at_most

PHOTO = Rule(
    name="photo",
    code="image.not_a_photo",
    value=lambda m, s: m.quality.drawn_share,
    limits=at_most(lambda s: s.max_drawn_share),
    hint="Upload a photograph, not a drawing or a render.",
    message="The image looks drawn or rendered: {value:.0%} of the face is flat fill or hard "
    "line, at most {limit:.0%} is allowed; upload a photograph.",
    digits=3,
    applies=lambda m, s: m.jpeg_quality >= s.warn_jpeg_quality,
)

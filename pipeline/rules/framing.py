"""Room around the head: how much of each rendition the fill must invent, and
whether the head fits under the top edge of the head-and-shoulders framings
(placed by `pipeline.framing`, which zooms and slides before it fills).

The default 4:3 is the image the renderer animates, so only its fill rejects;
every rendition warns. The headroom only warns: the renderer animates a head
touching the edge, it just looks cropped.
"""

from pipeline.aspect import DEFAULT_ASPECT_RATIO, AspectRatio
from pipeline.rules.base import Rule, at_least, at_most

FILL_HINT = "Use a photo with more room around the head and shoulders."
FILL_MESSAGE = (
    "The photo is cropped too tightly for the {ratio} avatar: {{value:.0%}} of it would be "
    "invented around the photo, at most {{limit:.0%}} is {allowed}; use a photo with more "
    "room around the head and shoulders."
)
# The head's top (see `Face.head_top`) may come up to the frame's top edge, not past it.
TOP_EDGE = 0.0


def _fill_rule(ratio: AspectRatio) -> Rule:
    """The fill check of the rendition `ratio`: named fill_4x3, ..."""
    default = ratio == DEFAULT_ASPECT_RATIO
    return Rule(
        name=f"fill_{ratio.slug}",
        code="face.framing",
        value=lambda m, s: m.fills[ratio],
        limits=at_most(
            lambda s: s.max_fill_ratio if default else None, warn=lambda s: s.warn_fill_ratio
        ),
        hint=FILL_HINT,
        message=FILL_MESSAGE.format(ratio=ratio, allowed="allowed" if default else "expected"),
        digits=3,
    )


FILL_4X3 = _fill_rule(AspectRatio.LANDSCAPE)
FILL_3X4 = _fill_rule(AspectRatio.PORTRAIT)
FILL_1X1 = _fill_rule(AspectRatio.SQUARE)

# The head is cut where the framing comes in close rather than invent what the photo
# lacks: at its top edge, but as often (20 of the 25 accepted dev photos warned) at
# its sides or below the shoulders, with room above the head. So the advice is the
# fill's, not "room above the head".
HEADROOM = Rule(
    name="headroom",
    code="face.framing",
    value=lambda m, s: m.headroom,
    limits=at_least(warn=lambda s: TOP_EDGE),
    hint=FILL_HINT,
    message="The top of the head would be cut off in the 4:3 or 3:4 avatar (it reaches "
    "{magnitude:.0%} of the frame height past the top edge), because the photo is "
    "cropped close around the head; use a photo with more room around the head and "
    "shoulders.",
    digits=3,
)

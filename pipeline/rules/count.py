"""One person: other faces of comparable size make the photo a group."""

from pipeline.rules.base import Rule, at_most

FACE_COUNT = Rule(
    name="face_count",
    code="face.multiple",
    # A second face counts when it is at least `max_faces_ratio` of the main
    # face's length: a bystander far behind is not a second subject.
    value=lambda m, s: 1 + sum(1 for share in m.others if share >= s.max_faces_ratio),
    limits=at_most(lambda s: 1),
    hint="Crop the photo to one person or use a solo portrait.",
    message="The image shows {value} faces of similar size; upload a photo of one person.",
    digits=0,
)

"""Facing the camera: how far the head is turned (yaw) and tilted (pitch)."""

from pipeline.rules.base import Rule, at_most

YAW = Rule(
    name="yaw",
    code="face.not_frontal",
    value=lambda m, s: m.yaw,
    limits=at_most(lambda s: s.max_yaw_degrees, symmetric=True),
    hint="Use a photo in which the person looks straight at the camera.",
    message="The head is turned {magnitude:.0f} degrees to the side, at most {limit:.0f} "
    "degrees is allowed; use a photo facing the camera.",
)

PITCH = Rule(
    name="pitch",
    code="face.not_frontal",
    value=lambda m, s: m.pitch,
    limits=at_most(lambda s: s.max_pitch_degrees, symmetric=True),
    hint="Use a photo in which the head is level, neither looking up nor down.",
    message="The head is tilted {magnitude:.0f} degrees up or down, at most {limit:.0f} "
    "degrees is allowed; use a photo with the head level.",
)

"""The face rules: limits, verdict order, warnings and messages (pure functions,
synthetic measures; the same rules on real photos are in test_prepare.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from pipeline import PipelineSettings
from pipeline.landmarks import CHIN, FOREHEAD, LEFT_CHEEK_EDGE, RIGHT_CHEEK_EDGE, Face
from pipeline.quality import FaceQuality
from pipeline.rules import Measures, checks, measure, message, no_face_check, verdict

SETTINGS = PipelineSettings()
GOOD = Measures(
    others=(),
    upscale=1.0,
    height_share=0.4,
    outside_share=0.0,
    yaw=0.0,
    pitch=0.0,
    quality=FaceQuality(sharpness=400.0, brightness=140.0, drawn_share=0.1),
)
ORDER = [
    "face_count",
    "photo",
    "yaw",
    "pitch",
    "face_in_frame",
    "face_resolution",
    "face_share",
    "sharpness",
    "brightness",
]


def with_quality(**changes: float) -> Measures:
    return replace(GOOD, quality=replace(GOOD.quality, **changes))


def by_name(measures: Measures, settings: PipelineSettings = SETTINGS) -> dict[str, Any]:
    return {c.name: c for c in checks(measures, settings)}


def test_a_good_face_passes_every_check_in_order() -> None:
    result = checks(GOOD, SETTINGS)

    assert [c.name for c in result] == ORDER
    assert all(c.passed for c in result)
    assert verdict(result) is None
    for check in result:
        assert check.value is not None and check.limit is not None
        assert check.hint


S = SETTINGS
FAILURES = [
    (replace(GOOD, others=(S.max_faces_ratio,)), "face_count", "face.multiple"),
    (with_quality(drawn_share=S.max_drawn_share + 0.01), "photo", "image.not_a_photo"),
    (replace(GOOD, yaw=S.max_yaw_degrees + 1), "yaw", "face.not_frontal"),
    (replace(GOOD, yaw=-S.max_yaw_degrees - 1), "yaw", "face.not_frontal"),
    (replace(GOOD, pitch=-S.max_pitch_degrees - 1), "pitch", "face.not_frontal"),
    (replace(GOOD, outside_share=S.max_cut_off_ratio + 0.01), "face_in_frame", "face.cut_off"),
    (replace(GOOD, upscale=S.max_upscale + 0.01), "face_resolution", "face.too_small"),
    (replace(GOOD, height_share=S.min_face_height_ratio - 0.01), "face_share", "face.too_small"),
]


@pytest.mark.parametrize(("measures", "name", "code"), FAILURES)
def test_each_limit_rejects_with_its_code(measures: Measures, name: str, code: str) -> None:
    result = checks(measures, SETTINGS)

    failed = verdict(result)
    assert failed is not None
    assert (failed.name, failed.code) == (name, code)
    assert [c.name for c in result if not c.passed] == [name]


@pytest.mark.parametrize(
    "measures",
    [
        replace(GOOD, others=(S.max_faces_ratio - 0.01,)),
        with_quality(drawn_share=S.max_drawn_share),
        replace(GOOD, yaw=S.max_yaw_degrees),
        replace(GOOD, pitch=S.max_pitch_degrees),
        replace(GOOD, outside_share=S.max_cut_off_ratio),
        replace(GOOD, upscale=S.max_upscale),
        replace(GOOD, height_share=S.min_face_height_ratio),
        with_quality(sharpness=S.min_sharpness, brightness=S.min_brightness),
    ],
)
def test_a_value_at_its_limit_passes(measures: Measures) -> None:
    assert all(c.passed for c in checks(measures, SETTINGS))


def test_small_bystanders_are_not_counted_comparable_faces_are() -> None:
    assert by_name(replace(GOOD, others=(0.3, 0.44)))["face_count"].value == 1
    counted = by_name(replace(GOOD, others=(0.9, 0.5, 0.2)))["face_count"]
    assert (counted.passed, counted.value, counted.limit) == (False, 3, 1)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"others": (1.0,), "yaw": 80.0, "upscale": 9.0}, "face.multiple"),
        ({"yaw": 80.0, "outside_share": 0.5, "upscale": 9.0}, "face.not_frontal"),
        ({"outside_share": 0.5, "upscale": 9.0, "height_share": 0.01}, "face.cut_off"),
        ({"upscale": 9.0, "height_share": 0.01}, "face.too_small"),
    ],
)
def test_the_first_failed_check_decides_the_code(changes: dict[str, Any], code: str) -> None:
    result = checks(replace(GOOD, **changes), SETTINGS)

    failed = verdict(result)
    assert failed is not None and failed.code == code


def test_blur_and_darkness_only_warn_by_default() -> None:
    result = checks(with_quality(sharpness=1.0, brightness=5.0), SETTINGS)

    assert verdict(result) is None
    warned = [c for c in result if not c.passed]
    assert [c.name for c in warned] == ["sharpness", "brightness"]
    assert all(c.code == "" for c in warned)


def test_blur_and_darkness_reject_when_settings_say_so() -> None:
    strict = SETTINGS.model_copy(update={"reject_blurry": True, "reject_dark": True})

    blurry = verdict(checks(with_quality(sharpness=1.0, brightness=5.0), strict))
    dark = verdict(checks(with_quality(brightness=5.0), strict))

    assert blurry is not None and blurry.code == "face.too_blurry"
    assert dark is not None and dark.code == "face.too_dark"


def test_messages_name_what_was_measured_and_what_is_allowed() -> None:
    many = by_name(replace(GOOD, others=(1.0,)))["face_count"]
    assert message(many, SETTINGS) == (
        "The image shows 2 faces of similar size; upload a photo of one person."
    )
    turned = by_name(replace(GOOD, yaw=-62.3))["yaw"]
    assert "62 degrees" in message(turned, SETTINGS)
    assert "45 degrees" in message(turned, SETTINGS)
    small = by_name(replace(GOOD, upscale=4.0))["face_resolution"]
    assert "4.0x" in message(small, SETTINGS) and "512 px" in message(small, SETTINGS)
    share = by_name(replace(GOOD, height_share=0.05))["face_share"]
    assert "5%" in message(share, SETTINGS) and "12%" in message(share, SETTINGS)
    for check in checks(replace(GOOD, others=(1.0,), yaw=90.0, pitch=90.0), SETTINGS):
        assert message(check, SETTINGS)
    none = no_face_check()
    assert (none.code, none.passed, none.value) == ("face.none", False, 0)
    assert "No face" in message(none, SETTINGS)


def synthetic_face(
    centre: tuple[float, float], length: float, roll_degrees: float = 0.0, depth_turn: float = 0.0
) -> Face:
    """A mesh whose forehead, chin and cheek edges make an upright face of
    `length` px forehead to chin, turned by `roll_degrees` clockwise in the
    image; every other point sits on the face's outline box."""
    half = length / 2
    local = np.zeros((468, 3))
    corners = [(-0.4, -0.5), (0.4, -0.5), (0.4, 0.5), (-0.4, 0.5)]
    for i in range(468):
        local[i, :2] = np.array(corners[i % 4]) * length
    local[FOREHEAD] = (0, -half, 0)
    local[CHIN] = (0, half, 0)
    local[RIGHT_CHEEK_EDGE] = (-0.4 * length, 0, -depth_turn)
    local[LEFT_CHEEK_EDGE] = (0.4 * length, 0, depth_turn)
    a = np.radians(roll_degrees)
    turn = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    mesh = local @ turn.T + np.array([centre[0], centre[1], 0.0])
    return Face(mesh=mesh, score=0.9)


def test_measure_height_share_follows_the_face_axis() -> None:
    upright = measure(synthetic_face((500, 300), 120), [], 1000, 600, 1.0, GOOD.quality)
    lying = measure(
        synthetic_face((500, 300), 120, roll_degrees=90), [], 1000, 600, 1.0, GOOD.quality
    )

    assert upright.height_share == pytest.approx(120 / 600)
    # Turned 90 degrees, the face's up-down axis runs along the image's width.
    assert lying.height_share == pytest.approx(120 / 1000)


def test_measure_outside_share() -> None:
    # Centred on the left edge: the left half of the face's points lie outside.
    m = measure(synthetic_face((0, 300), 200), [0.5, 0.3], 1000, 600, 2.5, GOOD.quality)

    assert m.outside_share == pytest.approx(0.5, abs=0.01)
    assert m.others == (0.5, 0.3)
    assert m.upscale == 2.5


def test_measure_reads_yaw_from_cheek_depth() -> None:
    # The left cheek (image right) 40 px further away than the right cheek,
    # on a face 160 px wide: the face turns towards the image's right.
    turned = measure(
        synthetic_face((500, 300), 200, depth_turn=20), [], 1000, 600, 1.0, GOOD.quality
    )

    assert turned.yaw == pytest.approx(np.degrees(np.arctan2(40, 160)), abs=0.5)

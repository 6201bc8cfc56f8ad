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
from pipeline.rules import (
    RULES,
    Measures,
    checks,
    measure,
    no_face_check,
    small_faces_check,
    verdict,
)

SETTINGS = PipelineSettings()
GOOD = Measures(
    others=(),
    upscale=1.0,
    height_share=0.4,
    outside_share=0.0,
    yaw=0.0,
    pitch=0.0,
    quality=FaceQuality(sharpness=400.0, brightness=140.0, drawn_share=0.1, blown_share=0.0),
    proportions=0.0,
    human=0.9,
    jpeg_quality=92,
    eyes_open=0.3,
    mouth_open=0.05,
    mouth_detail=0.7,
    under_eye_light=0.95,
    fills={"1:1": 0.0, "4:3": 0.0, "3:4": 0.0},
    headroom=0.1,
)
ORDER = [
    "face_count",
    "compression",
    "photo",
    "yaw",
    "pitch",
    "face_in_frame",
    "face_resolution",
    "face_share",
    "proportions",
    "brightness",
    "highlights",
    "sharpness",
    "human",
    "fill_4x3",
    "fill_3x4",
    "fill_1x1",
    "headroom",
    "eyes_open",
    "mouth_closed",
    "mouth_visible",
    "eyes_visible",
]


def test_the_person_check_runs_only_where_the_person_detector_was_asked() -> None:
    assert "person" not in by_name(GOOD)
    found = by_name(replace(GOOD, human=0.6, people=1))
    assert found["person"].passed and found["person"].value == 1
    names = [c.name for c in checks(replace(GOOD, human=0.6, people=0), SETTINGS)]
    assert names.index("person") == names.index("human") + 1
    alone = verdict(checks(replace(GOOD, human=0.6, people=0), SETTINGS))
    assert alone is not None and alone.name == "person" and alone.code == "face.not_human"
    assert alone.severity == "reject" and alone.limit == 1


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
    (replace(GOOD, proportions=S.min_face_proportions - 0.1), "proportions", "image.not_a_photo"),
    (replace(GOOD, human=S.min_human_score - 0.01), "human", "face.not_human"),
    (with_quality(sharpness=S.min_sharpness - 0.1), "sharpness", "face.too_blurry"),
    (with_quality(brightness=S.min_brightness - 0.1), "brightness", "face.too_dark"),
    (with_quality(blown_share=S.max_blown_share + 0.01), "highlights", "face.too_bright"),
    (replace(GOOD, jpeg_quality=S.min_jpeg_quality - 1), "compression", "image.too_compressed"),
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
        replace(GOOD, proportions=S.min_face_proportions),
        replace(GOOD, human=S.min_human_score),
        with_quality(sharpness=S.warn_sharpness, brightness=S.warn_brightness),
        with_quality(blown_share=S.warn_blown_share),
        replace(GOOD, eyes_open=S.min_eye_openness, mouth_open=S.max_mouth_openness),
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
        ({"upscale": 9.0, "height_share": 0.01, "human": 0.0}, "face.too_small"),
    ],
)
def test_the_first_failed_check_decides_the_code(changes: dict[str, Any], code: str) -> None:
    result = checks(replace(GOOD, **changes), SETTINGS)

    failed = verdict(result)
    assert failed is not None and failed.code == code


def test_between_the_two_limits_quality_only_warns() -> None:
    soft = (S.min_sharpness + S.warn_sharpness) / 2
    dim = (S.min_brightness + S.warn_brightness) / 2
    glare = (S.warn_blown_share + S.max_blown_share) / 2
    result = checks(with_quality(sharpness=soft, brightness=dim, blown_share=glare), SETTINGS)

    assert verdict(result) is None
    warned = [c for c in result if not c.passed]
    assert [c.name for c in warned] == ["brightness", "highlights", "sharpness"]
    assert [c.code for c in warned] == ["face.too_dark", "face.too_bright", "face.too_blurry"]
    assert {c.severity for c in warned} == {"warn"}
    assert [c.limit for c in warned] == [S.warn_brightness, S.warn_blown_share, S.warn_sharpness]


def test_closed_eyes_and_an_open_mouth_only_warn() -> None:
    result = checks(replace(GOOD, eyes_open=0.02, mouth_open=0.6), SETTINGS)

    assert verdict(result) is None
    warned = {c.code: c for c in result if not c.passed}
    assert set(warned) == {"face.eyes_closed", "face.mouth_open"}
    assert "eyes look closed" in warned["face.eyes_closed"].message


def test_a_covered_mouth_only_warns_and_is_not_judged_on_a_blown_out_face() -> None:
    masked = replace(GOOD, mouth_detail=0.1)
    result = checks(masked, SETTINGS)

    assert verdict(result) is None
    (warned,) = (c for c in result if not c.passed)
    assert (warned.code, warned.severity, warned.limit) == (
        "face.mouth_covered",
        "warn",
        S.min_mouth_detail,
    )
    assert "mouth looks covered" in warned.message
    glare = replace(masked.quality, blown_share=S.warn_blown_share + 0.05)
    assert "mouth_visible" not in by_name(replace(masked, quality=glare))


def test_dark_glasses_only_warn() -> None:
    result = checks(replace(GOOD, under_eye_light=0.3), SETTINGS)

    assert verdict(result) is None
    (warned,) = (c for c in result if not c.passed)
    assert (warned.code, warned.severity, warned.limit) == (
        "face.eyes_covered",
        "warn",
        S.min_under_eye_light,
    )
    assert "eyes look covered" in warned.message


def framed(fills: dict[str, float], headroom: float = 0.1) -> dict[str, Any]:
    return by_name(replace(GOOD, fills={**GOOD.fills, **fills}, headroom=headroom))


def test_fill_rejects_only_the_default_4x3_by_default_and_only_warns_when_unset() -> None:
    assert S.max_fill_ratio == 0.25
    most = framed({"4:3": 0.6, "3:4": 0.6, "1:1": 0.6})
    assert [most[n].severity for n in ("fill_4x3", "fill_3x4", "fill_1x1")] == [
        "reject",
        "warn",
        "warn",
    ]
    lenient = PipelineSettings(max_fill_ratio=None)
    assert verdict(checks(replace(GOOD, fills={**GOOD.fills, "4:3": 0.6}), lenient)) is None


def test_fill_warns_for_any_rendition_and_rejects_only_the_default_one_when_set() -> None:
    strict = PipelineSettings(max_fill_ratio=0.25)
    between = (S.warn_fill_ratio + 0.25) / 2
    over = 0.25 + 0.1

    def framed(fills: dict[str, float]) -> dict[str, Any]:
        return by_name(replace(GOOD, fills={**GOOD.fills, **fills}), strict)

    at_limits = framed({"4:3": 0.25, "3:4": S.warn_fill_ratio})
    assert at_limits["fill_4x3"].severity == "warn" and at_limits["fill_3x4"].passed

    warned = framed({"4:3": between, "3:4": between, "1:1": between})
    assert [warned[n].severity for n in ("fill_4x3", "fill_3x4", "fill_1x1")] == ["warn"] * 3
    assert {warned[n].code for n in ("fill_4x3", "fill_3x4", "fill_1x1")} == {"face.framing"}

    # Only the 4:3, the framing a session animates by default, rejects.
    assert framed({"3:4": over, "1:1": over})["fill_3x4"].severity == "warn"
    rejected = framed({"4:3": over})["fill_4x3"]
    assert (rejected.severity, rejected.limit, rejected.value) == ("reject", 0.25, round(over, 3))
    assert rejected.hint == "Use a photo with more room around the head and shoulders."
    assert "4:3" in rejected.message and f"{over:.0%}" in rejected.message


def test_a_head_past_the_top_edge_only_warns() -> None:
    touching = framed({}, headroom=0.0)["headroom"]
    assert touching.passed
    cut = framed({}, headroom=-0.05)["headroom"]
    assert (cut.severity, cut.code, cut.limit) == ("warn", "face.framing", 0.0)
    assert (
        "5%" in cut.message
        and cut.hint == "Use a photo with more room around the head and shoulders."
    )


def test_the_face_itself_decides_before_the_room_around_it() -> None:
    result = checks(
        replace(GOOD, fills={**GOOD.fills, "4:3": 0.9}, upscale=S.max_upscale + 1), SETTINGS
    )
    failed = verdict(result)
    assert failed is not None and failed.code == "face.too_small"


def test_every_rule_says_its_direction_and_code() -> None:
    for check in checks(GOOD, SETTINGS):
        assert check.bound in ("min", "max")
        assert check.code and check.severity == ""
        assert check.message == ""
    assert len({rule.name for rule in RULES}) == len(RULES)


def test_messages_name_what_was_measured_and_what_is_allowed() -> None:
    many = by_name(replace(GOOD, others=(1.0,)))["face_count"]
    assert many.message == (
        "The image shows 2 faces of similar size; upload a photo of one person."
    )
    turned = by_name(replace(GOOD, yaw=-62.3))["yaw"]
    assert "62 degrees" in turned.message
    assert f"{S.max_yaw_degrees:.0f} degrees" in turned.message
    small = by_name(replace(GOOD, upscale=4.0))["face_resolution"]
    assert "4.0x" in small.message and "512 px" in small.message
    share = by_name(replace(GOOD, height_share=0.05))["face_share"]
    assert "5.0%" in share.message and f"{S.min_face_height_ratio:.1%}" in share.message
    for check in checks(replace(GOOD, others=(1.0,), yaw=90.0, pitch=90.0), SETTINGS):
        assert bool(check.message) == (not check.passed)
    none = no_face_check()
    assert (none.code, none.passed, none.value) == ("face.none", False, 0)
    assert "No face" in none.message


def test_what_the_second_look_finds_names_the_reason() -> None:
    # Several small faces: a group; one: a person too far away; none: no one,
    # unless the person detector saw someone whose face could not be found.
    sharp = 500.0  # a photo in focus (see PipelineSettings.min_photo_sharpness)
    assert small_faces_check([0.03, 0.03], 0, sharp, 92, S).code == "face.multiple"
    one = small_faces_check([0.03], 0, sharp, 92, S)
    assert (one.code, one.name, one.value) == ("face.too_small", "face_share", 0.03)
    assert small_faces_check([], 0, sharp, 92, S).code == "face.none"
    unseen = small_faces_check([], 2, sharp, 92, S)
    assert (unseen.code, unseen.severity, unseen.value) == ("face.too_small", "reject", 0)
    assert "There is a person in the photo" in unseen.message


def test_a_photo_too_blurred_to_find_a_face_in_is_told_so() -> None:
    blurred = S.min_photo_sharpness - 0.5
    for people in (0, 1):
        check = small_faces_check([], people, blurred, 92, S)
        assert (check.code, check.name, check.severity) == (
            "face.too_blurry",
            "photo_sharpness",
            "reject",
        )
        assert (check.value, check.limit, check.bound) == (blurred, S.min_photo_sharpness, "min")
        assert "too blurred to find a face" in check.message
    # Faces the tiled look found are counted, however soft the photo.
    assert small_faces_check([0.03, 0.03], 0, blurred, 92, S).code == "face.multiple"
    assert small_faces_check([], 0, S.min_photo_sharpness, 92, S).code == "face.none"


def test_a_file_compressed_to_blocks_is_told_so_whether_or_not_a_face_was_found() -> None:
    blocks = S.min_jpeg_quality - 1
    for heights, people in (([], 0), ([], 1), ([0.03], 0)):
        check = small_faces_check(heights, people, 500.0, blocks, S)
        assert (check.code, check.name, check.value) == (
            "image.too_compressed",
            "compression",
            blocks,
        )
        assert check.severity == "reject" and "compressed too hard" in check.message
    # Several faces are still the first reason, as in RULES.
    assert small_faces_check([0.03, 0.03], 0, 500.0, blocks, S).code == "face.multiple"
    assert small_faces_check([], 0, 500.0, S.min_jpeg_quality, S).code == "face.none"


def measured(face: Face, others: list[float], width: int, height: int, upscale: float) -> Measures:
    """`measure` with the good quality, a human face, a good JPEG and room around it."""
    return measure(
        face,
        others,
        (width, height),
        upscale,
        GOOD.quality,
        0.9,
        92,
        GOOD.mouth_detail,
        GOOD.under_eye_light,
        GOOD.fills,
        GOOD.headroom,
    )


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
    upright = measured(synthetic_face((500, 300), 120), [], 1000, 600, 1.0)
    lying = measured(synthetic_face((500, 300), 120, roll_degrees=90), [], 1000, 600, 1.0)

    assert upright.height_share == pytest.approx(120 / 600)
    # Turned 90 degrees, the face's up-down axis runs along the image's width.
    assert lying.height_share == pytest.approx(120 / 1000)


def test_measure_outside_share() -> None:
    # Centred on the left edge: the left half of the face's points lie outside.
    m = measured(synthetic_face((0, 300), 200), [0.5, 0.3], 1000, 600, 2.5)

    assert m.outside_share == pytest.approx(0.5, abs=0.01)
    assert m.others == (0.5, 0.3)
    assert m.upscale == 2.5


def test_measure_reads_yaw_from_cheek_depth() -> None:
    # The left cheek (image right) 40 px further away than the right cheek,
    # on a face 160 px wide: the face turns towards the image's right.
    turned = measured(synthetic_face((500, 300), 200, depth_turn=20), [], 1000, 600, 1.0)

    assert turned.yaw == pytest.approx(np.degrees(np.arctan2(40, 160)), abs=0.5)


@pytest.mark.parametrize("degrees", [10.0, 30.0, 50.0, 70.0, -60.0])
def test_yaw_follows_the_detector_nose_past_where_the_mesh_flattens(degrees: float) -> None:
    # Eyes 60 px apart; the nose tip half an eye distance in front of them
    # shows tan(yaw) * 30 px off their midpoint. The synthetic mesh reads 0.
    shift = np.tan(np.radians(degrees)) * 30
    keypoints = ((470.0, 280.0), (530.0, 280.0), (500.0 + shift, 310.0))
    face = replace(synthetic_face((500, 300), 200), keypoints=keypoints)

    assert face.nose_yaw() == pytest.approx((degrees, 60.0), abs=0.01)
    assert face.scaled(0.5, 0.5).nose_yaw() == pytest.approx((degrees, 30.0), abs=0.01)
    m = measured(face, [], 600, 600, 1.0)
    assert m.yaw == pytest.approx(degrees, abs=0.01)


def test_yaw_keeps_the_mesh_reading_when_the_nose_reads_less() -> None:
    face = replace(
        synthetic_face((500, 300), 200, depth_turn=20),
        keypoints=((470.0, 280.0), (530.0, 280.0), (501.0, 310.0)),
    )

    m = measured(face, [], 600, 600, 1.0)
    assert m.yaw == pytest.approx(np.degrees(np.arctan2(40, 160)), abs=0.5)


def test_a_small_face_nose_does_not_count() -> None:
    # The same 200 px face in a 6000 px photo: 4 px long for the detector.
    keypoints = ((470.0, 280.0), (530.0, 280.0), (530.0, 310.0))
    face = replace(synthetic_face((500, 300), 200), keypoints=keypoints)

    assert measured(face, [], 6000, 4000, 1.0).yaw == pytest.approx(0.0)
    assert measured(face, [], 600, 400, 1.0).yaw == pytest.approx(45.0)


def test_the_photo_check_is_not_read_where_jpeg_blocks_show() -> None:
    # Flat 8x8 blocks read as flat fill: below the quality at which the
    # compression is warned about, the drawn share measures the blocks.
    drawn = with_quality(drawn_share=0.5)
    blocky = replace(drawn, jpeg_quality=SETTINGS.warn_jpeg_quality - 1)
    found = by_name(blocky)

    assert "photo" not in found
    assert found["compression"].severity == "warn"
    assert verdict(checks(blocky, SETTINGS)) is None
    at_limit = verdict(checks(replace(drawn, jpeg_quality=SETTINGS.warn_jpeg_quality), SETTINGS))
    assert at_limit is not None and at_limit.code == "image.not_a_photo"

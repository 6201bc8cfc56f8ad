"""`avatar-prep eval`: the scoring rules, the command line, and the accuracy
target on the labelled dev set (../shared/faces, when it is there)."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cli.loo import choose_limit, leave_one_out, refitted
from cli.main import main
from cli.scoring import Label, Outcome, format_summary, predicted_label, read_labels, summarise
from cli.sheet import TEXT_LINE, THUMB_HEIGHT
from pipeline.settings import PipelineSettings
from sample_images import SAMPLES

FACES = Path(__file__).resolve().parents[3] / "shared" / "faces"
FACES2 = Path(__file__).resolve().parents[3] / "shared" / "faces2"


def outcome(expected: str, predicted: str, flagged: bool = False) -> Outcome:
    return Outcome(
        file=f"{expected}-{predicted}.jpg",
        expected=expected,
        predicted=predicted,
        code="",
        message="",
        flagged=flagged,
    )


@pytest.mark.parametrize(
    ("code", "label"),
    [
        ("", "accept"),
        ("face.none", "reject:no_face"),
        ("face.multiple", "reject:multiple_faces"),
        ("face.too_small", "reject:face_too_small"),
        ("face.not_frontal", "reject:not_frontal"),
        ("image.not_a_photo", "reject:not_a_photo"),
        ("face.cut_off", "reject:face.cut_off"),
        ("image.unreadable", "reject:image.unreadable"),
    ],
)
def test_codes_in_the_labels_vocabulary(code: str, label: str) -> None:
    assert predicted_label(code) == label


def test_reason_rules_of_the_readme() -> None:
    assert outcome("reject:non_human", "reject:no_face").reason_right
    assert not outcome("reject:non_human", "reject:face_too_small").reason_right
    assert outcome("reject:not_a_photo", "reject:multiple_faces").reason_right
    assert not outcome("reject:multiple_faces", "reject:face_too_small").reason_right
    assert outcome("reject:multiple_faces", "reject:face_too_small").verdict_right
    assert not outcome("reject:not_a_photo", "accept").reason_right
    assert not outcome("accept", "reject:no_face").verdict_right
    assert outcome("accept", "accept").reason_right


def test_summary_counts_clear_and_flagged_rows_apart() -> None:
    outcomes = [
        outcome("accept", "accept"),
        outcome("accept", "reject:face_too_small"),
        outcome("reject:multiple_faces", "accept"),
        outcome("reject:no_face", "reject:no_face"),
        outcome("reject:non_human", "reject:no_face", flagged=True),
        outcome("accept", "reject:not_frontal", flagged=True),
    ]

    summary = summarise(outcomes)

    assert summary["counts"] == {"all": 6, "clear": 4, "flagged": 2}
    assert summary["accuracy"] == {"all": 3 / 6, "clear": 2 / 4, "flagged": 1 / 2}
    assert summary["reason_agreement"] == 1.0
    assert summary["multiple_faces_accepted"] == 1
    assert len(summary["disagreements"]) == 3
    assert {"expected": "accept", "predicted": "accept", "count": 1} in summary["confusion"]
    text = format_summary(summary)
    assert "50.0% of 4 clear rows" in text
    assert "reject:multiple_faces rows accepted: 1" in text
    assert "expected reject:multiple_faces, got accept" in text


def test_read_labels_needs_file_and_expected(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text(
        "file,expected,notes\na.jpg,accept,AMBIGUOUS: who knows\nb.png,reject:no_face,\n"
    )
    assert read_labels(good) == [
        Label("a.jpg", "accept", "AMBIGUOUS: who knows"),
        Label("b.png", "reject:no_face", ""),
    ]
    assert read_labels(good)[0].flagged

    no_column = tmp_path / "bad.csv"
    no_column.write_text("name,label\na.jpg,accept\n")
    with pytest.raises(ValueError, match="file"):
        read_labels(no_column)
    bad_label = tmp_path / "worse.csv"
    bad_label.write_text("file,expected\na.jpg,maybe\n")
    with pytest.raises(ValueError, match="accept or reject"):
        read_labels(bad_label)


def write_labels(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "expected", "notes"])
        writer.writerows(rows)
    return path


def test_eval_command_on_sample_photos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for name in ("accept_portrait.jpg", "reject_multiple_faces.jpg", "reject_no_face.png"):
        shutil.copy(SAMPLES / name, images / name)
    labels = write_labels(
        tmp_path / "labels.csv",
        [
            ("accept_portrait.jpg", "accept", ""),
            ("reject_multiple_faces.jpg", "reject:multiple_faces", ""),
            # Deliberately wrong, and flagged: shows up as a disagreement.
            ("reject_no_face.png", "accept", "AMBIGUOUS label"),
        ],
    )

    sheet = tmp_path / "sheet.png"
    assert main(["eval", str(images), "--labels", str(labels), "--sheet", str(sheet)]) == 0
    text = capsys.readouterr().out
    assert "100.0% of 2 clear rows" in text
    # The fill of the one accepted photo's renditions, and a sheet showing them.
    assert "fill of the accepted photos' renditions" in text
    assert re.search(r"4:3  median \d+\.\d%  90th percentile \d+\.\d%  max", text)
    with Image.open(sheet) as drawn:
        # One line of cells: the accepted photo's three renditions are the widest.
        assert drawn.format == "PNG"
        assert drawn.height == THUMB_HEIGHT + 3 * TEXT_LINE + 4 + 2 * 8
        pixels = np.asarray(drawn.convert("RGB"))
    # Not blank: the renditions and the red of the two rejections are drawn.
    assert pixels.std() > 20
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 100) & (pixels[..., 2] < 100)
    assert red.sum() > 50
    assert "0.0% of 1 AMBIGUOUS/BORDERLINE rows" in text
    assert "reject_no_face.png: expected accept, got reject:no_face (flagged)" in text

    assert main(["eval", str(images), "--labels", str(labels), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["predicted"] for r in report["rows"]] == [
        "accept",
        "reject:multiple_faces",
        "reject:no_face",
    ]
    assert report["summary"]["accuracy"]["clear"] == 1.0


def test_eval_command_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path), "--labels", str(tmp_path / "none.csv")]) == 2
    assert "cannot read labels" in capsys.readouterr().err

    labels = write_labels(tmp_path / "labels.csv", [("missing.jpg", "accept", "")])
    assert main(["eval", str(tmp_path), "--labels", str(labels)]) == 2
    assert "missing.jpg" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not FACES.is_dir(), reason="../shared/faces not present")
def test_accuracy_target_on_the_labelled_dev_set(capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's bar: accept/reject right on at least 95% of the rows not
    marked AMBIGUOUS or BORDERLINE, and no reject:multiple_faces row accepted.
    The renditions of the accepts are mostly the photo (median fill of the 4:3
    and 3:4 at most 2%), and an accept whose 4:3 or 3:4 invents more than the
    warning limit (the tight headshots) carries the face.framing warning."""
    code = main(["eval", str(FACES / "images"), "--labels", str(FACES / "labels.csv"), "--json"])

    assert code == 0
    report = json.loads(capsys.readouterr().out)
    summary = report["summary"]
    assert summary["counts"]["clear"] >= 30
    assert summary["accuracy"]["clear"] >= 0.95, summary["disagreements"]
    assert summary["multiple_faces_accepted"] == 0, summary["disagreements"]
    for ratio in ("4:3", "3:4"):
        assert summary["fills"][ratio]["median"] <= 0.02, summary["fills"]
    limit = PipelineSettings().warn_fill_ratio
    for row in report["rows"]:
        fills = {c["name"]: c for c in row["checks"] if c["name"] in ("fill_4x3", "fill_3x4")}
        for fill in fills.values():
            if row["predicted"] == "accept" and fill["value"] > limit:
                assert "face.framing" in row["warnings"], row["file"]


def test_a_limit_is_chosen_in_the_middle_of_the_widest_gap() -> None:
    # "max": values above fail. Accepts up to 30, failures from 44: cut at 37.
    assert choose_limit("max", [10.0, 20.0, 30.0], [44.0, 60.0]) == 37.0
    # "min": values below fail.
    assert choose_limit("min", [0.8, 0.9], [0.0, 0.1]) == pytest.approx(0.45)
    # Overlap: the fewest errors win (one accept at 50 is given up).
    assert choose_limit("max", [10.0, 20.0, 50.0], [40.0, 45.0, 60.0]) == 30.0
    assert choose_limit("max", [], [1.0]) is None


def check(name: str, value: float, bound: str, code: str, severity: str = "") -> dict[str, Any]:
    return {"name": name, "value": value, "bound": bound, "code": code, "severity": severity}


def test_leave_one_out_flips_a_row_that_only_its_own_limit_caught() -> None:
    def row(name: str, expected: str, yaw: float) -> Outcome:
        failed = yaw > 40
        return Outcome(
            file=name,
            expected=expected,
            predicted="reject:not_frontal" if failed else "accept",
            code="face.not_frontal" if failed else "",
            message="",
            flagged=False,
            checks=(check("yaw", yaw, "max", "face.not_frontal", "reject" if failed else ""),),
        )

    outcomes = [
        row("a", "accept", 29.0),
        row("b", "accept", 30.0),
        row("c", "reject:not_frontal", 42.0),  # alone between the accepts and the rest
        row("d", "reject:not_frontal", 70.0),
        row("e", "reject:not_frontal", 80.0),
    ]

    loo = {o.file: o for o in leave_one_out(outcomes)}
    refit = {o.file: o for o in refitted(outcomes)}

    assert all(o.verdict_right for o in refit.values())
    # Without "c" the cut sits at 50, which lets "c" through.
    assert loo["c"].predicted == "accept"
    assert [loo[f].verdict_right for f in "abde"] == [True] * 4


@pytest.mark.slow
@pytest.mark.skipif(not FACES2.is_dir(), reason="../shared/faces2 not present")
def test_the_second_dev_set_animals_and_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    """No animal accepted and every profile refused on the set rich in both;
    the figures beside it are printed, and the set's clear rows stay above
    their level when this guard was written."""
    code = main(["eval", str(FACES2 / "images"), "--labels", str(FACES2 / "labels.csv"), "--json"])

    assert code == 0
    report = json.loads(capsys.readouterr().out)
    summary, rows = report["summary"], report["rows"]
    for row in rows:
        if row["expected"] in ("reject:non_human", "reject:not_frontal"):
            assert row["predicted"] != "accept", row["file"]
    assert summary["accuracy"]["clear"] >= 0.8, summary["disagreements"]
    assert {"all", "clear", "flagged"} <= set(summary["leave_one_out"])
    assert any(c["category"] == "animal" for c in summary["categories"])

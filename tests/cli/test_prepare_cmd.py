"""`avatar-prep prepare`: exit codes 0/1/2 on real photos and bad paths, the
files it writes, result.json, the summary and --json."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import simplejpeg

from cli.main import main
from cli.results import OVERLAY_FILE, RENDITION_FILES, RESULT_FILE, output_name
from sample_images import SAMPLES
from tests.documented import LANDMARK_NAMES, RENDITION_SIZES

PORTRAIT = SAMPLES / "accept_portrait.jpg"
TWO_FACES = SAMPLES / "reject_multiple_faces.jpg"


def jpeg_size(path: Path) -> tuple[int, int]:
    height, width, _, _ = simplejpeg.decode_jpeg_header(path.read_bytes())
    return width, height


def test_accepted_photo_exits_0_and_writes_renditions_and_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["prepare", str(PORTRAIT), "-o", str(out), "--overlay"]) == 0

    for aspect_ratio, name in RENDITION_FILES.items():
        assert jpeg_size(out / name) == RENDITION_SIZES[aspect_ratio]
    assert jpeg_size(out / OVERLAY_FILE)[0] > 0
    record = json.loads((out / RESULT_FILE).read_text())
    assert record["verdict"] == "accept"
    assert record["source"]["sha256"] == hashlib.sha256(PORTRAIT.read_bytes()).hexdigest()
    assert record["source"]["format"] == "jpeg"
    sizes = {ar: (im["width"], im["height"]) for ar, im in record["images"].items()}
    assert sizes == RENDITION_SIZES
    assert set(record["face"]["landmarks"]) == LANDMARK_NAMES

    summary = capsys.readouterr().out
    assert summary.startswith("accept: one face")
    assert "1:1 512x512, 4:3 640x480, 3:4 480x640" in summary
    assert f"wrote {out}/: avatar_1x1.jpg, avatar_4x3.jpg, avatar_3x4.jpg" in summary


def test_rejected_photo_exits_1_with_code_checks_and_no_renditions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    # A previous accept in the same folder: its renditions must not survive.
    assert main(["prepare", str(PORTRAIT), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["prepare", str(TWO_FACES), "-o", str(out)]) == 1

    assert sorted(p.name for p in out.iterdir()) == [RESULT_FILE]
    record = json.loads((out / RESULT_FILE).read_text())
    assert record["verdict"] == "reject"
    assert record["error"]["code"] == "face.multiple"
    assert len(record["candidates"]) >= 2
    failed = [c for c in record["checks"] if not c["passed"]]
    assert failed

    summary = capsys.readouterr().out
    assert summary.startswith(f"reject: face.multiple: {record['error']['message']}")
    check = failed[0]
    assert f"failed {check['name']}: {check['value']} (limit {check['limit']}); " in summary
    assert check["hint"] in summary


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"name,expected\nd001.jpg,accept\n", "image.unsupported_format"),
        (PORTRAIT.read_bytes()[:5000], "image.unreadable"),
    ],
    ids=["text", "truncated_jpeg"],
)
def test_unusable_bytes_are_a_rejection_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, code: str
) -> None:
    image, out = tmp_path / "photo.jpg", tmp_path / "out"
    image.write_bytes(content)
    assert main(["prepare", str(image), "-o", str(out), "--json", "--overlay"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((out / RESULT_FILE).read_text())
    assert printed["verdict"] == "reject"
    assert printed["error"]["code"] == code
    assert sorted(p.name for p in out.iterdir()) == [RESULT_FILE]  # nothing to overlay


def test_json_prints_exactly_the_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["prepare", str(PORTRAIT), "-o", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((out / RESULT_FILE).read_text())


def test_unreadable_paths_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out")
    assert main(["prepare", str(tmp_path / "missing.jpg"), "-o", out]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["prepare", str(tmp_path), "-o", out]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert not Path(out).exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unpermitted_file_exits_2(tmp_path: Path) -> None:
    image = tmp_path / "locked.jpg"
    image.write_bytes(PORTRAIT.read_bytes())
    image.chmod(0)
    assert main(["prepare", str(image), "-o", str(tmp_path / "out")]) == 2


def test_console_script_exit_codes(tmp_path: Path) -> None:
    """The installed entry point, in its own process, as a shell sees it."""
    command = [str(Path(sys.executable).with_name("avatar-prep")), "prepare"]
    out = str(tmp_path / "out")
    accepted = subprocess.run([*command, str(PORTRAIT), "-o", out], capture_output=True)
    rejected = subprocess.run([*command, str(TWO_FACES), "-o", out], capture_output=True)
    missing = subprocess.run([*command, str(tmp_path / "nope.jpg")], capture_output=True)
    no_args = subprocess.run(command, capture_output=True)
    assert [p.returncode for p in (accepted, rejected, missing, no_args)] == [0, 1, 2, 2]


def test_default_output_is_a_safe_folder_under_prepared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = tmp_path / "My photo (1).jpg"
    image.write_bytes(PORTRAIT.read_bytes())
    monkeypatch.chdir(tmp_path)
    assert main(["prepare", str(image)]) == 0
    assert (tmp_path / "prepared" / output_name(image.name) / RESULT_FILE).is_file()

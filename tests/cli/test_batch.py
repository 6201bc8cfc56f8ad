"""`avatar-prep batch`: every file gets a row, a bad file or a dying worker never
stops the batch, --resume skips what is done, output names are safe.

The pool tests with a fake worker (a seam: `run_batch(worker=, initializer=)`)
exercise crash isolation; the rest run the real pipeline on sample photos."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cli.batch import find_files, run_batch
from cli.batch_pool import interrupt_flag
from cli.batch_worker import Job
from cli.main import main
from cli.progress import Progress
from cli.report import COLUMNS, Row, read_report
from cli.results import OVERLAY_FILE, RENDITION_FILES, RESULT_FILE, output_name
from pipeline import PipelineSettings
from sample_images import SAMPLES

PORTRAIT = SAMPLES / "accept_portrait.jpg"
ASTRONAUT = SAMPLES / "accept_astronaut.png"
TWO_FACES = SAMPLES / "reject_multiple_faces.jpg"
HEIC = SAMPLES / "heic.heic"

TRICKY_NAMES = [
    "a/b.jpg",
    "a_b.jpg",
    "a-b.jpg",
    "..jpg",
    "...",
    "-rf",
    "holiday/Zoë 1 (copy).jpg",
    "日本語の写真.jpg",
    "deep/../escape.jpg",
    os.fsdecode(b"\xff\xfe not utf-8.jpg"),
    "x" * 300 + ".jpg",
]


def read_rows(report: Path) -> dict[str, Row]:
    rows = read_report(report)
    with report.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
        assert tuple(next(csv.reader(f))) == COLUMNS
    return rows


# --- output names -----------------------------------------------------------


def test_output_names_are_safe_distinct_and_stable(tmp_path: Path) -> None:
    names = [output_name(p) for p in TRICKY_NAMES]
    assert len(set(names)) == len(names)
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9._-]+-[0-9a-f]{10}", name), name
        assert not name.startswith((".", "-"))
        assert len(name) <= 100
        assert (tmp_path / name).resolve().parent == tmp_path.resolve()
    assert names == [output_name(p) for p in TRICKY_NAMES]
    assert output_name("holiday/Zoë 1 (copy).jpg").startswith("holiday_Zoe-1-copy-.jpg-")


# --- finding files ----------------------------------------------------------


def test_find_files_skips_hidden_files_and_the_outputs(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    for rel in ("b.jpg", "a/c.heic", "a/no_extension", ".DS_Store", ".git/x.jpg", "out/r.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    (root / "loop").symlink_to(root, target_is_directory=True)
    found = find_files(root, exclude=(root / "out", root / "report.csv"))
    assert found == ["a/c.heic", "a/no_extension", "b.jpg"]


# --- progress ---------------------------------------------------------------


def _row(verdict: str) -> Row:
    return Row("p.jpg", verdict, "", "", "", 1.0, "0" * 64, "p")


def test_progress_prints_plain_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()  # isatty() is False, as for a log file
    progress = Progress(25, stream)
    for i in range(25):
        progress.advance(_row("accept" if i % 5 else "reject"))
    progress.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 13  # every 2 files (a tenth of 25), and the last one
    assert lines[-1].startswith("batch: 25/25 (100%), accept 20, reject 5, error 0;")
    assert "images/s" in lines[-1]


def test_progress_draws_a_bar_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = Progress(3, stream)
    for _ in range(3):
        progress.advance(_row("accept"))
    progress.close()
    assert "\r" in stream.getvalue()
    assert "3/3" in stream.getvalue()
    assert "batch:" not in stream.getvalue()


# --- the pool, with a fake worker at the seam -------------------------------


def fake_init(settings: PipelineSettings) -> None:
    del settings


def fake_worker(job: Job) -> Row:
    """Accepts files that say 'ok', dies like a segfault on files that say 'crash'."""
    content = job.source.read_bytes()
    if content == b"crash":
        os._exit(1)
    out = job.out_root / job.output
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULT_FILE).write_text("{}")
    sha256 = hashlib.sha256(content).hexdigest()
    return Row(job.path, "accept", "", "", "", 1.0, sha256, job.output)


def test_a_dying_worker_costs_only_its_file(tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    names = [f"f{i}.jpg" for i in range(7)]
    for name in names:
        (root / name).write_bytes(b"crash" if name == "f3.jpg" else b"ok")
    summary = run_batch(
        root,
        out,
        out / "report.csv",
        2,
        PipelineSettings(),
        worker=fake_worker,
        initializer=fake_init,
    )
    rows = {r.path: r for r in summary.processed}
    assert sorted(rows) == names
    assert (rows["f3.jpg"].verdict, rows["f3.jpg"].code) == ("error", "worker.crashed")
    assert all(rows[n].verdict == "accept" for n in names if n != "f3.jpg")
    assert read_rows(out / "report.csv") == rows


# --- the real pipeline ------------------------------------------------------


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """A folder like a user's: photos, a nested folder, a HEIC without its
    extension, tricky names, a text file, a truncated JPEG, hidden junk."""
    root = tmp_path / "photos"
    (root / "nested" / "deeper").mkdir(parents=True)
    (root / "a").mkdir()
    shutil.copy(PORTRAIT, root / "portrait.jpg")
    shutil.copy(TWO_FACES, root / "nested" / "two people.jpg")
    shutil.copy(HEIC, root / "nested" / "deeper" / "phone_photo")
    shutil.copy(ASTRONAUT, root / "a" / "b.png")
    shutil.copy(ASTRONAUT, root / "a_b.png")
    shutil.copy(PORTRAIT, root / "Zoë ..jpg")
    (root / "notes.txt").write_text("not an image\n")
    (root / "truncated.jpg").write_bytes(PORTRAIT.read_bytes()[: PORTRAIT.stat().st_size // 2])
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return root


EXPECTED = {
    "Zoë ..jpg": ("accept", ""),
    "a/b.png": ("accept", ""),
    "a_b.png": ("accept", ""),
    "nested/deeper/phone_photo": ("accept", ""),
    "nested/two people.jpg": ("reject", "face.multiple"),
    "notes.txt": ("reject", "image.unsupported_format"),
    "portrait.jpg": ("accept", ""),
    "truncated.jpg": ("reject", "image.unreadable"),
}


def test_batch_writes_one_row_per_file_and_outputs(
    photo_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["batch", str(photo_folder), "-o", str(out), "--workers", "2", "--overlay"]) == 0

    rows = read_rows(out / "report.csv")
    assert {p: (r.verdict, r.code) for p, r in rows.items()} == EXPECTED
    assert len({r.output for r in rows.values()}) == len(rows)
    for path, row in rows.items():
        source = photo_folder / path
        assert row.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
        assert row.output == output_name(path)
        folder = out / row.output
        assert (folder / RESULT_FILE).is_file()
        has_renditions = [(folder / name).is_file() for name in RENDITION_FILES.values()]
        assert has_renditions == [row.verdict == "accept"] * 3
        no_pixels = row.code in ("image.unsupported_format", "image.unreadable")
        assert (folder / OVERLAY_FILE).is_file() != no_pixels
        if row.verdict == "reject":
            assert row.message
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["report.csv", *(r.output for r in rows.values())]
    )

    captured = capsys.readouterr()
    assert re.search(r"^batch: 8/8 \(100%\), accept 5, reject 3, error 0;", captured.err, re.M)
    assert "batch: 8 files in" in captured.out
    assert "face.multiple 1" in captured.out
    assert f"report: {out / 'report.csv'}" in captured.out


def test_resume_skips_done_files_and_redoes_changed_ones(
    photo_folder: Path, tmp_path: Path
) -> None:
    out, report = tmp_path / "out", tmp_path / "report.csv"
    settings = PipelineSettings()
    first = run_batch(photo_folder, out, report, 2, settings)
    assert len(first.processed) == len(EXPECTED)

    again = run_batch(photo_folder, out, report, 2, settings, resume=True)
    assert again.processed == ()
    assert sorted(r.path for r in again.skipped) == sorted(EXPECTED)
    assert read_rows(report) == {r.path: r for r in first.processed}

    # Changed bytes, a lost result.json and a new file are redone; the rest is not.
    shutil.copy(TWO_FACES, photo_folder / "portrait.jpg")
    (out / output_name("a_b.png") / RESULT_FILE).unlink()
    shutil.copy(PORTRAIT, photo_folder / "new.jpg")
    untouched = out / output_name("a/b.png") / RESULT_FILE
    mtime = untouched.stat().st_mtime_ns

    third = run_batch(photo_folder, out, report, 2, settings, resume=True)
    assert sorted(r.path for r in third.processed) == ["a_b.png", "new.jpg", "portrait.jpg"]
    assert untouched.stat().st_mtime_ns == mtime
    rows = read_rows(report)
    assert len(rows) == len(EXPECTED) + 1
    assert (rows["portrait.jpg"].verdict, rows["portrait.jpg"].code) == ("reject", "face.multiple")
    assert rows["portrait.jpg"].sha256 == hashlib.sha256(TWO_FACES.read_bytes()).hexdigest()
    # The old renditions of the now rejected file are gone.
    assert not (out / output_name("portrait.jpg") / RENDITION_FILES["1:1"]).exists()


def test_bad_usage_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out")
    assert main(["batch", str(tmp_path / "missing"), "-o", out]) == 2
    (tmp_path / "file.jpg").write_bytes(PORTRAIT.read_bytes())
    assert main(["batch", str(tmp_path / "file.jpg"), "-o", out]) == 2
    assert main(["batch", str(tmp_path), "-o", out, "--workers", "0"]) == 2
    not_ours = tmp_path / "other.csv"
    not_ours.write_text("a,b\n1,2\n")
    assert main(["batch", str(tmp_path), "-o", out, "--resume", "--report", str(not_ours)]) == 2
    assert not_ours.read_text() == "a,b\n1,2\n"
    with pytest.raises(SystemExit) as exc:
        main(["batch", str(tmp_path)])  # no -o
    assert exc.value.code == 2
    assert "is not a folder" in capsys.readouterr().err


def test_interrupted_batch_exits_130_and_resume_finishes_it(tmp_path: Path) -> None:
    root, out = tmp_path / "photos", tmp_path / "out"
    root.mkdir()
    for i in range(30):
        shutil.copy(PORTRAIT, root / f"p{i:02d}.jpg")
    command = [str(Path(sys.executable).with_name("avatar-prep")), "batch", str(root)]
    command += ["-o", str(out), "--workers", "1"]
    batch = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert batch.stderr is not None
    for line in batch.stderr:  # Ctrl-C once the first files are done
        if line.startswith("batch: 3/30"):
            batch.send_signal(signal.SIGINT)
            break
    stdout, _ = batch.communicate()
    assert batch.returncode == 130
    assert "rerun with --resume" in stdout
    done = read_rows(out / "report.csv")
    assert 3 <= len(done) < 30
    assert {r.verdict for r in done.values()} == {"accept"}

    summary = run_batch(root, out, out / "report.csv", 2, PipelineSettings(), resume=True)
    assert sorted(r.path for r in summary.skipped) == sorted(done)
    assert len(summary.processed) == 30 - len(done)
    assert len(read_rows(out / "report.csv")) == 30


def test_the_first_ctrl_c_only_flags_the_batch_and_a_second_one_raises() -> None:
    # The first must not raise inside the pool's locking (cli/batch_pool.py): the
    # batch finishes the files in flight and stops itself.
    before = signal.getsignal(signal.SIGINT)
    with interrupt_flag() as interrupted:
        os.kill(os.getpid(), signal.SIGINT)  # handled before the next line runs
        assert interrupted.is_set()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before

"""`avatar-prep bench`: runs end to end on a real sample photo and reports the
figures and ratios the issue asks for (the quick variant; no timed assertions)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.bench import format_stages
from harness.bench_batch import batch_slope
from sample_images import SAMPLES

PORTRAIT = SAMPLES / "accept_portrait.jpg"
BENCH = [str(Path(sys.executable).with_name("avatar-prep")), "bench", "--quick"]

pytestmark = pytest.mark.slow


def test_bench_reports_stages_ratios_and_memory() -> None:
    done = subprocess.run(
        [*BENCH, "--json", "--image", str(PORTRAIT)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["pinning"].startswith("one core (CPU ")
    assert "OMP_NUM_THREADS=1" in figures["pinning"]
    assert [round(im["megapixels"]) for im in figures["images"]] == [1, 12]
    for image in figures["images"]:
        assert set(image["stages_ms"]) == {"decode", "detect", "mesh", "align", "encode"}
        assert all(ms > 0 for ms in image["stages_ms"].values())
        for key in ("end_to_end_ms", "naive_ms", "plain_decode_ms"):
            assert image[key] > 0
        assert image["ratio_naive"] == pytest.approx(image["end_to_end_ms"] / image["naive_ms"])
        assert image["ratio_plain_decode"] == pytest.approx(
            image["end_to_end_ms"] / image["plain_decode_ms"]
        )
    memory = figures["memory"]
    assert memory["peak_rss_mb"] >= memory["rss_after_load_mb"] > 0
    assert memory["increase_mb"] == pytest.approx(
        memory["peak_rss_mb"] - memory["rss_after_load_mb"], abs=0.2
    )

    text = format_stages(figures)
    twelve = figures["images"][1]
    assert f"{twelve['ratio_naive']:.2f}" in text.split("end-to-end / naive")[1].splitlines()[0]
    assert "end-to-end / plain decode" in text
    assert "peak RSS of the process" in text


def test_bench_batch_prints_both_rates_their_ratio_and_the_slope() -> None:
    done = subprocess.run(
        [*BENCH, "--batch", "--image", str(PORTRAIT)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("batch scaling: 6 JPEGs of 1.0 MP (verdicts: accept)")
    assert lines[2].startswith("  1 worker :") and "images/s" in lines[2]
    assert lines[3].startswith("  2 workers:") and "images/s" in lines[3]
    assert lines[4].startswith("  ratio 2/1: ")
    slope = lines[6:]
    assert slope[0].startswith("batch slope: 4 distinct JPEGs of 1.0 MP (1000x1000, quality 90")
    assert "verdicts: accept" in slope[0]
    # --quick times too few files for the sign of the slope to mean anything.
    rows = [re.match(r"  (.+?)\s+(-?\d+\.\d) ms", line) for line in slope[2:5]]
    assert [row.group(1) for row in rows if row] == [
        "batch, per image",
        "prepare() alone, mean",
        "naive reference, mean",
    ]
    assert slope[5].startswith("  slope / prepare()") and "target <= 1.05: " in slope[5]
    assert slope[6].startswith("  naive / slope") and "target >= 3.0: " in slope[6]


def test_bench_batch_slope_figures_are_each_others_ratios(tmp_path: Path) -> None:
    figures = batch_slope(PORTRAIT, tmp_path, quick=True)
    assert figures["files"] == 4 and figures["verdicts"] == ["accept"]
    assert len(figures["wall_s"]["half"]) == len(figures["wall_s"]["all"]) == 1
    assert figures["prepare_ms"] > 0 and figures["naive_ms"] > 0
    assert figures["ratio_prepare"] == pytest.approx(figures["slope_ms"] / figures["prepare_ms"])
    assert figures["speedup_naive"] == pytest.approx(figures["naive_ms"] / figures["slope_ms"])
    # Distinct files: the same photo with another noise, so nothing is cached between them.
    photos = sorted((tmp_path / "slope-all").iterdir())
    assert len({p.read_bytes() for p in photos}) == 4


def test_bench_without_its_photo_is_bad_usage(tmp_path: Path) -> None:
    done = subprocess.run([*BENCH, "--image", str(tmp_path / "none.jpg")], capture_output=True)
    assert done.returncode == 2

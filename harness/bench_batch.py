"""The figures of `avatar-prep bench --batch`, measured through `avatar-prep
batch`'s own code path (`cli.batch.run_batch`):

- scaling: images/s with 1 and with 2 workers on one folder of JPEGs;
- slope: what one more photo costs a one-worker batch, against `prepare()`
  alone and the naive reference on the same photos, so whatever the batch adds
  around the pipeline (reading, hashing, writing outputs and the report,
  crossing process boundaries) shows as the difference.

Both alternate their runs and take medians: a shared machine's noise then
hits both sides of a comparison alike.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2

from cli.batch import run_batch
from harness.bench_photos import NOISE_SEED, make_jpeg, verdict
from harness.stage_timing import naive_reference
from pipeline import FaceModels, PipelineSettings, prepare
from service.settings import Settings

BATCH_FILES, QUICK_BATCH_FILES = 192, 6
SLOPE_FILES, QUICK_SLOPE_FILES = 40, 4
BATCH_ROUNDS = 3
BATCH_MEGAPIXELS, QUICK_BATCH_MEGAPIXELS = 12.0, 1.0

# The issues' targets: 2 workers at least 1.7x the images/s of one; a
# one-worker batch's cost per image within 5% of prepare() alone and at least
# 3x faster than the naive reference.
TARGET_SCALING = 1.7
TARGET_SLOPE_RATIO = 1.05
TARGET_NAIVE_SPEEDUP = 3.0


def batch_figures(source: Path, work: Path, *, quick: bool) -> dict[str, Any]:
    return {
        "scaling": batch_scaling(source, work, quick=quick),
        "slope": batch_slope(source, work, quick=quick),
    }


def format_batch(figures: dict[str, Any]) -> str:
    return format_scaling(figures["scaling"]) + "\n\n" + format_slope(figures["slope"])


def batch_scaling(source: Path, work: Path, *, quick: bool) -> dict[str, Any]:
    """images/s of `run_batch` with 1 and with 2 workers on the same folder of
    JPEGs (one file hard-linked under many names: every file is fully
    processed), `BATCH_ROUNDS` alternate runs each, rate from the median wall
    time, pool start-up included."""
    files = QUICK_BATCH_FILES if quick else BATCH_FILES
    megapixels = QUICK_BATCH_MEGAPIXELS if quick else BATCH_MEGAPIXELS
    rounds = 1 if quick else BATCH_ROUNDS
    folder = work / "photos"
    folder.mkdir()
    image = make_jpeg(source, megapixels, work / "photo.jpg")
    for i in range(files):
        os.link(image["file"], folder / f"photo{i:03d}.jpg")
    settings = Settings().pipeline
    walls: dict[int, list[float]] = {1: [], 2: []}
    verdicts: set[str] = set()
    for _ in range(rounds):
        for workers, times in walls.items():
            out = work / f"out{workers}"
            summary = run_batch(folder, out, out / "report.csv", workers, settings)
            times.append(summary.wall_s)
            verdicts.update(r.verdict for r in summary.processed)
    rates: dict[str, dict[str, Any]] = {
        str(workers): {
            "images_per_s": files / statistics.median(times),
            "wall_s": [round(t, 2) for t in times],
        }
        for workers, times in walls.items()
    }
    return {
        "files": files,
        "megapixels": image["megapixels"],
        "rounds": rounds,
        "verdicts": sorted(verdicts),
        "workers": rates,
        "ratio": rates["2"]["images_per_s"] / rates["1"]["images_per_s"],
        "target_ratio_min": TARGET_SCALING,
        "cpus": len(os.sched_getaffinity(0)),
    }


def format_scaling(figures: dict[str, Any]) -> str:
    lines = [
        f"batch scaling: {figures['files']} JPEGs of {figures['megapixels']:.1f} MP "
        f"(verdicts: {', '.join(figures['verdicts'])}), {figures['cpus']} usable CPUs",
        f"rate = files / median wall time of {figures['rounds']} alternate runs, "
        "pool start-up included",
    ]
    for workers, rate in figures["workers"].items():
        walls = ", ".join(f"{t:.1f}" for t in rate["wall_s"])
        lines.append(
            f"  {workers} worker{'s' if workers != '1' else ' '}: "
            f"{rate['images_per_s']:6.2f} images/s (wall s: {walls})"
        )
    lines.append(
        f"  ratio 2/1: {figures['ratio']:.2f}   target >= {TARGET_SCALING}: "
        + verdict(figures["ratio"] >= TARGET_SCALING)
    )
    return "\n".join(lines)


def batch_slope(source: Path, work: Path, *, quick: bool) -> dict[str, Any]:
    """The per-image cost of a one-worker `run_batch`: the median wall time on
    a folder of distinct JPEGs minus that on its first half, over the files
    between (pool start-up and model load cancel out), `BATCH_ROUNDS`
    alternate runs each. Next to it, the mean of `prepare()` alone and of the
    naive reference on each of the same files, in one process set up as a
    batch worker is."""
    count = QUICK_SLOPE_FILES if quick else SLOPE_FILES
    megapixels = QUICK_BATCH_MEGAPIXELS if quick else BATCH_MEGAPIXELS
    rounds = 1 if quick else BATCH_ROUNDS
    every, half = work / "slope-all", work / "slope-half"
    every.mkdir()
    half.mkdir()
    # Distinct files (each its own noise): nothing is cached or repeated between them.
    images = [
        make_jpeg(source, megapixels, every / f"photo{i:03d}.jpg", seed=NOISE_SEED + i)
        for i in range(count)
    ]
    for image in images[: count // 2]:
        os.link(image["file"], half / Path(image["file"]).name)
    settings = Settings().pipeline
    walls: dict[str, list[float]] = {"half": [], "all": []}
    verdicts: set[str] = set()
    for _ in range(rounds):
        for name, folder in (("half", half), ("all", every)):
            out = work / f"slope-out-{name}"
            summary = run_batch(folder, out, out / "report.csv", 1, settings)
            walls[name].append(summary.wall_s)
            verdicts.update(r.verdict for r in summary.processed)
    extra = count - count // 2
    slope_ms = (statistics.median(walls["all"]) - statistics.median(walls["half"])) / extra * 1000
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        alone = pool.submit(time_alone, [im["file"] for im in images], settings).result()
    prepare_ms = statistics.mean(alone["prepare_ms"])
    naive_ms = statistics.mean(alone["naive_ms"])
    return {
        "files": count,
        "width": images[0]["width"],
        "height": images[0]["height"],
        "megapixels": images[0]["megapixels"],
        "rounds": rounds,
        "verdicts": sorted(verdicts),
        "wall_s": {name: [round(t, 2) for t in times] for name, times in walls.items()},
        "slope_ms": slope_ms,
        "prepare_ms": prepare_ms,
        "naive_ms": naive_ms,
        "ratio_prepare": slope_ms / prepare_ms,
        "speedup_naive": naive_ms / slope_ms,
        "target_ratio_prepare_max": TARGET_SLOPE_RATIO,
        "target_speedup_naive_min": TARGET_NAIVE_SPEEDUP,
    }


def time_alone(paths: list[str], settings: PipelineSettings) -> dict[str, list[float]]:
    """Milliseconds of `prepare()` and of the naive reference on each file's
    bytes (read beforehand), after one warm-up of each. Runs in a fresh
    process with a batch worker's set-up (`cli.batch_worker.init_worker`): one
    OpenCV thread, the models loaded once."""
    cv2.setNumThreads(1)
    models = FaceModels.load()
    datas = [Path(p).read_bytes() for p in paths]
    prepare(datas[0], models, settings)
    naive_reference(datas[0], models, settings)
    times: dict[str, list[float]] = {"prepare_ms": [], "naive_ms": []}
    for data in datas:
        for name, run in (("prepare_ms", prepare), ("naive_ms", naive_reference)):
            start = time.perf_counter()
            run(data, models, settings)
            times[name].append((time.perf_counter() - start) * 1000)
    models.close()
    return times


def format_slope(figures: dict[str, Any]) -> str:
    half = figures["files"] // 2
    return "\n".join(
        [
            f"batch slope: {figures['files']} distinct JPEGs of {figures['megapixels']:.1f} MP "
            f"({figures['width']}x{figures['height']}, quality 90; verdicts: "
            f"{', '.join(figures['verdicts'])}), one worker",
            f"slope = (median wall of all {figures['files']} - median wall of the first {half}) "
            f"/ {figures['files'] - half}, {figures['rounds']} alternate runs each",
            f"  batch, per image              {figures['slope_ms']:7.1f} ms",
            f"  prepare() alone, mean         {figures['prepare_ms']:7.1f} ms  "
            "(same files, a process set up as a batch worker)",
            f"  naive reference, mean         {figures['naive_ms']:7.1f} ms",
            f"  slope / prepare()             {figures['ratio_prepare']:7.2f}   target <= "
            f"{TARGET_SLOPE_RATIO:.2f}: {verdict(figures['ratio_prepare'] <= TARGET_SLOPE_RATIO)}",
            f"  naive / slope                 {figures['speedup_naive']:7.2f}   target >= "
            f"{TARGET_NAIVE_SPEEDUP:.1f}: "
            + verdict(figures["speedup_naive"] >= TARGET_NAIVE_SPEEDUP),
        ]
    )

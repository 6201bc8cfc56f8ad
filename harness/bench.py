"""The figures of `avatar-prep bench` (cli/bench.py says what they are): stage
medians and memory from a child process pinned to one core
(`harness.stage_timing`), and batch scaling through `cli.batch.run_batch`."""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from cli.batch import run_batch
from harness.stage_timing import SINGLE_THREAD_ENV
from service.settings import Settings

NOISE_SIGMA, NOISE_SEED, NOISE_BAND_ROWS = 5.0, 20250101, 256
TIMING_MEGAPIXELS = (1.0, 12.0)
MEMORY_MEGAPIXELS = 50.0
RUNS, QUICK_RUNS = 9, 2
BATCH_FILES, QUICK_BATCH_FILES = 192, 6
BATCH_ROUNDS = 3
BATCH_MEGAPIXELS, QUICK_BATCH_MEGAPIXELS = 12.0, 1.0

# The targets: 12 MP end-to-end at most 1/3 of the naive reference and
# 1.5x a plain full decode; 50 MP peak memory under 300 MB; 2 workers at least
# 1.7x the images/s of one.
TARGET_NAIVE_RATIO = 1 / 3
TARGET_PLAIN_RATIO = 1.5
TARGET_PEAK_MB = 300.0
TARGET_SCALING = 1.7

EXIT_OK, EXIT_USAGE = 0, 2


def run(args: argparse.Namespace) -> int:
    if not args.image.is_file():
        print(f"avatar-prep bench: {args.image} is not a file", file=sys.stderr)
        return EXIT_USAGE
    with tempfile.TemporaryDirectory(prefix="avatar-prep-bench-") as tmp:
        work = Path(tmp)
        if args.batch:
            figures = batch_scaling(args.image, work, quick=args.quick)
            text = format_scaling(figures)
        else:
            figures = stage_figures(args.image, work, quick=args.quick)
            text = format_stages(figures)
    print(json.dumps(figures, indent=2) if args.json else text)
    return EXIT_OK


def make_jpeg(source: Path, megapixels: float, path: Path) -> dict[str, Any]:
    """Write an upright, metadata-free quality-90 JPEG of at most `megapixels`
    million pixels with `source`'s aspect ratio: Lanczos-resampled, plus
    Gaussian noise of sigma `NOISE_SIGMA` (fixed seed) so it compresses, and
    decodes, like a phone photo rather than a smooth enlargement. Returns its
    path, size and megapixels."""
    with Image.open(source) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    scale = math.sqrt(megapixels * 1e6 / (image.width * image.height))
    width, height = math.floor(image.width * scale), math.floor(image.height * scale)
    rgb = np.asarray(image.resize((width, height), Image.Resampling.LANCZOS))
    noisy = np.empty_like(rgb)
    rng = np.random.default_rng(NOISE_SEED)
    for top in range(0, height, NOISE_BAND_ROWS):  # in bands: a 50 MP float copy is 1.2 GB
        band = rgb[top : top + NOISE_BAND_ROWS]
        noise = rng.normal(0.0, NOISE_SIGMA, band.shape)
        noisy[top : top + NOISE_BAND_ROWS] = np.clip(band + noise.round(), 0, 255)
    Image.fromarray(noisy).save(path, quality=90)
    return {
        "file": str(path),
        "width": width,
        "height": height,
        "megapixels": round(width * height / 1e6, 2),
        "bytes": path.stat().st_size,
    }


def _child(*args: str) -> dict[str, Any]:
    """Run `python -m harness.stage_timing ARGS` with every thread pool limited to
    one thread from the start; return the JSON it prints."""
    env = dict(os.environ)
    env.update({name: "1" for name in SINGLE_THREAD_ENV})
    done = subprocess.run(
        [sys.executable, "-m", "harness.stage_timing", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"harness.stage_timing {args[0]} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def stage_figures(source: Path, work: Path, *, quick: bool) -> dict[str, Any]:
    runs = QUICK_RUNS if quick else RUNS
    images = [make_jpeg(source, mp, work / f"{mp:g}mp.jpg") for mp in TIMING_MEGAPIXELS]
    timing = _child("timing", "--runs", str(runs), *(im["file"] for im in images))
    for image, measured in zip(images, timing["images"], strict=True):
        image.update(measured)
        image["ratio_naive"] = image["end_to_end_ms"] / image["naive_ms"]
        image["ratio_plain_decode"] = image["end_to_end_ms"] / image["plain_decode_ms"]
    memory_mp = TIMING_MEGAPIXELS[-1] if quick else MEMORY_MEGAPIXELS
    memory_image = make_jpeg(source, memory_mp, work / f"{memory_mp:g}mp-memory.jpg")
    memory = {**memory_image, **_child("memory", memory_image["file"])}
    for figure in (*images, memory):
        del figure["file"]  # a temporary path, gone when the bench ends
    return {
        "source": str(source),
        "runs": runs,
        "pinning": timing["pinning"],
        "images": images,
        "memory": memory,
        "targets": {
            "ratio_naive_max": round(TARGET_NAIVE_RATIO, 3),
            "ratio_plain_decode_max": TARGET_PLAIN_RATIO,
            "peak_rss_mb_max": TARGET_PEAK_MB,
        },
    }


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def format_stages(figures: dict[str, Any]) -> str:
    images = figures["images"]
    stage_names = list(images[0]["stages_ms"])
    header = "".join(f"{im['megapixels']:>9.1f} MP" for im in images)
    lines = [
        f"avatar-prep bench: {figures['pinning']}",
        f"median of {figures['runs']} runs, JPEGs made from {figures['source']}",
        "",
        f"{'ms':<28}{header}",
    ]
    rows: list[tuple[str, list[float]]] = [
        (f"  {name}", [im["stages_ms"][name] for im in images]) for name in stage_names
    ]
    rows += [
        ("end-to-end prepare()", [im["end_to_end_ms"] for im in images]),
        ("naive reference", [im["naive_ms"] for im in images]),
        ("plain full decode", [im["plain_decode_ms"] for im in images]),
    ]
    lines += [f"{label:<28}" + "".join(f"{v:>12.1f}" for v in values) for label, values in rows]
    lines.append(
        f"{'end-to-end / naive':<28}"
        + "".join(f"{im['ratio_naive']:>12.2f}" for im in images)
        + f"   target <= {TARGET_NAIVE_RATIO:.2f} at 12 MP: "
        + _verdict(images[-1]["ratio_naive"] <= TARGET_NAIVE_RATIO)
    )
    lines.append(
        f"{'end-to-end / plain decode':<28}"
        + "".join(f"{im['ratio_plain_decode']:>12.2f}" for im in images)
        + f"   target <= {TARGET_PLAIN_RATIO:.2f} at 12 MP: "
        + _verdict(images[-1]["ratio_plain_decode"] <= TARGET_PLAIN_RATIO)
    )
    memory = figures["memory"]
    lines += [
        "",
        f"memory, {memory['megapixels']:.1f} MP JPEG ({memory['width']}x{memory['height']}, "
        f"{memory['bytes'] / 1e6:.1f} MB), one prepare() in a fresh process:",
        f"  peak RSS of the process     {memory['peak_rss_mb']:>7.0f} MB   target < "
        f"{TARGET_PEAK_MB:.0f} MB: {_verdict(memory['peak_rss_mb'] < TARGET_PEAK_MB)}",
        f"  RSS after model load        {memory['rss_after_load_mb']:>7.0f} MB",
        f"  increase for the image      {memory['increase_mb']:>7.0f} MB",
    ]
    return "\n".join(lines)


def batch_scaling(source: Path, work: Path, *, quick: bool) -> dict[str, Any]:
    """images/s of `run_batch` with 1 and with 2 workers on the same folder of
    JPEGs (one file hard-linked under many names: every file is fully
    processed). The two are run alternately, `BATCH_ROUNDS` times each, and the
    median wall time of each counts: a shared machine's noise hits both alike."""
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
        + _verdict(figures["ratio"] >= TARGET_SCALING)
    )
    return "\n".join(lines)

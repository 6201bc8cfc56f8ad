"""The figures of `avatar-prep bench` (cli/bench.py says what they are): stage
medians and memory from a child process pinned to one core
(`harness.stage_timing`); with --batch, those of `harness.bench_batch`."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.bench_batch import batch_figures, format_batch
from harness.bench_photos import make_jpeg, verdict
from harness.stage_timing import SINGLE_THREAD_ENV

TIMING_MEGAPIXELS = (1.0, 12.0)
MEMORY_MEGAPIXELS = 50.0
RUNS, QUICK_RUNS = 9, 2

# The targets: 12 MP end-to-end at most 1/3 of the naive reference and
# 1.5x a plain full decode; 50 MP peak memory under 300 MB.
TARGET_NAIVE_RATIO = 1 / 3
TARGET_PLAIN_RATIO = 1.5
TARGET_PEAK_MB = 300.0

EXIT_OK, EXIT_USAGE = 0, 2


def run(args: argparse.Namespace) -> int:
    if not args.image.is_file():
        print(f"avatar-prep bench: {args.image} is not a file", file=sys.stderr)
        return EXIT_USAGE
    with tempfile.TemporaryDirectory(prefix="avatar-prep-bench-") as tmp:
        work = Path(tmp)
        if args.batch:
            figures = batch_figures(args.image, work, quick=args.quick)
            text = format_batch(figures)
        else:
            figures = stage_figures(args.image, work, quick=args.quick)
            text = format_stages(figures)
    print(json.dumps(figures, indent=2) if args.json else text)
    return EXIT_OK


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
        + verdict(images[-1]["ratio_naive"] <= TARGET_NAIVE_RATIO)
    )
    lines.append(
        f"{'end-to-end / plain decode':<28}"
        + "".join(f"{im['ratio_plain_decode']:>12.2f}" for im in images)
        + f"   target <= {TARGET_PLAIN_RATIO:.2f} at 12 MP: "
        + verdict(images[-1]["ratio_plain_decode"] <= TARGET_PLAIN_RATIO)
    )
    memory = figures["memory"]
    lines += [
        "",
        f"memory, {memory['megapixels']:.1f} MP JPEG ({memory['width']}x{memory['height']}, "
        f"{memory['bytes'] / 1e6:.1f} MB), one prepare() in a fresh process:",
        f"  peak RSS of the process     {memory['peak_rss_mb']:>7.0f} MB   target < "
        f"{TARGET_PEAK_MB:.0f} MB: {verdict(memory['peak_rss_mb'] < TARGET_PEAK_MB)}",
        f"  RSS after model load        {memory['rss_after_load_mb']:>7.0f} MB",
        f"  increase for the image      {memory['increase_mb']:>7.0f} MB",
    ]
    return "\n".join(lines)

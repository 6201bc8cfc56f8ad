"""The measuring half of `avatar-prep bench`, run as a child process:

    python -m harness.stage_timing timing --runs N JPEG...   # stage medians, naive, plain decode
    python -m harness.stage_timing memory JPEG               # peak RSS of one prepare()

Prints one JSON object. One core: the parent starts this process with the
variables of `SINGLE_THREAD_ENV` set to 1 (read when the libraries load, so
they must be there from the start), and `pin_to_one_core` binds every thread of
the process to one CPU and sets cv2.setNumThreads(1) before any model is made.
MediaPipe's TensorFlow Lite (XNNPACK) threads, which no variable controls, are
created by the model load, after the pinning, and inherit the one CPU.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import simplejpeg
from PIL import Image, ImageOps

from pipeline import FaceModels, PipelineSettings, Prepared, Rejected, prepare
from pipeline.align import face_transform, framings
from pipeline.detect import detect
from pipeline.encode import encode_jpeg
from pipeline.landmarks import fit_faces
from pipeline.warp import warp
from service.settings import Settings

# OpenMP (OpenCV's and others' parallel loops) and OpenBLAS (numpy).
SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def pin_to_one_core() -> str:
    """Bind every thread of this process (and so every later one) to the first
    usable CPU; returns a description of what was pinned."""
    cpu = min(os.sched_getaffinity(0))
    for tid in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(tid), {cpu})
    cv2.setNumThreads(1)
    limited = [f"{name}={os.environ[name]}" for name in SINGLE_THREAD_ENV if name in os.environ]
    return f"one core (CPU {cpu}), cv2.setNumThreads(1), {', '.join(limited) or 'no thread env'}"


def _median_ms(func: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _prepared(data: bytes, models: FaceModels, settings: PipelineSettings) -> Prepared:
    try:
        return prepare(data, models, settings)
    except Rejected as rejected:
        sys.exit(f"the bench photo must be accepted, got {rejected.code}: {rejected.message}")


def naive_reference(data: bytes, models: FaceModels, settings: PipelineSettings) -> list[bytes]:
    """What the pipeline would cost without its shortcuts: a full Pillow decode
    and EXIF transpose, detection and landmarks on the full image, every
    rendition warped from full resolution, encoded."""
    with Image.open(io.BytesIO(data)) as opened:
        rgb = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    points = _full_image_points(rgb, models, settings)
    outputs = []
    for framing in framings(settings.output_size):
        out, _ = warp(rgb, face_transform(points, framing), framing)
        outputs.append(encode_jpeg(out, settings.jpeg_quality))
    return outputs


def _full_image_points(
    rgb: np.ndarray, models: FaceModels, settings: PipelineSettings
) -> dict[str, tuple[float, float]]:
    """The main face's five points found by the pipeline's own detect and
    landmark stages, fed the full image instead of a reduced one."""
    candidates = detect(rgb, models, settings.min_detection_score)
    faces = fit_faces(rgb, candidates, models, settings.max_faces_checked)
    if not faces:
        sys.exit("the naive reference found no face in the bench photo")
    return faces[0].five_points()


def time_image(
    path: Path, models: FaceModels, settings: PipelineSettings, runs: int
) -> dict[str, object]:
    """Medians over `runs` of prepare() (per stage and end to end), the naive
    reference and a plain full simplejpeg decode of the same file, after one
    warm-up of each (the first call of a graph allocates its buffers)."""
    data = path.read_bytes()
    _prepared(data, models, settings)
    stages: dict[str, list[float]] = defaultdict(list)
    end_to_end = []
    for _ in range(runs):
        start = time.perf_counter()
        result = _prepared(data, models, settings)
        end_to_end.append((time.perf_counter() - start) * 1000)
        for stage, ms in result.timings_ms.items():
            stages[stage].append(ms)
    naive_reference(data, models, settings)
    simplejpeg.decode_jpeg(data)
    return {
        "stages_ms": {stage: statistics.median(ms) for stage, ms in stages.items()},
        "end_to_end_ms": statistics.median(end_to_end),
        "naive_ms": _median_ms(lambda: naive_reference(data, models, settings), runs),
        # simplejpeg (libjpeg-turbo) is the fastest full decoder here; default flags.
        "plain_decode_ms": _median_ms(lambda: simplejpeg.decode_jpeg(data), runs),
    }


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure_memory(path: Path, settings: PipelineSettings) -> dict[str, float]:
    """Peak RSS of a process that loads the models and prepares `path` once.
    `increase_mb` is that peak minus the RSS right after the model load, so it
    covers the file's bytes and everything prepare() allocates.

    The peak is VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over
    exec, so a child of a big parent (the bench, which has just made a 50 MP
    image) would report the parent's peak as its own.
    """
    models = FaceModels.load()
    after_load = _status_mb("VmRSS")
    _prepared(path.read_bytes(), models, settings)
    peak = _status_mb("VmHWM")
    models.close()
    return {
        "peak_rss_mb": round(peak, 1),
        "rss_after_load_mb": round(after_load, 1),
        "increase_mb": round(peak - after_load, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.stage_timing")
    sub = parser.add_subparsers(dest="mode", required=True)
    timing = sub.add_parser("timing")
    timing.add_argument("--runs", type=int, default=9)
    timing.add_argument("jpegs", type=Path, nargs="+")
    memory = sub.add_parser("memory")
    memory.add_argument("jpeg", type=Path)
    args = parser.parse_args(argv)

    pinning = pin_to_one_core()
    settings = Settings().pipeline
    if args.mode == "memory":
        print(json.dumps({"pinning": pinning, **measure_memory(args.jpeg, settings)}))
        return 0
    with FaceModels.load() as models:
        images = [time_image(path, models, settings, args.runs) for path in args.jpegs]
    print(json.dumps({"pinning": pinning, "images": images}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

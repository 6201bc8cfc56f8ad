"""Runs files through sniff, probe and decode, each in a child forked from this
process once the pipeline is imported, and prints one JSON line per file: the
outcome, the child's peak RSS and its time. `python -m tests.pipeline.decode_bounds_runner
[--cpu N] FILE...` (used by test_decode_bounds.py; run it by hand to measure other
files).

Peak RSS: a forked child shares this process's memory (the imports, as in a worker)
but counts in its RSS only the pages it touches again, so its own high-water mark
(`ru_maxrss` from wait4, and /proc's VmHWM reset when it starts) reads low. The peak
reported (`peak_rss`) is this process's RSS plus the child's growth (VmHWM minus its
RSS at the start): the peak of a worker that has imported everything. Slightly
high, never low: pages the child touches again count twice. The decodes are those
`pipeline.prepare` asks for on a file without a face: the detection look and the
second, larger look for small faces.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import traceback
from pathlib import Path

from pipeline.decode import decode
from pipeline.errors import ImageError
from pipeline.prepare import detection_reduction
from pipeline.probe import probe
from pipeline.settings import PipelineSettings
from pipeline.sniff import sniff

SETTINGS = PipelineSettings()
# What probe and decode may refuse an image with (pipeline/probe.py, pipeline/decode.py),
# all in docs/api.md: the bounds test and the fuzzer accept no other code.
DECODE_CODES = frozenset(
    {
        "image.missing",
        "image.too_large",
        "image.unsupported_format",
        "image.unreadable",
        "image.too_many_pixels",
        "image.too_small",
    }
)
CHILD_SECONDS = 60  # a child still decoding after this is killed (SIGALRM) and reported


def run(data: bytes) -> dict[str, object]:
    """What the pipeline does with `data` up to its pixels; no exception escapes."""
    result: dict[str, object] = {"format": sniff(data)}
    try:
        found = probe(data, SETTINGS)
        result["size"] = [found.width, found.height]
        reductions = {
            detection_reduction(found, SETTINGS.detect_side),
            detection_reduction(found, SETTINGS.small_face_side),
        }
        shapes = []
        for reduction in sorted(reductions, reverse=True):
            shapes.append(list(decode(data, found, reduction).rgb.shape))
        result.update(outcome="decoded", shapes=shapes)
    except ImageError as error:
        result.update(outcome="refused", code=error.code)
    except BaseException as exc:  # exactly what must never happen
        result.update(outcome="exception", error=traceback.format_exception_only(exc)[-1])
    return result


def status_bytes(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    found = re.search(field + r":\s+(\d+) kB", status)
    return int(found.group(1)) * 1024 if found else 0


def measure(path: Path) -> dict[str, object]:
    data = path.read_bytes()
    baseline = status_bytes("VmRSS")
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one file, then out without running any cleanup
        os.close(reader)
        signal.alarm(CHILD_SECONDS)
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := the current RSS
        at_start = status_bytes("VmRSS")
        start = time.perf_counter()
        result = run(data)
        result["seconds"] = time.perf_counter() - start
        result["growth"] = status_bytes("VmHWM") - at_start
        os.write(writer, json.dumps(result).encode())
        os._exit(0)
    os.close(writer)
    chunks = []
    while chunk := os.read(reader, 65536):
        chunks.append(chunk)
    os.close(reader)
    _, status, usage = os.wait4(pid, 0)
    result = json.loads(b"".join(chunks)) if chunks else {"outcome": "died"}
    if os.WIFSIGNALED(status):
        result.update(outcome="died", error=f"killed by signal {os.WTERMSIG(status)}")
    growth = int(result.get("growth", 0))
    result.update(
        name=path.name,
        bytes=len(data),
        baseline=baseline,
        peak_rss=baseline + growth,
        ru_maxrss=usage.ru_maxrss * 1024,
    )
    return result


def main(paths: list[str]) -> None:
    """`--cpu N` first: run on that core alone (children inherit it)."""
    if paths[:1] == ["--cpu"]:
        os.sched_setaffinity(0, {int(paths[1])})
        paths = paths[2:]
    for path in paths:
        print(json.dumps(measure(Path(path))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

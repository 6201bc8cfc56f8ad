"""What both load benchmarks (`harness.bench_api`, `harness.bench_sessions`) share:
the pipeline alone as a reference, photos with unique bytes, percentiles, and what
the service adds to the pipeline with the report cells that show it."""

from __future__ import annotations

import math
import secrets
import struct
import time
from dataclasses import dataclass

from pipeline import FaceModels, PipelineSettings, prepare


@dataclass(frozen=True)
class Reference:
    """The pipeline alone, in this process, on the same photo as each round."""

    models: FaceModels
    settings: PipelineSettings

    def warm_up(self, data: bytes) -> None:
        prepare(data, self.models, self.settings)

    def time_ms(self, data: bytes) -> float:
        start = time.perf_counter()
        prepare(data, self.models, self.settings)
        return (time.perf_counter() - start) * 1000


def unique_jpeg(data: bytes) -> bytes:
    """The same picture with different bytes: a comment segment (COM) after SOI
    holding a random token, so every upload is a new avatar, not a dedupe hit."""
    assert data[:2] == b"\xff\xd8", "the benchmark photos are JPEGs"
    token = b"bench-api " + secrets.token_hex(16).encode()
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(token) + 2) + token + data[2:]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile by nearest rank (with 40 values, p99 is the largest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def added_ms(total_ms: list[float], pipeline_ms: list[float]) -> list[float]:
    """Each round's time through the service minus the pipeline alone in the same
    round: what the service adds. Empty when the rounds are not paired (no pipeline
    times: concurrent runs, or a round that did not finish)."""
    if not pipeline_ms:
        return []
    return [t - p for t, p in zip(total_ms, pipeline_ms, strict=True)]


def paired_cells(pipeline_ms: list[float], added: list[float], one_by_one: bool) -> str:
    """A report row's `pipeline p50 ms` and `added p50 ms` cells (16 and 13 wide,
    one space apart): the medians of the pipeline alone and of what the service
    added (`added_ms`), when the run went one at a time with its rounds paired;
    blank otherwise, where the two do not compare."""
    if not (one_by_one and pipeline_ms):
        return f"{'':>16} {'':>13}"
    return f"{percentile(pipeline_ms, 50):>16.0f} {percentile(added, 50):>13.0f}"

"""What both load benchmarks (`harness.bench_api`, `harness.bench_sessions`) share:
the pipeline alone as a reference, photos with unique bytes, percentiles."""

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

"""Where `prepare`'s time goes: milliseconds per pipeline stage."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter

STAGES = ("decode", "detect", "mesh", "align", "encode")


class Stopwatch:
    """Milliseconds spent per stage, summed over every time the stage runs."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = perf_counter()
        try:
            yield
        finally:
            self.ms[stage] += (perf_counter() - start) * 1000

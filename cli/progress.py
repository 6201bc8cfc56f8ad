"""Batch progress on stderr: a tqdm bar on a terminal, plain lines in a log.

A bar redrawn with carriage returns turns a log file into noise, so when stderr
is not a terminal the batch prints one line every tenth of the files or every
`PLAIN_EVERY_S` seconds, whichever comes first, and one at the end.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Never, TextIO

from tqdm import tqdm

from cli.report import VERDICTS, Row

PLAIN_EVERY_S = 10.0


class Progress:
    """Counts finished rows and shows them; `close()` when the batch ends."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self._total = total
        self._stream = stream
        self._done = 0
        self._verdicts: Counter[str] = Counter()
        self._start = time.monotonic()
        self._bar: tqdm[Never] | None = None
        if stream.isatty():
            self._bar = tqdm(total=total, unit="img", file=stream, dynamic_ncols=True)
        self._every = max(1, total // 10)
        self._last_line = self._start
        self._lined = 0  # files done when the last plain line was printed

    def advance(self, row: Row) -> None:
        self._done += 1
        self._verdicts[row.verdict] += 1
        if self._bar is not None:
            self._bar.set_postfix({v: self._verdicts[v] for v in VERDICTS}, refresh=False)
            self._bar.update(1)
            return
        now = time.monotonic()
        if self._done % self._every == 0 or now - self._last_line >= PLAIN_EVERY_S:
            self._line(now)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._lined != self._done or self._done == 0:
            self._line(time.monotonic())

    def _line(self, now: float) -> None:
        self._last_line, self._lined = now, self._done
        elapsed = now - self._start
        rate = self._done / elapsed if elapsed > 0 else 0.0
        eta = (self._total - self._done) / rate if rate > 0 else 0.0
        counts = ", ".join(f"{v} {self._verdicts[v]}" for v in VERDICTS)
        percent = 100 * self._done // max(1, self._total)
        print(
            f"batch: {self._done}/{self._total} ({percent}%), {counts}; "
            f"{rate:.2f} images/s, {elapsed:.0f} s elapsed, eta {eta:.0f} s",
            file=self._stream,
            flush=True,
        )

"""The batch report: one CSV row per input file, and the summary printed at the end.

The CSV is written row by row as files finish (so an interrupted batch leaves
a report `--resume` can use) and rewritten sorted by path when the batch ends.
Paths are kept as the file system gave them: names that are not valid UTF-8
round-trip through the CSV with `surrogateescape`.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import IO

VERDICTS = ("accept", "reject", "error")  # error: the file could not be run (unreadable, crash)


@dataclass(frozen=True)
class Row:
    """The outcome of one file. `path` is relative to the batch root ('/'-separated);
    `output` is the file's folder relative to the output root; `code` is empty
    for an accept; `warnings` names the checks an accepted image failed without
    being rejected, ';'-separated; `avatar_id` is the `avat_` id an accepted file
    was registered under (`batch --upload`), else empty."""

    path: str
    verdict: str
    code: str
    message: str
    warnings: str
    time_ms: float
    sha256: str
    output: str
    avatar_id: str = ""


COLUMNS = tuple(f.name for f in fields(Row))


def _open(path: Path, mode: str) -> IO[str]:
    return path.open(mode, newline="", encoding="utf-8", errors="surrogateescape")


def read_report(path: Path) -> dict[str, Row]:
    """The rows of a previous report by path; empty when there is none. A file
    with other columns is not a report of ours: ValueError."""
    if not path.is_file():
        return {}
    with _open(path, "r") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path} is not an avatar-prep batch report (columns {COLUMNS})")
        rows = [_row(values) for values in reader]
    return {row.path: row for row in rows}


def _row(values: dict[str, str]) -> Row:
    return Row(
        path=values["path"],
        verdict=values["verdict"],
        code=values["code"],
        message=values["message"],
        warnings=values["warnings"],
        time_ms=float(values["time_ms"]),
        sha256=values["sha256"],
        output=values["output"],
        avatar_id=values["avatar_id"],
    )


class ReportWriter:
    """Appends rows as they come, flushed, so the file is always usable."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._file = _open(path, "w")
        self._csv = csv.writer(self._file)
        self._csv.writerow(COLUMNS)

    def write(self, row: Row) -> None:
        self._csv.writerow(astuple(row))
        self._file.flush()

    def close(self, rows: Iterable[Row]) -> None:
        """Close, replacing the file with `rows` sorted by path (atomically)."""
        self._file.close()
        tmp = self._path.with_name(self._path.name + ".tmp")
        with _open(tmp, "w") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            writer.writerows(astuple(r) for r in sorted(rows, key=lambda r: r.path))
        os.replace(tmp, self._path)


@dataclass(frozen=True)
class Summary:
    """What a batch did. `processed` excludes files skipped by --resume; the rate
    is processed files over the whole wall time (pool start-up included)."""

    processed: tuple[Row, ...]
    skipped: tuple[Row, ...]
    wall_s: float
    workers: int
    report: Path

    @property
    def images_per_s(self) -> float:
        return len(self.processed) / self.wall_s if self.wall_s > 0 else 0.0

    def format(self) -> str:
        lines = [
            f"batch: {len(self.processed)} files in {self.wall_s:.1f} s "
            f"({self.images_per_s:.2f} images/s, {self.workers} workers)"
        ]
        verdicts = Counter(r.verdict for r in self.processed)
        for verdict in VERDICTS:
            codes = Counter(r.code for r in self.processed if r.verdict == verdict and r.code)
            detail = ", ".join(f"{code} {n}" for code, n in sorted(codes.items()))
            count = f"  {verdict:<7}{verdicts[verdict]:>6}"
            lines.append(f"{count}   {detail}" if detail else count)
        if self.skipped:
            lines.append(f"  skipped{len(self.skipped):>6}   done before, same sha256 (--resume)")
        lines.append(f"report: {self.report}")
        return "\n".join(lines)

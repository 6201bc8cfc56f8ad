"""Scoring pipeline verdicts against a labelled set (`../shared/faces/labels.csv`).

The scoring rules are the sets' READMEs': accept against any rejection is the
primary measure; for the reason, `reject:non_human` is also matched by a
no-face verdict, `reject:not_a_photo` by any rejection, and a sculpture, doll
or mask (`reject:no_face`, category `object`) by a non-human or not-a-photo
verdict. Rows whose notes say AMBIGUOUS or BORDERLINE are scored separately as
well, and every row by its category when the labels have one.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.aspect import AspectRatio

# Our error codes in the labels' vocabulary; other codes keep their own name.
CODE_REASONS = {
    "face.none": "no_face",
    "face.multiple": "multiple_faces",
    "face.too_small": "face_too_small",
    "face.not_frontal": "not_frontal",
    "face.not_human": "non_human",
    "image.not_a_photo": "not_a_photo",
}
FLAGS = ("AMBIGUOUS", "BORDERLINE")
ACCEPT = "accept"


@dataclass(frozen=True)
class Label:
    """One row of the labels file: `expected` is `accept` or `reject:<reason>`."""

    file: str
    expected: str
    notes: str
    category: str = ""

    @property
    def flagged(self) -> bool:
        """A label a reasonable person could dispute (AMBIGUOUS or BORDERLINE)."""
        return any(flag in self.notes for flag in FLAGS)


@dataclass(frozen=True)
class Outcome:
    """A label with the pipeline's verdict: `predicted` in the labels' vocabulary
    (`accept` or `reject:<reason>`), `code` the error code ('' for an accept),
    `warnings` the codes an accepted photo was warned with, `checks` every
    check as `Check.to_dict()` (for the leave-one-out figure)."""

    file: str
    expected: str
    predicted: str
    code: str
    message: str
    flagged: bool
    category: str = ""
    warnings: tuple[str, ...] = ()
    checks: tuple[dict[str, Any], ...] = ()

    @property
    def verdict_right(self) -> bool:
        return (self.expected == ACCEPT) == (self.predicted == ACCEPT)

    @property
    def reason_right(self) -> bool:
        """The same label, with the README's two allowances for the reason."""
        if self.expected == self.predicted:
            return True
        if ACCEPT in (self.expected, self.predicted):
            return False
        if self.expected == "reject:not_a_photo":
            return True
        if self.expected == "reject:no_face" and self.category == "object":
            return self.predicted in ("reject:non_human", "reject:not_a_photo")
        return self.expected == "reject:non_human" and self.predicted == "reject:no_face"


def read_labels(path: Path) -> list[Label]:
    """The rows of a labels CSV (columns `file` and `expected`; `notes` optional).
    Raises ValueError for a file without those columns or with an unknown label."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"file", "expected"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{path}: needs the columns 'file' and 'expected'")
        labels = [
            Label(r["file"], r["expected"].strip(), r.get("notes") or "", r.get("category") or "")
            for r in reader
        ]
    for label in labels:
        if label.expected != ACCEPT and not label.expected.startswith("reject:"):
            raise ValueError(f"{path}: {label.file}: expected must be accept or reject:<reason>")
    return labels


def predicted_label(code: str | None) -> str:
    """`accept` for no error code, else `reject:<reason>`."""
    if not code:
        return ACCEPT
    return "reject:" + CODE_REASONS.get(code, code)


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    """Accuracies, the confusion table and the disagreements, JSON-ready.

    `accuracy` is accept-vs-reject agreement over all rows, over the rows not
    flagged (`clear`) and over the flagged ones; `reason_agreement` is the
    share of the rows that were rightly rejected whose reason also matches.
    """
    clear = [o for o in outcomes if not o.flagged]
    flagged = [o for o in outcomes if o.flagged]
    rejected = [o for o in outcomes if o.expected != ACCEPT and o.predicted != ACCEPT]
    confusion = Counter((o.expected, o.predicted) for o in outcomes)
    return {
        "rows": len(outcomes),
        "accuracy": {
            "all": _share(outcomes, "verdict_right"),
            "clear": _share(clear, "verdict_right"),
            "flagged": _share(flagged, "verdict_right"),
        },
        "counts": {"all": len(outcomes), "clear": len(clear), "flagged": len(flagged)},
        "reason_agreement": _share(rejected, "reason_right"),
        "multiple_faces_accepted": sum(
            1 for o in outcomes if o.expected == "reject:multiple_faces" and o.predicted == ACCEPT
        ),
        "confusion": [
            {"expected": e, "predicted": p, "count": n} for (e, p), n in sorted(confusion.items())
        ],
        "categories": _by_category(outcomes),
        "warned": [{"file": o.file, "warnings": list(o.warnings)} for o in outcomes if o.warnings],
        "disagreements": [asdict(o) for o in outcomes if not o.reason_right],
        "fills": fill_statistics(outcomes),
    }


# The fill check of each rendition (see pipeline/rules/framing.py).
FILL_CHECKS = {ratio.value: f"fill_{ratio.slug}" for ratio in AspectRatio}


def fill_statistics(outcomes: list[Outcome]) -> dict[str, dict[str, float]]:
    """Per rendition, the share of the frame filled over the accepted photos
    whose checks include its fill check: median, 90th percentile (linear
    interpolation) and max; a rendition without such photos is left out."""
    stats = {}
    for ratio, name in FILL_CHECKS.items():
        values = [
            c["value"]
            for o in outcomes
            if o.predicted == ACCEPT
            for c in o.checks
            if c["name"] == name
        ]
        if values:
            stats[ratio] = {
                "median": float(np.median(values)),
                "p90": float(np.percentile(values, 90)),
                "max": float(np.max(values)),
            }
    return stats


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as text for people: confusion table, accuracies, disagreements."""
    cells = {(c["expected"], c["predicted"]): c["count"] for c in summary["confusion"]}
    expected = sorted({e for e, _ in cells}, key=_label_order)
    predicted = sorted({p for _, p in cells}, key=_label_order)
    first = max(len("expected \\ predicted"), *(len(e) for e in expected))
    widths = [max(len(p), 3) for p in predicted]
    lines = [
        "  ".join(
            [
                "expected \\ predicted".ljust(first),
                *(p.rjust(w) for p, w in zip(predicted, widths, strict=True)),
            ]
        )
    ]
    for e in expected:
        counts = [
            str(cells.get((e, p), "")).rjust(w) for p, w in zip(predicted, widths, strict=True)
        ]
        lines.append("  ".join([e.ljust(first), *counts]))

    acc, counts = summary["accuracy"], summary["counts"]
    lines += [
        "",
        f"accept/reject right: {percent(acc['all'])} of {counts['all']} rows; "
        f"{percent(acc['clear'])} of {counts['clear']} clear rows; "
        f"{percent(acc['flagged'])} of {counts['flagged']} AMBIGUOUS/BORDERLINE rows",
        f"reason agreement (rightly rejected rows): {percent(summary['reason_agreement'])}",
        f"reject:multiple_faces rows accepted: {summary['multiple_faces_accepted']}",
    ]
    if summary["fills"]:
        lines += ["", "fill of the accepted photos' renditions (share invented outside the photo):"]
        for ratio, fill in summary["fills"].items():
            lines.append(
                f"  {ratio}  median {percent(fill['median'])}  90th percentile "
                f"{percent(fill['p90'])}  max {percent(fill['max'])}"
            )
    if summary["categories"]:
        lines += ["", "by category (verdict right / rows):"]
        for c in summary["categories"]:
            share = percent(c["right"] / c["rows"])
            lines.append(f"  {c['category']:22} {c['right']:3} / {c['rows']:<3} {share}")
    if summary["warned"]:
        lines += ["", "accepted with warnings:"]
        lines += [f"  {w['file']}: {', '.join(w['warnings'])}" for w in summary["warned"]]
    if summary["disagreements"]:
        lines += ["", "disagreements:"]
        for d in summary["disagreements"]:
            flag = " (flagged)" if d["flagged"] else ""
            lines.append(f"  {d['file']}: expected {d['expected']}, got {d['predicted']}{flag}")
            if d["message"]:
                lines.append(f"      {d['message']}")
    return "\n".join(lines)


def _by_category(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    rows = Counter(o.category for o in outcomes if o.category)
    right = Counter(o.category for o in outcomes if o.category and o.verdict_right)
    return [{"category": c, "rows": n, "right": right[c]} for c, n in sorted(rows.items())]


def _share(outcomes: list[Outcome], attribute: str) -> float | None:
    if not outcomes:
        return None
    return sum(1 for o in outcomes if getattr(o, attribute)) / len(outcomes)


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _label_order(label: str) -> tuple[bool, str]:
    return (label != ACCEPT, label)

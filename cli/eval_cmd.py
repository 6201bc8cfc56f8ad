"""`avatar-prep eval DIR --labels CSV [--json] [--graded] [--stability]`: run the pipeline on a
labelled set and score it (rules in `cli/scoring.py`).

Prints the confusion table (expected label against the verdict in the labels'
vocabulary), accept/reject accuracy overall and for the clear and the
AMBIGUOUS/BORDERLINE rows, reason agreement, results per category, the
warnings, every disagreement, and the accuracy with the data-chosen limits
refitted on every row and left out per row (`cli/loo.py`). `--graded` adds the
quality checks on the clearly accepted photos degraded at four strengths
(`cli/graded.py`); `--stability` runs every photo again mirrored, smaller,
cropped, re-saved, brighter, tilted, sepia-toned and grainy, and counts the
verdicts that change
(`cli/stability.py`); `--sheet FILE.png` draws every rendition of the set on one
contact sheet (`cli/sheet.py`). The summary ends with the fill of the accepted
photos' renditions (median, 90th percentile, max). Exit codes:
0 the set was scored, 2 bad usage (unreadable labels, a listed file missing).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cli.graded import format_graded, graded
from cli.loo import leave_one_out, refitted
from cli.scoring import (
    ACCEPT,
    FILL_CHECKS,
    Label,
    Outcome,
    format_summary,
    percent,
    predicted_label,
    read_labels,
    summarise,
)
from cli.sheet import SheetPhoto, draw_sheet
from cli.stability import format_stability, stability
from pipeline import FaceModels, ImageError, PipelineSettings, Rejected, prepare
from service.settings import Settings

EXIT_DONE, EXIT_USAGE = 0, 2

DESCRIPTION = """\
Run the pipeline on a labelled folder of photos and score it: the confusion
table (expected label against the verdict), accept/reject accuracy overall and
for the clear and the AMBIGUOUS/BORDERLINE rows, reason agreement, results per
category, the warnings, every disagreement, and the accuracy with the limits
refitted on every row and left out per row. --graded adds the quality checks
on the clearly accepted photos degraded at four strengths; --stability runs
every photo again mirrored, smaller, cropped, re-saved, brighter, tilted,
sepia-toned and grainy and counts the verdicts that change; --sheet FILE.png
draws every rendition of the set on one contact sheet. The summary ends with
the fill of the accepted photos' renditions (median, 90th percentile, max).

Exit codes: 0 the set was scored, 2 bad usage (unreadable labels, a listed
file missing)."""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "eval",
        help="score the pipeline on a labelled folder of images",
        description=DESCRIPTION,
    )
    parser.add_argument("folder", type=Path, metavar="DIR", help="folder of the images")
    parser.add_argument(
        "--labels",
        type=Path,
        required=True,
        metavar="CSV",
        help="CSV with columns file, expected (accept | reject:<reason>) and optional notes",
    )
    parser.add_argument("--json", action="store_true", help="print rows and summary as JSON")
    parser.add_argument(
        "--graded",
        action="store_true",
        help="also degrade every clearly accepted photo at four strengths (blur, shake, "
        "under and over exposure, heavy JPEG) and show what the quality checks say",
    )
    parser.add_argument(
        "--stability",
        action="store_true",
        help="also run every photo mirrored, at 75%% size, 3%% cropped, re-saved, +0.2 EV "
        "brighter, tilted 15 degrees, sepia-toned and with sensor grain, and count the "
        "verdicts that change",
    )
    parser.add_argument(
        "--sheet",
        type=Path,
        metavar="PNG",
        help="also draw a contact sheet of every photo's renditions, verdict, code and fill",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        labels = read_labels(args.labels)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        print(f"avatar-prep eval: cannot read labels {args.labels}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    missing = [label.file for label in labels if not (args.folder / label.file).is_file()]
    if missing:
        print(
            f"avatar-prep eval: {len(missing)} labelled files not in {args.folder}: "
            + ", ".join(missing[:5]),
            file=sys.stderr,
        )
        return EXIT_USAGE

    settings = Settings().pipeline
    with FaceModels.load() as models:
        scored = [score(args.folder, label, models, settings) for label in labels]
        outcomes = [outcome for outcome, _ in scored]
        if args.sheet is not None:
            draw_sheet([photo for _, photo in scored], args.sheet)
        clear_accepts = {
            o.file: (args.folder / o.file).read_bytes()
            for o in outcomes
            if o.expected == ACCEPT and not o.flagged
        }
        degraded = graded(clear_accepts, models, settings) if args.graded else []
        varied = []
        if args.stability:
            photos = {o.file: ((args.folder / o.file).read_bytes(), o.code) for o in outcomes}
            varied = stability(photos, models, settings)
    summary = summarise(outcomes)
    summary["refitted"] = summarise(refitted(outcomes))["accuracy"]
    summary["leave_one_out"] = summarise(leave_one_out(outcomes))["accuracy"]
    if args.json:
        rows = [dict(vars(o), verdict_right=o.verdict_right) for o in outcomes]
        report: dict[str, Any] = {"summary": summary, "rows": rows}
        if args.graded:
            report["graded"] = [vars(g) for g in degraded]
        if args.stability:
            report["stability"] = [dict(vars(v), flipped=v.flipped) for v in varied]
        print(json.dumps(report, indent=2))
    else:
        print(format_summary(summary))
        for name, key in (
            ("data-chosen limits refitted on every row", "refitted"),
            ("leave-one-out (each row scored with limits chosen without it)", "leave_one_out"),
        ):
            accuracy = summary[key]
            print(
                f"{name}: {percent(accuracy['all'])} of all rows, "
                f"{percent(accuracy['clear'])} of clear rows"
            )
        if args.graded:
            print()
            print(format_graded(degraded))
        if args.stability:
            print()
            print(format_stability(varied))
    return EXIT_DONE


def score(
    folder: Path, label: Label, models: FaceModels, settings: PipelineSettings
) -> tuple[Outcome, SheetPhoto]:
    """Run one labelled file through the pipeline: its outcome, and what the
    contact sheet shows of it."""
    code, message = "", ""
    warnings: tuple[str, ...] = ()
    renditions: dict[str, bytes] = {}
    data = (folder / label.file).read_bytes()
    try:
        prepared = prepare(data, models, settings)
        warnings, checks = tuple(c.code for c in prepared.warnings), prepared.checks
        renditions = {ar: r.data for ar, r in prepared.renditions.items()}
    except (Rejected, ImageError) as verdict:
        code, message, checks = verdict.code, verdict.message, verdict.checks
    fills = {
        ratio: float(c.value)
        for ratio, name in FILL_CHECKS.items()
        for c in checks
        if c.name == name and isinstance(c.value, float)
    }
    photo = SheetPhoto(label.file, label.expected, code, renditions, fills, data)
    outcome = Outcome(
        file=label.file,
        expected=label.expected,
        predicted=predicted_label(code),
        code=code,
        message=message,
        flagged=label.flagged,
        category=label.category,
        warnings=warnings,
        checks=tuple(c.to_dict() for c in checks),
    )
    return outcome, photo

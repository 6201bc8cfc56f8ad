"""`avatar-prep prepare IMAGE [-o DIR] [--overlay] [--json]`: one photo in,
its renditions and `result.json` out.

Exit codes: 0 accepted, 1 rejected (a face rule or an image.* problem such as
an unsupported or corrupt file), 2 bad usage or a path that cannot be read
(missing, a directory, no permission) or an output folder that cannot be written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cli.results import OVERLAY_FILE, RENDITION_FILES, RESULT_FILE, output_name, process_image
from pipeline import FaceModels
from service.settings import Settings

EXIT_ACCEPTED, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "prepare",
        help="prepare one photo: renditions and result.json",
        description=__doc__,
    )
    parser.add_argument("image", type=Path, help="the photo (any supported format)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="output folder (default: prepared/<safe name of IMAGE>)",
    )
    parser.add_argument("--overlay", action="store_true", help=f"also write {OVERLAY_FILE}")
    parser.add_argument("--json", action="store_true", help="print the record as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    image: Path = args.image
    try:
        data = image.read_bytes()
    except OSError as exc:
        print(f"avatar-prep prepare: cannot read {image}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    out_dir: Path = args.output or Path("prepared") / output_name(image.name)

    settings = Settings().pipeline
    models = FaceModels.load()
    try:
        record = process_image(data, models, settings, out_dir, overlay=args.overlay)
    except OSError as exc:
        print(f"avatar-prep prepare: cannot write {out_dir}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        models.close()

    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(describe(record))
        print(f"wrote {out_dir}/: {', '.join(written_files(record, args.overlay))}")
    return EXIT_ACCEPTED if record["verdict"] == "accept" else EXIT_REJECTED


def written_files(record: dict[str, Any], overlay: bool) -> list[str]:
    """The names `process_image` wrote for this record, in a stable order."""
    names = list(RENDITION_FILES.values()) if record["verdict"] == "accept" else []
    if overlay and record["source"] is not None:
        names.append(OVERLAY_FILE)
    return [*names, RESULT_FILE]


def describe(record: dict[str, Any]) -> str:
    """A short summary for people: the verdict, the code and message of a
    rejection, every failed check with its value, limit and hint."""
    lines: list[str] = []
    if record["verdict"] == "accept":
        face, source = record["face"], record["source"]
        pose = face["pose"]
        lines.append(
            f"accept: one face (score {face['score']:.2f}) in a {source['format']} "
            f"{source['width']}x{source['height']}; yaw {round(pose['yaw']):+d}, "
            f"pitch {round(pose['pitch']):+d}, roll {round(pose['roll']):+d} degrees"
        )
        images = record["images"].items()
        sizes = ", ".join(f"{ar} {im['width']}x{im['height']}" for ar, im in images)
        lines.append(f"  renditions: {sizes}")
    else:
        error = record["error"]
        lines.append(f"reject: {error['code']}: {error['message']}")
    for check in record["checks"]:
        if not check["passed"]:
            label = "failed" if record["verdict"] == "reject" else "warning"
            lines.append(
                f"  {label} {check['name']}: {check['value']} (limit {check['limit']}); "
                f"{check['hint']}"
            )
    return "\n".join(lines)

"""One image in, its files out: the step `prepare` and every `batch` worker share.

An output folder holds exactly the outputs of the last run on its image:
`result.json` always, the three renditions when the image was accepted, and
`overlay.jpg` when asked for and the image could be decoded. Files a previous
run left there (say renditions of an image that is now rejected) are removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

from pipeline import FaceModels, ImageError, PipelineSettings, Prepared, Rejected, prepare
from pipeline.aspect import AspectRatio
from pipeline.overlay import render_overlay

RENDITION_FILES: dict[str, str] = {ratio: f"avatar_{ratio.slug}.jpg" for ratio in AspectRatio}
RESULT_FILE = "result.json"
OVERLAY_FILE = "overlay.jpg"
_OUTPUT_FILES = (*RENDITION_FILES.values(), RESULT_FILE, OVERLAY_FILE)

_SLUG_MAX = 80


def output_name(relative_path: str) -> str:
    """A folder name for the file at `relative_path` ('/'-separated, relative to
    the batch root) that is safe and unique.

    Safe: only [A-Za-z0-9._-], never starting with '.', so it can neither escape
    its parent nor be '.' or '..'. Unique: the slug is readable but lossy
    (`a/b.jpg` and `a_b.jpg` slug alike), so a hash of the exact path (its file
    system bytes, which also covers names that are not valid UTF-8) is appended.
    """
    ascii_text = unicodedata.normalize("NFKD", relative_path).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_text.replace("/", "_"))
    slug = slug.strip(".-_")[:_SLUG_MAX].rstrip(".-_") or "file"
    digest = hashlib.sha256(os.fsencode(relative_path)).hexdigest()[:10]
    return f"{slug}-{digest}"


def process_image(
    data: bytes,
    models: FaceModels,
    settings: PipelineSettings,
    out_dir: Path,
    *,
    overlay: bool = False,
) -> dict[str, Any]:
    """Run the pipeline on `data` and write its outputs to `out_dir` (created if
    missing). Returns the JSON record that was written to `result.json`.

    An ImageError or a Rejected is a verdict, not a failure: it is recorded and
    returned. Any other exception (a bug) propagates; so do OSErrors from writing.
    """
    record, _ = process_image_result(data, models, settings, out_dir, overlay=overlay)
    return record


def process_image_result(
    data: bytes,
    models: FaceModels,
    settings: PipelineSettings,
    out_dir: Path,
    *,
    overlay: bool = False,
) -> tuple[dict[str, Any], Prepared | None]:
    """`process_image`, also returning the accepted result itself (None when
    rejected), for a caller that does more with it (`batch --upload`)."""
    prepared: Prepared | None = None
    renditions: dict[str, bytes] = {}
    try:
        prepared = prepare(data, models, settings)
    except (Rejected, ImageError) as verdict:
        record = verdict.to_record()
    else:
        record = prepared.to_dict()
        renditions = {ar: r.data for ar, r in prepared.renditions.items()}

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in _OUTPUT_FILES:
        (out_dir / name).unlink(missing_ok=True)
    for aspect_ratio, jpeg in renditions.items():
        (out_dir / RENDITION_FILES[aspect_ratio]).write_bytes(jpeg)
    # An overlay needs decodable pixels; an image.* rejection has none to draw on.
    if overlay and record["source"] is not None:
        (out_dir / OVERLAY_FILE).write_bytes(render_overlay(data, record, settings))
    (out_dir / RESULT_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record, prepared

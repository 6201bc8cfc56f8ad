"""`avatar-prep batch DIR -o OUT [--workers N] [--resume] [--report FILE] [--overlay]`:
prepare every file under DIR in a process pool, one report row per file.

Every regular file under DIR counts (recursively; names starting with '.' and
the output folder are skipped): the format is sniffed from the bytes, so a
HEIC named .jpg or an AVIF with no extension is read, and a file that is not
an image gets its `image.unsupported_format` row. Each file's outputs go to
OUT/<safe name>/ (see `cli.results.output_name`). A bad file never stops the
batch. With --resume, files whose previous row is a verdict with the same
sha256 and whose result.json is still there are not run again.

With --upload --key KEY, each accepted file is also registered as an avatar of
that key's account through the configured service (AVATAR_PREP_* settings: the
same registry, storage and dedupe as an API upload), processed in the batch's
own worker processes, and its `avat_` id is written in the report.

Exit codes: 0 the batch ran (whatever the verdicts), 2 bad usage (a folder
with no files to prepare included).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cli.batch_pool import Initializer, Worker, run_jobs
from cli.batch_worker import Job, Upload, init_worker, no_broker, process_job
from cli.progress import Progress
from cli.report import ReportWriter, Row, Summary, read_report
from cli.results import RESULT_FILE, output_name
from pipeline import PipelineSettings
from pipeline.errors import AvatarPrepError
from service.runtime import Services
from service.settings import Settings

EXIT_OK, EXIT_INTERRUPTED, EXIT_USAGE = 0, 130, 2


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "batch",
        help="prepare every image in a folder, with a CSV report",
        description=__doc__,
    )
    parser.add_argument("dir", type=Path, help="folder of photos (searched recursively)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="worker processes (default: the usable CPU count)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="skip files already done with the same sha256"
    )
    parser.add_argument(
        "--report", type=Path, default=None, help="CSV report (default: OUT/report.csv)"
    )
    parser.add_argument(
        "--overlay", action="store_true", help="also write each image's overlay.jpg"
    )
    parser.add_argument(
        "--upload",
        action="store_true",
        help="register every accepted file as an avatar (needs --key)",
    )
    parser.add_argument("--key", help="the API key whose account the avatars belong to")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.dir.is_dir():
        print(f"avatar-prep batch: {args.dir} is not a folder", file=sys.stderr)
        return EXIT_USAGE
    if args.workers < 1:
        print("avatar-prep batch: --workers must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if not find_files(args.dir, exclude=[args.output]):
        print(
            f"avatar-prep batch: {args.dir} has no files to prepare (hidden files and the "
            "output folder are skipped); nothing was written",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.upload != bool(args.key):
        print("avatar-prep batch: --upload and --key go together", file=sys.stderr)
        return EXIT_USAGE
    settings = Settings()
    try:
        upload = Upload(settings, account_of(settings, args.key)) if args.upload else None
    except AvatarPrepError as exc:
        print(f"avatar-prep batch: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    report: Path = args.report or args.output / "report.csv"
    if report.is_dir():
        print(f"avatar-prep batch: --report {report} is a folder", file=sys.stderr)
        return EXIT_USAGE
    try:
        summary = run_batch(
            args.dir,
            args.output,
            report,
            args.workers,
            settings.pipeline,
            resume=args.resume,
            overlay=args.overlay,
            upload=upload,
        )
    except ValueError as exc:  # --resume with a report that is not ours
        print(f"avatar-prep batch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"interrupted; the report so far is in {report}; rerun with --resume")
        return EXIT_INTERRUPTED
    print(summary.format())
    return EXIT_OK


def run_batch(
    root: Path,
    out: Path,
    report: Path,
    workers: int,
    settings: PipelineSettings,
    *,
    resume: bool = False,
    overlay: bool = False,
    upload: Upload | None = None,
    worker: Worker = process_job,
    initializer: Initializer = init_worker,
) -> Summary:
    """Prepare every file under `root` into `out`, writing `report` as rows come.
    `worker`/`initializer` are the pool's seam (see `run_jobs`)."""
    previous = read_report(report) if resume else {}
    jobs: list[Job] = []
    carried: list[Row] = []
    for path in find_files(root, exclude=(out, report)):
        job = Job(root / path, path, out, output_name(path), overlay, upload)
        if is_done(job, previous.get(path)):
            carried.append(previous[path])
        else:
            jobs.append(job)

    workers = min(workers, max(1, len(jobs)))
    processed: list[Row] = []
    writer = ReportWriter(report)
    for row in carried:
        writer.write(row)
    progress = Progress(len(jobs), sys.stderr)

    def on_row(row: Row) -> None:
        processed.append(row)
        writer.write(row)
        progress.advance(row)

    start = time.perf_counter()
    try:
        run_jobs(jobs, settings, workers, on_row, worker=worker, initializer=initializer)
    finally:
        wall_s = time.perf_counter() - start
        progress.close()
        writer.close([*carried, *processed])
    return Summary(tuple(processed), tuple(carried), wall_s, workers, report)


def account_of(settings: Settings, key: str) -> str:
    """The account id of API key `key` (AuthenticationFailed when unknown or revoked)."""
    services = Services.create(settings, no_broker)
    try:
        return services.keys.authenticate(key).id
    finally:
        services.close()


def is_done(job: Job, previous: Row | None) -> bool:
    """Whether `job` was finished by an earlier run: its row is a verdict (an
    `error` is retried), its result.json is still there, and the file has not
    changed since (same sha256)."""
    if previous is None or previous.verdict == "error" or previous.output != job.output:
        return False
    if not (job.out_root / job.output / RESULT_FILE).is_file():
        return False
    try:
        with job.source.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest() == previous.sha256
    except OSError:
        return False


def find_files(root: Path, exclude: Iterable[Path]) -> list[str]:
    """Every regular file under `root`, recursively, as sorted '/'-separated
    paths relative to `root`. Skipped: names starting with '.' (.git,
    .DS_Store), the paths in `exclude` (the output folder, the report) and
    symlinked folders (they can loop); symlinked files are followed."""
    excluded = {p.resolve() for p in exclude}
    found: list[str] = []

    def unreadable(error: OSError) -> None:
        print(f"avatar-prep batch: skipped {error.filename}: {error.strerror}", file=sys.stderr)

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        here = Path(dirpath)
        dirnames[:] = [
            d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in excluded
        ]
        for name in filenames:
            path = here / name
            if name.startswith(".") or path.resolve() in excluded or not path.is_file():
                continue
            found.append(path.relative_to(root).as_posix())
    return sorted(found)

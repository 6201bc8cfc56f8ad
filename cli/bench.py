"""`avatar-prep bench [--json] [--quick] [--batch] [--image PATH]`: how fast the
pipeline is, against what it must beat.

Default: per-stage medians and end-to-end time of `prepare()` for a 1 MP and a
12 MP JPEG, a naive reference and a plain full decode of the same files, their
ratios, and peak memory for a 50 MP JPEG in a fresh process. The JPEGs are made
at run time by Lanczos-resampling a real sample photo (`--image`). Timing runs
in a child process pinned to one core (see `harness.stage_timing`).

`--batch`: `avatar-prep batch` itself, on 12 MP JPEGs made from the 4000x3000
sample photo: images/s with 1 and with 2 workers and their ratio; and the cost
of one more photo to a one-worker batch against `prepare()` alone and the naive
reference on the same 40 distinct files.

`--quick`: fewer runs, fewer files, a 12 MP memory image: for the test suite,
not for figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sample_images import BENCH_PHOTOS, SAMPLES

# The repository's sample photos (public domain), wherever the project is
# installed: the portrait for the stages, the phone-sized photo for --batch.
DEFAULT_IMAGE = SAMPLES / BENCH_PHOTOS["1mp"]
DEFAULT_BATCH_IMAGE = SAMPLES / BENCH_PHOTOS["12mp"]


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "bench",
        help="measure stage times, memory, and batch scaling and cost per image",
        description=__doc__,
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="a short run for tests")
    parser.add_argument(
        "--batch",
        action="store_true",
        help="measure batch scaling (1 vs 2 workers) and cost per image instead",
    )
    parser.add_argument(
        "--image",
        type=Path,
        default=None,
        help="the photo the test JPEGs are made from (default "
        f"{DEFAULT_IMAGE}, with --batch {DEFAULT_BATCH_IMAGE})",
    )
    parser.set_defaults(run=_run)


def register_api(sub: Any) -> None:
    bench = sub.add_parser("bench-api", help="load benchmark of the service through its HTTP API")
    target = bench.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="base URL of a running API, e.g. http://127.0.0.1:8000")
    target.add_argument(
        "--start",
        action="store_true",
        help="start the API and a worker here (settings from AVATAR_PREP_*)",
    )
    bench.add_argument("--key", help="API key (with --url; --start makes its own)")
    bench.add_argument("-n", type=int, default=40, help="uploads per photo (default %(default)s)")
    bench.add_argument("-c", type=int, default=4, help="concurrent clients (default %(default)s)")
    bench.add_argument(
        "--sequential",
        type=int,
        default=10,
        help="one-at-a-time uploads per photo for the overhead figure (default %(default)s)",
    )
    bench.add_argument(
        "--workers",
        default="1,2",
        help="with --start: worker process counts to measure (default %(default)s)",
    )
    bench.add_argument(
        "--images",
        default="1mp,12mp",
        help=f"photos to send, from {', '.join(BENCH_PHOTOS)} (default %(default)s)",
    )
    bench.set_defaults(run=_run_api)


def _run(args: argparse.Namespace) -> int:
    # The benchmark library (and the face models it loads) only when a bench runs.
    from harness.bench import run

    if args.image is None:
        args.image = DEFAULT_BATCH_IMAGE if args.batch else DEFAULT_IMAGE
    return run(args)


def _run_api(args: argparse.Namespace) -> int:
    from harness.bench_api import run

    return run(args)

"""`avatar-prep reprocess`: re-render stored avatars with the current pipeline,
through the workers (service/reprocess.py says what a worker does and why it is
safe; this is the command's side: select, send, wait, report).

    avatar-prep reprocess [--account A] [--before-version V] [--dry-run]

One line per avatar as its outcome arrives (`[3/40] avat_...: replaced`), then
the verdict changes, which are never applied. Stopping the command (or a
time-out) loses nothing: a rerun skips what is done and sends the rest again.
Exit code 0 when every selected avatar has an outcome other than `error`, else 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the command imports the pipeline only when it runs
    from service.reprocess import Outcome, Reprocessor

PROGRESS_POLL_SECONDS = 0.5


def register(sub: Any) -> None:
    cmd = sub.add_parser(
        "reprocess",
        help="re-render stored avatars with the current pipeline (through the workers)",
    )
    cmd.add_argument("--account", help="only this account's avatars (its id or name)")
    cmd.add_argument(
        "--before-version",
        metavar="V",
        help="only avatars whose record was made by a pipeline version older than V",
    )
    cmd.add_argument(
        "--dry-run", action="store_true", help="list what would be done; change nothing"
    )
    cmd.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="seconds to wait for the workers; a rerun resumes (default %(default)s)",
    )
    cmd.set_defaults(run=_reprocess)


def _reprocess(args: argparse.Namespace) -> int:
    from ulid import ULID

    from service.registry import Registry
    from service.reprocess import Reprocessor
    from service.settings import Settings
    from service.storage import make_storage
    from tasks.celery_app import make_celery
    from tasks.reprocess import CeleryReprocessQueue

    settings = Settings()
    registry = Registry(settings)
    storage = make_storage(settings)
    try:
        reprocessor = Reprocessor(
            settings, registry, storage, CeleryReprocessQueue(make_celery(settings))
        )
        try:
            selection = reprocessor.select(account=args.account, before_version=args.before_version)
        except ValueError as exc:
            print(f"reprocess: {exc}", file=sys.stderr)
            return 2
        current = reprocessor.current
        print(
            f"pipeline {current['pipeline']}, settings {current['settings']}: "
            f"{len(selection.todo)} to reprocess, {selection.current} already current, "
            f"{len(selection.reported)} verdict changes found by an earlier run"
        )
        for outcome in selection.reported:
            print(f"  verdict changed, not applied: {_describe(outcome)}")
        if args.dry_run:
            for candidate in selection.todo:
                made_by = candidate.pipeline or "unknown"
                print(
                    f"  would reprocess {candidate.avatar_id} ({candidate.status}; "
                    f"made by {made_by}, settings {candidate.settings or 'unknown'})"
                )
            return 0
        return _run(reprocessor, [c.avatar_id for c in selection.todo], str(ULID()), args.timeout)
    finally:
        storage.close()
        registry.close()


def _run(reprocessor: Reprocessor, ids: list[str], run: str, timeout: float) -> int:
    from service.queue import BrokerUnavailable

    for avatar_id in ids:
        try:
            reprocessor.send(avatar_id, run)
        except BrokerUnavailable as exc:
            print(f"reprocess: {exc.message} Nothing is lost: run the command again.")
            return 1
    outcomes: dict[str, Outcome | None] = {}
    pending = list(ids)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for avatar_id in list(pending):
            outcome = reprocessor.last_outcome(avatar_id)
            if outcome is not None and outcome.run == run:
                outcomes[avatar_id] = outcome
                line = _describe(outcome)
            elif not reprocessor.exists(avatar_id):
                outcomes[avatar_id] = None
                line = f"{avatar_id}: deleted meanwhile"
            else:
                continue
            pending.remove(avatar_id)
            print(f"[{len(outcomes)}/{len(ids)}] {line}", flush=True)
        if pending:
            time.sleep(PROGRESS_POLL_SECONDS)
    changed = [o for o in outcomes.values() if o is not None and o.verdict_changed]
    failed = [o for o in outcomes.values() if o is not None and o.result == "error"]
    if changed:
        print(f"{len(changed)} verdict changes, not applied (the avatars keep what they had):")
        for outcome in changed:
            print(f"  {_describe(outcome)}")
    if pending:
        print(f"{len(pending)} avatars unfinished after {timeout:.0f} s; run again to resume.")
    return 1 if pending or failed else 0


def _describe(outcome: Outcome) -> str:
    """`avat_...: verdict_changed accepted -> face.framing (message)`."""
    text = f"{outcome.avatar_id}: {outcome.result}"
    if outcome.old != outcome.new:
        text += f" {outcome.old} -> {outcome.new}"
    return f"{text} ({outcome.message})" if outcome.message else text

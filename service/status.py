"""The life of an avatar: its statuses, the moves between them, and the one place
an avatar reaches a final status.

    queued -> processing -> ready | failed
    queued -> failed                    (given up, or failed by the task)
    processing -> processing            (a retry or a redelivery claims it again)
    failed -> queued                    (reopened: its bytes uploaded again after a
                                         failure that was no verdict on the image)

`finish` is the only code that writes `ready` or `failed`, `reopen` the only one
that leaves `failed`; `service.lifecycle`
wraps it with what must happen once per finished avatar (its webhook event).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from service.registry import AvatarRow


class AvatarStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """Whether nothing more happens to the avatar (`ready` or `failed`)."""
        return self in FINISHED


# Work waiting or under way: what backpressure counts and the sweeper resends.
UNFINISHED = (AvatarStatus.QUEUED, AvatarStatus.PROCESSING)
FINISHED = (AvatarStatus.READY, AvatarStatus.FAILED)

# The moves `claim` and `finish` may make, from -> to.
TRANSITIONS: dict[AvatarStatus, frozenset[AvatarStatus]] = {
    AvatarStatus.QUEUED: frozenset({AvatarStatus.PROCESSING, *FINISHED}),
    AvatarStatus.PROCESSING: frozenset({AvatarStatus.PROCESSING, *FINISHED}),
    AvatarStatus.READY: frozenset(),
    # Only `reopen` takes this move, and only after a failure that was no verdict.
    AvatarStatus.FAILED: frozenset({AvatarStatus.QUEUED}),
}


def can_move(row: AvatarRow, to: AvatarStatus) -> bool:
    """Whether `row` (as read under its row lock) may move to `to`."""
    return to in TRANSITIONS[AvatarStatus(row.status)]


def claim(row: AvatarRow, now: datetime) -> None:
    """Mark a locked, unfinished row `processing` at `now` (a new attempt)."""
    if not can_move(row, AvatarStatus.PROCESSING):
        raise ValueError(f"avatar {row.id} is {row.status}; it cannot be processed")
    row.status = AvatarStatus.PROCESSING
    row.updated_at = now


def finish(
    row: AvatarRow,
    status: AvatarStatus,
    now: datetime,
    *,
    error: dict[str, Any] | None = None,
    face: dict[str, Any] | None = None,
    images: dict[str, Any] | None = None,
    checks: list[dict[str, Any]] | None = None,
    warnings: list[dict[str, Any]] | None = None,
    record_key: str | None = None,
) -> bool:
    """Move a locked row to the final `status` (`ready` or `failed`) with what the run
    found; `error` is the api.md error object of a failed avatar, `checks` and
    `warnings` a ready one's (`Check.to_dict()`, `Check.to_warning()`). Returns False, and
    changes nothing, when the row has already finished (another run got there first)."""
    if not status.finished:
        raise ValueError(f"{status} is not a final status")
    if not can_move(row, status):
        return False
    row.status = status
    row.updated_at = now
    row.face = face
    row.images = images
    row.checks = checks
    row.warnings = warnings
    row.error = error
    row.ready_at = now if status is AvatarStatus.READY else None
    row.record_key = record_key
    return True


def reopen(row: AvatarRow, now: datetime) -> bool:
    """Move a locked `failed` row back to `queued` at `now`, as new: no error, no
    result, no attempts, sent now. The caller decides that its failure was not final
    (`service.codes.failure_is_final`). Returns False, and changes nothing, when the
    row is not `failed` (another upload reopened it first)."""
    if not can_move(row, AvatarStatus.QUEUED):
        return False
    row.status = AvatarStatus.QUEUED
    row.updated_at = row.enqueued_at = now
    row.error = row.face = row.images = row.checks = row.warnings = None
    row.ready_at = None
    row.record_key = None
    row.attempts = 0
    return True

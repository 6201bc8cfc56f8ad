"""The life of an avatar: its statuses, the moves between them, and the one place
an avatar reaches a final status.

    queued -> processing -> ready | failed
    queued -> failed                    (given up, or failed by the task)
    processing -> processing            (a retry or a redelivery claims it again)
    failed -> queued                    (reopened: its bytes uploaded again after a
                                         failure that was no verdict on the image)

`finish` is the only code that writes `ready` or `failed`, `reopened` (and
`reopen`) the only one that leaves `failed`; `service.lifecycle`
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


def reopened(now: datetime) -> dict[str, Any]:
    """The columns of a `failed` row reopened at `now`: `queued` as new, with no
    error, no result and no attempts, sent now. For a conditional UPDATE (`WHERE
    status = 'failed'`), which is what makes concurrent reopeners reopen it once
    on every database; the caller decides that its failure was not final
    (`service.codes.failure_is_final`)."""
    return {
        "status": AvatarStatus.QUEUED,
        "updated_at": now,
        "enqueued_at": now,
        "error": None,
        "face": None,
        "images": None,
        "checks": None,
        "warnings": None,
        "ready_at": None,
        "record_key": None,
        "attempts": 0,
    }


def reopen(row: AvatarRow, now: datetime) -> bool:
    """Move a locked `failed` row back to `queued` at `now` (`reopened`). Returns
    False, and changes nothing, when the row is not `failed`."""
    if not can_move(row, AvatarStatus.QUEUED):
        return False
    for column, value in reopened(now).items():
        setattr(row, column, value)
    return True

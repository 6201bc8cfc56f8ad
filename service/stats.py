"""What the registry says about the work in the system, for metrics and task logs.

Counts are read at scrape time rather than kept by the processes: the registry
is the one place every API and worker process (on every machine) writes to, so
a count read there is the same whichever API process is scraped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from service.registry import AvatarRow, Registry, StorageDeletionRow
from service.status import UNFINISHED, AvatarStatus


@dataclass(frozen=True)
class AvatarCounts:
    """Avatars now in the registry: by status, the failed ones by error code, and
    the folders of deleted ones storage has not yet emptied (service/purge.py)."""

    by_status: dict[str, int]
    failed_by_code: dict[str, int]
    pending_deletions: int

    @property
    def queue_depth(self) -> int:
        """Unfinished avatars: `queued` + `processing` (what backpressure compares
        with `max_queue_depth`)."""
        return sum(self.by_status.get(status, 0) for status in UNFINISHED)


@dataclass(frozen=True)
class Outcome:
    """Where one avatar stands after a task ran: its status, error code (failed
    only) and how many processing starts it has had."""

    status: str
    code: str | None
    attempts: int

    @classmethod
    def of(cls, status: str, error: dict[str, Any] | None, attempts: int) -> Outcome:
        """From a row's status, error object and attempts."""
        code = (error or {}).get("code") if status == AvatarStatus.FAILED else None
        return cls(status=status, code=code, attempts=attempts)


def avatar_counts(registry: Registry) -> AvatarCounts:
    """Two grouped counts: by status (the status index answers it), and failed rows
    by `error.code` (reads only the failed rows); and the pending deletions. Raises
    TransientError when the database is down."""
    code = AvatarRow.error["code"].as_string()
    with registry.transaction() as session:
        by_status = session.execute(
            select(AvatarRow.status, func.count()).group_by(AvatarRow.status)
        ).all()
        by_code = session.execute(
            select(code, func.count()).where(AvatarRow.status == AvatarStatus.FAILED).group_by(code)
        ).all()
        pending = session.scalar(select(func.count()).select_from(StorageDeletionRow))
    return AvatarCounts(
        by_status={status: n for status, n in by_status},
        failed_by_code={(c or "unknown"): n for c, n in by_code},
        pending_deletions=pending or 0,
    )


def avatar_outcome(registry: Registry, avatar_id: str) -> Outcome | None:
    """The avatar's status, error code and attempts; None when it no longer exists."""
    with registry.transaction() as session:
        row = session.execute(
            select(AvatarRow.status, AvatarRow.error, AvatarRow.attempts).where(
                AvatarRow.id == avatar_id
            )
        ).first()
    if row is None:
        return None
    status, error, attempts = row
    return Outcome.of(status, error, attempts)

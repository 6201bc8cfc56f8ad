"""Worker heartbeats in the registry: how the sweeper tells a worker that is gone.

Each worker process that claims avatars has a row in `workers` and rewrites its
`heartbeat_at` every `worker_heartbeat_seconds` from a daemon thread; a claim
records the process's id on the avatar (`avatars.worker_id`). A worker process
killed, or its host lost or cut off, stops beating: once its last beat is older
than `worker_lost_after_seconds` the sweeper (`Processor.requeue_stuck`) sends
its `processing` avatars again, whatever the broker does with the message the
dead worker held (Redis keeps it for its visibility timeout, RabbitMQ returns it
at once, the filesystem transport has already handed it out). A redelivery next
to the re-send is harmless: processing is idempotent.

The registry is the one place every worker and the sweeper already share, so no
other channel is needed; a beat is one UPDATE by primary key.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.sql.elements import ColumnElement

from service.errors import TransientError
from service.ids import new_id
from service.registry import AvatarRow, Registry, WorkerRow, utcnow
from service.settings import Settings
from service.status import AvatarStatus

logger = logging.getLogger(__name__)

# Rows of workers gone this long are deleted by the sweeper; kept until then so an
# operator can see which process held what.
FORGET_WORKER_AFTER_SECONDS = 3600


def new_worker_id() -> str:
    """A fresh id for one worker process (`wrk_<ULID>`)."""
    return new_id("wrk")


class Heartbeat:
    """The heartbeat of one worker process: `start` writes its row and begins
    beating from a daemon thread, `stop` ends the thread and deletes the row (a
    clean stop holds nothing, so nothing waits for the lost-worker time)."""

    def __init__(self, settings: Settings, registry: Registry, worker_id: str) -> None:
        self.worker_id = worker_id
        self._interval = settings.worker_heartbeat_seconds
        self._registry = registry
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Write the first beat now (so a claim never names a worker without a row),
        then beat every interval until `stop`. A database that is down now only
        delays the row: the thread writes it once the database answers."""
        self._beat_or_log()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{self.worker_id}", daemon=True
        )
        self._thread.start()

    def beat(self) -> None:
        """Rewrite this process's `heartbeat_at`; write the row again if the sweeper
        forgot it (a long database outage). Raises TransientError when the registry
        is down."""
        now = utcnow()
        with self._registry.transaction() as session:
            result = session.execute(
                update(WorkerRow).where(WorkerRow.id == self.worker_id).values(heartbeat_at=now)
            )
            assert isinstance(result, CursorResult)
            if not result.rowcount:
                session.add(
                    WorkerRow(
                        id=self.worker_id,
                        hostname=socket.gethostname()[:255],
                        pid=os.getpid(),
                        started_at=now,
                        heartbeat_at=now,
                    )
                )

    def stop(self) -> None:
        """Stop beating and delete the row (best effort: a row left behind is
        forgotten by the sweeper)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval + 1)
        try:
            with self._registry.transaction() as session:
                session.execute(delete(WorkerRow).where(WorkerRow.id == self.worker_id))
        except TransientError as exc:
            logger.warning(
                "worker %s: could not remove its heartbeat row (%s)", self.worker_id, exc
            )

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self._beat_or_log()

    def _beat_or_log(self) -> None:
        try:
            self.beat()
        except TransientError as exc:
            # Nothing to do but try again: missed beats are what the sweeper reads.
            logger.warning("worker %s: heartbeat not written (%s)", self.worker_id, exc.message)


def held_by_a_lost_worker(now: datetime, settings: Settings) -> ColumnElement[bool]:
    """The condition on an avatar row: `processing`, claimed by a worker process whose
    last beat is older than `worker_lost_after_seconds` (or whose row is gone), and
    neither claimed nor sent within that time (so one loss is re-sent once per
    lost-worker time, not on every sweep)."""
    cutoff = now - timedelta(seconds=settings.worker_lost_after_seconds)
    alive = exists(
        select(WorkerRow.id).where(
            WorkerRow.id == AvatarRow.worker_id, WorkerRow.heartbeat_at >= cutoff
        )
    )
    return (
        (AvatarRow.status == AvatarStatus.PROCESSING)
        & AvatarRow.worker_id.is_not(None)
        & ~alive
        & (AvatarRow.updated_at < cutoff)
        & (AvatarRow.enqueued_at.is_(None) | (AvatarRow.enqueued_at < cutoff))
    )


@dataclass(frozen=True)
class WorkersReport:
    """What /readyz says of the workers: how many processes beat within
    `worker_lost_after_seconds`, the newest beat (None: none recorded), and the age in
    seconds of the oldest avatar waiting in `queued` (None: none waiting)."""

    alive: int
    last_heartbeat_at: datetime | None
    oldest_queued_seconds: float | None


def workers_report(registry: Registry, settings: Settings) -> WorkersReport:
    """Three indexed reads: the workers alive, their newest beat, the oldest queued."""
    now = utcnow()
    cutoff = now - timedelta(seconds=settings.worker_lost_after_seconds)
    with registry.transaction() as session:
        alive = session.scalar(
            select(func.count()).select_from(WorkerRow).where(WorkerRow.heartbeat_at >= cutoff)
        )
        newest = session.scalar(select(func.max(WorkerRow.heartbeat_at)))
        oldest = session.scalar(
            select(func.min(AvatarRow.created_at)).where(AvatarRow.status == AvatarStatus.QUEUED)
        )
    return WorkersReport(
        alive=alive or 0,
        last_heartbeat_at=newest,
        oldest_queued_seconds=(now - oldest).total_seconds() if oldest is not None else None,
    )


def forget_gone_workers(registry: Registry) -> int:
    """Delete the rows of workers gone for FORGET_WORKER_AFTER_SECONDS; how many."""
    cutoff = utcnow() - timedelta(seconds=FORGET_WORKER_AFTER_SECONDS)
    with registry.transaction() as session:
        result = session.execute(delete(WorkerRow).where(WorkerRow.heartbeat_at < cutoff))
        assert isinstance(result, CursorResult)
        return result.rowcount

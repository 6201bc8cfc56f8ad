"""A deleted avatar's objects, removed after its row and never forgotten.

`AvatarService.delete` removes the row and, in the same transaction, records
the avatar's storage folder (`record`); after the commit it deletes the
objects and the record with them (`purge`). The row lock is never held while
storage answers, so a session start on the same avatar waits for a registry
round trip, not an S3 call; and storage that is down, slow or refusing then
does not fail the delete: the record stays, and the sweeper (`purge_pending`)
tries again until the folder is empty. Deleting a folder twice is harmless, so
a purge that races the sweeper, or a worker cleaning up after a run on the
deleted avatar (service/processing.py), needs no coordination.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.errors import TransientError
from service.registry import Registry, StorageDeletionRow, utcnow
from service.storage import Storage

logger = logging.getLogger(__name__)

# Folders one sweep empties at most, so a sweep after a long storage outage stays
# short (two S3 calls a folder); the rest wait for the next sweep.
PURGES_PER_SWEEP = 100


def record(session: Session, prefix: str) -> None:
    """Remember, in `session`'s transaction, that the objects under `prefix` must go
    (once: an avatar's row, and so its folder, is deleted only once)."""
    session.add(StorageDeletionRow(prefix=prefix, requested_at=utcnow()))


def purge(registry: Registry, storage: Storage, prefix: str) -> bool:
    """Delete every object under `prefix`, then its record. False (the record
    kept) when storage or the registry fails: the sweeper tries again."""
    try:
        storage.delete_prefix(prefix)
    except TransientError as exc:
        logger.warning("objects under %s kept for the sweeper: %s", prefix, exc)
        return False
    try:
        with registry.transaction() as session:
            session.execute(delete(StorageDeletionRow).where(StorageDeletionRow.prefix == prefix))
    except TransientError as exc:
        # The objects are gone; a record left over is purged again, finding nothing.
        logger.warning("record of %s kept: %s", prefix, exc)
        return False
    return True


def purge_pending(registry: Registry, storage: Storage) -> int:
    """Purge up to PURGES_PER_SWEEP recorded folders, oldest first; stops at the
    first failure (storage is still down). Returns how many were emptied."""
    with registry.transaction() as session:
        prefixes = session.scalars(
            select(StorageDeletionRow.prefix)
            .order_by(StorageDeletionRow.requested_at)
            .limit(PURGES_PER_SWEEP)
        ).all()
    done = 0
    for prefix in prefixes:
        if not purge(registry, storage, prefix):
            break
        done += 1
    return done

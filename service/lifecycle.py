"""The one place an avatar is finished: the status move (`service.status.finish`)
and, in the same transaction, what must happen once per finished avatar (its
`avatar.ready` or `avatar.failed` webhook event, written to the outbox; the mark
that tells its waiters once the transaction commits, `service.notify`).

Kept apart from `service.status` so the state machine imports nothing of the
services that react to it (the webhook event carries the avatar object, whose
module reads the statuses)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import object_session

from service import notify
from service.registry import AvatarRow
from service.status import AvatarStatus, finish
from service.webhooks import avatar_finished


def finish_avatar(row: AvatarRow, status: AvatarStatus, now: datetime, **found: Any) -> bool:
    """`service.status.finish(row, status, now, **found)` and, when it moved the row,
    the avatar's webhook event in the same transaction (the outbox), and its waiters
    told once that transaction commits. Returns whether it moved the row."""
    if not finish(row, status, now, **found):
        return False
    avatar_finished(row)
    session = object_session(row)
    assert session is not None  # avatar_finished checked it
    notify.finished(session, row.id)
    return True

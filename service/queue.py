"""The seam between the service and its workers: a queue of avatar ids.

The service sends an avatar's id (never its bytes) when the avatar is created
and when the sweeper finds it stuck; the broker behind the queue is the
worker layer's business (Celery in `tasks.queue`). A queue raises only its own
`BrokerUnavailable`, so the service can tell "the broker refused" from a bug.
"""

from __future__ import annotations

from typing import Protocol

from service.errors import TransientError


class BrokerUnavailable(TransientError):
    """The broker could not take the message now. The row stays `queued` and the
    sweeper sends it again; nothing is lost."""

    code = "broker.unavailable"


class WorkQueue(Protocol):
    def send(self, avatar_id: str) -> None:
        """Hand `avatar_id` to the workers. Raises BrokerUnavailable when the
        broker cannot be reached (after a short retry: callers hold requests)."""

    def ping(self) -> bool:
        """Whether the broker accepts a connection now (for readiness)."""

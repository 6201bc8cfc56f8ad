"""The one way work reaches the workers: send the avatar id, never image bytes."""

from __future__ import annotations

from collections.abc import Callable

from celery import Celery

from tasks.celery_app import PROCESS_TASK

# Publishing tries twice, 0.2 s apart: a caller holding an HTTP request must
# answer quickly, and a row the broker refused stays `queued` for the sweeper,
# so nothing is lost by giving up early.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0.2, "interval_step": 0.2}


def make_enqueue(app: Celery) -> Callable[[str], None]:
    """A function that sends `avatars.process(avatar_id)` through `app`'s broker.

    It raises (kombu's OperationalError or an OSError) when the broker cannot be
    reached; the caller keeps the row `queued` and the sweeper sends it later.
    """

    def enqueue(avatar_id: str) -> None:
        app.send_task(PROCESS_TASK, args=[avatar_id], retry=True, retry_policy=PUBLISH_RETRY_POLICY)

    return enqueue

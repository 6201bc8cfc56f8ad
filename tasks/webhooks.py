"""The webhook tasks: `webhooks.deliver` (one attempt of one delivery) and the beat's
`webhooks.dispatch` (sends due deliveries: retries whose backoff has passed, and
any whose hand-off after commit was lost; ends expired sessions so their
`session.ended` is told). The state is the registry's (service/webhooks.py):
tasks carry a delivery id, and the backoff lives in the delivery's
`next_attempt_at`, not in a Celery countdown, so a retry due in hours holds no
message in a worker and survives any restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import Celery

from service.runtime import Services
from service.settings import Settings
from tasks.celery_app import DELIVER_TASK, DISPATCH_TASK

logger = logging.getLogger(__name__)


def register_webhook_tasks(
    app: Celery, settings: Settings, services: Callable[[], Services]
) -> None:
    """Register both tasks on `app` and the dispatcher on its beat schedule; `services`
    gives the pool process's Services (opened by the worker runtime)."""

    @app.task(name=DELIVER_TASK, shared=False)
    def deliver(delivery_id: str) -> None:
        services().webhooks.deliver(delivery_id)

    @app.task(name=DISPATCH_TASK, shared=False)
    def dispatch() -> None:
        ended = services().sessions.end_expired()
        sent = services().webhooks.dispatch()
        if ended or sent:
            logger.info("webhooks: %d expired sessions ended, %d deliveries sent", ended, sent)

    del deliver, dispatch  # registered on the app by name
    app.conf.beat_schedule["dispatch-webhooks"] = {
        "task": DISPATCH_TASK,
        "schedule": settings.webhook_dispatch_interval_seconds,
        "options": {"expires": settings.webhook_dispatch_interval_seconds},
    }

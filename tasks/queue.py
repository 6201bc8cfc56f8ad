"""The work queue on Celery: the one way work reaches the workers (the avatar id,
never image bytes), and the broker probe of /readyz."""

from __future__ import annotations

from celery import Celery
from kombu.exceptions import KombuError

from service.queue import BrokerUnavailable
from service.settings import Settings
from tasks.celery_app import DELIVER_TASK, PROCESS_TASK, make_celery

# Publishing tries twice, 0.2 s apart: a caller holding an HTTP request must
# answer quickly, and a row the broker refused stays `queued` for the sweeper,
# so nothing is lost by giving up early.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0.2, "interval_step": 0.2}


class CeleryQueue:
    """`service.queue.WorkQueue` through `app`'s broker."""

    def __init__(self, app: Celery) -> None:
        self._app = app
        # What the transport raises when the broker is away (redis's, amqp's, ...),
        # besides kombu's own errors and the socket's. Making a Connection does not
        # connect.
        with app.connection_for_write() as conn:
            self._refusals: tuple[type[BaseException], ...] = (
                KombuError,
                OSError,
                *conn.connection_errors,
                *conn.channel_errors,
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> CeleryQueue:
        return cls(make_celery(settings))

    def send(self, avatar_id: str) -> None:
        """Send `avatars.process(avatar_id)`; BrokerUnavailable when the broker
        refuses, whatever the transport."""
        self._publish(PROCESS_TASK, [avatar_id])

    def send_webhook(self, delivery_id: str) -> None:
        """Send `webhooks.deliver(delivery_id)`; BrokerUnavailable when the broker
        refuses (the beat's dispatcher sends it later)."""
        self._publish(DELIVER_TASK, [delivery_id])

    def _publish(self, task: str, args: list[object], countdown: float | None = None) -> None:
        """Send `task(*args)` (in `countdown` seconds); BrokerUnavailable when the
        broker refuses, whatever the transport."""
        try:
            self._app.send_task(
                task,
                args=args,
                countdown=countdown,
                retry=True,
                retry_policy=PUBLISH_RETRY_POLICY,
            )
        except self._refusals as exc:
            raise BrokerUnavailable(
                f"The broker refused the message ({exc}); the sweeper sends it again."
            ) from exc

    def ping(self) -> bool:
        return broker_reachable(self._app)


def broker_reachable(app: Celery) -> bool:
    """Whether the broker accepts a connection now (one try, the broker time-out)."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=app.conf.broker_connection_timeout)
    except Exception:  # any failure to connect means "not ready", whatever the transport
        return False
    return True

"""`Services`: everything heavy a service process holds, made once per process
(FastAPI lifespan, Celery `worker_process_init`, a CLI command) and closed at
its end. Nothing here is made at import time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline import FaceModels
from service.avatars import AvatarService
from service.heartbeats import WorkersReport, workers_report
from service.idempotency import IdempotencyStore
from service.keys import KeyService
from service.notify import Announcer
from service.previews import Previews
from service.queue import WorkQueue
from service.registry import Registry
from service.sessions import SessionService
from service.settings import Settings
from service.signing import make_signer
from service.storage import Storage, make_storage
from service.validation import Validator
from service.webhooks import WebhookService


@dataclass
class Services:
    settings: Settings
    registry: Registry
    storage: Storage
    avatars: AvatarService
    keys: KeyService
    sessions: SessionService
    previews: Previews
    validator: Validator
    webhooks: WebhookService
    idempotency: IdempotencyStore
    announcer: Announcer

    @classmethod
    def create(
        cls,
        settings: Settings,
        queue: WorkQueue,
        models: FaceModels | None = None,
        *,
        send_webhook: Callable[[str], None] | None = None,
        worker_id: str | None = None,
    ) -> Services:
        """Open the registry and storage. `queue` sends work to the workers
        (`tasks.queue.CeleryQueue`, or a fake). `models`, loaded by the caller once
        per process, are needed where avatars are processed. `send_webhook(delivery_id)`
        queues a webhook delivery once the transaction that recorded it commits,
        raising BrokerUnavailable when it cannot (None, or refused: the worker's
        dispatcher sends it). `worker_id` is a worker process's
        heartbeat id (service/heartbeats.py), recorded on the avatars it claims."""
        registry = Registry(settings)
        storage = make_storage(settings)
        avatars = AvatarService(settings, registry, storage, queue, models, worker_id)
        return cls(
            settings=settings,
            registry=registry,
            storage=storage,
            avatars=avatars,
            keys=KeyService(registry),
            sessions=SessionService(settings, registry, storage),
            previews=Previews(settings, registry, storage, avatars, make_signer(settings)),
            validator=Validator(settings),
            webhooks=WebhookService(settings, registry, send_webhook),
            idempotency=IdempotencyStore(settings, registry),
            announcer=Announcer(settings, registry),
        )

    def check_ready(self) -> dict[str, bool]:
        """Whether each dependency answers now: `database`, `storage`."""
        return {"database": self.registry.check(), "storage": self.storage.check()}

    def workers(self) -> WorkersReport:
        """The workers' heartbeats and the queue's oldest wait (service/heartbeats.py)."""
        return workers_report(self.registry, self.settings)

    def close(self) -> None:
        self.validator.close()
        self.announcer.close()
        self.storage.close()
        self.registry.close()

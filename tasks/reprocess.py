"""The workers' side of `avatar-prep reprocess`: the `avatars.reprocess` and
`avatars.discard` tasks, and the queue the command sends them through.

Like `avatars.process`, the tasks are thin: the service (service/reprocess.py)
is idempotent, and the task adds retries of `TransientError` with Celery's
backoff. A reprocess that still fails after the last retry changes nothing: the
avatar keeps what it had, the command reports it unfinished, and its next run
sends it again. A discard delayed past the Redis visibility timeout may be
delivered twice; deleting what is gone already is fine.
"""

from __future__ import annotations

from typing import Protocol

from celery import Celery

from pipeline import FaceModels
from service.errors import TransientError
from service.reprocess import Reprocessor
from service.runtime import Services
from service.settings import Settings
from tasks.celery_app import DISCARD_TASK, REPROCESS_TASK, RETRY_BACKOFF_MAX_SECONDS
from tasks.queue import CeleryQueue


class Runtime(Protocol):
    """What a worker process holds (tasks/worker.py `WorkerRuntime`)."""

    @property
    def services(self) -> Services: ...

    @property
    def models(self) -> FaceModels | None: ...


class CeleryReprocessQueue(CeleryQueue):
    """`service.reprocess.ReprocessQueue` through `app`'s broker."""

    def send_reprocess(self, avatar_id: str, run: str) -> None:
        self._publish(REPROCESS_TASK, [avatar_id, run])

    def send_discard(self, avatar_id: str, keys: list[str], delay_seconds: int) -> None:
        self._publish(DISCARD_TASK, [avatar_id, keys], countdown=delay_seconds)


def register_reprocess_tasks(app: Celery, runtime: Runtime, settings: Settings) -> None:
    """Register `avatars.reprocess` and `avatars.discard` on `app`, run with the
    worker process's registry, storage and face models (`runtime`)."""

    def reprocessor() -> Reprocessor:
        services = runtime.services
        return Reprocessor(
            settings,
            services.registry,
            services.storage,
            CeleryReprocessQueue(app),
            runtime.models,
        )

    retries = {
        "autoretry_for": (TransientError,),
        "retry_backoff": 2,
        "retry_backoff_max": RETRY_BACKOFF_MAX_SECONDS,
        "retry_jitter": True,
        "max_retries": settings.task_max_retries,
    }

    @app.task(name=REPROCESS_TASK, shared=False, **retries)
    def reprocess(avatar_id: str, run: str) -> None:
        reprocessor().reprocess(avatar_id, run)

    @app.task(name=DISCARD_TASK, shared=False, **retries)
    def discard(avatar_id: str, keys: list[str]) -> None:
        reprocessor().discard(avatar_id, keys)

    del reprocess, discard  # registered on the app by name

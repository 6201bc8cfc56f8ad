"""The task layer's delivery rules, run eagerly in-process with a fake avatar
service at the `Services.create` seam: what is retried, when the avatar is
failed, and that a bug still finishes the avatar. The real worker process is
tested in test_worker_process.py and tests/integration."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from pipeline.errors import AvatarPrepError, ImageError
from service.errors import TransientError
from service.settings import Settings
from tasks import worker
from tasks.celery_app import (
    AMQP_HEARTBEAT_SECONDS,
    PROCESS_TASK,
    RETRY_BACKOFF_MAX_SECONDS,
    SWEEP_TASK,
    make_celery,
)
from tasks.queue import CeleryQueue
from tasks.worker import WorkerRuntime, register_tasks

AVATAR_ID = "avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX"


@dataclass
class FakeAvatars:
    raises: Exception | None = None
    processed: list[str] = field(default_factory=list)
    failed: list[tuple[str, AvatarPrepError]] = field(default_factory=list)
    sweeps: int = 0
    purges: int = 0

    def process(self, avatar_id: str) -> None:
        self.processed.append(avatar_id)
        if self.raises is not None:
            raise self.raises

    def fail(self, avatar_id: str, error: AvatarPrepError) -> None:
        self.failed.append((avatar_id, error))

    def requeue_stuck(self) -> int:
        self.sweeps += 1
        return 2

    def purge_deleted(self) -> int:
        self.purges += 1
        return 1


@dataclass
class FakeExpiring:
    """The idempotency keys or the webhook events at the sweep's seam: records which
    cleanup was called (`delete_expired`, `delete_old`); there is nothing to remove."""

    called: list[str] = field(default_factory=list)

    def delete_expired(self) -> int:
        self.called.append("delete_expired")
        return 0

    def delete_old(self) -> int:
        self.called.append("delete_old")
        return 0


@dataclass
class FakeServices:
    avatars: FakeAvatars
    idempotency: FakeExpiring = field(default_factory=FakeExpiring)
    webhooks: FakeExpiring = field(default_factory=FakeExpiring)
    registry: object = field(default_factory=object)
    closed: bool = False

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeModels:
    closed: bool = False

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeHeartbeat:
    """service.heartbeats.Heartbeat's seam: started and stopped with the process."""

    settings: Any
    registry: Any
    worker_id: str
    started: bool = False
    stopped: bool = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True


@dataclass
class Worker:
    app: Celery
    runtime: WorkerRuntime
    avatars: FakeAvatars
    services: FakeServices
    models: FakeModels
    made_with: dict[str, Any]

    def run(self, name: str) -> Any:
        return self.app.tasks[name].apply(args=[AVATAR_ID] if name == PROCESS_TASK else [])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", task_max_retries=3)


@pytest.fixture
def opened(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Worker:
    avatars = FakeAvatars()
    services = FakeServices(avatars)
    models = FakeModels()
    made_with: dict[str, Any] = {}

    def create(
        settings: Settings,
        enqueue: Any,
        models: Any = None,
        *,
        send_webhook: Any = None,
        worker_id: str | None = None,
    ) -> FakeServices:
        made_with.update(
            settings=settings,
            enqueue=enqueue,
            models=models,
            send_webhook=send_webhook,
            worker_id=worker_id,
        )
        return services

    def heartbeat(settings: Settings, registry: Any, worker_id: str) -> FakeHeartbeat:
        made_with["heartbeat"] = FakeHeartbeat(settings, registry, worker_id)
        return made_with["heartbeat"]

    monkeypatch.setattr(worker.Services, "create", create)
    monkeypatch.setattr(worker, "Heartbeat", heartbeat)
    forgotten: list[object] = made_with.setdefault("forgotten", [])
    monkeypatch.setattr(worker, "forget_gone_workers", forgotten.append)
    monkeypatch.setattr(worker.FaceModels, "load", lambda: models)
    app = make_celery(settings)
    runtime = register_tasks(app, settings)
    runtime.open()
    return Worker(app, runtime, avatars, services, models, made_with)


def test_process_init_makes_services_with_the_models_and_a_broker_enqueue(
    opened: Worker, settings: Settings
) -> None:
    assert opened.made_with["settings"] is settings
    assert opened.made_with["models"] is opened.models
    assert isinstance(opened.made_with["enqueue"], CeleryQueue)
    assert callable(opened.made_with["send_webhook"])
    # The process beats under the id its claims record, from open to close.
    heartbeat = opened.made_with["heartbeat"]
    assert heartbeat.worker_id == opened.made_with["worker_id"]
    assert heartbeat.worker_id.startswith("wrk_") and heartbeat.started
    opened.runtime.close()
    assert opened.services.closed and opened.models.closed and heartbeat.stopped


def test_a_task_before_process_init_is_an_error_not_a_silent_success(
    settings: Settings,
) -> None:
    app = make_celery(settings)
    register_tasks(app, settings)
    result = app.tasks[PROCESS_TASK].apply(args=[AVATAR_ID])
    assert result.state == "FAILURE"
    assert "worker_process_init" in str(result.result)


def test_success_processes_the_id_once_and_fails_nothing(opened: Worker) -> None:
    result = opened.run(PROCESS_TASK)
    assert result.state == "SUCCESS"
    assert opened.avatars.processed == [AVATAR_ID]
    assert opened.avatars.failed == []


def test_transient_errors_are_retried_until_the_service_succeeds(opened: Worker) -> None:
    # Eager apply runs Celery's retries at once (no countdown) in this process.
    opened.avatars.raises = TransientError("S3 is down.", code="storage.unavailable")
    process = opened.avatars.process

    def recovers_on_third_try(avatar_id: str) -> None:
        if len(opened.avatars.processed) == 2:
            opened.avatars.raises = None
        process(avatar_id)

    opened.avatars.process = recovers_on_third_try  # type: ignore[method-assign]
    assert opened.run(PROCESS_TASK).state == "SUCCESS"
    assert opened.avatars.processed == [AVATAR_ID] * 3
    assert opened.avatars.failed == []


def test_transient_error_after_the_last_retry_fails_the_avatar_with_its_code(
    opened: Worker,
) -> None:
    error = TransientError("S3 is down.", code="storage.unavailable")
    opened.avatars.raises = error
    result = opened.run(PROCESS_TASK)
    assert result.state == "SUCCESS"  # handled: the message is acknowledged
    assert opened.avatars.processed == [AVATAR_ID] * 4  # the first try and 3 retries
    assert opened.avatars.failed == [(AVATAR_ID, error)]


def test_a_bug_fails_the_avatar_instead_of_leaving_it_unfinished(opened: Worker) -> None:
    opened.avatars.raises = KeyError("images")
    result = opened.run(PROCESS_TASK)
    assert result.state == "SUCCESS"
    [(avatar_id, error)] = opened.avatars.failed
    assert avatar_id == AVATAR_ID
    assert error.code == "processing.crashed"


def test_verdict_errors_escaping_the_service_are_not_retried(opened: Worker) -> None:
    # The service turns verdicts into `failed` itself; one that escapes is a bug,
    # and retrying a verdict would only repeat it.
    opened.avatars.raises = ImageError("Truncated.", code="image.unreadable")
    result = opened.run(PROCESS_TASK)
    assert result.state == "SUCCESS"
    assert opened.avatars.processed == [AVATAR_ID]
    assert [e.code for _, e in opened.avatars.failed] == ["processing.crashed"]


def test_sweep_requeues_stuck_avatars_once(opened: Worker) -> None:
    assert opened.run(SWEEP_TASK).state == "SUCCESS"
    assert opened.avatars.sweeps == 1
    # The same sweep empties the folders of deleted avatars that storage refused
    # at their delete (service/purge.py), removes expired idempotency keys and old
    # webhook events,
    assert opened.avatars.purges == 1
    assert opened.services.idempotency.called == ["delete_expired"]
    assert opened.services.webhooks.called == ["delete_old"]
    # and forgets the rows of workers long gone (service/heartbeats.py).
    assert opened.made_with["forgotten"] == [opened.services.registry]


def test_delivery_rules_are_set_on_the_app(settings: Settings) -> None:
    conf = make_celery(settings).conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.beat_schedule["sweep-stuck-avatars"]["schedule"] == settings.sweep_interval_seconds


def test_redis_visibility_timeout_outlasts_the_longest_retry_countdown(
    settings: Settings,
) -> None:
    # A retry waits in the worker unacknowledged; Redis must not hand it to
    # another worker meanwhile.
    redis = settings.model_copy(update={"broker_url": "redis://127.0.0.1:6379/0"})
    options = make_celery(redis).conf.broker_transport_options
    assert options["visibility_timeout"] > RETRY_BACKOFF_MAX_SECONDS


def test_rabbitmq_confirms_publishes_and_beats_so_a_lost_host_is_noticed(
    settings: Settings,
) -> None:
    rabbit = settings.model_copy(update={"broker_url": "amqp://guest:guest@127.0.0.1:5672//"})
    conf = make_celery(rabbit).conf
    assert conf.broker_transport_options == {"confirm_publish": True}
    assert conf.broker_heartbeat == AMQP_HEARTBEAT_SECONDS < RETRY_BACKOFF_MAX_SECONDS


def test_filesystem_broker_keeps_its_folders_under_data_dir(settings: Settings) -> None:
    options = make_celery(settings).conf.broker_transport_options
    root = settings.data_dir / "broker"
    # Producer (API) and consumer (worker) read and write the same folder.
    assert options["data_folder_in"] == options["data_folder_out"] == str(root / "queue")
    for key in ("data_folder_in", "processed_folder", "control_folder"):
        assert Path(options[key]).is_dir()
        assert Path(options[key]).is_relative_to(settings.data_dir)

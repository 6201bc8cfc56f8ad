"""The worker: the two tasks, what each worker process makes once, and how it runs
(the tasks of `avatar-prep reprocess` are in tasks/reprocess.py).

Tasks are thin: they take an avatar id and call the avatar service, which owns
the state machine and is idempotent (a re-run writes the same keys and state).
The task layer adds only delivery rules: retries of `TransientError` with
Celery's backoff, then `fail`; anything else unexpected also ends in `fail`, so
an accepted upload never stays unfinished because of a bug.

The sweeper is a Celery beat entry run inside the worker (`-B`): Celery's own
scheduler, no home-made timer thread, and the sweep runs in a worker process
that already holds the registry. Beat must run once per deployment, so only
one worker gets `--beat` (the `avatar-prep worker` default, since `make run`
starts exactly one); further workers start with `--no-beat`. A second beat
would only sweep twice, which is harmless: re-enqueued ids are processed
idempotently.

Each pool process beats in the registry (service/heartbeats.py) so the sweeper
re-sends what a lost worker held within seconds, and every child of the worker
(pool processes, the embedded beat) exits when the worker is gone
(tasks/lifeline.py).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.signals import (
    beat_embedded_init,
    setup_logging,
    worker_process_init,
    worker_process_shutdown,
)

from pipeline import FaceModels
from pipeline.errors import AvatarPrepError
from service.errors import TransientError
from service.heartbeats import Heartbeat, forget_gone_workers, new_worker_id
from service.logs import configure_logging
from service.runtime import Services
from service.settings import Settings
from tasks.celery_app import PROCESS_TASK, RETRY_BACKOFF_MAX_SECONDS, SWEEP_TASK, make_celery
from tasks.lifeline import exit_with_parent
from tasks.observe import TaskObserver
from tasks.queue import CeleryQueue
from tasks.reprocess import register_reprocess_tasks
from tasks.webhooks import register_webhook_tasks

logger = logging.getLogger(__name__)

# Loading the MediaPipe graphs and opening the registry and storage takes a
# second or two; Celery's default (4 s) would kill a child still starting up.
PROCESS_INIT_TIMEOUT_SECONDS = 60.0


class WorkerRuntime:
    """What one worker process makes once, in `worker_process_init` (after the
    fork, so no graph or connection is shared between processes), and closes in
    `worker_process_shutdown`."""

    def __init__(self, settings: Settings, app: Celery) -> None:
        self._settings = settings
        self._app = app
        self._services: Services | None = None
        self._models: FaceModels | None = None
        self._heartbeat: Heartbeat | None = None

    def open(self, **_signal: Any) -> None:
        # First, so a process whose worker dies while it starts does not linger.
        exit_with_parent("pool process")
        self._models = FaceModels.load()
        worker_id = new_worker_id()
        queue = CeleryQueue(self._app)
        self._services = Services.create(
            self._settings,
            queue,
            self._models,
            send_webhook=queue.send_webhook,
            worker_id=worker_id,
        )
        self._heartbeat = Heartbeat(self._settings, self._services.registry, worker_id)
        self._heartbeat.start()
        logger.info(
            "worker process %d ready: face models loaded, registry and storage open, heartbeat %s",
            os.getpid(),
            worker_id,
        )

    def close(self, **_signal: Any) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        if self._services is not None:
            self._services.close()
        if self._models is not None:
            self._models.close()
        self._services = self._models = None

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("worker process not initialised: worker_process_init did not run")
        return self._services

    @property
    def models(self) -> FaceModels | None:
        return self._models


def register_tasks(app: Celery, settings: Settings) -> WorkerRuntime:
    """Register `avatars.process`, `avatars.sweep`, the webhook tasks (tasks/webhooks.py)
    and reprocess's (tasks/reprocess.py) on `app`; return the runtime the tasks use,
    for the caller to open once per worker process."""
    runtime = WorkerRuntime(settings, app)

    # shared=False: a "shared" task would be added to every Celery app made later
    # in this process, bound to this call's runtime.
    @app.task(
        name=PROCESS_TASK,
        shared=False,
        bind=True,
        autoretry_for=(TransientError,),
        retry_backoff=2,
        retry_backoff_max=RETRY_BACKOFF_MAX_SECONDS,
        retry_jitter=True,
        max_retries=settings.task_max_retries,
    )
    def process_avatar(task: Task, avatar_id: str) -> None:
        avatars = runtime.services.avatars
        try:
            avatars.process(avatar_id)
        except TransientError as exc:
            if task.request.retries < settings.task_max_retries:
                logger.warning(
                    "avatar %s: %s (%s); retry %d of %d",
                    avatar_id,
                    exc.code,
                    exc.message,
                    task.request.retries + 1,
                    settings.task_max_retries,
                )
                raise  # autoretry_for schedules the retry with backoff and jitter
            logger.error(
                "avatar %s: %s after %d retries", avatar_id, exc.code, task.request.retries
            )
            avatars.fail(avatar_id, exc)
        except Exception:
            # A bug, not a verdict (the service turns verdicts into `failed` itself).
            logger.exception("avatar %s: unexpected error", avatar_id)
            avatars.fail(
                avatar_id,
                AvatarPrepError(
                    "An internal error stopped the preparation of this image; "
                    "upload it again, and contact support if it keeps failing.",
                    code="processing.crashed",
                ),
            )

    @app.task(name=SWEEP_TASK, shared=False)
    def sweep() -> None:
        count = runtime.services.avatars.requeue_stuck()
        if count:
            logger.warning("sweeper re-enqueued %d stuck avatars", count)
        purged = runtime.services.avatars.purge_deleted()
        if purged:
            logger.info("sweeper emptied the folders of %d deleted avatars", purged)
        runtime.services.idempotency.delete_expired()
        runtime.services.webhooks.delete_old()
        forget_gone_workers(runtime.services.registry)

    del process_avatar, sweep  # registered on the app by name
    register_webhook_tasks(app, settings, lambda: runtime.services)
    register_reprocess_tasks(app, runtime, settings)
    return runtime


def run_worker(settings: Settings, *, concurrency: int, beat: bool, loglevel: str) -> None:
    """Run a Celery worker (prefork, `concurrency` processes) until it is stopped
    (SIGTERM: warm shutdown, running tasks finish). With `beat`, the sweeper's
    schedule runs inside it."""
    # A receiver of setup_logging replaces Celery's own logging set-up: every record
    # of the worker, its pool processes and beat becomes a JSON line.
    setup_logging.connect(lambda **_: configure_logging(loglevel), weak=False)
    app = make_celery(settings)
    app.conf.worker_proc_alive_timeout = PROCESS_INIT_TIMEOUT_SECONDS
    runtime = register_tasks(app, settings)
    # Connected here, not in register_tasks: only a worker opens the runtime.
    worker_process_init.connect(runtime.open, weak=False)
    worker_process_shutdown.connect(runtime.close, weak=False)
    # The embedded beat is a child process too: it must not outlive the worker.
    beat_embedded_init.connect(lambda **_: exit_with_parent("embedded beat"), weak=False)
    # One log line and the metrics of every avatars.process run (tasks/observe.py).
    TaskObserver(lambda: runtime.services).connect()
    argv = [
        # No start-up banner: every line the worker writes is a JSON log line.
        "--quiet",
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        # A node name of its own per worker process (Celery's default is one per host):
        # on RabbitMQ two workers of one host would otherwise fight over the same
        # exclusive remote-control queue, and the second would exit.
        f"--hostname=avatar-prep-{os.getpid()}@%h",
        # Mingle and gossip talk to other workers through broadcasts; they add
        # start-up time and the filesystem transport has no broadcast to offer.
        "--without-mingle",
        "--without-gossip",
    ]
    if beat:
        schedule = Path(settings.data_dir) / "celerybeat-schedule"
        schedule.parent.mkdir(parents=True, exist_ok=True)
        argv += ["--beat", f"--schedule={schedule}"]
    configure_logging(loglevel)  # before Celery starts: its start-up warnings too
    app.worker_main(argv)

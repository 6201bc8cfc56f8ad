"""The Celery application: one factory, configured from the one `Settings`.

The API and the command line call `make_celery(settings)` only to send work
(`tasks.queue`); the worker (`tasks.worker.run_worker`) registers the tasks on
it and runs it. There is no result backend: the state of every avatar lives in
the registry, so a task's return value is never read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery

from service.settings import Settings

# Retries of transient failures wait 2, 4, 8, ... seconds (full jitter), capped here.
# The cap bounds how long a retried message sits unacknowledged in a worker, so
# the Redis visibility timeout below must stay well above it.
RETRY_BACKOFF_MAX_SECONDS = 60

# A message taken by a worker that then dies without rejecting it (the whole
# worker killed, the machine lost) goes back to the Redis queue after this long
# (RabbitMQ returns it as soon as the worker's connection closes, or misses
# AMQP_HEARTBEAT_SECONDS twice; either way the registry's worker heartbeats,
# service/heartbeats.py, have the sweeper re-send it within seconds).
# It must exceed the longest a worker holds a message on purpose: one pipeline
# run (about a second) or a retry countdown (at most the cap above).
REDIS_VISIBILITY_TIMEOUT_SECONDS = 300

# RabbitMQ: the AMQP heartbeat between a worker and the broker, so a connection to
# a lost host is closed (and its unacknowledged message returned) after two missed
# beats rather than Celery's default 120 s.
AMQP_HEARTBEAT_SECONDS = 10

# A hard ceiling under every task, so no single image can hang or exhaust a worker.
# A run is a fetch (10 s at most), storage calls (10 s reads, 3 tries) and the
# pipeline (1-5 s for any file within the limits): past the soft limit the task
# gets SoftTimeLimitExceeded (its `except Exception` fails the avatar); past the
# hard one the pool process is killed and replaced. Both stay far below the
# visibility timeout above.
TASK_SOFT_TIME_LIMIT_SECONDS = 60
TASK_TIME_LIMIT_SECONDS = 90
# A pool process holds about 210 MB (imports, models) and a decode of any file
# within the limits adds at most about 150 MB (tests/pipeline/test_decode_bounds.py):
# one that has grown past this (in kB, resident) is replaced after its task.
WORKER_MAX_MEMORY_PER_CHILD_KB = 700_000

PROCESS_TASK = "avatars.process"
SWEEP_TASK = "avatars.sweep"
# `avatar-prep reprocess` (tasks/reprocess.py): re-render one avatar; delete the
# objects a re-render replaced, later.
REPROCESS_TASK = "avatars.reprocess"
DISCARD_TASK = "avatars.discard"
# tasks/webhooks.py: one attempt of one delivery; the beat's sender of due ones.
DELIVER_TASK = "webhooks.deliver"
DISPATCH_TASK = "webhooks.dispatch"


def make_celery(settings: Settings) -> Celery:
    """A Celery app for `settings.broker_url` with the project's delivery rules.

    Makes no connection: the broker is contacted on the first send or when a
    worker starts. `filesystem://` folders are created under `settings.data_dir`.
    """
    app = Celery("avatar_prep", set_as_current=False)
    app.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=_transport_options(settings),
        # A worker started before the broker waits for it instead of exiting.
        broker_connection_retry_on_startup=True,
        # Like every other dependency: a broker that does not accept a connection
        # in 3 s is down (an API request enqueuing must not hang on it).
        broker_connection_timeout=3.0,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # A message is acknowledged only once its task returned; a worker process
        # killed mid-task makes the main worker process requeue it at once.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # Each worker process holds at most one message it is not yet working
        # on: images are slow, so a deep prefetch would starve idle processes.
        worker_prefetch_multiplier=1,
        # If the broker connection drops, running tasks are cancelled rather than
        # finished and acknowledged on a connection that no longer has them; the
        # broker redelivers the message and the task is idempotent.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_soft_time_limit=TASK_SOFT_TIME_LIMIT_SECONDS,
        task_time_limit=TASK_TIME_LIMIT_SECONDS,
        worker_max_memory_per_child=WORKER_MAX_MEMORY_PER_CHILD_KB,
        # The sweeper runs as a Celery beat entry; see tasks/worker.py.
        beat_schedule={
            "sweep-stuck-avatars": {
                "task": SWEEP_TASK,
                "schedule": settings.sweep_interval_seconds,
                # A sweep not started before the next one is due is pointless.
                "options": {"expires": settings.sweep_interval_seconds},
            }
        },
    )
    if _is_amqp(settings.broker_url):
        app.conf.broker_heartbeat = AMQP_HEARTBEAT_SECONDS
    if _is_filesystem(settings.broker_url):
        # kombu's own filesystem transport can hand a worker a half-written message.
        app.conf.broker_transport = "tasks.filesystem_broker:Transport"
        # Remote control broadcasts to one queue per worker ever started; on the
        # filesystem transport those queues are never removed and fill the folder.
        app.conf.worker_enable_remote_control = False
    return app


def _is_filesystem(broker_url: str) -> bool:
    return broker_url.startswith("filesystem:")


def _is_amqp(broker_url: str) -> bool:
    return broker_url.startswith(("amqp:", "amqps:", "pyamqp:"))


def _transport_options(settings: Settings) -> dict[str, Any]:
    if _is_filesystem(settings.broker_url):
        return _filesystem_options(Path(settings.data_dir) / "broker")
    if settings.broker_url.startswith(("redis:", "rediss:")):
        return {"visibility_timeout": REDIS_VISIBILITY_TIMEOUT_SECONDS}
    if _is_amqp(settings.broker_url):
        # RabbitMQ confirms each publish once it has the message: a send that
        # returned is in the broker, and one it refused raises (the row then stays
        # `queued` for the sweeper) instead of vanishing with a dropped connection.
        return {"confirm_publish": True}
    return {}


def _filesystem_options(root: Path) -> dict[str, Any]:
    """Producers and consumers share one message folder (in = out). Consumed
    messages are moved to `processed` first: a rename within one file system is
    atomic, so two worker processes never take the same message."""
    queue, processed, control = root / "queue", root / "processed", root / "control"
    for folder in (queue, processed, control):
        folder.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(queue),
        "data_folder_out": str(queue),
        "processed_folder": str(processed),
        "control_folder": str(control),
        "store_processed": True,
        # The transport polls the folder: a message waits half an interval on
        # average. Listing a folder of a few files 50 times a second costs an idle
        # worker well under 1% of a core.
        "polling_interval": 0.02,
    }

"""What every `avatars.process` run leaves behind: one JSON log line and its
metrics samples (the run's duration, and the verdict when this run decided it).

The line:

    {"message": "task", "task": "avatars.process", "avatar_id": "avat_...",
     "status": "failed", "code": "face.multiple", "duration_ms": 840.2,
     "attempt": 1, "retries": 0, "cpu_ms": 61.0, "pipeline_cpu_ms": 48.3, ...}

`status` is what the run left: `ready` or `failed` (with `code`), `retry` (a
transient failure Celery retries; `code` is its code), `deleted` (the avatar
went away meanwhile), `queued`/`processing` (nothing decided), or `unknown`
(the registry did not answer). `attempt` is the avatar's processing starts so
far (redeliveries included), `retries` Celery's retries of this message.

It hangs on Celery's own task signals (`task_prerun`, `task_postrun`), connected
by `run_worker`, so the task body stays as it is. Where the avatar stands comes
from the run itself (`AvatarService.last_run`: what the claim or the finish saw
under the row's lock), so observing costs no registry read; a verdict is counted
only when this run turned an unfinished avatar into a finished one, so a
redelivered message for a finished avatar does not count twice. Only a run that
never reached the row (a transient failure before its claim) is looked up.

`cpu_ms` is the pool process's CPU time over the run (every thread),
`pipeline_cpu_ms` the part of it inside prepare(); both are also counted
(`task_cpu_seconds`, `task_pipeline_cpu_seconds`), so `avatar-prep bench-api`
can tell what the service costs around the pipeline.

The metrics are made in each pool process (at its first run); with
PROMETHEUS_MULTIPROC_DIR set (`avatar-prep worker` sets it) they reach the
API's /metrics (api/metrics.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Task
from celery.exceptions import Retry
from celery.signals import task_postrun, task_prerun
from prometheus_client import Counter, Histogram

from pipeline.errors import AvatarPrepError
from service.codes import metric_label
from service.errors import TransientError
from service.logs import log_event
from service.runtime import Services
from service.stats import Outcome, avatar_outcome
from service.status import FINISHED
from tasks.celery_app import PROCESS_TASK

logger = logging.getLogger("tasks.runs")

# Upper bounds in seconds: a 1 MP photo takes well under a second, a 50 MP one
# a few seconds; a URL fetch may add its 10 s time-out.
TASK_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


class TaskMetrics:
    """The worker's metrics, registered nowhere: in multiprocess mode the values go
    to this process's file, which the API's scrape reads."""

    def __init__(self) -> None:
        self.duration = Histogram(
            "avatar_prep_task_duration_seconds",
            "Time one task run took in a worker, by what it left (ready, failed, retry, ...).",
            ["task", "status"],
            buckets=TASK_BUCKETS,
            registry=None,
        )
        self.verdicts = Counter(
            "avatar_prep_task_verdicts",
            "Avatars finished by a worker, by final status and error code ('' when ready).",
            ["status", "code"],
            registry=None,
        )
        self.cpu = Counter(
            "avatar_prep_task_cpu_seconds",
            "CPU time of the pool processes over task runs, every thread.",
            ["task"],
            registry=None,
        )
        self.pipeline_cpu = Counter(
            "avatar_prep_task_pipeline_cpu_seconds",
            "The part of task_cpu_seconds spent inside prepare() (the pipeline).",
            ["task"],
            registry=None,
        )


class TaskObserver:
    """Observes `avatars.process` runs in the worker's pool processes. `services`
    gives the pool process's services (opened by the worker runtime): the avatar
    service's `last_run` and `pipeline_cpu_seconds`, and the registry for a run
    that left no `last_run`."""

    def __init__(self, services: Callable[[], Services]) -> None:
        self._services = services
        self._metrics: TaskMetrics | None = None
        # task id -> the run's start
        self._running: dict[str, _Started] = {}

    @property
    def metrics(self) -> TaskMetrics:
        """Made at the first run, so in the pool process (its own file in
        multiprocess mode), never in the worker's main process."""
        if self._metrics is None:
            self._metrics = TaskMetrics()
        return self._metrics

    def connect(self) -> None:
        """Hook onto Celery's signals (in the worker's main process, before the fork)."""
        task_prerun.connect(self.started, weak=False)
        task_postrun.connect(self.finished, weak=False)

    def disconnect(self) -> None:
        task_prerun.disconnect(self.started)
        task_postrun.disconnect(self.finished)

    def started(self, task_id: str, task: Task, args: tuple[Any, ...], **_signal: Any) -> None:
        if task.name != PROCESS_TASK:
            return
        pipeline_cpu = self._services().avatars.pipeline_cpu_seconds
        self._running[task_id] = _Started(time.perf_counter(), time.process_time(), pipeline_cpu)

    def finished(
        self,
        task_id: str,
        task: Task,
        args: tuple[Any, ...],
        state: str,
        retval: Any,
        **_signal: Any,
    ) -> None:
        if task.name != PROCESS_TASK or task_id not in self._running:
            return
        start = self._running.pop(task_id)
        seconds = time.perf_counter() - start.wall
        cpu = time.process_time() - start.cpu
        avatars = self._services().avatars
        pipeline_cpu = avatars.pipeline_cpu_seconds - start.pipeline_cpu
        avatar_id = str(args[0])
        run = avatars.last_run
        if run is not None and run.avatar_id == avatar_id:
            read, after, decided = True, run.outcome, run.decided
        else:  # the run never reached the row: ask the registry (no verdict counted)
            (read, after), decided = self._outcome(avatar_id), False
        error = retval.exc if isinstance(retval, Retry) else None
        status, code = _result(read, after, state, error)
        self.metrics.duration.labels(PROCESS_TASK, status).observe(seconds)
        self.metrics.cpu.labels(PROCESS_TASK).inc(cpu)
        self.metrics.pipeline_cpu.labels(PROCESS_TASK).inc(pipeline_cpu)
        if decided and after is not None and after.status in FINISHED:
            self.metrics.verdicts.labels(status, metric_label(code) if code else "").inc()
        log_event(
            logger,
            "task",
            level=logging.INFO if status != "retry" else logging.WARNING,
            task=PROCESS_TASK,
            avatar_id=avatar_id,
            status=status,
            code=code,
            duration_ms=round(seconds * 1000, 1),
            attempt=after.attempts if after is not None else None,
            retries=task.request.retries,
            cpu_ms=round(cpu * 1000, 1),
            pipeline_cpu_ms=round(pipeline_cpu * 1000, 1),
        )

    def _outcome(self, avatar_id: str) -> tuple[bool, Outcome | None]:
        """(whether the registry answered, the avatar's outcome or None when gone)."""
        try:
            return True, avatar_outcome(self._services().registry, avatar_id)
        except TransientError:
            return False, None


@dataclass(frozen=True)
class _Started:
    """A run's start: its clocks (wall, process CPU, CPU inside prepare)."""

    wall: float
    cpu: float
    pipeline_cpu: float


def _result(
    read: bool, after: Outcome | None, state: str, error: BaseException | None
) -> tuple[str, str | None]:
    """(status, code) of one run, for its log line and metrics labels."""
    if state == "RETRY":
        code = error.code if isinstance(error, AvatarPrepError) else None
        return "retry", code
    if not read:
        return "unknown", None
    if after is None:
        return "deleted", None
    return after.status, after.code

"""The observer of `avatars.process` runs: its log line and metrics for real runs
(in this process, on the real service's embedded defaults, the real pipeline),
a rerun of a finished avatar not counted twice, and a retried run. Through a
real worker process and the API's /metrics: tests/integration/test_limits.py."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import Retry
from sqlalchemy import event

from sample_images import SAMPLES
from service.avatars import ImageInput
from service.errors import TransientError
from service.logs import JsonFormatter
from service.registry import upgrade
from service.runtime import Services
from service.settings import Settings
from tasks.celery_app import PROCESS_TASK, make_celery
from tasks.observe import TaskObserver
from tasks.worker import register_tasks


class Observed:
    def __init__(self, app: Celery, services: Services, observer: TaskObserver) -> None:
        self.app = app
        self.services = services
        self.observer = observer
        _, key = services.keys.create("observed", "paid")
        self.account_id = services.keys.authenticate(key).id

    def upload(self, name: str) -> str:
        avatar, _ = self.services.avatars.create(
            self.account_id,
            ImageInput(kind="file", data=(SAMPLES / name).read_bytes()),
            name=None,
            user_exclusive=True,
            metadata={},
        )
        return str(avatar.id)

    def run(self, avatar_id: str) -> None:
        self.app.tasks[PROCESS_TASK].apply(args=[avatar_id])

    def sample(self, metric: str, **labels: str) -> float:
        family = (
            self.observer.metrics.duration
            if metric.startswith("avatar_prep_task_duration")
            else self.observer.metrics.verdicts
        )
        for collected in family.collect():
            for s in collected.samples:
                if s.name == metric and s.labels == labels:
                    return float(s.value)
        return 0.0


@pytest.fixture
def observed(tmp_path: Path) -> Iterator[Observed]:
    """A Celery app with the real tasks, run with `apply` in this process; the runtime
    opened here, as worker_process_init would open it in a pool process."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'registry.db'}",
        storage_dir=tmp_path / "storage",
    )
    upgrade(settings)
    app = make_celery(settings)
    runtime = register_tasks(app, settings)
    runtime.open()
    observer = TaskObserver(lambda: runtime.services)
    observer.connect()
    try:
        yield Observed(app, runtime.services, observer)
    finally:
        observer.disconnect()
        runtime.close()


def task_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "tasks.runs"]


def test_each_run_logs_one_line_and_counts_its_duration_and_verdict(
    observed: Observed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tasks.runs")
    ready_id = observed.upload("accept_portrait.jpg")
    failed_id = observed.upload("reject_multiple_faces.jpg")
    observed.run(ready_id)
    observed.run(failed_id)
    lines = task_lines(caplog)
    assert [(line["avatar_id"], line["status"], line["code"]) for line in lines] == [
        (ready_id, "ready", None),
        (failed_id, "failed", "face.multiple"),
    ]
    for line in lines:
        assert line["message"] == "task" and line["task"] == PROCESS_TASK
        assert line["attempt"] == 1 and line["retries"] == 0
        assert line["duration_ms"] > 0
        assert 0 < line["pipeline_cpu_ms"] <= line["cpu_ms"]
    count = "avatar_prep_task_duration_seconds_count"
    assert observed.sample(count, task=PROCESS_TASK, status="ready") == 1
    assert observed.sample(count, task=PROCESS_TASK, status="failed") == 1
    verdicts = "avatar_prep_task_verdicts_total"
    assert observed.sample(verdicts, status="ready", code="") == 1
    assert observed.sample(verdicts, status="failed", code="face.multiple") == 1


def test_a_rerun_of_a_finished_avatar_is_timed_but_not_counted_as_a_verdict(
    observed: Observed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tasks.runs")
    avatar_id = observed.upload("accept_portrait.jpg")
    observed.run(avatar_id)
    observed.run(avatar_id)  # a redelivered message: the avatar is already ready
    assert [line["status"] for line in task_lines(caplog)] == ["ready", "ready"]
    count = "avatar_prep_task_duration_seconds_count"
    assert observed.sample(count, task=PROCESS_TASK, status="ready") == 2
    assert observed.sample("avatar_prep_task_verdicts_total", status="ready", code="") == 1


def test_a_retried_run_is_logged_with_its_code_and_no_verdict(
    observed: Observed, caplog: pytest.LogCaptureFixture
) -> None:
    """What Celery reports after a transient failure it will retry (postrun with
    state RETRY and the Retry carrying the error)."""
    caplog.set_level(logging.INFO, logger="tasks.runs")
    avatar_id = observed.upload("accept_portrait.jpg")
    task = observed.app.tasks[PROCESS_TASK]
    observed.observer.started(task_id="t1", task=task, args=(avatar_id,))
    error = TransientError("Storage is unreachable.", code="storage.unavailable")
    observed.observer.finished(
        task_id="t1", task=task, args=(avatar_id,), state="RETRY", retval=Retry(exc=error)
    )
    [line] = task_lines(caplog)
    assert (line["status"], line["code"], line["level"]) == (
        "retry",
        "storage.unavailable",
        "warning",
    )
    count = "avatar_prep_task_duration_seconds_count"
    assert observed.sample(count, task=PROCESS_TASK, status="retry") == 1
    assert observed.sample("avatar_prep_task_verdicts_total", status="ready", code="") == 0


def test_other_tasks_are_not_observed(observed: Observed, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tasks.runs")
    observed.app.tasks["avatars.sweep"].apply()
    assert task_lines(caplog) == []


def test_a_run_touches_the_registry_twice_claim_and_finish(observed: Observed) -> None:
    """The observer reads nothing itself: what the run saw under the row's lock is
    its outcome."""
    avatar_id = observed.upload("accept_portrait.jpg")
    transactions: list[str] = []

    def begun(*_: Any) -> None:
        transactions.append("begin")

    factory = observed.services.registry.session_factory
    event.listen(factory, "after_begin", begun)
    try:
        observed.run(avatar_id)
    finally:
        event.remove(factory, "after_begin", begun)
    assert observed.services.avatars.get(observed.account_id, avatar_id).status == "ready"
    assert len(transactions) == 2

"""Worker heartbeats: a worker process's row and beats, the claim naming it, and
the sweeper re-sending what a worker that stopped beating held (once per
lost-worker time), never what a live one holds. Embedded defaults, the real
pipeline, the broker fake. The same with real processes killed is in
tests/tasks/test_worker_recovery.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from service.heartbeats import (
    FORGET_WORKER_AFTER_SECONDS,
    Heartbeat,
    forget_gone_workers,
    new_worker_id,
)
from service.registry import AvatarRow, WorkerRow, upgrade, utcnow
from service.runtime import Services
from service.settings import Settings
from tests.service.conftest import FakeBroker, account, sample, upload

LOST = 10.0


@pytest.fixture
def worker_id() -> str:
    return new_worker_id()


@pytest.fixture
def worker(
    local_settings: Settings, broker: FakeBroker, models: Any, worker_id: str
) -> Iterator[Services]:
    """Services as a worker process holds them: with its heartbeat id."""
    settings = local_settings.model_copy(
        update={"worker_lost_after_seconds": LOST, "worker_heartbeat_seconds": 0.05}
    )
    upgrade(settings)
    services = Services.create(settings, broker, models, worker_id=worker_id)
    yield services
    services.close()


def workers(services: Services) -> dict[str, WorkerRow]:
    with services.registry.transaction() as session:
        return {row.id: row for row in session.scalars(select(WorkerRow))}


def age(services: Services, seconds: float, worker_id: str | None = None) -> None:
    """Move every worker's last beat, and every avatar's claim and send, `seconds`
    into the past (as if that much time had passed without a beat)."""
    past = utcnow() - timedelta(seconds=seconds)
    with services.registry.transaction() as session:
        beats = update(WorkerRow).values(heartbeat_at=past)
        if worker_id is not None:
            beats = beats.where(WorkerRow.id == worker_id)
        session.execute(beats)
        session.execute(update(AvatarRow).values(updated_at=past, enqueued_at=past))


def test_a_heartbeat_writes_its_row_beats_and_removes_it_on_stop(worker: Services) -> None:
    beat = Heartbeat(worker.settings, worker.registry, new_worker_id())
    beat.start()
    first = workers(worker)[beat.worker_id].heartbeat_at
    deadline = utcnow() + timedelta(seconds=10)
    while workers(worker)[beat.worker_id].heartbeat_at == first:  # the thread beats
        assert utcnow() < deadline
    beat.stop()
    assert beat.worker_id not in workers(worker)


def test_a_forgotten_row_is_written_again_by_the_next_beat(worker: Services) -> None:
    beat = Heartbeat(worker.settings, worker.registry, new_worker_id())
    beat.beat()
    age(worker, FORGET_WORKER_AFTER_SECONDS + 1)
    assert forget_gone_workers(worker.registry) == 1 and workers(worker) == {}
    beat.beat()
    assert beat.worker_id in workers(worker)


def test_what_a_lost_worker_held_is_sent_again_once(worker: Services, broker: FakeBroker) -> None:
    me = account(worker, "acme")
    avatar, _ = upload(worker, me, sample("accept_portrait.jpg"))
    # A worker process claims it and dies mid-task (the row stays `processing`).
    dead = Heartbeat(worker.settings, worker.registry, new_worker_id())
    dead.beat()
    with worker.registry.transaction() as session:
        session.execute(
            update(AvatarRow)
            .where(AvatarRow.id == avatar.id)
            .values(status="processing", worker_id=dead.worker_id)
        )
    broker.sent.clear()
    assert worker.avatars.requeue_stuck() == 0  # it beat just now: alive

    age(worker, LOST + 1)
    assert worker.avatars.requeue_stuck() == 1
    assert broker.sent == [avatar.id]
    assert worker.avatars.requeue_stuck() == 0  # sent: not again within LOST

    # A live worker takes it: the claim names that worker, which then finishes it.
    alive = Heartbeat(worker.settings, worker.registry, new_worker_id())
    alive.beat()
    worker.avatars.process(avatar.id)
    assert worker.avatars.get(me, avatar.id).status == "ready"


def test_a_claim_names_the_worker_and_a_live_worker_is_never_swept(
    worker: Services, broker: FakeBroker, worker_id: str
) -> None:
    me = account(worker, "acme")
    avatar, _ = upload(worker, me, sample("accept_portrait.jpg"))
    beat = Heartbeat(worker.settings, worker.registry, worker_id)
    beat.beat()
    # Claim as the worker does, and stop before finishing (as mid-task).
    row = worker.avatars._processor._claim(avatar.id)
    assert row is not None and row.worker_id == worker_id
    age(worker, LOST + 1)
    beat.beat()  # still beating: alive, however old its claim
    broker.sent.clear()
    assert worker.avatars.requeue_stuck() == 0
    age(worker, LOST + 1, worker_id)
    assert worker.avatars.requeue_stuck() == 1

"""Finish notifications (service/notify.py) on each backend with the real servers:
Redis pub/sub, PostgreSQL LISTEN/NOTIFY, and polling on the embedded defaults.
The avatar is finished by the real worker path (`AvatarService.process`, the real
pipeline) in a thread while the waiter waits; a notification lost on the way
still ends the wait, by the fallback re-read."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from pipeline import FaceModels
from service.domain import Avatar
from service.notify import FinishListener, choose_backend, listening, wait_until_finished
from service.registry import upgrade
from service.runtime import Services
from service.settings import Settings
from tests.service.conftest import FakeBroker, account, sample, upload

PORTRAIT = "accept_portrait.jpg"
# Longer than any test waits: a waiter that finishes sooner was told, not polled.
NEVER_SECONDS = 30.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def embedded(tmp_path: Path, **fields: Any) -> Settings:
    defaults: dict[str, Any] = {
        "data_dir": tmp_path / "var",
        "database_url": f"sqlite:///{tmp_path / 'var' / 'avatar-prep.db'}",
        "storage_dir": tmp_path / "var" / "storage",
    }
    return Settings(**{**defaults, **fields})


@pytest.fixture(params=["redis", "postgres"])
def told(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings whose `auto` backend is Redis (SQLite registry, Redis broker) or
    PostgreSQL (PostgreSQL registry, filesystem broker); fallback re-reads
    practically never."""
    if request.param == "redis":
        settings = embedded(tmp_path, broker_url=request.getfixturevalue("redis_url"))
    else:
        settings = embedded(tmp_path, database_url=request.getfixturevalue("postgres_url"))
    settings = settings.model_copy(update={"notify_fallback_seconds": NEVER_SECONDS})
    assert choose_backend(settings) == request.param
    return settings


@contextmanager
def open_services(settings: Settings, models: FaceModels) -> Iterator[Services]:
    upgrade(settings)
    services = Services.create(settings, FakeBroker(), models)
    try:
        yield services
    finally:
        services.close()


async def connected(listener: FinishListener) -> None:
    """Until the listener's subscription is up (it connects in the background)."""
    with anyio.fail_after(10):
        while not listener.connected:
            await anyio.sleep(0.01)


async def process_while_waiting(
    worker: Services, reader: Services, listener: FinishListener, wait: float
) -> tuple[Avatar, float]:
    """Upload a portrait, process it in a thread of `worker` while waiting for it
    through `listener` (re-reading with `reader`); the avatar and the seconds waited."""
    me = account(reader, f"notify-{time.monotonic_ns()}")
    avatar, _ = upload(reader, me, sample(PORTRAIT))
    thread = threading.Thread(target=worker.avatars.process, args=(avatar.id,))

    async def read() -> Avatar:
        return await anyio.to_thread.run_sync(reader.avatars.get, me, avatar.id)

    start = time.monotonic()
    thread.start()
    try:
        done = await wait_until_finished(listener, avatar, read, wait)
    finally:
        thread.join()
    return done, time.monotonic() - start


@pytest.mark.integration
@pytest.mark.anyio
async def test_a_waiter_is_told_when_its_avatar_finishes(
    told: Settings, models: FaceModels
) -> None:
    with open_services(told, models) as services:
        async with listening(told) as listener:
            await connected(listener)
            done, waited = await process_while_waiting(services, services, listener, 20.0)
        assert done.status == "ready"
        assert listener.has_heard(done.id)
        assert waited < NEVER_SECONDS  # woken, not re-read on the fallback schedule


@pytest.mark.integration
@pytest.mark.anyio
async def test_a_lost_notification_still_ends_the_wait_by_the_fallback_read(
    told: Settings, models: FaceModels
) -> None:
    # The worker announces nothing (as if its publish were lost); the waiter's
    # listener is connected and re-reads every 0.3 s.
    silent = told.model_copy(update={"notify_backend": "poll"})
    waiting = told.model_copy(update={"notify_fallback_seconds": 0.3})
    with open_services(waiting, models) as reader, open_services(silent, models) as worker:
        async with listening(waiting) as listener:
            await connected(listener)
            done, _ = await process_while_waiting(worker, reader, listener, 20.0)
        assert done.status == "ready"
        assert not listener.has_heard(done.id)


@pytest.mark.anyio
async def test_the_embedded_defaults_poll(tmp_path: Path, models: FaceModels) -> None:
    settings = embedded(tmp_path)
    assert choose_backend(settings) == "poll"
    with open_services(settings, models) as services:
        async with listening(settings) as listener:
            assert not listener.connected
            done, _ = await process_while_waiting(services, services, listener, 20.0)
        assert done.status == "ready"


@pytest.mark.anyio
async def test_a_watch_started_just_after_the_notification_is_woken(tmp_path: Path) -> None:
    listener = FinishListener(embedded(tmp_path))
    listener.heard("avat_early")
    with listener.watch("avat_early") as watch:
        assert await watch.wait(0.0)
    with listener.watch("avat_other") as watch:
        assert not await watch.wait(0.0)


def test_auto_prefers_redis_then_postgres_then_polling(tmp_path: Path) -> None:
    pg = "postgresql+psycopg://u@db/avatar"
    assert choose_backend(embedded(tmp_path)) == "poll"
    assert choose_backend(embedded(tmp_path, database_url=pg)) == "postgres"
    both = embedded(tmp_path, database_url=pg, broker_url="redis://r:6379/0")
    assert choose_backend(both) == "redis"
    own = embedded(tmp_path, rate_limit_redis_url="redis://r:6379/1")
    assert choose_backend(own) == "redis"
    pinned = embedded(tmp_path, database_url=pg, notify_backend="poll")
    assert choose_backend(pinned) == "poll"

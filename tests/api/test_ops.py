"""Liveness and readiness (on the real service, with its database and storage really
down), and the real broker probe."""

from __future__ import annotations

import re
import time
from pathlib import Path

import anyio
import httpx
import pytest

from api.app import create_app
from service.heartbeats import Heartbeat, new_worker_id
from service.registry import upgrade
from service.runtime import Services
from service.settings import Settings
from tasks.celery_app import make_celery
from tasks.queue import broker_reachable
from tests.api.conftest import open_client
from tests.api.embedded import Sent, embedded_app, embedded_settings
from tests.api.test_errors import assert_envelope


@pytest.mark.anyio
async def test_healthz_needs_no_key(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.anyio
async def test_readyz_reports_each_dependency(settings: Settings, services: Services) -> None:
    app = create_app(settings, services, broker_probe=lambda: True)
    async with open_client(app) as c:
        response = await c.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        # No worker has beaten yet, but the API has only just started.
        "checks": {"database": True, "storage": True, "broker": True, "workers": True},
        "workers": {"alive": 0, "last_heartbeat_at": None, "oldest_queued_seconds": None},
    }


@pytest.mark.anyio
async def test_readyz_reports_the_workers_and_is_503_when_none_beats(tmp_path: Path) -> None:
    # A second without a beat is "no worker"; a beat made just before the request is well
    # inside it, however loaded the machine.
    settings = embedded_settings(tmp_path, ready_without_workers_seconds=1.0)
    with embedded_app(settings) as e:
        app = create_app(settings, e.services, broker_probe=lambda: True)
        async with open_client(app) as c:
            deadline = time.monotonic() + 30
            while (response := await c.get("/readyz")).status_code == 200:
                assert time.monotonic() < deadline, "readyz stayed ready without workers"
                await anyio.sleep(0.1)
            error = assert_envelope(response, 503, "service.not_ready")
            assert re.fullmatch(r"Not ready: no worker seen for \d+ s\.", str(error["message"]))

            heartbeat = Heartbeat(settings, e.services.registry, new_worker_id())
            heartbeat.beat()  # a worker process's first beat, as it starts
            try:
                body = (await c.get("/readyz")).json()
            finally:
                heartbeat.stop()
    assert body["checks"]["workers"] is True
    assert body["workers"]["alive"] == 1
    assert body["workers"]["last_heartbeat_at"].endswith("Z")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("ready", "broker", "says"),
    [
        ({"database": True, "storage": False}, True, "storage unreachable"),
        ({"database": False, "storage": False}, True, "database, storage unreachable"),
        ({"database": True, "storage": True}, False, "broker unreachable"),
    ],
)
async def test_readyz_is_503_naming_what_is_down(
    settings: Settings, tmp_path: Path, ready: dict[str, bool], broker: bool, says: str
) -> None:
    down: dict[str, object] = {}
    if not ready["database"]:  # SQLite cannot open a folder as its database file
        (tmp_path / "a-folder").mkdir()
        down["database_url"] = f"sqlite:///{tmp_path / 'a-folder'}"
    if not ready["storage"]:  # the storage folder cannot be made under a file
        (tmp_path / "a-file").write_bytes(b"")
        down["storage_dir"] = tmp_path / "a-file" / "storage"
    if ready["database"]:
        upgrade(settings.model_copy(update=down))
    services = Services.create(settings.model_copy(update=down), Sent())
    try:
        app = create_app(settings, services, broker_probe=lambda: broker)
        async with open_client(app) as c:
            response = await c.get("/readyz")
    finally:
        services.close()
    error = assert_envelope(response, 503, "service.not_ready")
    assert error["message"] == f"Not ready: {says}."
    assert response.headers["retry-after"] == "5"


@pytest.mark.integration
def test_broker_probe_reaches_redis(redis_url: str, tmp_path: object) -> None:
    assert broker_reachable(make_celery(Settings(broker_url=redis_url))) is True


def test_broker_probe_sees_a_dead_broker() -> None:
    # Port 9 (discard) is closed on test machines: the connection is refused at once.
    assert broker_reachable(make_celery(Settings(broker_url="redis://127.0.0.1:9/0"))) is False


def test_broker_probe_of_the_embedded_filesystem_broker(settings: Settings) -> None:
    assert broker_reachable(make_celery(settings)) is True

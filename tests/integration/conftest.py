"""Integration tests: the real API (uvicorn) and a real Celery worker as
subprocesses, on PostgreSQL, Redis and SeaweedFS (tests/services.py), driven
through real HTTP. Each module starts its own pair once (`stack`), with the
settings its `stack` marker names, on a database and a bucket of its own; tests
use their own accounts so they stay independent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.settings import Settings
from tests.integration.harness import ImageServer, Stack, assert_nothing_orphaned
from tests.services import SeaweedS3, fresh_database, settings_for


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A folder for this module's processes: data_dir and logs."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def base_settings(
    request: pytest.FixtureRequest, redis_url: str, s3: SeaweedS3, module_dir: Path
) -> Iterator[Settings]:
    """`service_settings` for a whole module (PostgreSQL, Redis, SeaweedFS), with a
    database and a bucket of the module's own: what one module leaves behind when
    it fails (unfinished rows fill the queue, objects look orphaned) cannot fail
    the next."""
    label = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    with fresh_database(label) as database_url:
        settings = settings_for(database_url, redis_url, s3, module_dir / "var")
        yield settings.model_copy(update={"s3_bucket": s3.new_bucket(label)})


@pytest.fixture(params=["redis", "rabbitmq"])
def settings(request: pytest.FixtureRequest, base_settings: Settings, redis_url: str) -> Settings:
    """`base_settings` on each broker in turn, for the tests of losing a worker or a
    host, which must hold on both."""
    broker = redis_url if request.param == "redis" else request.getfixturevalue("rabbitmq_url")
    return base_settings.model_copy(update={"broker_url": broker})


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, base_settings: Settings, module_dir: Path
) -> Iterator[Stack]:
    """The module's API and worker, started once. The module's marker
    `pytest.mark.stack(concurrency=2, setting=value, ...)` names the worker's pool
    size (default 1) and the settings that differ from `base_settings`."""
    marker = request.node.get_closest_marker("stack")
    options = dict(marker.kwargs) if marker is not None else {}
    concurrency = options.pop("concurrency", 1)
    settings = base_settings.model_copy(update=options)
    with Stack.running(settings, module_dir, concurrency=concurrency) as running:
        yield running


@pytest.fixture(scope="module")
def nothing_orphaned_at_the_end(stack: Stack, s3: SeaweedS3) -> Iterator[None]:
    """After the module: no object without its row, no row without its objects."""
    yield
    assert_nothing_orphaned(stack.settings, s3)


@pytest.fixture
def nothing_orphaned_after_each(stack: Stack, s3: SeaweedS3) -> Iterator[None]:
    """After every test: no object without its row, no row without its objects."""
    yield
    assert_nothing_orphaned(stack.settings, s3)


@pytest.fixture(scope="module")
def images() -> Iterator[ImageServer]:
    """A local HTTP server of the sample photos (and of bad answers), for URL uploads."""
    with ImageServer() as server:
        yield server

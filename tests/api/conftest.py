"""The API app over the real service on its embedded defaults (tests/api/embedded.py:
a migrated SQLite registry and a storage folder under tmp_path, the recording
work queue), driven through ASGI by httpx. Two accounts, free and paid, with real
keys. Avatars stay `queued` unless a test starts the queue's in-process worker
(`embedded.sent.work(services.avatars.process)`), which runs the real pipeline.

The lifespan runs as it does under uvicorn (`app.router.lifespan_context`), and
app exceptions are not re-raised into the test: a bug must come back as the 500
envelope, as a client would see it.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from pipeline import FaceModels
from service.runtime import Services
from service.settings import Settings
from tests.api.embedded import Embedded, embedded_app, embedded_settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return embedded_settings(tmp_path)


@pytest.fixture
def embedded(settings: Settings, models: FaceModels) -> Iterator[Embedded]:
    with embedded_app(settings, models) as e:
        yield e


@pytest.fixture
def services(embedded: Embedded) -> Services:
    return embedded.services


@pytest.fixture
async def client(embedded: Embedded) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app, authenticated as the paid account."""
    async with open_client(embedded.app, headers={"X-API-Key": embedded.paid_key}) as c:
        yield c


@pytest.fixture
async def anonymous(embedded: Embedded) -> AsyncIterator[httpx.AsyncClient]:
    async with open_client(embedded.app) as c:
        yield c


@asynccontextmanager
async def open_client(
    app: FastAPI, headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """Run `app`'s lifespan and give an httpx client of it."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers) as c,
    ):
        yield c


def photo(n: int = 0) -> bytes:
    """A small JPEG the service's cheap checks accept (no face: a worker would reject
    it); each `n` gives other bytes (another width)."""
    out = io.BytesIO()
    Image.new("RGB", (96 + n, 80), (200, 120, 80)).save(out, "JPEG")
    return out.getvalue()


def fail_with(
    monkeypatch: pytest.MonkeyPatch, target: object, method: str, error: Exception
) -> None:
    """Make `target.method` raise `error`: an exception at the API's seam, where the
    real service cannot be made to raise it on demand."""

    def raising(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(target, method, raising)


def spy(monkeypatch: pytest.MonkeyPatch, target: object, method: str) -> list[tuple[Any, ...]]:
    """The arguments of every call of `target.method`, which still runs."""
    calls: list[tuple[Any, ...]] = []
    real: Callable[..., Any] = getattr(target, method)

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(target, method, recording)
    return calls

"""The API app over the fake services, driven through ASGI by httpx.

The lifespan runs as it does under uvicorn (`app.router.lifespan_context`), and
app exceptions are not re-raised into the test: a bug must come back as the 500
envelope, as a client would see it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from pipeline import FaceModels
from service.settings import Settings
from tests.api.fakes import PAID_KEY, FakeServices

SAMPLES = Path(__file__).resolve().parents[2] / "sample_images"


@pytest.fixture(scope="session")
def models() -> Iterator[FaceModels]:
    """The face models, loaded once for every API test that runs the real pipeline."""
    loaded = FaceModels.load()
    yield loaded
    loaded.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'registry.db'}",
        storage_dir=tmp_path / "storage",
    )


@pytest.fixture
def services() -> FakeServices:
    return FakeServices()


@pytest.fixture
def app(settings: Settings, services: FakeServices) -> FastAPI:
    return create_app(settings, services)  # type: ignore[arg-type]  # the fake at the seam


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app, authenticated as the paid account."""
    async with open_client(app, headers={"X-API-Key": PAID_KEY}) as c:
        yield c


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with open_client(app) as c:
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

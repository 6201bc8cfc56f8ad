"""Integration tests: the real API (uvicorn) and a real Celery worker as
subprocesses, on PostgreSQL, Redis and SeaweedFS (tests/services.py), driven
through real HTTP. Each module starts its own pair once (`module_stack`), with
the settings it needs; tests use their own accounts so they stay independent."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import Settings
from tests.services import SeaweedS3, settings_for


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A folder for this module's processes: data_dir and logs."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def base_settings(postgres_url: str, redis_url: str, s3: SeaweedS3, module_dir: Path) -> Settings:
    """`service_settings` for a whole module (PostgreSQL, Redis, SeaweedFS)."""
    return settings_for(postgres_url, redis_url, s3, module_dir / "var")

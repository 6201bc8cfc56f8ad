"""Service-layer fixtures: the real face models (loaded once), sample photos, a
broker fake at the enqueue seam, and Services on the embedded defaults (SQLite
file, local storage) or on the real components (PostgreSQL, SeaweedFS)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipeline import FaceModels
from service.registry import upgrade
from service.runtime import Services
from service.settings import Settings

SAMPLES = Path(__file__).resolve().parents[2] / "sample_images"


def sample(name: str) -> bytes:
    """The bytes of a file in sample_images/ (see its README for what each shows)."""
    path = SAMPLES / name
    assert path.is_file(), f"sample_images/{name} is missing; run make_samples.py"
    return path.read_bytes()


@dataclass
class FakeBroker:
    """The enqueue seam: records the ids sent; `down = True` makes it refuse like
    an unreachable broker."""

    sent: list[str] = field(default_factory=list)
    down: bool = False

    def __call__(self, avatar_id: str) -> None:
        if self.down:
            raise ConnectionRefusedError("broker unreachable (test)")
        self.sent.append(avatar_id)


@pytest.fixture(scope="session")
def models() -> Iterator[FaceModels]:
    loaded = FaceModels.load()
    yield loaded
    loaded.close()


@pytest.fixture
def broker() -> FakeBroker:
    return FakeBroker()


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    """The embedded defaults, inside this test's temporary folder."""
    return Settings(
        data_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'var' / 'avatar-prep.db'}",
        storage_dir=tmp_path / "var" / "storage",
    )


def open_services(settings: Settings, broker: FakeBroker, models: FaceModels) -> Services:
    upgrade(settings)
    return Services.create(settings, broker, models)


@pytest.fixture
def local(local_settings: Settings, broker: FakeBroker, models: FaceModels) -> Iterator[Services]:
    """Services on SQLite and local storage, with the fake broker."""
    services = open_services(local_settings, broker, models)
    yield services
    services.close()


@pytest.fixture
def real(service_settings: Settings, broker: FakeBroker, models: FaceModels) -> Iterator[Services]:
    """Services on PostgreSQL and SeaweedFS, with the fake broker."""
    services = Services.create(service_settings, broker, models)
    yield services
    services.close()

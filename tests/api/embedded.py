"""The API over the real service on its embedded defaults (a SQLite file, a storage
folder, the in-process rate limiter), for tests of what a whole request does:
limits, metrics, logs, the schemathesis run. The one seam is `enqueue`, which
only records the ids: avatars stay `queued` unless a test processes or fails them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI

from api.app import create_app
from pipeline import FaceModels
from service.registry import upgrade
from service.runtime import Services
from service.settings import Settings


@dataclass
class Sent:
    """The enqueue seam: the avatar ids sent to the workers."""

    ids: list[str] = field(default_factory=list)

    def ping(self) -> bool:
        return True

    def send(self, avatar_id: str) -> None:
        self.ids.append(avatar_id)


@dataclass
class Embedded:
    app: FastAPI
    services: Services
    sent: Sent
    free_key: str
    paid_key: str


def embedded_settings(root: Path, **overrides: object) -> Settings:
    """The embedded defaults under `root`, with `overrides`."""
    return Settings(
        data_dir=root,
        database_url=f"sqlite:///{root / 'registry.db'}",
        storage_dir=root / "storage",
        **overrides,  # type: ignore[arg-type]
    )


@contextmanager
def embedded_app(settings: Settings, models: FaceModels | None = None) -> Iterator[Embedded]:
    """The app on migrated `settings`, with a free and a paid account's keys. With
    `models`, a test can run `services.avatars.process(avatar_id)` itself."""
    upgrade(settings)
    sent = Sent()
    services = Services.create(settings, sent, models)
    try:
        _, free_key = services.keys.create("free-co", "free")
        _, paid_key = services.keys.create("paid-co", "paid")
        yield Embedded(create_app(settings, services), services, sent, free_key, paid_key)
    finally:
        services.close()

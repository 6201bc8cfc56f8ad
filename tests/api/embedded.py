"""The API over the real service on its embedded defaults (a SQLite file, a storage
folder, the in-process rate limiter): the app every API test runs on. The one
seam is the work queue, `Sent`, which records the ids sent to the workers:
avatars stay `queued` unless a test starts its in-process worker (`Sent.work`),
processes them itself or fails them."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import select

from api.app import create_app
from pipeline import FaceModels
from service.registry import AvatarRow, upgrade
from service.runtime import Services
from service.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class Sent:
    """The enqueue seam: the avatar ids sent to the workers. After `work(process)`
    it is also a real worker in this process: each id sent from then on is
    processed by `process` (`services.avatars.process`) on one background thread,
    in order, as a Celery worker with one slot would; `inline=True` processes it
    before `send` returns (a worker faster than the answer)."""

    ids: list[str] = field(default_factory=list)
    _process: Callable[[str], None] | None = field(default=None, init=False, repr=False)
    _inline: bool = field(default=False, init=False, repr=False)
    _work: queue.SimpleQueue[str | None] = field(
        default_factory=queue.SimpleQueue, init=False, repr=False
    )
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def ping(self) -> bool:
        return True

    def send(self, avatar_id: str) -> None:
        self.ids.append(avatar_id)
        if self._process is None:
            return
        if self._inline:
            self._run_one(avatar_id)
        else:
            self._work.put(avatar_id)

    def work(self, process: Callable[[str], None], *, inline: bool = False) -> None:
        """Process every id sent from now on with `process`."""
        self._process, self._inline = process, inline
        if not inline and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="test-worker", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish the ids already sent, then stop working."""
        if self._thread is not None:
            self._work.put(None)
            self._thread.join(timeout=60)
            self._thread = None
        self._process = None

    def _loop(self) -> None:
        while (avatar_id := self._work.get()) is not None:
            self._run_one(avatar_id)

    def _run_one(self, avatar_id: str) -> None:
        assert self._process is not None
        try:
            self._process(avatar_id)
        except Exception:  # a worker logs and goes on; the avatar shows what happened
            logger.exception("test worker: processing %s failed", avatar_id)


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
    `models`, avatars can be processed: by the test (`services.avatars.process`) or
    by the queue's worker (`sent.work(services.avatars.process)`)."""
    upgrade(settings)
    sent = Sent()
    services = Services.create(settings, sent, models)
    try:
        _, free_key = services.keys.create("free-co", "free")
        _, paid_key = services.keys.create("paid-co", "paid")
        yield Embedded(create_app(settings, services), services, sent, free_key, paid_key)
    finally:
        sent.stop()
        services.close()


def stored_avatars(services: Services) -> list[AvatarRow]:
    """Every avatar row in the registry, oldest first."""
    with services.registry.transaction() as session:
        return list(session.scalars(select(AvatarRow).order_by(AvatarRow.id)))


def stored_objects(services: Services) -> list[Path]:
    """Every file in the storage folder."""
    return sorted(p for p in Path(services.settings.storage_dir).rglob("*") if p.is_file())

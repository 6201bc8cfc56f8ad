"""A real `avatar-prep worker` process on the embedded defaults (SQLite file,
Celery's filesystem transport, a local storage folder): no server needed. The
test process plays the API's part through the avatar service; the worker does
the rest. The same worker against Redis, PostgreSQL and S3 behind real HTTP is
in tests/integration."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from harness.local_stack import Child, start_worker
from sample_images import SAMPLES
from service.avatars import ImageInput
from service.domain import Avatar
from service.queue import BrokerUnavailable
from service.registry import upgrade
from service.runtime import Services
from service.settings import Settings
from tasks.celery_app import make_celery
from tasks.queue import CeleryQueue

FINISH_TIMEOUT_SECONDS = 60.0

pytestmark = pytest.mark.slow


@dataclass
class Embedded:
    settings: Settings
    services: Services
    account_id: str
    worker: Child

    def create(self, sample: str, services: Services | None = None) -> Avatar:
        image = ImageInput(kind="file", data=(SAMPLES / sample).read_bytes())
        avatar, created = (services or self.services).avatars.create(
            self.account_id, image, name=sample, user_exclusive=True, metadata={}
        )
        assert created
        return avatar

    def finished(self, avatar_id: str) -> Avatar:
        deadline = time.monotonic() + FINISH_TIMEOUT_SECONDS
        while True:
            avatar = self.services.avatars.get(self.account_id, avatar_id)
            if avatar.status in ("ready", "failed"):
                return avatar
            if time.monotonic() > deadline or not self.worker.running():
                raise self.worker.fail(f"{avatar_id} still {avatar.status}")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    root = tmp_path_factory.mktemp("embedded")
    settings = Settings(
        data_dir=root / "var",
        database_url=f"sqlite:///{root / 'var' / 'avatar-prep.db'}",
        storage_dir=root / "var" / "storage",
        # A quick sweeper, so the refused-broker case finishes within the test.
        sweep_interval_seconds=0.5,
        stuck_after_seconds=2.0,
    )
    assert settings.broker_url == "filesystem://" and settings.storage_backend == "local"
    upgrade(settings)
    services = Services.create(settings, CeleryQueue(make_celery(settings)))
    _, key = services.keys.create("embedded-test", "paid")
    account = services.keys.authenticate(key)
    worker = start_worker(settings, root / "worker.log", concurrency=1, beat=True)
    try:
        yield Embedded(settings, services, account.id, worker)
    finally:
        worker.stop()
        services.close()


def test_an_accepted_photo_ends_ready_with_every_rendition_stored(embedded: Embedded) -> None:
    avatar = embedded.finished(embedded.create("accept_portrait.jpg").id)
    assert avatar.status == "ready", avatar.error
    assert avatar.images["4:3"].width == 640
    stored = embedded.services.storage.list_keys(f"avatars/{avatar.id}/")
    assert sorted(k.rsplit("/", 1)[1] for k in stored) == [
        "1x1.jpg",
        "3x4.jpg",
        "4x3.jpg",
        "original",
        "record.json",
    ]


def test_a_rejected_photo_ends_failed_with_its_code_and_checks(embedded: Embedded) -> None:
    avatar = embedded.finished(embedded.create("reject_multiple_faces.jpg").id)
    assert avatar.status == "failed"
    assert avatar.error["code"] == "face.multiple"
    assert any(c["name"] == "face_count" and not c["passed"] for c in avatar.error["checks"])


def test_an_upload_the_broker_refused_is_sent_by_the_sweeper(embedded: Embedded) -> None:
    class BrokerDown:
        def send(self, avatar_id: str) -> None:
            raise BrokerUnavailable(f"broker down while sending {avatar_id}")

        def ping(self) -> bool:
            return False

    refused = Services.create(embedded.settings, BrokerDown())
    try:
        avatar = embedded.create("accept_astronaut.png", services=refused)
    finally:
        refused.close()
    assert avatar.status == "queued"
    assert embedded.finished(avatar.id).status == "ready"
    # The sweep logs after its send, which the avatar may have beaten.
    assert embedded.worker.says("sweeper re-enqueued", FINISH_TIMEOUT_SECONDS), (
        embedded.worker.log()[-3000:]
    )

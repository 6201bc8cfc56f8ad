"""Dedupe never hands back a transient failure: bytes whose avatar failed for a
reason that was no verdict on the image (storage, database, a fetch, a crash, a
missing original) are processed again under the same id when uploaded again;
a verdict (a face or image rule) is final. On the embedded defaults with the
real pipeline; only the broker is a fake."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pipeline.errors import AvatarPrepError
from service.codes import CODES, failure_is_final
from service.errors import NotFound, TransientError, Unavailable
from service.runtime import Services
from service.settings import Settings
from service.storage import avatar_prefix
from tests.service.conftest import (
    FakeBroker,
    account,
    open_services,
    sample,
    stored_keys,
    upload,
)

PORTRAIT = "accept_portrait.jpg"


@pytest.mark.parametrize(
    "error",
    [
        TransientError("Storage down.", code="storage.unavailable"),
        TransientError("Database down.", code="database.unavailable"),
        TransientError("The server answered 503.", code="image.fetch_failed"),
        AvatarPrepError("The worker stopped 10 times.", code="processing.crashed"),
        AvatarPrepError("Something new.", code="no.such_code"),
    ],
    ids=lambda e: e.code,
)
def test_a_transient_failure_is_processed_again_under_the_same_id(
    local: Services, broker: FakeBroker, error: AvatarPrepError
) -> None:
    me = account(local, "acme")
    first, _ = upload(local, me, sample(PORTRAIT))
    local.avatars.fail(first.id, error)  # what the task does after its last retry
    assert local.avatars.get(me, first.id).status == "failed"

    again, created = upload(local, me, sample(PORTRAIT), kind="base64")
    assert created is True and again.id == first.id
    assert again.status == "queued" and again.error is None
    assert broker.sent == [first.id, first.id]
    local.avatars.process(first.id)
    ready = local.avatars.get(me, first.id)
    assert ready.status == "ready" and ready.images
    # Ready now: the next upload of those bytes is plain dedupe.
    assert upload(local, me, sample(PORTRAIT)) == (ready, False)


def test_a_verdict_on_the_image_is_final(local: Services, broker: FakeBroker) -> None:
    me = account(local, "acme")
    rejected, _ = upload(local, me, sample("reject_multiple_faces.jpg"))
    local.avatars.process(rejected.id)
    failed = local.avatars.get(me, rejected.id)
    assert failed.error["code"] == "face.multiple"
    assert upload(local, me, sample("reject_multiple_faces.jpg")) == (failed, False)
    assert broker.sent == [rejected.id]


def test_a_missing_original_is_stored_again_from_the_new_upload(
    local: Services, broker: FakeBroker
) -> None:
    me = account(local, "acme")
    avatar, _ = upload(local, me, sample(PORTRAIT))
    local.storage.delete_prefix(avatar_prefix(avatar.id))
    local.avatars.process(avatar.id)
    assert local.avatars.get(me, avatar.id).error["code"] == "storage.object_missing"

    again, created = upload(local, me, sample(PORTRAIT))
    assert created is True and again.id == avatar.id
    local.avatars.process(avatar.id)
    assert local.avatars.get(me, avatar.id).status == "ready"


def test_concurrent_uploads_reopen_a_failed_avatar_once(
    local: Services, broker: FakeBroker
) -> None:
    me = account(local, "acme")
    first, _ = upload(local, me, sample(PORTRAIT))
    local.avatars.fail(first.id, TransientError("Storage down.", code="storage.unavailable"))
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: upload(local, me, sample(PORTRAIT)), range(6)))
    assert {avatar.id for avatar, _ in results} == {first.id}
    assert sum(created for _, created in results) == 1
    assert broker.sent == [first.id, first.id]


def test_a_failed_avatar_deleted_while_it_is_reopened_leaves_nothing(
    local: Services, broker: FakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = account(local, "acme")
    first, _ = upload(local, me, sample(PORTRAIT))
    local.avatars.fail(first.id, TransientError("Storage down.", code="storage.unavailable"))
    put = local.storage.put

    def put_then_delete(key: str, data: bytes, content_type: str) -> None:
        put(key, data, content_type)
        local.avatars.delete(me, first.id)  # the client deletes it meanwhile

    monkeypatch.setattr(local.storage, "put", put_then_delete)
    with pytest.raises(TransientError) as info:
        upload(local, me, sample(PORTRAIT))
    assert info.value.code == "database.conflict"
    assert stored_keys(local) == []
    with pytest.raises(NotFound):
        local.avatars.get(me, first.id)


def test_the_registry_says_which_failures_are_final() -> None:
    final = {name for name, code in CODES.items() if code.final}
    assert {"face.multiple", "face.none", "image.unreadable", "image.too_small"} <= final
    for retried in (
        "image.fetch_failed",
        "storage.unavailable",
        "database.unavailable",
        "processing.crashed",
        "storage.object_missing",
    ):
        assert not failure_is_final(retried), retried
    assert not failure_is_final(None) and not failure_is_final("no.such_code")


def test_a_full_queue_refuses_reopening_and_leaves_it_failed(
    local_settings: Settings, broker: FakeBroker, models: Any
) -> None:
    services = open_services(
        local_settings.model_copy(update={"max_queue_depth": 1}), broker, models
    )
    try:
        me = account(services, "acme")
        first, _ = upload(services, me, sample(PORTRAIT))
        services.avatars.fail(first.id, TransientError("Down.", code="storage.unavailable"))
        upload(services, me, sample("gray.jpg"))  # the one unfinished avatar allowed
        with pytest.raises(Unavailable):
            upload(services, me, sample(PORTRAIT))
        assert services.avatars.get(me, first.id).status == "failed"
    finally:
        services.close()

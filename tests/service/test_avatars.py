"""AvatarService on the embedded defaults (SQLite file, local storage), the real
pipeline and real photos; only the broker is a fake (the enqueue seam)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import simplejpeg
from sqlalchemy import select, update

from pipeline.errors import AvatarPrepError, ImageError
from pipeline.settings import PipelineSettings
from service.avatars import AvatarService, ImageInput
from service.domain import Avatar
from service.errors import Conflict, InvalidRequest, NotFound, TransientError, Unavailable
from service.ids import is_avatar_id
from service.public import avatar_json
from service.registry import AvatarRow
from service.runtime import Services
from service.settings import Settings
from service.storage import LocalStorage, avatar_prefix
from tests.documented import LANDMARK_NAMES, RENDITION_SIZES
from tests.service.conftest import (
    FakeBroker,
    account,
    refused,
    sample,
    stored_keys,
    upload,
)

PORTRAIT = "accept_portrait.jpg"


def row_of(services: Services, avatar_id: str) -> AvatarRow | None:
    with services.registry.transaction() as session:
        return session.get(AvatarRow, avatar_id)


# --- create -------------------------------------------------------------------


def test_create_stores_the_original_writes_a_queued_row_and_enqueues(
    local: Services, broker: FakeBroker
) -> None:
    me = account(local, "acme")
    data = sample(PORTRAIT)
    avatar, created = upload(local, me, data, name="Joe", metadata={"team": "blue"})

    assert created is True
    assert is_avatar_id(avatar.id)
    assert avatar_json(avatar)["object"] == "avatar"
    assert avatar.status == "queued"
    assert avatar.name == "Joe" and avatar.metadata == {"team": "blue"}
    assert avatar.user_exclusive is True
    assert avatar.source.kind == "file"
    assert avatar.source.format == "jpeg"
    assert (avatar.source.width, avatar.source.height) == (1200, 1200)
    assert avatar.source.bytes == len(data)
    assert len(avatar.source.sha256) == 64
    assert avatar.images is None and avatar.error is None and avatar.ready_at is None
    assert avatar_json(avatar)["created_at"].endswith("Z")
    assert broker.sent == [avatar.id]
    assert stored_keys(local) == [f"avatars/{avatar.id}/original"]
    assert local.storage.get(f"avatars/{avatar.id}/original") == data
    assert local.avatars.get(me, avatar.id) == avatar


def test_same_bytes_from_the_same_account_are_one_avatar(
    local: Services, broker: FakeBroker
) -> None:
    me, other = account(local, "acme"), account(local, "globex")
    data = sample(PORTRAIT)
    first, _ = upload(local, me, data)
    again, created = upload(local, me, data, name="ignored")
    assert created is False
    assert again.id == first.id
    theirs, created = upload(local, other, data)
    assert created is True and theirs.id != first.id
    assert broker.sent == [first.id, theirs.id]
    assert len(stored_keys(local)) == 2


class RacingStorage(LocalStorage):
    """Storage at the seam that lets a second, identical upload finish while the
    first is between storing its original and writing its row."""

    def __init__(self, inner: LocalStorage, race: Any) -> None:
        super().__init__(inner.root)
        self.race = race

    def put(self, key: str, data: bytes, content_type: str) -> None:
        super().put(key, data, content_type)
        race, self.race = self.race, None
        if race is not None:
            race()


def test_a_lost_dedupe_race_returns_the_winner_and_leaves_no_object(
    local: Services, broker: FakeBroker
) -> None:
    me = account(local, "acme")
    data = sample(PORTRAIT)
    winner: list[Avatar] = []
    storage = RacingStorage(
        local.storage,  # type: ignore[arg-type]
        lambda: winner.append(upload(local, me, data)[0]),
    )
    racing = AvatarService(local.settings, local.registry, storage, broker)

    avatar, created = racing.create(
        me, ImageInput(kind="file", data=data), name=None, user_exclusive=True, metadata={}
    )
    assert created is False
    assert avatar.id == winner[0].id
    assert stored_keys(local) == [f"avatars/{winner[0].id}/original"]
    assert broker.sent == [winner[0].id]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "image.missing"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "image.unsupported_format"),
        (b"%PDF-1.7 not an image", "image.unsupported_format"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "image.unreadable"),
    ],
)
def test_cheap_check_failures_leave_nothing(
    local: Services, broker: FakeBroker, data: bytes, code: str
) -> None:
    me = account(local, "acme")
    with refused(local, broker, me, ImageError, code):
        upload(local, me, data)
    assert stored_keys(local) == []


def test_size_limits_are_checked_before_anything_is_stored(
    local_with: Callable[..., Services],
) -> None:
    services = local_with(pipeline=PipelineSettings(max_bytes=100_000, max_pixels=1_000_000))
    me = account(services, "acme")
    with pytest.raises(ImageError) as info:
        upload(services, me, sample(PORTRAIT))  # 270 kB
    assert info.value.code == "image.too_large"
    with pytest.raises(ImageError) as info:
        upload(services, me, sample("reject_face_too_small.jpg"))  # 77 kB, but 3 MP
    assert info.value.code == "image.too_many_pixels"
    assert stored_keys(services) == []


def test_storage_down_during_create_leaves_no_row(
    local_settings: Settings, local_with: Callable[..., Services], broker: FakeBroker
) -> None:
    local_settings.storage_dir.parent.mkdir(parents=True)
    local_settings.storage_dir.write_bytes(b"")  # a file where the folder should be
    services = local_with()
    me = account(services, "acme")
    with refused(services, broker, me, TransientError, "storage.unavailable"):
        upload(services, me, sample(PORTRAIT))


def test_database_failure_at_insert_removes_the_stored_original(
    local_with: Callable[..., Services], broker: FakeBroker
) -> None:
    services = local_with(database_connect_timeout_seconds=0.2)
    me = account(services, "acme")
    path = services.settings.database_url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(path)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the file: inserts time out
    try:
        with pytest.raises(TransientError) as info:
            upload(services, me, sample(PORTRAIT))
    finally:
        blocker.rollback()
        blocker.close()
    assert info.value.code == "database.unavailable"
    assert stored_keys(services) == []
    assert broker.sent == []


def test_a_broker_that_refuses_leaves_the_row_queued_for_the_sweeper(
    local: Services, broker: FakeBroker
) -> None:
    me = account(local, "acme")
    broker.down = True
    avatar, created = upload(local, me, sample(PORTRAIT))
    assert created is True and avatar.status == "queued"
    row = row_of(local, avatar.id)
    assert row is not None and row.status == "queued" and row.enqueued_at is None

    assert local.avatars.requeue_stuck() == 0  # still down: nothing sent, nothing lost
    broker.down = False
    assert local.avatars.requeue_stuck() == 1
    assert broker.sent == [avatar.id]
    assert local.avatars.requeue_stuck() == 0  # sent now; not again until it is stuck


def test_a_full_queue_refuses_new_work_but_not_duplicates(
    local_with: Callable[..., Services],
) -> None:
    services = local_with(max_queue_depth=1)
    me = account(services, "acme")
    first, _ = upload(services, me, sample(PORTRAIT))
    with pytest.raises(Unavailable) as info:
        upload(services, me, sample("webp.webp"))
    assert info.value.code == "at_capacity" and info.value.retry_after > 0
    assert upload(services, me, sample(PORTRAIT)) == (first, False)


# --- process ------------------------------------------------------------------


def test_process_makes_an_avatar_ready(local: Services) -> None:
    me = account(local, "acme")
    avatar, _ = upload(local, me, sample(PORTRAIT))
    local.avatars.process(avatar.id)

    ready = local.avatars.get(me, avatar.id)
    assert ready.status == "ready" and ready.error is None
    assert ready.ready_at is not None
    sizes = {k: (v.width, v.height) for k, v in ready.images.items()}
    assert sizes == RENDITION_SIZES
    assert (
        avatar_json(ready)["images"]["4:3"]["url"]
        == f"/v1/avatars/{avatar.id}/image?aspect_ratio=4:3"
    )
    face = ready.face
    assert set(face["landmarks"]) == LANDMARK_NAMES
    assert face["landmarks"]["left_eye"][0] < face["landmarks"]["right_eye"][0]
    assert 0 < face["box"][0] < 1200 and face["score"] > 0.5

    prefix = avatar_prefix(avatar.id)
    assert stored_keys(local) == [
        f"{prefix}1x1.jpg",
        f"{prefix}3x4.jpg",
        f"{prefix}4x3.jpg",
        f"{prefix}original",
        f"{prefix}record.json",
    ]
    for ratio, (width, height) in sizes.items():
        ref = local.avatars.image(me, avatar.id, ratio)
        assert ref.url is None and ref.content_type == "image/jpeg" and ref.data is not None
        assert simplejpeg.decode_jpeg_header(ref.data)[:2] == (height, width)
    record = json.loads(local.storage.get(f"{prefix}record.json"))
    assert record["verdict"] == "accept" and record["source"]["sha256"] == ready.source.sha256


def test_a_ready_avatar_shows_its_checks_and_warnings(
    local_with: Callable[..., Services],
) -> None:
    # Limits lowered so the blurred sample is accepted with a sharpness warning.
    pipeline = PipelineSettings(min_sharpness=1.0)
    services = local_with(pipeline=pipeline)
    me = account(services, "acme")
    blurry, _ = upload(services, me, sample("reject_too_blurry.jpg"))
    sharp, _ = upload(services, me, sample(PORTRAIT))
    for avatar in (blurry, sharp):
        services.avatars.process(avatar.id)

    warned = services.avatars.get(me, blurry.id)
    assert warned.status == "ready"
    (warning,) = warned.warnings
    assert warning["code"] == "face.too_blurry" and warning["bound"] == "min"
    assert warning["value"] < warning["limit"] == pipeline.warn_sharpness
    assert "blurry" in warning["message"] and warning["hint"]
    names = [c["name"] for c in warned.checks]
    assert "sharpness" in names and "face_count" in names
    clean = services.avatars.get(me, sharp.id)
    assert clean.warnings == [] and all(c["passed"] for c in clean.checks)


def test_process_is_idempotent(local: Services, broker: FakeBroker) -> None:
    me = account(local, "acme")
    avatar, _ = upload(local, me, sample(PORTRAIT))
    local.avatars.process(avatar.id)
    first = local.avatars.get(me, avatar.id)
    objects = {k: local.storage.get(k) for k in stored_keys(local)}

    # Delivered again after it finished: nothing changes.
    local.avatars.process(avatar.id)
    assert local.avatars.get(me, avatar.id) == first

    # A worker that died after writing the renditions but before marking the row:
    # the redelivered task writes the same keys with the same bytes.
    with local.registry.transaction() as session:
        session.execute(
            update(AvatarRow)
            .where(AvatarRow.id == avatar.id)
            .values(status="processing", images=None, face=None, ready_at=None)
        )
    local.avatars.process(avatar.id)
    again = local.avatars.get(me, avatar.id)
    assert {k: local.storage.get(k) for k in stored_keys(local)} == objects
    assert again.status == "ready"
    assert again.images == first.images and again.face == first.face


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("reject_multiple_faces.jpg", "face.multiple"),
        ("reject_no_face.png", "face.none"),
        ("reject_face_too_small.jpg", "face.too_small"),
    ],
)
def test_a_rejected_image_ends_failed_with_its_code_and_checks(
    local: Services, name: str, code: str
) -> None:
    me = account(local, "acme")
    avatar, _ = upload(local, me, sample(name))
    local.avatars.process(avatar.id)

    failed = local.avatars.get(me, avatar.id)
    assert failed.status == "failed" and failed.images is None
    error = failed.error
    assert error["type"] == "invalid_request" and error["code"] == code
    assert error["param"] == "image" and error["message"]
    assert any(not check["passed"] for check in error["checks"])
    record = json.loads(local.storage.get(f"{avatar_prefix(avatar.id)}record.json"))
    assert record["verdict"] == "reject" and record["error"]["code"] == code
    with pytest.raises(Conflict) as info:
        local.avatars.image(me, avatar.id, "1:1")
    assert info.value.code == "avatar.failed"


def test_an_image_that_fails_to_decode_ends_failed(local: Services) -> None:
    me = account(local, "acme")
    truncated = sample(PORTRAIT)[:40_000]  # the header is whole, the scan is not
    avatar, _ = upload(local, me, truncated)
    local.avatars.process(avatar.id)
    failed = local.avatars.get(me, avatar.id)
    assert failed.status == "failed"
    assert failed.error["code"] == "image.unreadable"


def test_an_original_gone_out_of_band_fails_for_good(local: Services) -> None:
    me = account(local, "acme")
    avatar, _ = upload(local, me, sample(PORTRAIT))
    local.storage.delete_prefix(avatar_prefix(avatar.id))
    local.avatars.process(avatar.id)
    assert local.avatars.get(me, avatar.id).error["code"] == "storage.object_missing"


def test_an_image_that_keeps_killing_its_worker_is_given_up(
    local_with: Callable[..., Services],
) -> None:
    services = local_with(max_process_attempts=3)
    me = account(services, "acme")
    avatar, _ = upload(services, me, sample(PORTRAIT))
    # Three starts already, each ended by a dead worker (the row stays `processing`).
    with services.registry.transaction() as session:
        session.execute(
            update(AvatarRow)
            .where(AvatarRow.id == avatar.id)
            .values(status="processing", attempts=3)
        )
    services.avatars.process(avatar.id)
    failed = services.avatars.get(me, avatar.id)
    assert failed.status == "failed"
    assert failed.error["code"] == "processing.crashed"
    assert failed.error["type"] == "api_error"


def test_fail_after_the_last_retry_and_never_over_a_finished_avatar(local: Services) -> None:
    me = account(local, "acme")
    queued, _ = upload(local, me, sample("webp.webp"))
    local.avatars.fail(queued.id, TransientError("Storage down.", code="storage.unavailable"))
    failed = local.avatars.get(me, queued.id)
    assert failed.status == "failed"
    assert failed.error == {
        "type": "api_error",
        "code": "storage.unavailable",
        "message": "Storage down.",
        "param": None,
    }

    ready, _ = upload(local, me, sample(PORTRAIT))
    local.avatars.process(ready.id)
    local.avatars.fail(ready.id, AvatarPrepError("late", code="processing.crashed"))
    assert local.avatars.get(me, ready.id).status == "ready"


def test_process_of_a_deleted_avatar_does_nothing(local: Services) -> None:
    me = account(local, "acme")
    avatar, _ = upload(local, me, sample(PORTRAIT))
    local.avatars.delete(me, avatar.id)
    local.avatars.process(avatar.id)
    assert stored_keys(local) == []


class DeletingStorage(LocalStorage):
    """Storage at the seam where the client deletes the avatar just after the
    worker wrote its first rendition (the others and the record come after)."""

    def __init__(self, inner: LocalStorage, on_first_rendition: Any) -> None:
        super().__init__(inner.root)
        self.on_first_rendition = on_first_rendition

    def put(self, key: str, data: bytes, content_type: str) -> None:
        super().put(key, data, content_type)
        if key.endswith("1x1.jpg"):
            self.on_first_rendition()


def test_a_delete_during_processing_leaves_no_orphan(
    local: Services, broker: FakeBroker, models: Any
) -> None:
    me = account(local, "acme")
    avatar, _ = upload(local, me, sample(PORTRAIT))
    storage = DeletingStorage(
        local.storage,  # type: ignore[arg-type]
        lambda: local.avatars.delete(me, avatar.id),
    )
    worker = AvatarService(local.settings, local.registry, storage, broker, models)
    worker.process(avatar.id)
    assert row_of(local, avatar.id) is None
    assert stored_keys(local) == []


# --- reads and delete -----------------------------------------------------------


def test_visibility_between_accounts(local: Services) -> None:
    me, other = account(local, "acme"), account(local, "globex")
    private, _ = upload(local, me, sample(PORTRAIT))
    shared, _ = upload(local, me, sample("webp.webp"), user_exclusive=False)

    for call in (
        lambda: local.avatars.get(other, private.id),
        lambda: local.avatars.image(other, private.id, "1:1"),
        lambda: local.avatars.delete(other, private.id),
        lambda: local.avatars.delete(other, shared.id),  # shared to use, not to delete
        lambda: local.avatars.get(me, "avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX"),
        lambda: local.avatars.get(me, "not-an-id"),
    ):
        with pytest.raises(NotFound) as info:
            call()
        assert info.value.code == "avatar.not_found"
    assert local.avatars.get(other, shared.id).id == shared.id
    assert local.avatars.list(other, limit=10, starting_after=None, status=None) == ([], False)


def test_list_is_newest_first_with_cursor_and_status_filter(local: Services) -> None:
    me = account(local, "acme")
    names = ["webp.webp", "gif.gif", "bmp.bmp", "tiff.tiff", PORTRAIT]
    ids = [upload(local, me, sample(n))[0].id for n in names]
    local.avatars.process(ids[-1])
    newest_first = ids[::-1]

    page, more = local.avatars.list(me, limit=2, starting_after=None, status=None)
    assert [a.id for a in page] == newest_first[:2] and more is True
    page, more = local.avatars.list(me, limit=2, starting_after=page[-1].id, status=None)
    assert [a.id for a in page] == newest_first[2:4] and more is True
    page, more = local.avatars.list(me, limit=2, starting_after=page[-1].id, status=None)
    assert [a.id for a in page] == newest_first[4:] and more is False

    ready, more = local.avatars.list(me, limit=10, starting_after=None, status="ready")
    assert [a.id for a in ready] == [ids[-1]] and more is False
    queued, _ = local.avatars.list(me, limit=10, starting_after=None, status="queued")
    assert [a.id for a in queued] == newest_first[1:]
    with pytest.raises(InvalidRequest):
        local.avatars.list(me, limit=10, starting_after=None, status="done")


def test_delete_removes_every_object_and_the_row(local: Services) -> None:
    me = account(local, "acme")
    keep, _ = upload(local, me, sample("webp.webp"))
    avatar, _ = upload(local, me, sample(PORTRAIT))
    local.avatars.process(avatar.id)
    assert len(local.storage.list_keys(avatar_prefix(avatar.id))) == 5

    local.avatars.delete(me, avatar.id)
    assert row_of(local, avatar.id) is None
    assert stored_keys(local) == [f"avatars/{keep.id}/original"]
    with pytest.raises(NotFound):
        local.avatars.get(me, avatar.id)
    # The bytes may be uploaded again: a new avatar.
    again, created = upload(local, me, sample(PORTRAIT))
    assert created is True and again.id != avatar.id


class FailingDeletes(LocalStorage):
    """Local storage whose deletes fail as an unreachable S3's do while `down`."""

    def __init__(self, inner: LocalStorage) -> None:
        super().__init__(inner.root)
        self.down = True

    def delete_prefix(self, prefix: str) -> None:
        if self.down:
            raise TransientError("storage is down", code="storage.unavailable")
        super().delete_prefix(prefix)


def test_a_delete_while_storage_fails_removes_the_row_and_the_sweeper_the_objects(
    local: Services, broker: FakeBroker, models: Any
) -> None:
    me = account(local, "acme")
    avatar, _ = upload(local, me, sample(PORTRAIT))
    local.avatars.process(avatar.id)
    storage = FailingDeletes(local.storage)  # type: ignore[arg-type]
    api = AvatarService(local.settings, local.registry, storage, broker, models)

    api.delete(me, avatar.id)  # answered, not a 503: the objects wait for the sweeper
    assert row_of(local, avatar.id) is None
    with pytest.raises(NotFound):
        api.get(me, avatar.id)
    assert len(stored_keys(local)) == 5
    assert api.purge_deleted() == 0  # still down: kept, not lost
    assert len(stored_keys(local)) == 5

    storage.down = False
    assert api.purge_deleted() == 1
    assert stored_keys(local) == []
    assert api.purge_deleted() == 0  # nothing left to purge


def test_a_delete_that_storage_answers_leaves_nothing_for_the_sweeper(local: Services) -> None:
    me = account(local, "acme")
    avatar, _ = upload(local, me, sample(PORTRAIT))
    local.avatars.delete(me, avatar.id)
    assert stored_keys(local) == []
    assert local.avatars.purge_deleted() == 0


def test_image_before_ready_and_with_a_bad_ratio(local: Services) -> None:
    me = account(local, "acme")
    avatar, _ = upload(local, me, sample(PORTRAIT))
    with pytest.raises(Conflict) as info:
        local.avatars.image(me, avatar.id, "1:1")
    assert info.value.code == "avatar.not_ready"
    with pytest.raises(InvalidRequest):
        local.avatars.image(me, avatar.id, "16:9")


# --- the sweeper ------------------------------------------------------------------


def test_requeue_stuck_sends_only_what_is_stuck(local: Services, broker: FakeBroker) -> None:
    me = account(local, "acme")
    fresh, _ = upload(local, me, sample("webp.webp"))
    old_queued, _ = upload(local, me, sample("gif.gif"))
    old_processing, _ = upload(local, me, sample("bmp.bmp"))
    live_processing, _ = upload(local, me, sample("tiff.tiff"))
    done, _ = upload(local, me, sample(PORTRAIT))
    local.avatars.process(done.id)
    long_ago = datetime.now(UTC) - timedelta(seconds=local.settings.stuck_after_seconds + 60)
    with local.registry.transaction() as session:
        for avatar_id, values in (
            (old_queued.id, {"enqueued_at": long_ago}),
            (old_processing.id, {"status": "processing", "updated_at": long_ago}),
            (live_processing.id, {"status": "processing"}),
            (done.id, {"enqueued_at": long_ago, "updated_at": long_ago}),
        ):
            session.execute(update(AvatarRow).where(AvatarRow.id == avatar_id).values(**values))
    broker.sent.clear()

    assert local.avatars.requeue_stuck() == 2
    assert sorted(broker.sent) == sorted([old_queued.id, old_processing.id])
    assert fresh.id not in broker.sent
    with local.registry.transaction() as session:
        enqueued = session.scalar(
            select(AvatarRow.enqueued_at).where(AvatarRow.id == old_queued.id)
        )
    assert enqueued is not None and enqueued > long_ago

"""AvatarService on the real components: PostgreSQL and SeaweedFS (started by
the `s3` fixture), the real pipeline and real photos. The broker is the fake at
the enqueue seam; real Celery workers are tests/integration's."""

from __future__ import annotations

import threading
import urllib.request

import psycopg
import pytest
import simplejpeg
from sqlalchemy import select
from sqlalchemy.engine import make_url

from service.domain import Avatar
from service.errors import TransientError
from service.registry import AvatarRow
from service.runtime import Services
from service.storage import avatar_prefix
from tests.documented import RENDITION_SIZES
from tests.service.conftest import FakeBroker, account, refused, sample, upload
from tests.services import SeaweedS3

pytestmark = pytest.mark.integration

PORTRAIT = "accept_portrait.jpg"


def assert_no_orphans(services: Services, s3: SeaweedS3, before: set[str]) -> None:
    """Every object stored since `before` belongs to an avatar row that exists."""
    new = set(s3.keys("avatars/")) - before
    owners = {key.split("/")[1] for key in new}
    with services.registry.transaction() as session:
        rows = set(session.scalars(select(AvatarRow.id).where(AvatarRow.id.in_(owners))).all())
    assert owners == rows, f"objects without a row: {sorted(owners - rows)}"


def test_create_process_ready_and_a_presigned_image(real: Services, s3: SeaweedS3) -> None:
    me = account(real, "acme-int")
    avatar, created = upload(real, me, sample(PORTRAIT))
    assert created and avatar.status == "queued"
    real.avatars.process(avatar.id)

    ready = real.avatars.get(me, avatar.id)
    assert ready.status == "ready"
    assert {k: (v.width, v.height) for k, v in ready.images.items()} == RENDITION_SIZES
    prefix = avatar_prefix(avatar.id)
    assert s3.keys(prefix) == [
        f"{prefix}{name}" for name in ("1x1.jpg", "3x4.jpg", "4x3.jpg", "original", "record.json")
    ]
    ref = real.avatars.image(me, avatar.id, "4:3")
    assert ref.data is None and ref.url is not None
    with urllib.request.urlopen(ref.url, timeout=5) as response:
        jpeg = response.read()
        assert response.headers["Content-Type"] == "image/jpeg"
    assert simplejpeg.decode_jpeg_header(jpeg)[:2] == (480, 640)


def test_concurrent_identical_uploads_make_one_avatar(
    real: Services, s3: SeaweedS3, broker: FakeBroker
) -> None:
    me = account(real, "acme-race")
    data = sample("webp.webp")
    before = set(s3.keys("avatars/"))
    results = uploads_at_once(real, me, data)

    ids = {avatar.id for avatar, _ in results}
    assert len(results) == 8 and len(ids) == 1
    assert sum(created for _, created in results) == 1
    (avatar_id,) = ids
    assert set(s3.keys("avatars/")) - before == {f"avatars/{avatar_id}/original"}
    assert broker.sent == [avatar_id]


def test_concurrent_uploads_reopen_a_transient_failure_once(
    real: Services, s3: SeaweedS3, broker: FakeBroker
) -> None:
    me = account(real, "acme-reopen")
    data = sample("palette.png")
    first, _ = upload(real, me, data)
    real.avatars.fail(first.id, TransientError("Storage down.", code="storage.unavailable"))
    results = uploads_at_once(real, me, data)
    assert {avatar.id for avatar, _ in results} == {first.id}
    assert sum(created for _, created in results) == 1
    assert broker.sent == [first.id, first.id]
    real.avatars.process(first.id)
    assert real.avatars.get(me, first.id).status == "ready"


def test_delete_leaves_no_object_and_no_row(real: Services, s3: SeaweedS3) -> None:
    me = account(real, "acme-delete")
    avatar, _ = upload(real, me, sample(PORTRAIT))
    real.avatars.process(avatar.id)
    assert len(s3.keys(avatar_prefix(avatar.id))) == 5

    real.avatars.delete(me, avatar.id)
    assert s3.keys(avatar_prefix(avatar.id)) == []
    with real.registry.transaction() as session:
        assert session.get(AvatarRow, avatar.id) is None


def test_storage_down_during_create_leaves_no_row(
    real: Services, s3: SeaweedS3, broker: FakeBroker
) -> None:
    me = account(real, "acme-s3-down")
    s3.stop()
    with refused(real, broker, me, TransientError, "storage.unavailable"):
        try:
            upload(real, me, sample(PORTRAIT))
        finally:
            s3.start()


def test_a_database_failure_at_insert_leaves_no_object(
    real: Services, s3: SeaweedS3, postgres_url: str, broker: FakeBroker
) -> None:
    me = account(real, "acme-db-full")
    before = set(s3.keys("avatars/"))
    conninfo = make_url(postgres_url).set(drivername="postgresql").render_as_string(False)
    # The server refuses this account's inserts as a full disk would (SQLSTATE 53100).
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            """
            CREATE FUNCTION refuse_insert() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = '53100'; END $$;
            """
        )
        conn.execute(
            f"""
            CREATE TRIGGER refuse_insert BEFORE INSERT ON avatars FOR EACH ROW
            WHEN (NEW.account_id = '{me}') EXECUTE FUNCTION refuse_insert();
            """
        )
        try:
            with pytest.raises(TransientError) as info:
                upload(real, me, sample(PORTRAIT))
        finally:
            conn.execute("DROP TRIGGER refuse_insert ON avatars")
            conn.execute("DROP FUNCTION refuse_insert()")
    assert info.value.code == "database.unavailable"
    assert set(s3.keys("avatars/")) == before
    assert broker.sent == []


def test_storage_down_while_processing_is_retried_and_recovers(
    real: Services, s3: SeaweedS3
) -> None:
    me = account(real, "acme-s3-flap")
    before = set(s3.keys("avatars/"))
    avatar, _ = upload(real, me, sample(PORTRAIT))
    s3.stop()
    try:
        with pytest.raises(TransientError) as info:
            real.avatars.process(avatar.id)
        assert info.value.code == "storage.unavailable"
        assert real.avatars.get(me, avatar.id).status == "processing"
    finally:
        s3.start()
    real.avatars.process(avatar.id)  # the retry
    assert real.avatars.get(me, avatar.id).status == "ready"
    assert_no_orphans(real, s3, before)


def test_a_rejection_is_failed_with_its_record_stored(real: Services, s3: SeaweedS3) -> None:
    me = account(real, "acme-reject")
    avatar, _ = upload(real, me, sample("reject_multiple_faces.jpg"))
    real.avatars.process(avatar.id)
    failed = real.avatars.get(me, avatar.id)
    assert failed.status == "failed" and failed.error["code"] == "face.multiple"
    assert failed.error["checks"]
    prefix = avatar_prefix(avatar.id)
    assert s3.keys(prefix) == [f"{prefix}original", f"{prefix}record.json"]


def uploads_at_once(
    services: Services, account_id: str, data: bytes, count: int = 8
) -> list[tuple[Avatar, bool]]:
    """`count` uploads of `data` from as many threads, released together; each
    `avatars.create` answer."""
    start = threading.Barrier(count)
    results: list[tuple[Avatar, bool]] = []

    def one() -> None:
        start.wait()
        results.append(upload(services, account_id, data))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results

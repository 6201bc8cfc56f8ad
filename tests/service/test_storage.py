"""Storage backends: the same behaviour from the local directory and from S3
(SeaweedFS, a real server), and the failure modes the avatar service relies on."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from service.errors import ObjectMissing, TransientError
from service.ids import new_id
from service.settings import Settings
from service.storage import (
    EXPECT_CONTINUE_MIN_BYTES,
    LocalStorage,
    S3Storage,
    Storage,
    StoredObject,
    avatar_prefix,
    make_storage,
    original_key,
    record_key,
    rendition_key,
)
from tests.services import SeaweedS3


def test_keys_are_made_from_the_avatar_id() -> None:
    avatar_id = new_id("avat")
    assert original_key(avatar_id) == f"avatars/{avatar_id}/original"
    assert rendition_key(avatar_id, "1:1") == f"avatars/{avatar_id}/1x1.jpg"
    assert rendition_key(avatar_id, "4:3") == f"avatars/{avatar_id}/4x3.jpg"
    assert rendition_key(avatar_id, "3:4") == f"avatars/{avatar_id}/3x4.jpg"
    assert record_key(avatar_id) == f"avatars/{avatar_id}/record.json"
    for key in (original_key(avatar_id), record_key(avatar_id)):
        assert key.startswith(avatar_prefix(avatar_id))


def test_make_storage_follows_the_backend_setting(tmp_path: Path) -> None:
    local = make_storage(Settings(storage_dir=tmp_path))
    assert isinstance(local, LocalStorage)
    s3 = make_storage(Settings(storage_backend="s3", s3_endpoint_url="http://127.0.0.1:9"))
    assert isinstance(s3, S3Storage)
    s3.close()


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


@pytest.fixture
def s3_storage(s3: SeaweedS3, service_settings: Settings) -> Iterator[S3Storage]:
    storage = S3Storage(service_settings)
    yield storage
    storage.close()


def contract(storage: Storage) -> None:
    """What every backend must do; run against each."""
    a, b = new_id("avat"), new_id("avat")
    storage.put(original_key(a), b"original bytes", "application/octet-stream")
    storage.put(rendition_key(a, "1:1"), b"\xff\xd8jpeg", "image/jpeg")
    storage.put(original_key(b), b"other avatar", "application/octet-stream")

    assert storage.get(original_key(a)) == b"original bytes"
    assert storage.list_keys(avatar_prefix(a)) == [rendition_key(a, "1:1"), original_key(a)]

    # Overwrite is a whole replacement (a re-run of a task writes the same keys).
    storage.put(original_key(a), b"second", "application/octet-stream")
    assert storage.get(original_key(a)) == b"second"

    storage.delete_prefix(avatar_prefix(a))
    assert storage.list_keys(avatar_prefix(a)) == []
    with pytest.raises(ObjectMissing):
        storage.get(original_key(a))
    # Deleting nothing is fine; the other avatar is untouched.
    storage.delete_prefix(avatar_prefix(a))
    assert storage.get(original_key(b)) == b"other avatar"
    assert storage.check() is True
    storage.delete_prefix(avatar_prefix(b))
    put_many_contract(storage)


def put_many_contract(storage: Storage) -> None:
    """Every object written (concurrently on S3); a failure is raised only once no
    write is under way any more (the others may or may not have been made)."""
    c = new_id("avat")
    objects = [
        StoredObject(rendition_key(c, ratio), ratio.encode(), "image/jpeg")
        for ratio in ("1:1", "4:3", "3:4")
    ] + [StoredObject(record_key(c), b"{}", "application/json")]
    storage.put_many(objects)
    assert storage.list_keys(avatar_prefix(c)) == sorted(o.key for o in objects)
    assert [storage.get(o.key) for o in objects] == [o.data for o in objects]

    d = new_id("avat")
    good = [StoredObject(rendition_key(d, ratio), b"x", "image/jpeg") for ratio in ("1:1", "4:3")]
    with pytest.raises(ValueError):
        storage.put_many([good[0], StoredObject("../escape", b"x", "image/jpeg"), good[1]])
    stored = storage.list_keys(avatar_prefix(d))
    assert good[0].key in stored and set(stored) <= {o.key for o in good}
    for folder in (c, d):
        storage.delete_prefix(avatar_prefix(folder))


def test_local_storage_contract(local: LocalStorage) -> None:
    contract(local)


def test_local_storage_has_no_urls_and_no_leftover_temp_files(local: LocalStorage) -> None:
    avatar_id = new_id("avat")
    local.put(record_key(avatar_id), b"{}", "application/json")
    assert local.url(record_key(avatar_id), "application/json") is None
    files = [p.name for p in (local.root / avatar_prefix(avatar_id)).iterdir()]
    assert files == ["record.json"]


@pytest.mark.parametrize("key", ["../escape", "avatars/../../etc/passwd", "/abs", "a//b", ""])
def test_keys_that_could_escape_are_refused(local: LocalStorage, key: str) -> None:
    with pytest.raises(ValueError):
        local.put(key, b"x", "application/octet-stream")


def test_folder_operations_need_a_folder(local: LocalStorage) -> None:
    with pytest.raises(ValueError):
        local.delete_prefix("avatars/avat_x")  # no trailing slash: would match avat_xy too


def test_local_storage_failure_is_transient(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    storage = LocalStorage(blocker)  # the root is a file: nothing can be written under it
    with pytest.raises(TransientError) as info:
        storage.put(original_key(new_id("avat")), b"x", "application/octet-stream")
    assert info.value.code == "storage.unavailable"
    assert storage.check() is False


@pytest.mark.integration
def test_s3_storage_contract(s3_storage: S3Storage) -> None:
    contract(s3_storage)


@pytest.mark.integration
def test_s3_objects_are_private_and_presigned_urls_work(
    s3_storage: S3Storage, s3: SeaweedS3
) -> None:
    avatar_id = new_id("avat")
    key = rendition_key(avatar_id, "4:3")
    s3_storage.put(key, b"\xff\xd8 pretend jpeg", "image/jpeg")

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{s3.endpoint_url}/{s3.bucket}/{key}", timeout=5)
    assert info.value.code == 403

    url = s3_storage.url(key, "image/jpeg")
    assert url is not None and "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.read() == b"\xff\xd8 pretend jpeg"
        assert response.headers["Content-Type"] == "image/jpeg"
    s3_storage.delete_prefix(avatar_prefix(avatar_id))


@pytest.mark.integration
def test_s3_sends_small_bodies_without_waiting_for_100_continue(s3_storage: S3Storage) -> None:
    sent: dict[str, str | None] = {}

    def record(request: Any, **_: Any) -> None:
        expect = request.headers.get("Expect")
        sent[request.url.rsplit("/", 1)[1]] = expect.decode() if expect is not None else None

    s3_storage.client.meta.events.register("before-send.s3", record)
    prefix = avatar_prefix(new_id("avat"))
    small = os.urandom(EXPECT_CONTINUE_MIN_BYTES - 1)
    large = os.urandom(EXPECT_CONTINUE_MIN_BYTES)
    s3_storage.put_many(
        [
            StoredObject(f"{prefix}small", small, "image/jpeg"),
            StoredObject(f"{prefix}large", large, "image/jpeg"),
        ]
    )
    # A rendition or a record goes out with its headers; an original this large
    # still asks first.
    assert sent == {"small": None, "large": "100-continue"}
    assert s3_storage.get(f"{prefix}small") == small
    assert s3_storage.get(f"{prefix}large") == large
    s3_storage.delete_prefix(prefix)


@pytest.mark.integration
@pytest.mark.slow
def test_s3_delete_prefix_removes_more_than_one_listing_page(s3_storage: S3Storage) -> None:
    avatar_id = new_id("avat")
    prefix = avatar_prefix(avatar_id)
    for i in range(1005):  # list_objects_v2 pages hold 1000
        s3_storage.put(f"{prefix}part-{i:04d}", b"x", "application/octet-stream")
    assert len(s3_storage.list_keys(prefix)) == 1005
    s3_storage.delete_prefix(prefix)
    assert s3_storage.list_keys(prefix) == []


@pytest.mark.integration
def test_s3_down_is_transient_and_recovers(s3_storage: S3Storage, s3: SeaweedS3) -> None:
    avatar_id = new_id("avat")
    s3.stop()
    try:
        with pytest.raises(TransientError) as info:
            s3_storage.put(original_key(avatar_id), b"x", "application/octet-stream")
        assert info.value.code == "storage.unavailable"
        with pytest.raises(TransientError):
            s3_storage.get(original_key(avatar_id))
        assert s3_storage.check() is False
    finally:
        s3.start()
    s3_storage.put(original_key(avatar_id), b"x", "application/octet-stream")
    assert s3_storage.get(original_key(avatar_id)) == b"x"
    s3_storage.delete_prefix(avatar_prefix(avatar_id))


@pytest.mark.integration
def test_s3_missing_bucket_is_not_ready(service_settings: Settings) -> None:
    storage = S3Storage(service_settings.model_copy(update={"s3_bucket": "no-such-bucket"}))
    assert storage.check() is False
    storage.close()


def stubbed_s3() -> tuple[S3Storage, Stubber]:
    """S3Storage whose client answers from a script (botocore's Stubber at the
    HTTP seam) for behaviour SeaweedFS cannot be made to show."""
    storage = S3Storage(Settings(storage_backend="s3", s3_endpoint_url="http://127.0.0.1:9"))
    return storage, Stubber(storage.client)


def listing(*keys: str) -> dict[str, Any]:
    return {"Contents": [{"Key": k} for k in keys], "KeyCount": len(keys), "IsTruncated": False}


def test_s3_objects_the_store_refuses_to_delete_are_an_error() -> None:
    storage, stub = stubbed_s3()
    key = original_key(new_id("avat"))
    stub.add_response("list_objects_v2", listing(key))
    stub.add_response(
        "delete_objects",
        {"Errors": [{"Key": key, "Code": "AccessDenied", "Message": "Access Denied"}]},
    )
    with stub, pytest.raises(TransientError) as info:
        storage.delete_prefix(key.rsplit("/", 1)[0] + "/")
    assert "AccessDenied" in info.value.message


def test_s3_objects_that_keep_being_listed_end_the_delete_with_an_error() -> None:
    storage, stub = stubbed_s3()
    key = original_key(new_id("avat"))
    for _ in range(3):
        stub.add_response("list_objects_v2", listing(key))
        stub.add_response("delete_objects", {})
    stub.add_response("list_objects_v2", listing(key))
    with stub, pytest.raises(TransientError) as info:
        storage.delete_prefix(key.rsplit("/", 1)[0] + "/")
    assert "remain" in info.value.message
    stub.assert_no_pending_responses()

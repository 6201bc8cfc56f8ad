"""URL uploads: checked and fetched at create, before any avatar exists, from a real
local HTTP server (loopback allowed by the setting, as only tests may), so their
bytes dedupe like an upload's and what the fetch finds wrong leaves nothing."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from pipeline.errors import ImageError
from service.avatars import ImageInput
from service.codes import status_for
from service.domain import Avatar
from service.errors import TransientError
from service.runtime import Services
from service.storage import avatar_prefix
from tests.service.conftest import (
    FakeBroker,
    ImageServer,
    account,
    refused,
    sample,
    upload,
)

PORTRAIT = "accept_portrait.jpg"


@pytest.fixture
def services(local_with: Callable[..., Services]) -> Services:
    return local_with(allow_loopback_urls=True)


def upload_url(services: Services, account_id: str, url: str) -> tuple[Avatar, bool]:
    return services.avatars.create(
        account_id, ImageInput(kind="url", url=url), name=None, user_exclusive=True, metadata={}
    )


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://127.0.0.1/a.jpg", "image.url_forbidden"),
        ("http://10.0.0.1/a.jpg", "image.url_forbidden"),
        ("http://169.254.169.254/latest/meta-data/", "image.url_forbidden"),
        ("http://[::1]/a.jpg", "image.url_forbidden"),
        ("http://0.0.0.0/a.jpg", "image.url_forbidden"),
        ("ftp://example.com/a.jpg", "image.url_invalid"),
        ("not a url", "image.url_invalid"),
        ("", "image.url_invalid"),
    ],
)
def test_bad_urls_are_refused_at_create_and_leave_nothing(
    local: Services, broker: FakeBroker, url: str, code: str
) -> None:
    me = account(local, "acme")
    with refused(local, broker, me, ImageError, code):
        upload_url(local, me, url)


def test_a_url_is_fetched_at_create_and_dedupes_like_an_upload(
    services: Services, broker: FakeBroker, image_server: ImageServer
) -> None:
    me = account(services, "acme")
    avatar, created = upload_url(services, me, image_server.url(f"/{PORTRAIT}"))
    assert created is True and avatar.status == "queued"
    # The bytes are known from the start: measured, hashed and stored.
    assert avatar.source.kind == "url"
    assert avatar.source.sha256 == hashlib.sha256(sample(PORTRAIT)).hexdigest()
    assert avatar.source.bytes == len(sample(PORTRAIT))
    original = f"{avatar_prefix(avatar.id)}original"
    assert services.storage.get(original) == sample(PORTRAIT)
    assert broker.sent == [avatar.id]

    # The same URL again, and the same bytes as a file or base64: the same avatar,
    # with no new work, before and after it is processed.
    assert upload_url(services, me, image_server.url(f"/{PORTRAIT}")) == (avatar, False)
    assert upload(services, me, sample(PORTRAIT))[0].id == avatar.id
    services.avatars.process(avatar.id)
    again, created = upload(services, me, sample(PORTRAIT), kind="base64")
    assert created is False and again.id == avatar.id and again.status == "ready"
    assert broker.sent == [avatar.id]


def test_a_url_of_bytes_already_uploaded_reuses_that_avatar(
    services: Services, broker: FakeBroker, image_server: ImageServer
) -> None:
    me = account(services, "acme")
    first, _ = upload(services, me, sample(PORTRAIT))
    by_url, created = upload_url(services, me, image_server.url(f"/{PORTRAIT}"))
    assert created is False and by_url.id == first.id
    assert broker.sent == [first.id]
    # Another account's upload of the same bytes is its own avatar.
    other, created = upload_url(
        services, account(services, "other"), image_server.url(f"/{PORTRAIT}")
    )
    assert created is True and other.id != first.id


def test_concurrent_requests_by_one_url_converge_on_one_avatar(
    services: Services, broker: FakeBroker, image_server: ImageServer
) -> None:
    me = account(services, "acme")
    url = image_server.url(f"/{PORTRAIT}")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: upload_url(services, me, url), range(8)))
    assert len({avatar.id for avatar, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(broker.sent) == 1
    # Losers of the race removed what they stored: one avatar's objects only.
    [winner] = {avatar.id for avatar, _ in results}
    assert {k.split("/")[1] for k in services.storage.list_keys("avatars/")} == {winner}


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/status/404", "image.fetch_failed"),
        ("/page.html", "image.unsupported_format"),
        ("/tiny.jpg", "image.too_small"),
    ],
)
def test_what_the_fetch_finds_wrong_is_refused_at_create_and_leaves_nothing(
    services: Services, broker: FakeBroker, image_server: ImageServer, path: str, code: str
) -> None:
    me = account(services, "acme")
    image_server.files["/tiny.jpg"] = _jpeg(40, 40)
    with refused(services, broker, me, ImageError, code) as info:
        upload_url(services, me, image_server.url(path))
    assert status_for(info.value) in (400, 413, 415)  # a cheap check: no 422 without avatar
    assert services.storage.list_keys("avatars/") == []


@pytest.mark.parametrize("path", ["/status/503", "/status/429"])
def test_a_server_failing_for_now_is_a_transient_503_leaving_nothing(
    services: Services, broker: FakeBroker, image_server: ImageServer, path: str
) -> None:
    me = account(services, "acme")
    with pytest.raises(TransientError) as info:
        upload_url(services, me, image_server.url(path))
    assert info.value.code == "image.fetch_failed" and status_for(info.value) == 503
    assert broker.sent == [] and services.storage.list_keys("avatars/") == []


def test_a_host_that_does_not_resolve_is_a_transient_503(
    services: Services, broker: FakeBroker
) -> None:
    me = account(services, "acme")
    with pytest.raises(TransientError) as info:
        upload_url(services, me, "https://no-such-host.invalid/portrait.jpg")
    assert info.value.code == "image.fetch_failed" and status_for(info.value) == 503
    assert broker.sent == []


def test_a_url_face_rejection_ends_failed_after_processing(
    services: Services, image_server: ImageServer
) -> None:
    me = account(services, "acme")
    avatar, _ = upload_url(services, me, image_server.url("/reject_multiple_faces.jpg"))
    services.avatars.process(avatar.id)
    failed = services.avatars.get(me, avatar.id)
    assert failed.status == "failed" and failed.error["code"] == "face.multiple"


def _jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (120, 90, 60)).save(out, "JPEG")
    return out.getvalue()

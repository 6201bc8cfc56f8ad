"""URL uploads: checked at create, fetched by the worker from a real local HTTP
server (loopback allowed by the setting, as only tests may)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.errors import ImageError
from service.avatars import ImageInput
from service.errors import TransientError
from service.runtime import Services
from service.settings import Settings
from service.storage import avatar_prefix
from tests.service.conftest import FakeBroker, ImageServer, account, open_services, sample, upload

PORTRAIT = "accept_portrait.jpg"


@pytest.fixture
def services(local_settings: Settings, broker: FakeBroker, models: Any) -> Iterator[Services]:
    made = open_services(
        local_settings.model_copy(update={"allow_loopback_urls": True}), broker, models
    )
    yield made
    made.close()


def upload_url(services: Services, account_id: str, url: str) -> tuple[dict[str, Any], bool]:
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
    with pytest.raises(ImageError) as info:
        upload_url(local, me, url)
    assert info.value.code == code
    assert broker.sent == []
    assert local.avatars.list(me, limit=5, starting_after=None, status=None) == ([], False)


def test_a_url_avatar_is_fetched_processed_and_then_dedupes(
    services: Services, broker: FakeBroker, image_server: ImageServer
) -> None:
    me = account(services, "acme")
    avatar, created = upload_url(services, me, image_server.url(f"/{PORTRAIT}"))
    assert created is True and avatar["status"] == "queued"
    assert avatar["source"]["kind"] == "url" and avatar["source"]["sha256"] is None
    assert services.storage.list_keys("avatars/") == []  # nothing fetched yet
    assert broker.sent == [avatar["id"]]

    services.avatars.process(avatar["id"])
    ready = services.avatars.get(me, avatar["id"])
    assert ready["status"] == "ready"
    assert ready["source"]["format"] == "jpeg" and ready["source"]["bytes"] == len(sample(PORTRAIT))
    original = f"{avatar_prefix(avatar['id'])}original"
    assert services.storage.get(original) == sample(PORTRAIT)

    # The same bytes uploaded as a file now are the same avatar.
    again, created = upload(services, me, sample(PORTRAIT))
    assert created is False and again["id"] == avatar["id"]


def test_a_url_with_bytes_the_account_already_has_stays_its_own_avatar(
    services: Services, image_server: ImageServer
) -> None:
    me = account(services, "acme")
    first, _ = upload(services, me, sample(PORTRAIT))
    by_url, created = upload_url(services, me, image_server.url(f"/{PORTRAIT}"))
    assert created is True
    services.avatars.process(by_url["id"])
    assert services.avatars.get(me, by_url["id"])["status"] == "ready"
    # Later uploads of those bytes still find the first avatar.
    assert upload(services, me, sample(PORTRAIT))[0]["id"] == first["id"]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/status/404", "image.fetch_failed"),
        ("/page.html", "image.unsupported_format"),
        ("/reject_multiple_faces.jpg", "face.multiple"),
    ],
)
def test_url_verdicts_end_failed(
    services: Services, image_server: ImageServer, path: str, code: str
) -> None:
    me = account(services, "acme")
    avatar, _ = upload_url(services, me, image_server.url(path))
    services.avatars.process(avatar["id"])
    failed = services.avatars.get(me, avatar["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == code and failed["error"]["type"] == "invalid_request"
    if code != "face.multiple":  # no image was fetched: nothing stored
        assert services.storage.list_keys("avatars/") == []


def test_a_failing_server_is_retried_then_failed(
    services: Services, image_server: ImageServer
) -> None:
    me = account(services, "acme")
    avatar, _ = upload_url(services, me, image_server.url("/status/503"))
    with pytest.raises(TransientError) as info:
        services.avatars.process(avatar["id"])
    assert info.value.code == "image.fetch_failed"
    assert services.avatars.get(me, avatar["id"])["status"] == "processing"

    services.avatars.fail(avatar["id"], info.value)  # what the task does after the last retry
    failed = services.avatars.get(me, avatar["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "image.fetch_failed"
    assert failed["error"]["type"] == "invalid_request"

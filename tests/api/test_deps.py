"""Authentication: X-API-Key or Authorization: Bearer; 401 envelopes otherwise. And
which account sees which avatar, on the service's own visibility rule."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from service.runtime import Services
from tests.api.conftest import photo, spy
from tests.api.embedded import Embedded
from tests.api.test_errors import assert_envelope

pytestmark = pytest.mark.anyio


@pytest.fixture
def paid_key(embedded: Embedded) -> str:
    return embedded.paid_key


@pytest.fixture
def free_key(embedded: Embedded) -> str:
    return embedded.free_key


async def test_no_key_is_401_missing(
    anonymous: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = spy(monkeypatch, services.keys, "authenticate")
    response = await anonymous.get("/v1/avatars")
    error = assert_envelope(response, 401, "auth.missing_key")
    assert "X-API-Key" in str(error["message"]) and "Bearer" in str(error["message"])
    assert seen == []


async def test_unknown_key_is_401_invalid(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/v1/avatars", headers={"X-API-Key": "ak_live_nope"})
    assert_envelope(response, 401, "auth.invalid_key")


async def upload_as(anonymous: httpx.AsyncClient, key: str, **fields: str) -> str:
    """The id of a new avatar of `key`'s account."""
    made = await anonymous.post(
        "/v1/avatars/upload-face",
        files={"file": ("a.jpg", photo())},
        data=fields,
        headers={"X-API-Key": key},
    )
    assert made.status_code == 202, made.text
    avatar_id: str = made.json()["id"]
    return avatar_id


async def test_x_api_key_authenticates(
    anonymous: httpx.AsyncClient, services: Services, free_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = await upload_as(anonymous, free_key)
    seen = spy(monkeypatch, services.keys, "authenticate")
    response = await anonymous.get("/v1/avatars", headers={"X-API-Key": free_key})
    assert response.status_code == 200
    assert seen == [(free_key,)]
    assert [a["id"] for a in response.json()["data"]] == [mine]  # the free account's


async def test_bearer_authenticates(
    anonymous: httpx.AsyncClient, services: Services, paid_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = await upload_as(anonymous, paid_key)
    seen = spy(monkeypatch, services.keys, "authenticate")
    response = await anonymous.get("/v1/avatars", headers={"Authorization": f"Bearer {paid_key}"})
    assert response.status_code == 200
    assert seen == [(paid_key,)]
    assert [a["id"] for a in response.json()["data"]] == [mine]  # the paid account's


async def test_unknown_bearer_is_401(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/v1/avatars", headers={"Authorization": "Bearer ak_live_x"})
    assert_envelope(response, 401, "auth.invalid_key")


async def test_other_schemes_are_not_a_key(anonymous: httpx.AsyncClient, paid_key: str) -> None:
    response = await anonymous.get("/v1/avatars", headers={"Authorization": f"Basic {paid_key}"})
    assert_envelope(response, 401, "auth.missing_key")


async def test_accounts_see_only_their_own_avatars(
    anonymous: httpx.AsyncClient, paid_key: str, free_key: str
) -> None:
    avatar_id = await upload_as(anonymous, paid_key)  # user_exclusive by default
    other = await anonymous.get(f"/v1/avatars/{avatar_id}", headers={"X-API-Key": free_key})
    assert_envelope(other, 404, "avatar.not_found")
    listed = await anonymous.get("/v1/avatars", headers={"X-API-Key": free_key})
    assert listed.json()["data"] == []
    image = await anonymous.get(f"/v1/avatars/{avatar_id}/image", headers={"X-API-Key": free_key})
    assert_envelope(image, 404, "avatar.not_found")
    deleted = await anonymous.delete(f"/v1/avatars/{avatar_id}", headers={"X-API-Key": free_key})
    assert_envelope(deleted, 404, "avatar.not_found")
    mine = await anonymous.get(f"/v1/avatars/{avatar_id}", headers={"X-API-Key": paid_key})
    assert mine.status_code == 200


async def test_a_shared_avatar_is_readable_by_id_but_stays_its_owners(
    anonymous: httpx.AsyncClient, paid_key: str, free_key: str
) -> None:
    """`user_exclusive: false`: another account may read it by its id (service/avatars.py
    `_visible`), but it is not in their list and not theirs to delete."""
    avatar_id = await upload_as(anonymous, paid_key, user_exclusive="false")
    other = await anonymous.get(f"/v1/avatars/{avatar_id}", headers={"X-API-Key": free_key})
    assert other.status_code == 200
    assert (other.json()["id"], other.json()["user_exclusive"]) == (avatar_id, False)
    listed = await anonymous.get("/v1/avatars", headers={"X-API-Key": free_key})
    assert listed.json()["data"] == []
    deleted = await anonymous.delete(f"/v1/avatars/{avatar_id}", headers={"X-API-Key": free_key})
    assert_envelope(deleted, 404, "avatar.not_found")
    mine = await anonymous.get("/v1/avatars", headers={"X-API-Key": paid_key})
    assert [a["id"] for a in mine.json()["data"]] == [avatar_id]


async def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(
    anonymous: httpx.AsyncClient,
) -> None:
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(100):
            pulled += 65536
            yield b"\0" * 65536

    response = await anonymous.post(
        "/v1/avatars/upload-face",
        content=body(),
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert_envelope(response, 401, "auth.missing_key")
    assert pulled == 0

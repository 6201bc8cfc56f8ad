"""Authentication: X-API-Key or Authorization: Bearer; 401 envelopes otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.api.fakes import FREE_KEY, PAID_KEY, FakeServices
from tests.api.test_errors import assert_envelope

pytestmark = pytest.mark.anyio


async def test_no_key_is_401_missing(anonymous: httpx.AsyncClient, services: FakeServices) -> None:
    response = await anonymous.get("/v1/avatars")
    error = assert_envelope(response, 401, "auth.missing_key")
    assert "X-API-Key" in str(error["message"]) and "Bearer" in str(error["message"])
    assert services.keys.seen == []


async def test_unknown_key_is_401_invalid(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/v1/avatars", headers={"X-API-Key": "ak_live_nope"})
    assert_envelope(response, 401, "auth.invalid_key")


async def test_x_api_key_authenticates(
    anonymous: httpx.AsyncClient, services: FakeServices
) -> None:
    response = await anonymous.get("/v1/avatars", headers={"X-API-Key": FREE_KEY})
    assert response.status_code == 200
    assert services.keys.seen == [FREE_KEY]


async def test_bearer_authenticates(anonymous: httpx.AsyncClient, services: FakeServices) -> None:
    response = await anonymous.get("/v1/avatars", headers={"Authorization": f"Bearer {PAID_KEY}"})
    assert response.status_code == 200
    assert services.keys.seen == [PAID_KEY]


async def test_unknown_bearer_is_401(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/v1/avatars", headers={"Authorization": "Bearer ak_live_x"})
    assert_envelope(response, 401, "auth.invalid_key")


async def test_other_schemes_are_not_a_key(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/v1/avatars", headers={"Authorization": f"Basic {PAID_KEY}"})
    assert_envelope(response, 401, "auth.missing_key")


async def test_accounts_see_only_their_own_avatars(
    anonymous: httpx.AsyncClient,
) -> None:
    made = await anonymous.post(
        "/v1/avatars/upload-face",
        files={"file": ("a.jpg", b"\xff\xd8\xff bytes")},
        headers={"X-API-Key": PAID_KEY},
    )
    assert made.status_code == 202
    avatar_id = made.json()["id"]
    other = await anonymous.get(f"/v1/avatars/{avatar_id}", headers={"X-API-Key": FREE_KEY})
    assert_envelope(other, 404, "avatar.not_found")
    listed = await anonymous.get("/v1/avatars", headers={"X-API-Key": FREE_KEY})
    assert listed.json()["data"] == []


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

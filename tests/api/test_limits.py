"""Per-key rate limits and backpressure through the app, over the real service on
its embedded defaults (in-process limiter, SQLite registry, storage folder), with
two accounts on different plans. The same rules across two API processes on
Redis and PostgreSQL are in tests/integration/test_limits.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pipeline.errors import AvatarPrepError
from sample_images import SAMPLES
from service.registry import AvatarRow
from tests.api.conftest import open_client
from tests.api.embedded import Embedded, embedded_app, embedded_settings
from tests.api.test_errors import assert_envelope

pytestmark = pytest.mark.anyio

UPLOAD = "/v1/avatars/upload-face"


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Embedded]:
    settings = embedded_settings(
        tmp_path,
        rate_limit_requests_free=3,
        rate_limit_requests_paid=6,
        rate_limit_window_seconds=60,
        max_queue_depth=2,
    )
    with embedded_app(settings) as embedded:
        yield embedded


def avatar_rows(embedded: Embedded) -> int:
    with embedded.services.registry.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(AvatarRow)) or 0)


def stored_files(embedded: Embedded) -> list[Path]:
    return sorted(p for p in embedded.services.settings.storage_dir.rglob("*") if p.is_file())


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


async def test_each_plan_gets_its_own_limit_then_429_with_retry_after(limited: Embedded) -> None:
    async with open_client(limited.app) as c:
        free = [
            (await c.get("/v1/avatars", headers={"X-API-Key": limited.free_key})).status_code
            for _ in range(4)
        ]
        paid = [
            (
                await c.get("/v1/avatars", headers={"Authorization": f"Bearer {limited.paid_key}"})
            ).status_code
            for _ in range(7)
        ]
        refused = await c.get("/v1/avatars", headers={"X-API-Key": limited.free_key})
    assert free == [200, 200, 200, 429]
    assert paid == [200] * 6 + [429]
    error = assert_envelope(refused, 429, "rate_limited")
    assert error["type"] == "rate_limited"
    assert "3 per 60 s" in str(error["message"])
    # One request every 60 / 3 = 20 s refills the free bucket.
    assert 0 < int(refused.headers["retry-after"]) <= 20


async def test_every_keyed_response_says_what_remains_of_the_limit(limited: Embedded) -> None:
    async with open_client(limited.app, headers={"X-API-Key": limited.free_key}) as c:
        responses = [await c.get("/v1/avatars") for _ in range(4)]
        missing = await c.get("/v1/avatars/avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX")
        unkeyed = await c.get("/healthz")
    quotas = [
        (r.status_code, r.headers["ratelimit-limit"], r.headers["ratelimit-remaining"])
        for r in responses
    ]
    assert quotas == [(200, "3", "2"), (200, "3", "1"), (200, "3", "0"), (429, "3", "0")]
    # Reset: seconds until the bucket is full again (20 s a slot); on the 429, the wait.
    resets = [int(r.headers["ratelimit-reset"]) for r in responses[:3]]
    assert all(full - 2 <= reset <= full for reset, full in zip(resets, (20, 40, 60), strict=True))
    assert responses[3].headers["ratelimit-reset"] == responses[3].headers["retry-after"]
    assert missing.status_code == 429 and "ratelimit-limit" in missing.headers
    assert "ratelimit-limit" not in unkeyed.headers


async def test_a_limited_upload_is_refused_before_its_body_is_read(limited: Embedded) -> None:
    headers = {"X-API-Key": limited.free_key}
    async with open_client(limited.app, headers=headers) as c:
        for _ in range(3):
            assert (await c.get("/v1/avatars")).status_code == 200
        response = await c.post(UPLOAD, files={"file": ("a.jpg", sample("accept_portrait.jpg"))})
    assert_envelope(response, 429, "rate_limited")
    assert avatar_rows(limited) == 0 and limited.sent.ids == []


async def test_operations_routes_and_bad_keys_are_not_counted(limited: Embedded) -> None:
    async with open_client(limited.app) as c:
        for _ in range(10):
            assert (await c.get("/healthz")).status_code == 200
            bad = await c.get("/v1/avatars", headers={"X-API-Key": "ak_live_" + "n" * 43})
            assert bad.status_code == 401
        ok = [
            (await c.get("/v1/avatars", headers={"X-API-Key": limited.free_key})).status_code
            for _ in range(3)
        ]
    assert ok == [200, 200, 200]


async def test_a_full_queue_refuses_new_uploads_with_503_and_stores_nothing(
    limited: Embedded,
) -> None:
    headers = {"X-API-Key": limited.paid_key}
    async with open_client(limited.app, headers=headers) as c:
        first = await c.post(UPLOAD, files={"file": ("a.jpg", sample("accept_portrait.jpg"))})
        second = await c.post(UPLOAD, files={"file": ("b.png", sample("accept_astronaut.png"))})
        assert (first.status_code, second.status_code) == (202, 202)
        stored = stored_files(limited)
        full = await c.post(UPLOAD, files={"file": ("c.jpg", sample("progressive.jpg"))})
        error = assert_envelope(full, 503, "at_capacity")
        assert int(full.headers["retry-after"]) > 0
        assert error["type"] == "at_capacity"
        # No object and no row for the refused upload, and nothing sent to the workers.
        assert stored_files(limited) == stored
        assert avatar_rows(limited) == 2 and len(limited.sent.ids) == 2
        # The same bytes as an accepted upload are still answered: nothing new is queued.
        again = await c.post(UPLOAD, files={"file": ("a.jpg", sample("accept_portrait.jpg"))})
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        # Once the workers finish one, uploads are accepted again.
        limited.services.avatars.fail(
            first.json()["id"], AvatarPrepError("No face found.", code="face.none")
        )
        after = await c.post(UPLOAD, files={"file": ("c.jpg", sample("progressive.jpg"))})
    assert after.status_code == 202, after.text


async def test_the_429_and_503_are_documented_on_every_authenticated_route(
    limited: Embedded,
) -> None:
    async with open_client(limited.app) as c:
        doc = (await c.get("/openapi.json")).json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if not op.get("security"):
                continue
            assert "429" in op["responses"], (method, path)
            examples = op["responses"]["429"]["content"]["application/json"]["examples"]
            assert "rate_limited" in examples
            assert "Retry-After" in op["responses"]["429"]["headers"]

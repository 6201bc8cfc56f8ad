"""The Idempotency-Key middleware in-process, on the embedded defaults: what the
document declares, which answers are kept and which release the key. Concurrent
requests against the real API are in tests/integration/test_idempotency_http.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import open_client
from tests.api.embedded import Embedded, embedded_app, embedded_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    settings = embedded_settings(
        tmp_path, allow_loopback_urls=True, rate_limit_requests_paid=2, max_queue_depth=1
    )
    with embedded_app(settings) as e:
        yield e


async def test_every_post_declares_the_key_its_codes_and_the_replay_header(
    embedded: Embedded,
) -> None:
    async with open_client(embedded.app) as client:
        doc = (await client.get("/openapi.json")).json()
    posts = {p: item["post"] for p, item in doc["paths"].items() if "post" in item}
    assert set(posts) == {
        "/v1/avatars/upload-face",
        "/v1/avatars/validate",
        "/v1/sessions",
        "/v1/sessions/{session_id}/stop",
        "/v1/webhook_endpoints",
    }
    for path, op in posts.items():
        assert "Idempotency-Key" in [p["name"] for p in op["parameters"]], path
        examples = {
            code
            for response in op["responses"].values()
            for code in response.get("content", {}).get("application/json", {}).get("examples", {})
        }
        assert {
            "idempotency.key_invalid",
            "idempotency.key_reused",
            "idempotency.in_progress",
        } <= examples, path
        success = [r for s, r in op["responses"].items() if s.startswith("2")]
        assert all("Idempotent-Replayed" in r["headers"] for r in success), path


async def test_refusals_of_ours_release_the_key_and_answers_below_500_are_kept(
    embedded: Embedded,
) -> None:
    headers = {"X-API-Key": embedded.paid_key}
    async with open_client(embedded.app) as client:
        # A 422 is an answer: kept and replayed.
        bad = {"url": "http://127.0.0.1:9/x", "events": ["avatar.nope"]}
        with_key = headers | {"Idempotency-Key": "a"}
        first = await client.post("/v1/webhook_endpoints", json=bad, headers=with_key)
        again = await client.post("/v1/webhook_endpoints", json=bad, headers=with_key)
        assert first.status_code == again.status_code == 422
        assert again.headers["idempotent-replayed"] == "true"
        # A replay does not reach the route, so it did not count against the rate limit
        # (2 per window); this GET is the second request counted.
        assert (await client.get("/v1/webhook_endpoints", headers=headers)).status_code == 200
        # The rate limit answers 429 without doing anything: the key is released, so the
        # same request with it later is not a replay of the 429.
        limited = await client.post(
            "/v1/webhook_endpoints",
            json={"url": "http://127.0.0.1:9/y"},
            headers=headers | {"Idempotency-Key": "b"},
        )
        assert limited.status_code == 429
        assert "idempotent-replayed" not in limited.headers
        assert (
            embedded.services.idempotency.claim(
                embedded.services.keys.authenticate(embedded.paid_key).id, "b", "anything"
            ).value
            == "run"
        )

"""Idempotency-Key through real HTTP, the API and a Celery worker as processes on
PostgreSQL, Redis and SeaweedFS: concurrent identical requests run once and all
get the first answer; a key reused with another body is refused; keys are per
account; a repeat that outwaits the first is told it is still in progress.

The first request is held on purpose where a test needs it still running: a
session started from an image URL waits inline for the worker, whose download
of the image answers only once the test releases it.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from harness.local_stack import start_api
from service.keys import KeyService
from service.registry import Registry, SessionRow, WebhookEndpointRow
from tests.integration.harness import ImageServer, Stack, sample

# How long a repeat waits for the first run: long enough here for any first run on
# a loaded machine; the test of a repeat that outwaits it has an API of its own
# with a short wait.
WAIT_SECONDS = 60.0
SHORT_WAIT_SECONDS = 3.0
ROOM = {"platform": "livekit", "url": "wss://demo.livekit.cloud"}
REPEATS = 8


pytestmark = [
    pytest.mark.integration,
    pytest.mark.stack(
        allow_loopback_urls=True,
        idempotency_wait_seconds=WAIT_SECONDS,
        session_inline_wait_seconds=60.0,
        fetch_total_timeout_seconds=60.0,
    ),
]


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def count(stack: Stack, table: Any, account_key: str) -> int:
    """Rows of `table` belonging to the account of `account_key`."""
    registry = Registry(stack.settings)
    try:
        with registry.transaction() as session:
            account_id = KeyService(registry).authenticate(account_key).id
            return int(
                session.scalar(
                    select(func.count()).select_from(table).where(table.account_id == account_id)
                )
                or 0
            )
    finally:
        registry.close()


def same_answers(responses: list[httpx.Response]) -> httpx.Response:
    """The first run's answer, once every response is that answer: one run, the rest
    replays, each with its own request id."""
    firsts = [r for r in responses if "idempotent-replayed" not in r.headers]
    assert len(firsts) == 1, [r.headers for r in responses]
    first = firsts[0]
    for r in responses:
        assert (r.status_code, r.content) == (first.status_code, first.content)
        assert r.headers.get("location") == first.headers.get("location")
    replays = [r for r in responses if r is not first]
    assert all(r.headers["idempotent-replayed"] == "true" for r in replays)
    assert len({r.headers["x-request-id"] for r in responses}) == len(responses)
    return first


def test_concurrent_identical_sessions_run_once_and_all_get_its_answer(stack: Stack) -> None:
    paid_key = stack.cli_key("idem-sessions")
    headers = key()
    with stack.client(paid_key) as client, ImageServer() as images:
        body = {"avatar_id": f"{images.base_url}/held/accept_portrait.jpg", "room": ROOM}

        def start(_: int) -> httpx.Response:
            return client.post("/v1/sessions", json=body, headers=headers)

        with ThreadPoolExecutor(REPEATS) as pool:
            futures = [pool.submit(start, i) for i in range(REPEATS)]
            # The first is running (the worker is downloading its image) while the
            # others arrive and wait for it.
            assert images.requested.wait(60)
            images.release()
            responses = [f.result() for f in futures]
        first = same_answers(responses)
        assert first.status_code == 201, first.text
        assert first.json()["session_token"].startswith("stok_")
        assert count(stack, SessionRow, paid_key) == 1
        assert len(client.get("/v1/avatars").json()["data"]) == 1

        # Sent again later: the same answer, still without a second session.
        again = client.post("/v1/sessions", json=body, headers=headers)
        assert again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content
        # The same key with another body is refused, and runs nothing.
        other = client.post("/v1/sessions", json={**body, "aspect_ratio": "1:1"}, headers=headers)
        assert other.status_code == 409
        assert other.json()["error"]["code"] == "idempotency.key_reused"
        assert count(stack, SessionRow, paid_key) == 1

        # Stop is a POST too: its repeats get its first answer.
        session_id = first.json()["id"]
        stop_key = key()
        stops = [client.post(f"/v1/sessions/{session_id}/stop", headers=stop_key)]
        stops.append(client.post(f"/v1/sessions/{session_id}/stop", headers=stop_key))
        assert same_answers(stops).json()["status"] == "ended"


def test_keys_belong_to_an_account(stack: Stack) -> None:
    shared = key()
    with stack.client(stack.cli_key("idem-a")) as a, stack.client(stack.cli_key("idem-b")) as b:
        photo = {"file": ("portrait.jpg", sample("accept_portrait.jpg"))}
        first_a = a.post("/v1/avatars/upload-face", files=photo, headers=shared)
        first_b = b.post("/v1/avatars/upload-face", files=photo, headers=shared)
        assert first_a.status_code == first_b.status_code == 202
        assert "idempotent-replayed" not in first_b.headers
        assert first_a.json()["id"] != first_b.json()["id"]
        # A multipart form sent again (its library draws a new boundary) is the same request.
        again_a = a.post("/v1/avatars/upload-face", files=photo, headers=shared)
        assert again_a.headers["idempotent-replayed"] == "true"
        assert again_a.json() == first_a.json()  # the first answer, queued, as it was
        other = a.post(
            "/v1/avatars/upload-face",
            files={"file": ("gray.jpg", sample("gray.jpg"))},
            headers=shared,
        )
        assert other.status_code == 409
        assert other.json()["error"]["code"] == "idempotency.key_reused"


def test_a_webhook_endpoint_is_registered_once(stack: Stack) -> None:
    account_key = stack.cli_key("idem-hooks")
    headers = key()
    with stack.client(account_key) as client:
        body = {"url": "http://127.0.0.1:9/hook"}
        with ThreadPoolExecutor(4) as pool:
            responses = list(
                pool.map(
                    lambda _: client.post("/v1/webhook_endpoints", json=body, headers=headers),
                    range(4),
                )
            )
        assert same_answers(responses).status_code == 201
        assert count(stack, WebhookEndpointRow, account_key) == 1


def test_a_repeat_that_outwaits_the_first_is_told_it_is_in_progress(
    stack: Stack, module_dir: Path
) -> None:
    headers = {**key(), "X-API-Key": stack.cli_key("idem-slow")}
    short_wait = stack.settings.model_copy(update={"idempotency_wait_seconds": SHORT_WAIT_SECONDS})
    api, base_url = start_api(short_wait, module_dir / "api-short-wait.log")
    try:
        with (
            httpx.Client(base_url=base_url, headers=headers, timeout=60) as client,
            ImageServer() as images,
        ):
            body = {"avatar_id": f"{images.base_url}/held/gray.jpg", "room": ROOM}
            with ThreadPoolExecutor(1) as pool:
                first = pool.submit(client.post, "/v1/sessions", json=body)
                # The first run is held (its image is not answered) while the repeat waits.
                assert images.requested.wait(60)
                repeat = client.post("/v1/sessions", json=body)
                images.release()
                assert first.result().status_code == 201
    finally:
        api.stop()
    assert repeat.status_code == 409
    error = repeat.json()["error"]
    assert (error["code"], error["param"]) == ("idempotency.in_progress", "Idempotency-Key")
    assert int(repeat.headers["retry-after"]) >= 1


def test_a_key_that_is_no_header_token_is_refused(stack: Stack) -> None:
    with stack.client(stack.cli_key("idem-bad")) as client:
        response = client.post(
            "/v1/webhook_endpoints",
            json={"url": "http://127.0.0.1:9/hook"},
            headers={"Idempotency-Key": "k" * 256},
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "idempotency.key_invalid"
        assert client.get("/v1/webhook_endpoints").json()["data"] == []

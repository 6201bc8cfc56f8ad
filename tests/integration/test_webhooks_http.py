"""Webhooks through real HTTP: the API and a Celery worker as processes on
PostgreSQL, Redis and SeaweedFS, endpoints registered through the API and the
command line, and a real receiver (tests/webhook_receiver.py) that checks every
signature with the `standardwebhooks` package. Loopback URLs are allowed here so
the worker can reach the receiver; the refusal of private addresses is checked
on an API with production's rule.

Retries are quick here (first retry 0.5 s after a failure, doubling; the
dispatcher every 0.3 s); their spacing is checked against the schedule's lower
bounds only, never an upper one.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.local_stack import run
from service.settings import Settings
from tests.integration.harness import Stack, sample
from tests.webhook_receiver import Received, WebhookReceiver

BACKOFF_SECONDS = 0.5
MAX_ATTEMPTS = 4
FREE_SESSION_SECONDS = 2
ROOM = {"platform": "daily", "url": "https://acme.daily.co/hooks"}
# Guards against a hung test, not a timing assertion.
SETTLE_SECONDS = 30.0


pytestmark = [
    pytest.mark.integration,
    pytest.mark.stack(
        allow_loopback_urls=True,
        webhook_backoff_seconds=BACKOFF_SECONDS,
        webhook_max_attempts=MAX_ATTEMPTS,
        webhook_dispatch_interval_seconds=0.3,
        session_max_seconds_free=FREE_SESSION_SECONDS,
        rate_limit_requests_free=100_000,
    ),
]


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def register(client: httpx.Client, url: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/webhook_endpoints", json={"url": url, **fields})
    assert response.status_code == 201, response.text
    endpoint: dict[str, Any] = response.json()
    assert endpoint["secret"].startswith("whsec_")
    assert response.headers["location"] == f"/v1/webhook_endpoints/{endpoint['id']}"
    return endpoint


def upload(stack: Stack, client: httpx.Client, photo: str) -> dict[str, Any]:
    response = client.post("/v1/avatars/upload-face", files={"file": (photo, sample(photo))})
    assert response.status_code in (200, 202), response.text
    return stack.finished(client, response.json()["id"])


def settled_deliveries(client: httpx.Client, endpoint_id: str) -> list[dict[str, Any]]:
    """The endpoint's recent deliveries once none is `pending`: a receiver has an
    attempt before the worker records its outcome."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        response = client.get(f"/v1/webhook_endpoints/{endpoint_id}")
        assert response.status_code == 200, response.text
        deliveries: list[dict[str, Any]] = response.json()["recent_deliveries"]
        if all(d["status"] != "pending" for d in deliveries):
            return deliveries
        assert time.monotonic() < deadline, deliveries
        time.sleep(0.05)


def of_type(got: list[Received], type_: str) -> list[Received]:
    return [r for r in got if r.event["type"] == type_]


def test_events_reach_only_their_account_signed_and_retried_in_order(
    stack: Stack, receiver: WebhookReceiver
) -> None:
    a_key, b_key = stack.cli_key("hooks-a"), stack.cli_key("hooks-b")
    with stack.client(a_key) as a, stack.client(b_key) as b:
        endpoint_a = register(a, receiver.url("/a"), description="A's app")
        # B's endpoint comes from the command line, as an operator would add it.
        out = run(
            stack.settings, "webhooks", "add", "--account", "hooks-b", "--url", receiver.url("/b")
        )
        secret_b = re.search(r"^secret:\s*(\S+)", out, re.MULTILINE)
        assert secret_b is not None, out
        # A's first event is answered 500 twice before the receiver takes it.
        receiver.answer("/a", 500, 500)

        ready_a = upload(stack, a, "accept_portrait.jpg")
        # Alone in flight, so the two 500s are its own (deliveries run concurrently).
        receiver.wait_for("/a", lambda got: got[-1:] and got[-1].answered == 200, "a 200")
        failed_a = upload(stack, a, "reject_multiple_faces.jpg")
        ready_b = upload(stack, b, "gray.jpg")
        assert (ready_a["status"], failed_a["status"], ready_b["status"]) == (
            "ready",
            "failed",
            "ready",
        )
        session = a.post("/v1/sessions", json={"avatar_id": ready_a["id"], "room": ROOM})
        assert session.status_code == 201, session.text
        session_id = session.json()["id"]
        assert a.post(f"/v1/sessions/{session_id}/stop").status_code == 200

        got_a = receiver.wait_for(
            "/a",
            lambda got: sum(r.answered == 200 for r in got) >= 4,
            "A's four events delivered",
        )
        got_b = receiver.wait_for("/b", lambda got: len(got) >= 1, "B's avatar.ready")

        # Every delivery verifies with the endpoint's own secret, by another implementation.
        events_a = {r.event["id"]: r.verified(endpoint_a["secret"]) for r in got_a}
        events_b = {r.event["id"]: r.verified(secret_b.group(1)) for r in got_b}
        assert all(r.headers["webhook-id"] == r.event["id"] for r in got_a + got_b)

        # The first event: two 500s, then 200, in that order, each after its backoff.
        first = [r for r in got_a if r.event["id"] == got_a[0].event["id"]]
        assert [r.answered for r in first] == [500, 500, 200]
        assert first[0].event["type"] == "avatar.ready"
        assert first[1].at - first[0].at >= BACKOFF_SECONDS
        assert first[2].at - first[1].at >= 2 * BACKOFF_SECONDS

        by_type = {e["type"]: e["data"] for e in events_a.values()}
        assert by_type["avatar.ready"]["id"] == ready_a["id"]
        assert by_type["avatar.ready"]["status"] == "ready"
        assert by_type["avatar.ready"]["images"].keys() == {"1:1", "4:3", "3:4"}
        assert by_type["avatar.failed"]["id"] == failed_a["id"]
        assert by_type["avatar.failed"]["error"]["code"] == "face.multiple"
        assert by_type["session.started"]["id"] == session_id
        assert by_type["session.started"]["status"] == "started"
        assert by_type["session.ended"]["id"] == session_id
        assert by_type["session.ended"]["ended_at"] is not None
        assert "session_token" not in str(events_a)

        # A's endpoint never saw B's avatar, and B's saw only B's.
        assert all(ready_b["id"] not in r.body.decode() for r in got_a)
        assert [e["data"]["id"] for e in events_b.values()] == [ready_b["id"]]
        assert of_type(got_b, "avatar.ready")[0].event["data"]["id"] == ready_b["id"]

        # The record of the retried delivery, and B cannot read A's endpoint.
        detail = a.get(f"/v1/webhook_endpoints/{endpoint_a['id']}")
        assert detail.status_code == 200 and "secret" not in detail.json()
        settled = settled_deliveries(a, endpoint_a["id"])
        deliveries = {d["event_id"]: d for d in settled}
        retried = deliveries[first[0].event["id"]]
        assert (retried["status"], retried["attempts"], retried["last_error"]) == (
            "delivered",
            3,
            None,
        )
        assert all(d["status"] == "delivered" for d in deliveries.values())
        assert b.get(f"/v1/webhook_endpoints/{endpoint_a['id']}").status_code == 404


def test_a_receiver_that_keeps_failing_exhausts_the_delivery(
    stack: Stack, receiver: WebhookReceiver
) -> None:
    with stack.client(stack.cli_key("hooks-down")) as client:
        endpoint = register(client, receiver.url("/down"), events=["avatar.failed"])
        receiver.answer("/down", *[503] * MAX_ATTEMPTS)
        upload(stack, client, "accept_portrait.jpg")  # ready: not subscribed
        upload(stack, client, "reject_no_face.png")
        got = receiver.wait_for("/down", lambda got: len(got) >= MAX_ATTEMPTS, "every attempt")
        assert {r.event["type"] for r in got} == {"avatar.failed"}
        assert [r.answered for r in got] == [503] * MAX_ATTEMPTS
        gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(got)]
        assert all(gap >= BACKOFF_SECONDS * 2**i for i, gap in enumerate(gaps)), gaps

        delivery = settled_deliveries(client, endpoint["id"])[0]
        assert delivery["status"] == "exhausted" and delivery["attempts"] == MAX_ATTEMPTS
        assert delivery["last_error"] == "HTTP 503." and delivery["next_attempt_at"] is None


def test_an_expired_session_ends_and_says_so(stack: Stack, receiver: WebhookReceiver) -> None:
    with stack.client(stack.cli_key("hooks-free", "free")) as client:
        avatar = upload(stack, client, "progressive.jpg")
        register(client, receiver.url("/expiry"), events=["session.ended"])
        started = client.post("/v1/sessions", json={"avatar_id": avatar["id"], "room": ROOM})
        assert started.status_code == 201, started.text
        (ended,) = receiver.wait_for("/expiry", lambda got: len(got) >= 1, "session.ended")
        data = ended.event["data"]
        assert data["id"] == started.json()["id"] and data["status"] == "ended"
        assert data["ended_at"] == data["expires_at"]
        stopped = client.post(f"/v1/sessions/{data['id']}/stop")
        assert stopped.json()["ended_at"] == data["expires_at"]
    assert len(receiver.at("/expiry")) == 1  # a stop after the expiry tells nothing new


def test_endpoints_are_listed_and_removed_by_api_and_command_line(
    stack: Stack, receiver: WebhookReceiver
) -> None:
    with stack.client(stack.cli_key("hooks-manage")) as client:
        endpoint = register(client, receiver.url("/manage"))
        listed = client.get("/v1/webhook_endpoints").json()
        assert [e["id"] for e in listed["data"]] == [endpoint["id"]]
        assert "secret" not in listed["data"][0]
        out = run(stack.settings, "webhooks", "list", "--account", "hooks-manage")
        assert endpoint["id"] in out and receiver.url("/manage") in out
        assert "whsec_" not in out
        run(stack.settings, "webhooks", "remove", "--account", "hooks-manage", endpoint["id"])
        assert client.get("/v1/webhook_endpoints").json()["data"] == []
        again = register(client, receiver.url("/manage"))
        assert client.delete(f"/v1/webhook_endpoints/{again['id']}").status_code == 204
        gone = client.delete(f"/v1/webhook_endpoints/{again['id']}")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "webhook.not_found"


def test_private_addresses_are_refused_as_in_production(
    base_settings: Settings, module_dir: Path
) -> None:
    settings = base_settings.model_copy(update={"allow_loopback_urls": False})
    with (
        Stack.running(settings, module_dir / "production", worker=False) as api,
        api.client(api.new_key("hooks-ssrf")) as client,
    ):
        for url in (
            "http://127.0.0.1:8000/hook",
            "http://localhost/hook",
            "http://10.0.0.5/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:127.0.0.1]/hook",
        ):
            response = client.post("/v1/webhook_endpoints", json={"url": url})
            assert response.status_code == 400, (url, response.text)
            error = response.json()["error"]
            assert (error["code"], error["param"]) == ("webhook.url_forbidden", "url"), url
            assert "webhook URL" in error["message"]
        for url in ("ftp://example.com/hook", "example.com/hook"):
            response = client.post("/v1/webhook_endpoints", json={"url": url})
            assert response.status_code == 400
            assert response.json()["error"]["code"] == "webhook.url_invalid"
        assert client.get("/v1/webhook_endpoints").json()["data"] == []

"""Limits and operations through real HTTP on the real services: API processes
(uvicorn) and a Celery worker as subprocesses on PostgreSQL, Redis and SeaweedFS.

- Per-key rate limits held in Redis across two API processes, per plan (a free
  and a paid account), with 429 `rate_limited` and `Retry-After`.
- Key revocation by `avatar-prep keys revoke`, seen at once by every process.
- Backpressure from the real registry: over `max_queue_depth` unfinished
  avatars, uploads of either plan and inline session images get 503
  `at_capacity` on every API process, with nothing stored; accepted again once
  the worker has drained the queue.
- /metrics of one API process sums both API processes and the worker (task
  durations, verdicts by code) and reads the queue from the registry.
- /readyz checks database, broker, storage and workers; a dead broker makes it 503
  while the rate limit lets requests through.
- The processes' logs are JSON lines, one per request and per task, without
  keys, room tokens, session tokens or images.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.local_stack import Child, run, start_api, start_worker
from service.settings import Plan, Settings
from tests.integration.harness import (
    FINISH_TIMEOUT_SECONDS,
    FINISHED,
    assert_nothing_orphaned,
    avatar_statuses,
    error_of,
    sample,
)
from tests.services import SeaweedS3

pytestmark = pytest.mark.integration

UPLOAD = "/v1/avatars/upload-face"
FREE_LIMIT, PAID_LIMIT, WINDOW = 4, 8, 60
QUEUE_LIMIT = 3
ROOM_TOKEN = "room-token-SECRET-5c2e9b7a1f"
# How long a test waits for a process to write the log line of what it just did.
LOG_WAIT_SECONDS = 10.0


@dataclass
class Apis:
    """Two API processes on the same settings, and optionally a worker."""

    settings: Settings
    urls: tuple[str, str]
    log_dir: Path
    children: list[Child]

    def key(self, account: str, plan: Plan) -> tuple[str, str]:
        return new_key(self.settings, account, plan)

    def start_worker(self) -> Child:
        worker = start_worker(self.settings, self.log_dir / "worker.log", concurrency=1, beat=False)
        self.children.append(worker)
        return worker

    def logs(self) -> str:
        return "\n".join(c.log() for c in self.children)


def new_key(settings: Settings, account: str, plan: Plan) -> tuple[str, str]:
    """(key id, plain key) of a new account, made by `avatar-prep keys create`."""
    out = run(settings, "keys", "create", "--account", account, "--plan", plan)
    key_id = re.search(r"^key id:\s*(\S+)", out, re.MULTILINE)
    key = re.search(r"^api key:\s*(\S+)", out, re.MULTILINE)
    assert key_id and key, out
    return key_id.group(1), key.group(1)


def start_apis(settings: Settings, log_dir: Path) -> Apis:
    first, first_url = start_api(settings, log_dir / "api-1.log")
    try:
        second, second_url = start_api(settings, log_dir / "api-2.log")
    except Exception:
        first.stop()
        raise
    return Apis(settings, (first_url, second_url), log_dir, [first, second])


def stop(apis: Apis) -> None:
    for child in reversed(apis.children):
        child.stop()


def get(url: str, path: str, key: str | None = None) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    return httpx.get(url + path, headers=headers, timeout=30)


def upload(url: str, key: str, name: str) -> httpx.Response:
    return httpx.post(
        url + UPLOAD, headers={"X-API-Key": key}, files={"file": (name, sample(name))}, timeout=60
    )


def wait_finished(settings: Settings, ids: list[str]) -> dict[str, str]:
    """{id: status} once every avatar in `ids` is ready or failed (read from the
    registry, so the polling costs no rate-limited requests)."""
    deadline = time.monotonic() + FINISH_TIMEOUT_SECONDS
    while True:
        statuses = avatar_statuses(settings)
        mine = {i: statuses.get(i, "deleted") for i in ids}
        if all(s in FINISHED for s in mine.values()):
            return mine
        assert time.monotonic() < deadline, mine
        time.sleep(0.1)


def metric_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def json_lines(text: str) -> list[dict[str, Any]]:
    """The log's JSON lines (a worker's log also has Celery's plain-text banner)."""
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def logged(
    read: Callable[[], str], done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The JSON lines of `read()` once `done` holds for them (or after
    LOG_WAIT_SECONDS): a process writes its line for a request or a task after
    it answers, so a test waits for the line rather than racing it."""
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while True:
        lines = json_lines(read())
        if done(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def unique(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}"


# --- rate limits and keys: two API processes, low limits -----------------------


@pytest.fixture(scope="module")
def limited(base_settings: Settings, module_dir: Path) -> Iterator[Apis]:
    settings = base_settings.model_copy(
        update={
            "data_dir": module_dir / "limited",
            "rate_limit_requests_free": FREE_LIMIT,
            "rate_limit_requests_paid": PAID_LIMIT,
            "rate_limit_window_seconds": WINDOW,
        }
    )
    apis = start_apis(settings, module_dir / "limited")
    yield apis
    stop(apis)


@pytest.mark.parametrize(("plan", "limit"), [("free", FREE_LIMIT), ("paid", PAID_LIMIT)])
def test_a_keys_limit_holds_across_two_api_processes(limited: Apis, plan: Plan, limit: int) -> None:
    _, key = limited.key(unique(f"rate-{plan}"), plan)
    # Alternate between the processes: each alone would allow `limit` more.
    answers = [get(limited.urls[i % 2], "/v1/avatars", key) for i in range(limit + 2)]
    assert [a.status_code for a in answers] == [200] * limit + [429, 429]
    for refused in answers[limit:]:
        error = error_of(refused, 429, "rate_limited")
        assert error["type"] == "rate_limited"
        assert f"{limit} per {WINDOW} s" in error["message"]
        assert 0 < int(refused.headers["retry-after"]) <= WINDOW / limit + 1
    # Another account on the same plan has a bucket of its own.
    _, other = limited.key(unique(f"rate-{plan}-other"), plan)
    assert get(limited.urls[1], "/v1/avatars", other).status_code == 200


def test_a_revoked_key_is_refused_by_every_api_process(limited: Apis) -> None:
    key_id, key = limited.key(unique("revoke"), "free")
    assert [get(url, "/v1/avatars", key).status_code for url in limited.urls] == [200, 200]
    out = run(limited.settings, "keys", "revoke", key_id)
    assert key_id in out
    for url in limited.urls:
        error_of(get(url, "/v1/avatars", key), 401, "auth.invalid_key")
    # Revoking again is fine; an unknown id is an error that names it, not a traceback.
    run(limited.settings, "keys", "revoke", key_id)
    with pytest.raises(subprocess.CalledProcessError) as info:
        run(limited.settings, "keys", "revoke", "key_01JD3Z8G9YR3K2N5M6P7Q8W4TX")
    assert info.value.returncode == 1
    assert "No API key key_01JD3Z8G9YR3K2N5M6P7Q8W4TX" in info.value.stderr
    assert "Traceback" not in info.value.stderr


def test_a_dead_broker_fails_readiness_but_not_the_rate_limit(
    base_settings: Settings, module_dir: Path
) -> None:
    # Port 9 (discard) is closed on test machines: Redis there refuses at once.
    settings = base_settings.model_copy(
        update={
            "data_dir": module_dir / "dead-broker",
            "broker_url": "redis://127.0.0.1:9/0",
            "rate_limit_requests_free": 1,
        }
    )
    api, url = start_api(settings, module_dir / "dead-broker" / "api.log")
    try:
        _, key = new_key(settings, unique("dead-broker"), "free")
        ready = get(url, "/readyz")
        error = error_of(ready, 503, "service.not_ready")
        assert "broker" in error["message"] and "database" not in error["message"]
        assert ready.headers["retry-after"]
        # The limiter's store is down: requests go through rather than all failing.
        assert [get(url, "/v1/avatars", key).status_code for _ in range(3)] == [200] * 3
    finally:
        api.stop()


# --- backpressure, metrics, logs: two API processes and a worker ---------------


@pytest.fixture(scope="module")
def ops(base_settings: Settings, module_dir: Path, s3: SeaweedS3) -> Iterator[Apis]:
    """Starts with no worker (the backpressure test starts it, so the queue fills
    deterministically first). Its own data_dir, so its metrics folder is its own."""
    settings = base_settings.model_copy(
        update={"data_dir": module_dir / "ops", "max_queue_depth": QUEUE_LIMIT}
    )
    apis = start_apis(settings, module_dir / "ops")
    try:
        yield apis
    finally:
        stop(apis)
    assert_nothing_orphaned(settings, s3)


@pytest.fixture(scope="module")
def ops_worker(ops: Apis) -> Child:
    """The worker of `ops`, started once the backpressure test has filled the queue
    (or on first use)."""
    return ops.start_worker()


def test_readyz_checks_database_broker_and_storage(ops: Apis) -> None:
    for url in ops.urls:
        response = get(url, "/readyz")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["checks"] == {
            "database": True,
            "storage": True,
            "broker": True,
            "workers": True,
        }
        assert body["workers"]["alive"] >= 0  # the worker starts later in this module


def test_a_full_queue_gets_503_for_every_upload_and_stores_nothing(
    ops: Apis, s3: SeaweedS3, request: pytest.FixtureRequest
) -> None:
    _, key = ops.key(unique("queue"), "paid")
    names = ["accept_portrait.jpg", "accept_astronaut.png", "progressive.jpg"]
    accepted = [upload(ops.urls[i % 2], key, name) for i, name in enumerate(names)]
    assert [a.status_code for a in accepted] == [202] * QUEUE_LIMIT, accepted[-1].text
    ids = [a.json()["id"] for a in accepted]
    stored = s3.keys("avatars/", ops.settings.s3_bucket)
    rows = avatar_statuses(ops.settings)
    _, free_key = ops.key(unique("queue-free"), "free")
    encoded = base64.b64encode(sample("bmp.bmp")).decode()
    refusals = [
        upload(ops.urls[0], key, "webp.webp"),
        upload(ops.urls[1], free_key, "webp.webp"),
        # An inline session image is an upload too.
        httpx.post(
            ops.urls[1] + "/v1/sessions",
            headers={"X-API-Key": key},
            json={
                "avatar_id": encoded,
                "room": {"platform": "daily", "url": "https://a.daily.co/r"},
            },
            timeout=30,
        ),
    ]
    for refused in refusals:
        error = error_of(refused, 503, "at_capacity")
        assert error["type"] == "at_capacity"
        assert int(refused.headers["retry-after"]) > 0
    # Refused before any work: no object, no row.
    assert s3.keys("avatars/", ops.settings.s3_bucket) == stored
    assert avatar_statuses(ops.settings) == rows
    # The worker drains the queue; uploads are accepted again.
    request.getfixturevalue("ops_worker")
    assert set(wait_finished(ops.settings, ids).values()) == {"ready"}
    again = upload(ops.urls[1], key, "webp.webp")
    assert again.status_code == 202, again.text
    wait_finished(ops.settings, [again.json()["id"]])


def test_one_scrape_sums_both_api_processes_and_the_worker(ops: Apis, ops_worker: Child) -> None:
    _, key = ops.key(unique("metrics"), "paid")
    before = metric_samples(get(ops.urls[0], "/metrics").text)
    ready = upload(ops.urls[0], key, "gray.jpg")
    rejected = upload(ops.urls[1], key, "reject_multiple_faces.jpg")
    statuses = wait_finished(ops.settings, [ready.json()["id"], rejected.json()["id"]])
    assert sorted(statuses.values()) == ["failed", "ready"]
    for _ in range(3):
        assert get(ops.urls[1], "/healthz").status_code == 200

    def growth(after: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[str, float]:
        def grew(name: str, **labels: str) -> float:
            sample_key = (name, frozenset(labels.items()))
            return after.get(sample_key, 0.0) - before.get(sample_key, 0.0)

        http = "avatar_prep_http_requests_total"
        return {
            # Requests answered by the other API process are in this one's scrape.
            "healthz": grew(http, method="GET", route="/healthz", status="200"),
            "uploads": grew(http, method="POST", route=UPLOAD, status="202"),
            # The worker's task durations and verdicts, by code.
            "ready runs": grew(
                "avatar_prep_task_duration_seconds_count", task="avatars.process", status="ready"
            ),
            "ready": grew("avatar_prep_task_verdicts_total", status="ready", code=""),
            "face.multiple": grew(
                "avatar_prep_task_verdicts_total", status="failed", code="face.multiple"
            ),
        }

    expected = {"healthz": 3, "uploads": 2, "ready runs": 1, "ready": 1, "face.multiple": 1}
    # A request is counted after its answer is sent, a task after its row is
    # committed: scrape until the last of them is in (LOG_WAIT_SECONDS at most).
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while True:
        after = metric_samples(get(ops.urls[0], "/metrics").text)
        grown = growth(after)
        if grown == expected or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert grown == expected
    # Read from the registry at scrape time.
    assert after[("avatar_prep_queue_depth", frozenset())] == 0
    assert after[("avatar_prep_queue_depth_limit", frozenset())] == QUEUE_LIMIT
    assert after[("avatar_prep_avatars_failed", frozenset({("code", "face.multiple")}))] >= 1
    assert after[("avatar_prep_registry_up", frozenset())] == 1


def test_logs_are_json_lines_with_ids_and_no_secrets(ops: Apis, ops_worker: Child) -> None:
    _, key = ops.key(unique("logs"), "paid")
    created = upload(ops.urls[0], key, "exif_rotated_6.jpg")
    avatar_id = created.json()["id"]
    assert wait_finished(ops.settings, [avatar_id]) == {avatar_id: "ready"}
    room = {"platform": "livekit", "url": "wss://demo.livekit.cloud", "token": ROOM_TOKEN}
    session = httpx.post(
        ops.urls[1] + "/v1/sessions",
        headers={"Authorization": f"Bearer {key}"},
        json={"avatar_id": avatar_id, "room": room},
        timeout=30,
    )
    assert session.status_code == 201, session.text
    session_token = session.json()["session_token"]
    ids = {created.headers["x-request-id"], session.headers["x-request-id"]}
    api_lines = logged(
        lambda: "\n".join(child.log() for child in ops.children[:2]),
        lambda lines: ids <= {line.get("request_id") for line in lines},
    )
    # Every line of an API process is JSON (uvicorn's own included).
    for child in ops.children[:2]:
        raw = [line for line in child.log().splitlines() if line.strip()]
        assert len(json_lines(child.log())) == len(raw), raw[:5]
    requests = {line["request_id"]: line for line in api_lines if line["message"] == "request"}
    upload_line = requests[created.headers["x-request-id"]]
    assert upload_line["route"] == UPLOAD and upload_line["status"] == 202
    assert upload_line["avatar_id"] == avatar_id and upload_line["account_id"].startswith("acct_")
    session_line = requests[session.headers["x-request-id"]]
    assert (session_line["route"], session_line["status"]) == ("/v1/sessions", 201)
    assert session_line["duration_ms"] > 0
    # The worker's line for the task.
    tasks = [
        line
        for line in logged(
            ops_worker.log,
            lambda lines: any(
                line["message"] == "task" and line.get("avatar_id") == avatar_id for line in lines
            ),
        )
        if line["message"] == "task" and line["avatar_id"] == avatar_id
    ]
    assert len(tasks) == 1
    assert (tasks[0]["status"], tasks[0]["code"], tasks[0]["attempt"]) == ("ready", None, 1)
    # Every line of the worker is JSON too: no Celery banner, its warnings as log
    # records, the face models' native start-up lines kept off (`--verbose` shows them).
    raw = [line for line in ops_worker.log().splitlines() if line.strip()]
    assert len(json_lines(ops_worker.log())) == len(raw), [
        line for line in raw if not line.startswith("{")
    ][:5]
    assert tasks[0]["duration_ms"] > 0
    # Nothing secret anywhere.
    everything = ops.logs()
    for name, secret in {
        "api key": key,
        "room token": ROOM_TOKEN,
        "session token": session_token,
    }.items():
        assert secret not in everything, name

"""Structured logs: one JSON line per request with its ids, route, status and
duration, and nothing secret in any log record written while requests carry API
keys, room tokens, session tokens and images. The real API process's log (uvicorn
included) is checked the same way in tests/integration/test_limits.py."""

from __future__ import annotations

import base64
import io
import json
import logging
import logging.config
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline import FaceModels
from sample_images import SAMPLES
from service.logs import (
    QUIET_LOGGERS,
    JsonFormatter,
    configure_logging,
    log_event,
    uvicorn_log_config,
)
from tests.api.conftest import open_client
from tests.api.embedded import Embedded, embedded_app, embedded_settings

pytestmark = pytest.mark.anyio

ROOM_TOKEN = "eyJroom-token-SECRET-9f3c1e7a"
WRONG_KEY = "ak_live_wrong-key-SECRET-4b1d9a6e2c7f0e8d5a3b1c9e7f6d4a2b0c8e"


@pytest.fixture
def embedded(tmp_path: Path, models: FaceModels) -> Iterator[Embedded]:
    settings = embedded_settings(tmp_path, session_inline_wait_seconds=0.2)
    with embedded_app(settings, models) as e:
        yield e


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo what a test's logging set-up does to the root and library loggers."""
    root = logging.getLogger()
    names = [*QUIET_LOGGERS, "uvicorn", "uvicorn.error", "uvicorn.access"]
    saved = (list(root.handlers), root.level, {n: logging.getLogger(n).level for n in names})
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def json_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """Every record the app wrote, through the formatter the processes use. The
    test's own httpx client logs the URLs it calls; those records are the client's."""
    formatter = JsonFormatter()
    return [
        json.loads(formatter.format(r))
        for r in caplog.records
        if not r.name.startswith(("httpx", "httpcore"))
    ]


def request_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [line for line in json_lines(caplog) if line["logger"] == "api.requests"]


def test_a_record_is_one_json_line_with_its_fields_and_traceback() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        log_event(logger, "task", avatar_id="avat_X", duration_ms=12.5, code=None)
        try:
            raise ValueError("line one\nline two")
        except ValueError:
            logger.exception("failed for %s", "avat_Y")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "task" and first["level"] == "info"
    assert (first["avatar_id"], first["duration_ms"], first["code"]) == ("avat_X", 12.5, None)
    assert first["ts"].endswith("Z") and first["logger"] == "tests.logs"
    assert second["message"] == "failed for avat_Y" and second["level"] == "error"
    assert "ValueError: line one\nline two" in second["exc"]


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_sends_every_logger_through_the_formatter() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    logging.getLogger("celery.worker").info("celery@host ready.")
    logging.getLogger("httpx").info("HTTP Request: GET https://x.test/?X-Amz-Signature=s")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["celery@host ready."]


async def test_one_line_per_request_with_its_ids_route_status_and_duration(
    embedded: Embedded, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    account = embedded.services.keys.authenticate(embedded.paid_key)
    async with open_client(embedded.app, headers={"X-API-Key": embedded.paid_key}) as c:
        upload = await c.post(
            "/v1/avatars/upload-face",
            files={"file": ("p.jpg", (SAMPLES / "accept_portrait.jpg").read_bytes())},
        )
        avatar_id = upload.json()["id"]
        got = await c.get(f"/v1/avatars/{avatar_id}")
        missing = await c.get("/nowhere")
    lines = request_lines(caplog)
    assert len(lines) == 3
    by_id = {line["request_id"]: line for line in lines}
    first = by_id[upload.headers["x-request-id"]]
    assert first["method"] == "POST" and first["route"] == "/v1/avatars/upload-face"
    assert (first["status"], first["account_id"], first["avatar_id"]) == (
        202,
        account.id,
        avatar_id,
    )
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] > 0
    second = by_id[got.headers["x-request-id"]]
    assert (second["route"], second["avatar_id"], second["status"]) == (
        "/v1/avatars/{avatar_id}",
        avatar_id,
        200,
    )
    third = by_id[missing.headers["x-request-id"]]
    assert (third["route"], third["path"], third["status"], third["account_id"]) == (
        "unmatched",
        "/nowhere",
        404,
        None,
    )
    # An error's line names its code, so logs tell why requests fail.
    assert third["code"] == missing.json()["error"]["code"] == "request.route_not_found"
    assert first.get("code") is None and second.get("code") is None


async def test_no_key_token_or_image_reaches_any_log(
    embedded: Embedded, caplog: pytest.LogCaptureFixture
) -> None:
    """Requests carrying every kind of secret, at DEBUG on every logger."""
    caplog.set_level(logging.DEBUG)
    portrait = (SAMPLES / "accept_portrait.jpg").read_bytes()
    other = base64.b64encode((SAMPLES / "progressive.jpg").read_bytes()).decode()
    webp = base64.b64encode((SAMPLES / "webp.webp").read_bytes()).decode()
    paid = {"X-API-Key": embedded.paid_key}
    async with open_client(embedded.app) as c:
        upload = await c.post(
            "/v1/avatars/upload-face", headers=paid, files={"file": ("p.jpg", portrait)}
        )
        avatar_id = upload.json()["id"]
        embedded.services.avatars.process(avatar_id)
        room = {"platform": "livekit", "url": "wss://demo.livekit.cloud", "token": ROOM_TOKEN}
        session = await c.post(
            "/v1/sessions",
            headers={"Authorization": f"Bearer {embedded.paid_key}"},
            json={"avatar_id": avatar_id, "room": room},
        )
        assert session.status_code == 201, session.text
        session_token = session.json()["session_token"]
        await c.get(f"/v1/sessions/{session.json()['id']}", headers=paid)
        await c.post("/v1/avatars/upload-face", headers=paid, json={"image": other, "name": "b64"})
        await c.post(
            "/v1/avatars/upload-face",
            headers=paid,
            json={"image": f"data:image/webp;base64,{webp}"},
        )
        await c.post(
            "/v1/sessions",
            headers={"X-API-Key": embedded.free_key},
            json={"avatar_id": other, "room": room},
        )
        await c.post(
            "/v1/sessions", headers=paid, json={"avatar_id": other, "room": {**room, "x": 1}}
        )
        await c.get("/v1/avatars?api_key=" + embedded.paid_key, headers={"X-API-Key": WRONG_KEY})
        await c.get("/v1/avatars", headers={"Authorization": f"Bearer {WRONG_KEY}"})
    text = "\n".join(json.dumps(line) for line in json_lines(caplog))
    assert len(request_lines(caplog)) == 9
    secrets = {
        "paid key": embedded.paid_key,
        "free key": embedded.free_key,
        "wrong key": WRONG_KEY,
        "room token": ROOM_TOKEN,
        "session token": session_token,
        "base64 image": other[1000:1064],
        "data URI image": webp[1000:1064],
        "file bytes as base64": base64.b64encode(portrait[3000:3048]).decode(),
    }
    leaked = [name for name, secret in secrets.items() if secret in text]
    assert not leaked, leaked
    assert portrait[3000:3048].decode("latin-1") not in text


@pytest.mark.usefixtures("restore_logging")
def test_the_uvicorn_config_writes_json_lines_and_keeps_access_logs_off() -> None:
    logging.config.dictConfig(uvicorn_log_config("INFO"))
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    logging.getLogger("uvicorn.error").info("Started server process [1]")
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /v1/avatars?x=1" 200')
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["Started server process [1]"]

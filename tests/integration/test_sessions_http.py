"""Sessions through real HTTP: the API and a Celery worker as processes, on
PostgreSQL, Redis and SeaweedFS, with two accounts made by `avatar-prep keys
create`, one on each plan. Every rule of POST /v1/sessions, GET and stop, each
status and code; the avatar image of a session is a presigned S3 URL that
works on its own. Loopback URLs are allowed so the API can fetch inline
images from the local test server.

The inline latencies (image sent instead of an id, to 201) are printed (run
with -s); `avatar-prep bench-api` measures them under load.
"""

from __future__ import annotations

import base64
import statistics
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.registry import Registry, SessionRow
from tests.documented import RENDITION_SIZES
from tests.integration.harness import (
    ImageServer,
    Stack,
    assert_nothing_orphaned,
    assert_public_jpeg,
    error_of,
    sample,
)
from tests.services import SeaweedS3

FREE_SECONDS, PAID_SECONDS = 300, 2700
# Paid in full by the test whose worker is frozen; every other inline session
# must be ready within it, with room for a loaded machine.
INLINE_WAIT_SECONDS = 10.0
ROOM = {
    "platform": "daily",
    "url": "https://acme.daily.co/support",
    "token": "daily-meeting-token-zq81",
    "room_name": "support",
}


pytestmark = [
    pytest.mark.integration,
    pytest.mark.stack(
        concurrency=2,
        allow_loopback_urls=True,
        session_max_seconds_free=FREE_SECONDS,
        session_max_seconds_paid=PAID_SECONDS,
        session_inline_wait_seconds=INLINE_WAIT_SECONDS,
        # Polling for results costs requests; limits are tests/integration/test_limits'.
        rate_limit_requests_free=100_000,
    ),
]


@pytest.fixture(scope="module")
def paid(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(stack.cli_key("sessions-paid", "paid")) as c:
        yield c


@pytest.fixture(scope="module")
def free(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(stack.cli_key("sessions-free", "free")) as c:
        yield c


@pytest.fixture(scope="module", autouse=True)
def nothing_orphaned_nor_leaked(stack: Stack, s3: SeaweedS3) -> Iterator[None]:
    yield
    assert_nothing_orphaned(stack.settings, s3)
    # The room token was sent in many requests; no process wrote it anywhere.
    assert ROOM["token"] not in stack.logs()


def start(client: httpx.Client, avatar_id: str, **fields: Any) -> httpx.Response:
    return client.post("/v1/sessions", json={"avatar_id": avatar_id, "room": ROOM, **fields})


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    session: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/v1/sessions/{session['id']}"
    assert session["status"] == "started" and session["session_token"].startswith("stok_")
    assert ROOM["token"] not in response.text
    return session


def ready(stack: Stack, client: httpx.Client, photo: str, **form: str) -> str:
    """An avatar of `photo` uploaded by `client`, polled until ready; its id."""
    response = client.post(
        "/v1/avatars/upload-face", files={"file": (photo, sample(photo))}, data=form
    )
    assert response.status_code in (200, 202), response.text
    avatar = stack.finished(client, response.json()["id"])
    assert avatar["status"] == "ready", avatar["error"]
    return str(avatar["id"])


def avatar_ids(client: httpx.Client) -> list[str]:
    listed = client.get("/v1/avatars", params={"limit": 100})
    assert listed.status_code == 200
    return [a["id"] for a in listed.json()["data"]]


def seconds_between(start: str, end: str) -> float:
    def parse(moment: str) -> datetime:
        return datetime.fromisoformat(moment.replace("Z", "+00:00"))

    return (parse(end) - parse(start)).total_seconds()


def test_by_id_a_session_starts_with_a_presigned_image_that_works_alone(
    stack: Stack, paid: httpx.Client
) -> None:
    avatar_id = ready(stack, paid, "accept_portrait.jpg")
    for ratio, size in RENDITION_SIZES.items():
        session = created(start(paid, avatar_id, aspect_ratio=ratio, metadata={"ticket": 7}))
        assert session["avatar_id"] == avatar_id and session["aspect_ratio"] == ratio
        assert session["room"] == {k: v for k, v in ROOM.items() if k != "token"}
        assert session["metadata"] == {"ticket": 7}
        assert seconds_between(session["started_at"], session["expires_at"]) == PAID_SECONDS
        image = session["avatar_image"]
        assert (image["width"], image["height"], image["aspect_ratio"]) == (*size, ratio)
        assert_public_jpeg(stack, image["url"], size)


def test_the_default_framing_is_4_3_and_the_record_is_in_postgresql(
    stack: Stack, paid: httpx.Client
) -> None:
    session = created(start(paid, ready(stack, paid, "gray.jpg")))
    assert session["aspect_ratio"] == session["avatar_image"]["aspect_ratio"] == "4:3"
    registry = Registry(stack.settings)
    try:
        with registry.transaction() as db:
            row = db.scalars(select(SessionRow).where(SessionRow.id == session["id"])).one()
    finally:
        registry.close()
    assert row.room_token == ROOM["token"]  # kept, write-only
    assert session["session_token"] not in (row.token_hash, row.room_token)
    assert len(row.token_hash) == 64


def test_the_free_plan_starts_by_id_with_its_own_length_and_may_not_send_images(
    stack: Stack, free: httpx.Client, images: ImageServer
) -> None:
    avatar_id = ready(stack, free, "progressive.jpg")
    session = created(start(free, avatar_id))
    assert seconds_between(session["started_at"], session["expires_at"]) == FREE_SECONDS
    before = avatar_ids(free)
    for image in (
        f"{images.base_url}/accept_astronaut.png",
        base64.b64encode(sample("webp.webp")).decode(),
        "data:image/webp;base64," + base64.b64encode(sample("webp.webp")).decode(),
    ):
        error = error_of(start(free, image), 403, "plan.image_input_not_allowed")
        assert error["type"] == "permission_error"
    assert avatar_ids(free) == before  # refused before any work


def test_exclusive_avatars_are_their_accounts_shared_ones_everyones(
    stack: Stack, paid: httpx.Client, free: httpx.Client
) -> None:
    exclusive = ready(stack, paid, "cmyk.jpg")
    shared = ready(stack, paid, "tiff.tiff", user_exclusive="false")
    error_of(start(free, exclusive), 404, "avatar.not_found")
    error_of(start(free, "avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX"), 404, "avatar.not_found")
    session = created(start(free, shared, aspect_ratio="1:1"))
    fetched = httpx.get(session["avatar_image"]["url"], timeout=10)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/jpeg"


def test_an_avatar_still_processing_is_409_not_ready_then_usable_once_ready(
    stack: Stack, paid: httpx.Client
) -> None:
    with stack.worker_frozen():  # the avatar stays unfinished until the block ends
        accepted = paid.post(
            "/v1/avatars/upload-face", files={"file": ("p3.jpg", sample("display_p3.jpg"))}
        )
        assert accepted.status_code == 202, accepted.text
        avatar_id = accepted.json()["id"]
        error = error_of(start(paid, avatar_id), 409, "avatar.not_ready")
        assert error["type"] == "conflict"
    assert stack.finished(paid, avatar_id)["status"] == "ready"
    created(start(paid, avatar_id))


def test_a_failed_avatar_is_409_failed(stack: Stack, paid: httpx.Client) -> None:
    response = paid.post(
        "/v1/avatars/upload-face", files={"file": ("two.jpg", sample("reject_multiple_faces.jpg"))}
    )
    failed = stack.finished(paid, response.json()["id"])
    assert failed["status"] == "failed"
    error = error_of(start(paid, failed["id"]), 409, "avatar.failed")
    assert "face.multiple" in error["message"]


def test_inline_images_become_avatars_through_the_worker(
    stack: Stack, paid: httpx.Client, images: ImageServer
) -> None:
    latencies: dict[str, list[float]] = {"url": [], "base64": []}
    for photo in ("accept_astronaut.png", "exif_rotated_8.png", "palette.png"):
        began = time.perf_counter()
        by_url = created(start(paid, f"{images.base_url}/{photo}", aspect_ratio="3:4"))
        latencies["url"].append(time.perf_counter() - began)
        avatar = paid.get(f"/v1/avatars/{by_url['avatar_id']}").json()
        assert avatar["status"] == "ready" and avatar["source"]["kind"] == "url"
        assert (by_url["avatar_image"]["width"], by_url["avatar_image"]["height"]) == (480, 640)
    for photo in ("bmp.bmp", "gif.gif", "alpha.png"):
        encoded = base64.b64encode(sample(photo)).decode()
        began = time.perf_counter()
        inline = created(start(paid, encoded))
        latencies["base64"].append(time.perf_counter() - began)
        avatar = paid.get(f"/v1/avatars/{inline['avatar_id']}").json()
        assert avatar["status"] == "ready" and avatar["source"]["kind"] == "base64"
        # The same bytes again are the same avatar (the upload dedupe), already ready.
        assert created(start(paid, encoded))["avatar_id"] == inline["avatar_id"]
    for kind, seconds in latencies.items():
        print(
            f"\ninline session by {kind}: median {statistics.median(seconds) * 1000:.0f} ms, "
            f"max {max(seconds) * 1000:.0f} ms over {len(seconds)} small photos"
        )


def test_an_inline_rejection_is_the_422_face_error_with_its_avatar(
    stack: Stack, paid: httpx.Client, images: ImageServer
) -> None:
    by_url = error_of(start(paid, f"{images.base_url}/reject_no_face.png"), 422, "face.none")
    assert by_url["checks"] and by_url["param"] == "avatar_id"
    assert stack.finished(paid, by_url["avatar_id"])["error"]["code"] == "face.none"
    encoded = base64.b64encode(sample("reject_cut_off.jpg")).decode()
    cut_off = error_of(start(paid, f"data:image/jpeg;base64,{encoded}"), 422, "face.cut_off")
    assert cut_off["avatar_id"].startswith("avat_")
    # The same bytes again: the same failed avatar (the upload dedupe), the same answer.
    again = error_of(start(paid, encoded), 422, "face.cut_off")
    assert again["avatar_id"] == cut_off["avatar_id"]
    # A URL is fetched before any avatar exists: a 404 is a cheap check, no avatar.
    missing = error_of(start(paid, f"{images.base_url}/nothing.jpg"), 400, "image.fetch_failed")
    assert "avatar_id" not in missing


def test_an_inline_image_not_ready_in_time_is_409_with_its_avatar(
    stack: Stack, paid: httpx.Client
) -> None:
    encoded = base64.b64encode(sample("ycck.jpg")).decode()
    with stack.worker_frozen():  # not prepared within the inline wait
        error = error_of(start(paid, encoded), 409, "avatar.not_ready")
        assert error["param"] == "avatar_id" and error["avatar_id"] in error["message"]
    finished = stack.finished(paid, error["avatar_id"])
    assert finished["status"] == "ready", finished["error"]
    created(start(paid, error["avatar_id"]))


def test_cheap_checks_of_an_inline_image_fail_at_once_without_an_avatar(
    paid: httpx.Client,
) -> None:
    before = avatar_ids(paid)
    error_of(start(paid, "http://169.254.169.254/latest"), 400, "image.url_forbidden")
    error_of(start(paid, "gopher://example.com/x"), 400, "image.url_invalid")
    error_of(start(paid, "%%%%"), 400, "image.base64_invalid")
    svg = base64.b64encode(b'<svg xmlns="http://www.w3.org/2000/svg"/>').decode()
    error_of(start(paid, svg), 415, "image.unsupported_format")
    assert avatar_ids(paid) == before


@pytest.mark.parametrize(
    ("fields", "status", "code", "param"),
    [
        ({"room": {**ROOM, "platform": "zoom"}}, 400, "room.platform_invalid", "room.platform"),
        ({"aspect_ratio": "16:9"}, 400, "session.aspect_ratio_invalid", "aspect_ratio"),
        ({"metadata": ["not", "an", "object"]}, 400, "metadata.not_object", "metadata"),
        ({"room": {"platform": "livekit"}}, 422, "request.invalid_field", "room.url"),
        ({"colour": "blue"}, 422, "request.invalid_field", "colour"),
    ],
)
def test_body_rules_have_their_codes(
    paid: httpx.Client, fields: dict[str, Any], status: int, code: str, param: str
) -> None:
    error = error_of(start(paid, "avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX", **fields), status, code)
    assert error["param"] == param


def test_get_and_stop_belong_to_the_sessions_account(
    stack: Stack, paid: httpx.Client, free: httpx.Client
) -> None:
    session = created(start(paid, ready(stack, paid, "heic.heic", user_exclusive="false")))
    url = f"/v1/sessions/{session['id']}"
    shown = paid.get(url)
    assert shown.status_code == 200
    body = shown.json()
    assert "session_token" not in body and ROOM["token"] not in shown.text
    assert {k: v for k, v in body.items() if k != "avatar_image"} == {
        k: v for k, v in session.items() if k not in ("avatar_image", "session_token")
    }
    # Each read signs a fresh URL to the same object.
    assert httpx.get(body["avatar_image"]["url"], timeout=10).status_code == 200

    error_of(free.get(url), 404, "session.not_found")
    error_of(free.post(f"{url}/stop"), 404, "session.not_found")
    error_of(paid.get("/v1/sessions/sess_01JD3Z9B2C4D5E6F7G8H9J0K1M"), 404, "session.not_found")

    stopped = paid.post(f"{url}/stop")
    assert stopped.status_code == 200
    ended = stopped.json()
    assert ended["status"] == "ended" and ended["ended_at"] is not None
    again = paid.post(f"{url}/stop").json()
    assert (again["status"], again["ended_at"]) == ("ended", ended["ended_at"])
    assert paid.get(url).json()["status"] == "ended"


def test_an_avatar_in_a_started_session_is_409_in_use_until_it_is_stopped(
    stack: Stack, paid: httpx.Client
) -> None:
    # A photo no other test of this module uses: their sessions stay started.
    avatar_id = ready(stack, paid, "webp.webp")
    session = created(start(paid, avatar_id))
    error_of(paid.delete(f"/v1/avatars/{avatar_id}"), 409, "avatar.in_use")
    # Still whole in PostgreSQL and S3: the session's presigned image still works.
    image_url = paid.get(f"/v1/sessions/{session['id']}").json()["avatar_image"]["url"]
    assert httpx.get(image_url, timeout=10).status_code == 200
    assert paid.post(f"/v1/sessions/{session['id']}/stop").status_code == 200
    assert paid.delete(f"/v1/avatars/{avatar_id}").status_code == 204
    assert avatar_id not in avatar_ids(paid)


def test_without_a_valid_key_it_is_401(stack: Stack) -> None:
    with httpx.Client(base_url=stack.base_url, timeout=10) as anonymous:
        error_of(anonymous.post("/v1/sessions", json={}), 401, "auth.missing_key")
    with stack.client("ak_live_not-a-key") as wrong:
        error_of(wrong.get("/v1/sessions/sess_x"), 401, "auth.invalid_key")

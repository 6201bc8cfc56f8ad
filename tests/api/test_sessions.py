"""The session endpoints over the real service on its embedded defaults (SQLite,
a storage folder), real photos and the real pipeline, through ASGI. The only
seam is `enqueue`: it processes each id on a thread as a worker would, or holds
ids to keep avatars queued. Two accounts: `free` and `paid`. Real HTTP, a worker
process, PostgreSQL, Redis and S3 are tests/integration/test_sessions_http.py's.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.session_schemas import CreatedSession, Session
from api.uploads import MAX_METADATA_BYTES
from pipeline import FaceModels
from sample_images import SAMPLES
from service.registry import SessionRow, upgrade
from service.runtime import Services
from service.settings import Settings
from tests.api.conftest import open_client
from tests.api.test_errors import assert_envelope
from tests.api.test_with_service import ThreadWorker
from tests.documented import RENDITION_SIZES
from tests.service.conftest import ImageServer

pytestmark = pytest.mark.anyio

ROOM = {
    "platform": "livekit",
    "url": "wss://demo.livekit.cloud",
    "token": "lk-room-token-5ecret",
    "room_name": "support-42",
}
# Stated in the settings below, unlike the defaults, so the test sees they are used.
FREE_SECONDS, PAID_SECONDS = 900, 5400


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def b64(name: str) -> str:
    return base64.b64encode(sample(name)).decode()


@pytest.fixture(scope="module")
def images() -> Iterator[ImageServer]:
    server = ImageServer({f"/{p.name}": p.read_bytes() for p in SAMPLES.iterdir() if p.is_file()})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


class HoldingWorker(ThreadWorker):
    """ThreadWorker that keeps the ids it is sent while `holding` (the avatars stay
    queued) and processes them on `release()`."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = False
        self.held: list[str] = []

    def send(self, avatar_id: str) -> None:
        if self.holding:
            self.held.append(avatar_id)
        else:
            super().send(avatar_id)

    def release(self) -> None:
        self.holding = False
        for avatar_id in self.held:
            super().send(avatar_id)
        self.held.clear()
        self.join()


@dataclass
class World:
    services: Services
    worker: HoldingWorker
    paid: httpx.AsyncClient
    free: httpx.AsyncClient
    anonymous: httpx.AsyncClient
    paid_id: str
    free_id: str

    def avatar_count(self, account_id: str) -> int:
        avatars, _ = self.services.avatars.list(
            account_id, limit=100, starting_after=None, status=None
        )
        return len(avatars)

    def session_count(self) -> int:
        with self.services.registry.transaction() as db:
            return db.query(SessionRow).count()

    async def ready_avatar(
        self, client: httpx.AsyncClient, photo: str = "accept_portrait.jpg", **fields: Any
    ) -> str:
        """An avatar of `photo` uploaded by `client` and waited for until ready."""
        response = await client.post(
            "/v1/avatars/upload-face",
            params={"wait": 30},
            files={"file": (photo, sample(photo))},
            data={k: str(v).lower() for k, v in fields.items()},
        )
        assert response.status_code in (200, 201), response.text
        avatar_id: str = response.json()["id"]
        return avatar_id


@pytest.fixture
def settings(settings: Settings, images: ImageServer) -> Settings:
    return settings.model_copy(
        update={
            "allow_loopback_urls": True,  # the local image server stands in for the web
            "session_max_seconds_free": FREE_SECONDS,
            "session_max_seconds_paid": PAID_SECONDS,
            # Paid in full by the one test whose image is held; the others finish
            # in a fraction of it, with room for a loaded machine.
            "session_inline_wait_seconds": 3.0,
        }
    )


@pytest.fixture
async def world(settings: Settings, models: FaceModels) -> AsyncIterator[World]:
    upgrade(settings)
    worker = HoldingWorker()
    services = Services.create(settings, worker, models)
    worker.services = services
    _, paid_key = services.keys.create("paid-co", "paid")
    _, free_key = services.keys.create("free-co", "free")
    paid_id = services.keys.authenticate(paid_key).id
    free_id = services.keys.authenticate(free_key).id
    app: FastAPI = create_app(settings, services)
    async with (
        open_client(app, headers={"X-API-Key": paid_key}) as paid,
        open_client(app, headers={"Authorization": f"Bearer {free_key}"}) as free,
        open_client(app) as anonymous,
    ):
        yield World(services, worker, paid, free, anonymous, paid_id, free_id)
    worker.release()
    services.close()


async def start(client: httpx.AsyncClient, avatar_id: str, **fields: Any) -> httpx.Response:
    return await client.post("/v1/sessions", json={"avatar_id": avatar_id, "room": ROOM, **fields})


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    session: dict[str, Any] = response.json()
    CreatedSession.model_validate(session)  # the documented schema
    assert response.headers["location"] == f"/v1/sessions/{session['id']}"
    assert response.headers["x-request-id"].startswith("req_")
    return session


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert_envelope(response, status, code)
    error: dict[str, Any] = response.json()["error"]
    return error


def seconds_between(start: str, end: str) -> float:
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


# --- by avatar id -------------------------------------------------------------


async def test_a_ready_avatar_by_id_starts_a_session_exactly_as_documented(world: World) -> None:
    avatar_id = await world.ready_avatar(world.paid)
    response = await start(world.paid, avatar_id, metadata={"customer": "c_42"})
    session = created(response)
    assert set(session) == {
        "object",
        "id",
        "status",
        "avatar_id",
        "avatar_image",
        "room",
        "aspect_ratio",
        "metadata",
        "session_token",
        "started_at",
        "expires_at",
        "ended_at",
    }
    assert session["object"] == "session" and session["id"].startswith("sess_")
    assert session["status"] == "started" and session["ended_at"] is None
    assert session["avatar_id"] == avatar_id
    # aspect_ratio defaults to 4:3, and the image is that framing.
    assert session["aspect_ratio"] == "4:3"
    assert session["avatar_image"] == {
        "url": f"/v1/avatars/{avatar_id}/image?aspect_ratio=4:3",
        "width": 640,
        "height": 480,
        "aspect_ratio": "4:3",
    }
    # room.token is write-only: the room comes back without it, and nowhere else.
    assert session["room"] == {k: v for k, v in ROOM.items() if k != "token"}
    assert ROOM["token"] not in response.text
    assert session["metadata"] == {"customer": "c_42"}
    assert session["session_token"].startswith("stok_")
    assert seconds_between(session["started_at"], session["expires_at"]) == PAID_SECONDS
    # The image URL works with the account's key, and is the framing asked for.
    image = await world.paid.get(session["avatar_image"]["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize("ratio", sorted(RENDITION_SIZES))
async def test_each_aspect_ratio_gives_that_rendition(world: World, ratio: str) -> None:
    avatar_id = await world.ready_avatar(world.paid)
    session = created(await start(world.paid, avatar_id, aspect_ratio=ratio))
    image = session["avatar_image"]
    assert (image["width"], image["height"]) == RENDITION_SIZES[ratio]
    assert image["aspect_ratio"] == ratio
    assert session["aspect_ratio"] == ratio


async def test_the_free_plan_starts_sessions_by_id_with_its_own_length(world: World) -> None:
    avatar_id = await world.ready_avatar(world.free)
    session = created(await start(world.free, avatar_id))
    assert seconds_between(session["started_at"], session["expires_at"]) == FREE_SECONDS


async def test_another_accounts_exclusive_avatar_is_404_a_shared_one_is_usable(
    world: World,
) -> None:
    exclusive = await world.ready_avatar(world.paid)
    shared = await world.ready_avatar(world.paid, "gray.jpg", user_exclusive=False)
    error = error_of(await start(world.free, exclusive), 404, "avatar.not_found")
    assert exclusive in error["message"]
    # Its real state is not revealed: the same answer as an id that never existed.
    unknown = error_of(
        await start(world.free, "avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX"), 404, "avatar.not_found"
    )
    assert error["type"] == unknown["type"] == "not_found"
    session = created(await start(world.free, shared))
    assert session["avatar_id"] == shared


async def test_an_avatar_shown_by_a_started_session_is_not_deleted_until_it_stops(
    world: World,
) -> None:
    mine = await world.ready_avatar(world.paid)
    shared = await world.ready_avatar(world.paid, "gray.jpg", user_exclusive=False)
    session = created(await start(world.paid, mine))
    theirs = created(await start(world.free, shared))  # another account's session
    for avatar_id in (mine, shared):
        error = error_of(await world.paid.delete(f"/v1/avatars/{avatar_id}"), 409, "avatar.in_use")
        assert avatar_id in error["message"] and "stop" in error["message"]
        # Untouched: the session's renderer still reads its images.
        image = await world.paid.get(f"/v1/avatars/{avatar_id}/image?aspect_ratio=4:3")
        assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
    assert (await world.paid.post(f"/v1/sessions/{session['id']}/stop")).status_code == 200
    assert (await world.paid.delete(f"/v1/avatars/{mine}")).status_code == 204
    error_of(await world.paid.delete(f"/v1/avatars/{shared}"), 409, "avatar.in_use")
    assert (await world.free.post(f"/v1/sessions/{theirs['id']}/stop")).status_code == 200
    assert (await world.paid.delete(f"/v1/avatars/{shared}")).status_code == 204
    # A deleted avatar starts no session.
    error_of(await start(world.paid, mine), 404, "avatar.not_found")


async def test_a_queued_avatar_is_409_not_ready_and_a_failed_one_409_failed(
    world: World,
) -> None:
    world.worker.holding = True
    response = await world.paid.post(
        "/v1/avatars/upload-face", files={"file": ("p.jpg", sample("progressive.jpg"))}
    )
    queued = response.json()["id"]
    error_of(await start(world.paid, queued), 409, "avatar.not_ready")
    world.worker.release()
    created(await start(world.paid, queued))

    failed = await world.paid.post(
        "/v1/avatars/upload-face",
        params={"wait": 30},
        files={"file": ("m.jpg", sample("reject_multiple_faces.jpg"))},
    )
    failed_id = error_of(failed, 422, "face.multiple")["avatar_id"]
    error = error_of(await start(world.paid, failed_id), 409, "avatar.failed")
    assert error["type"] == "conflict" and "face.multiple" in error["message"]


async def test_an_id_like_value_is_resolved_never_run_as_an_image(world: World) -> None:
    for value in ("avat_", "avat_nonsense", " avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX "):
        error_of(await start(world.paid, value), 404, "avatar.not_found")
    assert world.avatar_count(world.paid_id) == 0


# --- an image instead of an id (paid plan) -----------------------------------


async def test_base64_is_prepared_inline_and_backs_the_session(world: World) -> None:
    session = created(await start(world.paid, b64("exif_rotated_6.jpg"), aspect_ratio="3:4"))
    avatar = (await world.paid.get(f"/v1/avatars/{session['avatar_id']}")).json()
    assert avatar["status"] == "ready" and avatar["source"]["kind"] == "base64"
    assert avatar["user_exclusive"] is True
    assert (session["avatar_image"]["width"], session["avatar_image"]["height"]) == (480, 640)


async def test_a_data_uri_of_bytes_already_uploaded_reuses_that_avatar(world: World) -> None:
    uploaded = await world.ready_avatar(world.paid, "webp.webp")
    session = created(await start(world.paid, f"data:image/webp;base64,{b64('webp.webp')}"))
    assert session["avatar_id"] == uploaded
    assert world.avatar_count(world.paid_id) == 1


async def test_a_url_is_fetched_and_prepared_inline(world: World, images: ImageServer) -> None:
    session = created(await start(world.paid, images.url("/accept_astronaut.png")))
    avatar = (await world.paid.get(f"/v1/avatars/{session['avatar_id']}")).json()
    assert avatar["status"] == "ready" and avatar["source"]["kind"] == "url"


async def test_a_rejected_image_is_the_422_face_error_with_its_avatar(world: World) -> None:
    response = await start(world.paid, f"data:image/jpeg;base64,{b64('reject_multiple_faces.jpg')}")
    error = error_of(response, 422, "face.multiple")
    assert error["param"] == "avatar_id"
    assert any(c["name"] == "face_count" and not c["passed"] for c in error["checks"])
    avatar = (await world.paid.get(f"/v1/avatars/{error['avatar_id']}")).json()
    assert avatar["status"] == "failed" and avatar["error"]["code"] == "face.multiple"
    assert world.session_count() == 0


async def test_a_url_that_cannot_be_fetched_is_a_400_without_an_avatar(
    world: World, images: ImageServer
) -> None:
    # Fetched before any avatar exists (a cheap check), so nothing is made.
    error = error_of(await start(world.paid, images.url("/status/404")), 400, "image.fetch_failed")
    assert "avatar_id" not in error
    assert (await world.paid.get("/v1/avatars")).json()["data"] == []


async def test_an_image_still_processing_after_the_wait_is_409_with_its_avatar(
    world: World,
) -> None:
    world.worker.holding = True
    response = await start(world.paid, b64("gray.jpg"))
    error = error_of(response, 409, "avatar.not_ready")
    assert error["param"] == "avatar_id"
    # Once it is ready, the same avatar starts a session by id.
    world.worker.release()
    assert created(await start(world.paid, error["avatar_id"]))["avatar_id"] == error["avatar_id"]


@pytest.mark.parametrize(
    ("image", "status", "code"),
    [
        ("!!!not base64!!!", 400, "image.base64_invalid"),
        ("data:text/plain;base64,aGVsbG8=", 415, "image.unsupported_format"),
        ("ftp://example.com/a.jpg", 400, "image.url_invalid"),
        ("http://10.0.0.1/a.jpg", 400, "image.url_forbidden"),
        (
            base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg'/>").decode(),
            415,
            "image.unsupported_format",
        ),
        (base64.b64encode(sample("accept_portrait.jpg")[:2000]).decode(), 400, "image.unreadable"),
    ],
)
async def test_cheap_image_checks_fail_at_once_with_no_avatar(
    world: World, image: str, status: int, code: str
) -> None:
    error_of(await start(world.paid, image), status, code)
    assert world.avatar_count(world.paid_id) == 0
    assert world.session_count() == 0


@pytest.mark.parametrize(
    "image",
    [
        "https://example.com/portrait.jpg",
        "data:image/jpeg;base64,/9j/4AAQ",
        "/9j/4AAQSkZJRgABAQ==",
        "!!!not even base64!!!",
    ],
)
async def test_the_free_plan_may_not_send_an_image(world: World, image: str) -> None:
    error = error_of(await start(world.free, image), 403, "plan.image_input_not_allowed")
    assert error["type"] == "permission_error" and error["param"] == "avatar_id"
    # Checked before any work: nothing fetched, decoded or stored.
    assert world.avatar_count(world.free_id) == 0


# --- the body's own rules (400) and its schema (422) ---------------------------


@pytest.mark.parametrize("platform", ["zoom", "Daily", "", None, 7, ["daily"]])
async def test_a_platform_other_than_daily_or_livekit_is_400(world: World, platform: Any) -> None:
    response = await world.paid.post(
        "/v1/sessions",
        json={
            "avatar_id": "avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX",
            "room": {**ROOM, "platform": platform},
        },
    )
    error = error_of(response, 400, "room.platform_invalid")
    assert error["param"] == "room.platform"
    assert "daily, livekit" in error["message"]


@pytest.mark.parametrize("ratio", ["16:9", "4x3", "", None, 1.33, ["4:3"]])
async def test_an_aspect_ratio_other_than_the_three_is_400(world: World, ratio: Any) -> None:
    error = error_of(
        await start(world.paid, "avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX", aspect_ratio=ratio),
        400,
        "session.aspect_ratio_invalid",
    )
    assert error["param"] == "aspect_ratio" and "4:3" in error["message"]


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        (["a"], "metadata.not_object"),
        ("text", "metadata.not_object"),
        (3, "metadata.not_object"),
        (None, "metadata.not_object"),
        (True, "metadata.not_object"),
        ({"notes": "x" * (MAX_METADATA_BYTES + 1)}, "metadata.too_large"),
    ],
)
async def test_metadata_not_an_object_or_over_the_limit_is_400(
    world: World, metadata: Any, code: str
) -> None:
    error = error_of(
        await start(world.paid, "avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX", metadata=metadata), 400, code
    )
    assert error["param"] == "metadata"


async def test_the_rules_are_checked_before_the_plan_and_any_image_work(world: World) -> None:
    response = await start(world.free, b64("gray.jpg"), aspect_ratio="16:9")
    error_of(response, 400, "session.aspect_ratio_invalid")
    assert world.avatar_count(world.free_id) == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"room": ROOM}, "avatar_id"),
        ({"avatar_id": "avat_x"}, "room"),
        ({"avatar_id": "avat_x", "room": {"platform": "daily"}}, "room.url"),
        ({"avatar_id": "avat_x", "room": {**ROOM, "url": "not a url"}}, "room.url"),
        ({"avatar_id": "avat_x", "room": {**ROOM, "platfrom": "x"}}, "room.platfrom"),
        ({"avatar_id": "avat_x", "room": ROOM, "avatar": "x"}, "avatar"),
        ({"avatar_id": 42, "room": ROOM}, "avatar_id"),
        ({"avatar_id": "avat_x", "room": "livekit"}, "room"),
        ({"avatar_id": "", "room": ROOM}, "avatar_id"),
    ],
)
async def test_other_schema_errors_are_422_with_a_json_path(
    world: World, body: dict[str, Any], param: str
) -> None:
    error = error_of(await world.paid.post("/v1/sessions", json=body), 422, "request.invalid_field")
    assert error["param"] == param
    assert param in error["message"]


async def test_a_bad_room_token_is_refused_without_being_quoted(world: World) -> None:
    for room in ({**ROOM, "token": 90210777}, {**ROOM, "tokn": "secret-typo-token"}):
        response = await start(world.paid, "avat_x", room=room)
        error_of(response, 422, "request.invalid_field")
        assert "90210777" not in response.text and "secret-typo-token" not in response.text


async def test_malformed_bodies(world: World) -> None:
    cases = [
        (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "request.malformed_body",
        ),
        ({"json": ["avat_x"]}, 400, "request.malformed_body"),
        (
            {"content": b"[" * 100_000, "headers": {"content-type": "application/json"}},
            400,
            "request.malformed_body",
        ),
        (
            {"content": b'{"avatar_id": "\xff"}', "headers": {"content-type": "application/json"}},
            400,
            "request.malformed_body",
        ),
        (
            {"content": b"avatar_id=avat_x", "headers": {"content-type": "text/plain"}},
            415,
            "request.unsupported_content_type",
        ),
        ({"content": b""}, 415, "request.unsupported_content_type"),
    ]
    for request, status, code in cases:
        error_of(await world.paid.post("/v1/sessions", **request), status, code)


async def test_a_body_over_the_cap_is_413_before_it_is_read(
    world: World, settings: Settings
) -> None:
    limit = 4 * -(-settings.pipeline.max_bytes // 3) + 64 * 1024
    body = b'{"avatar_id": "' + b"A" * limit + b'", "room": {}}'
    response = await world.paid.post(
        "/v1/sessions", content=body, headers={"content-type": "application/json"}
    )
    error_of(response, 413, "image.too_large")


async def test_without_a_key_it_is_401(world: World) -> None:
    error_of(await start(world.anonymous, "avat_x"), 401, "auth.missing_key")
    error_of(await world.anonymous.get("/v1/sessions/sess_x"), 401, "auth.missing_key")


# --- get and stop ----------------------------------------------------------------


async def test_get_and_stop_are_for_the_sessions_account_only(world: World) -> None:
    avatar_id = await world.ready_avatar(world.paid, user_exclusive=False)
    session = created(await start(world.paid, avatar_id))
    url = f"/v1/sessions/{session['id']}"

    shown = await world.paid.get(url)
    assert shown.status_code == 200
    Session.model_validate(shown.json())
    assert shown.json() == {k: v for k, v in session.items() if k != "session_token"}
    assert ROOM["token"] not in shown.text

    # The free account may use the shared avatar, but not see this session.
    error_of(await world.free.get(url), 404, "session.not_found")
    error_of(await world.free.post(f"{url}/stop"), 404, "session.not_found")
    error_of(
        await world.paid.get("/v1/sessions/sess_01JD3Z9B2C4D5E6F7G8H9J0K1M"),
        404,
        "session.not_found",
    )
    error_of(await world.paid.post("/v1/sessions/nonsense/stop"), 404, "session.not_found")
    assert (await world.paid.get(url)).json()["status"] == "started"


async def test_stop_ends_the_session_and_stopping_again_is_the_same_answer(world: World) -> None:
    session = created(await start(world.paid, await world.ready_avatar(world.paid)))
    url = f"/v1/sessions/{session['id']}"
    stopped = await world.paid.post(f"{url}/stop")
    assert stopped.status_code == 200, stopped.text
    ended = stopped.json()
    Session.model_validate(ended)
    assert ended["status"] == "ended"
    assert session["started_at"] <= ended["ended_at"] <= ended["expires_at"]
    again = await world.paid.post(f"{url}/stop")
    assert again.status_code == 200 and again.json() == ended
    assert (await world.paid.get(url)).json() == ended
    # GET on the stop route is not a thing.
    error_of(await world.paid.get(f"{url}/stop"), 405, "request.method_not_allowed")


# --- the OpenAPI document ------------------------------------------------------


async def test_the_openapi_document_states_every_rule_and_code(world: World) -> None:
    doc = (await world.anonymous.get("/openapi.json")).json()
    create = doc["paths"]["/v1/sessions"]["post"]
    body = create["requestBody"]["content"]["application/json"]
    schemas = doc["components"]["schemas"]
    request = schemas[body["schema"]["$ref"].removeprefix("#/components/schemas/")]
    room = schemas[request["properties"]["room"]["$ref"].removeprefix("#/components/schemas/")]
    assert room["properties"]["platform"]["enum"] == ["daily", "livekit"]
    assert room["properties"]["token"]["anyOf"][0]["writeOnly"] is True
    assert request["properties"]["aspect_ratio"]["default"] == "4:3"
    assert set(body["examples"]) == {"avatar_id", "url", "data_uri"}

    def codes(op: dict[str, Any], status: str) -> set[str]:
        return set(op["responses"][status]["content"]["application/json"]["examples"])

    assert {"room.platform_invalid", "session.aspect_ratio_invalid", "metadata.not_object"} <= (
        codes(create, "400")
    )
    assert codes(create, "403") == {"plan.image_input_not_allowed"}
    assert codes(create, "404") == {"avatar.not_found"}
    assert codes(create, "409") == {
        "avatar.not_ready",
        "avatar.failed",
        "idempotency.key_reused",
        "idempotency.in_progress",
    }
    assert {"request.invalid_field", "face.none"} <= codes(create, "422")
    assert {"image.fetch_failed", "image.too_small"} <= codes(create, "400")
    assert "Location" in create["responses"]["201"]["headers"]
    created_schema = doc["components"]["schemas"]["CreatedSession"]
    assert "session_token" in created_schema["required"]
    # The room as returned has no token field at all.
    assert "token" not in doc["components"]["schemas"]["Room"]["properties"]
    for path in ("/v1/sessions/{session_id}", "/v1/sessions/{session_id}/stop"):
        op = next(iter(doc["paths"][path].values()))
        assert codes(op, "404") == {"session.not_found"}

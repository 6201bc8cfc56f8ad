"""The error envelope on every error class, the one status table, request ids."""

from __future__ import annotations

import re

import httpx
import pytest
from pydantic import BaseModel

from pipeline.errors import AvatarPrepError, ImageError, Rejected
from pipeline.record import Check
from service.codes import CODES, TYPE_BY_STATUS, status_for, status_for_failed_avatar
from service.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    TransientError,
    Unavailable,
)
from service.runtime import Services
from tests.api.conftest import fail_with, open_client, photo
from tests.api.embedded import Embedded

pytestmark = pytest.mark.anyio

REQUEST_ID = re.compile(r"req_[0-7][0-9A-HJKMNP-TV-Z]{25}")
JPEG = photo()

# docs/api.md: every image and face code, with the status the contract gives it
# when it is raised at the edge (cheap checks) or as a verdict.
API_MD_CODES = {
    "image.missing": 400,
    "image.base64_invalid": 400,
    "image.url_invalid": 400,
    "image.url_forbidden": 400,
    "image.too_large": 413,
    "image.too_many_pixels": 413,
    "image.unsupported_format": 415,
    "image.fetch_failed": 400,
    "image.fetch_timeout": 400,
    "image.too_small": 400,
    "image.not_a_photo": 422,
    "face.none": 422,
    "face.multiple": 422,
    "face.too_small": 422,
    "face.not_frontal": 422,
    "face.cut_off": 422,
    "face.too_blurry": 422,
    "face.too_dark": 422,
    "metadata.not_object": 400,
    "avatar.not_found": 404,
    "avatar.not_ready": 409,
    "avatar.failed": 409,
    "rate_limited": 429,
    "at_capacity": 503,
    "request.invalid_field": 422,
}

# The face_count check of a photo of two people, as the API shows it.
FACE_COUNT = {
    "name": "face_count",
    "passed": False,
    "value": 2,
    "limit": 1,
    "bound": "max",
    "code": "face.multiple",
    "severity": "reject",
    "hint": "Crop the photo to one person or use a solo portrait.",
}


class Room(BaseModel):
    platform: str


class NestedBody(BaseModel):
    rooms: list[Room]


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    """The api.md error shape, with the request id of the header; returns the inner error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code
    assert error["type"] == TYPE_BY_STATUS[status]
    assert isinstance(error["message"], str) and error["message"]
    assert "param" in error
    assert REQUEST_ID.fullmatch(error["request_id"])
    assert error["request_id"] == response.headers["x-request-id"]
    return dict(error)


def assert_names_field(
    response: httpx.Response,
    status: int,
    code: str,
    param: str,
    *says: str,
    never: tuple[str, ...] = (),
) -> dict[str, object]:
    """`assert_envelope`, for an error about one field of the request: it names the
    field (`param`), its message says each of `says` and none of `never` (words of
    the framework's, not the client's); returns the inner error."""
    error = assert_envelope(response, status, code)
    assert error["param"] == param
    message = str(error["message"])
    for words in says:
        assert words in message
    for words in never:
        assert words not in message
    return error


def test_table_has_every_api_md_code_with_its_status() -> None:
    assert {code: CODES[code].status for code in API_MD_CODES} == API_MD_CODES


def test_every_status_in_the_table_has_a_type() -> None:
    assert {entry.status for entry in CODES.values()} <= set(TYPE_BY_STATUS)


def test_unknown_code_falls_back_to_its_class() -> None:
    assert status_for(ImageError("new", code="image.brand_new")) == 400
    assert status_for(Rejected("new", code="face.brand_new", checks=())) == 422
    assert status_for(NotFound("x", code="session.not_found")) == 404
    assert status_for(AvatarPrepError("no class, no code")) == 500


def test_a_failed_avatar_is_422_for_every_content_verdict() -> None:
    # image.unreadable is 400 as a cheap check, 422 as a verdict after processing.
    assert CODES["image.unreadable"].status == 400
    assert status_for_failed_avatar("image.unreadable") == 422
    assert status_for_failed_avatar("face.multiple") == 422
    assert status_for_failed_avatar("image.fetch_timeout") == 422
    assert status_for_failed_avatar("processing.crashed") == 500
    assert status_for_failed_avatar("something.unknown") == 500


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidRequest("bad", code="room.platform_invalid"), 400, "room.platform_invalid"),
        (
            PermissionDenied("no", code="plan.image_input_not_allowed"),
            403,
            "plan.image_input_not_allowed",
        ),
        (NotFound("gone"), 404, "avatar.not_found"),
        (Conflict("later"), 409, "avatar.not_ready"),
        (ImageError("big", code="image.too_many_pixels"), 413, "image.too_many_pixels"),
        (ImageError("svg", code="image.unsupported_format"), 415, "image.unsupported_format"),
        (ImageError("corrupt", code="image.unreadable"), 400, "image.unreadable"),
        (ImageError("private", code="image.url_forbidden"), 400, "image.url_forbidden"),
        (TransientError("storage down"), 503, "dependency.unavailable"),
    ],
)
async def test_each_error_class_gets_its_status_and_envelope(
    client: httpx.AsyncClient,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    error: AvatarPrepError,
    status: int,
    code: str,
) -> None:
    fail_with(monkeypatch, services.avatars, "create", error)
    response = await client.post("/v1/avatars/upload-face", files={"file": ("a.jpg", JPEG)})
    body = assert_envelope(response, status, code)
    assert body["message"] == error.message


async def test_rejection_carries_its_checks(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = Check(
        "face_count",
        False,
        2,
        1,
        "Crop the photo to one person or use a solo portrait.",
        code="face.multiple",
        severity="reject",
        bound="max",
        message="2 faces",
    )
    rejected = Rejected("2 faces", code="face.multiple", checks=(check,))
    fail_with(monkeypatch, services.avatars, "create", rejected)
    response = await client.post("/v1/avatars/upload-face", files={"file": ("a.jpg", JPEG)})
    error = assert_envelope(response, 422, "face.multiple")
    assert error["param"] == "image"
    assert error["checks"] == [FACE_COUNT]


@pytest.mark.parametrize(
    ("error", "retry_after"),
    [
        (RateLimited("slow down", retry_after=7), "7"),
        (Unavailable("queue full", retry_after=3), "3"),
        (TransientError("database down"), "5"),
    ],
)
async def test_429_and_503_carry_retry_after(
    client: httpx.AsyncClient,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    error: AvatarPrepError,
    retry_after: str,
) -> None:
    fail_with(monkeypatch, services.avatars, "create", error)
    response = await client.post("/v1/avatars/upload-face", files={"file": ("a.jpg", JPEG)})
    assert_envelope(response, status_for(error), error.code)
    assert response.headers["retry-after"] == retry_after


async def test_unknown_route_is_a_404_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/avatar")
    error = assert_envelope(response, 404, "request.route_not_found")
    assert "GET /v1/avatar" in str(error["message"])


async def test_wrong_method_is_a_405_envelope_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.put("/v1/avatars")
    error = assert_envelope(response, 405, "request.method_not_allowed")
    assert response.headers["allow"] == "GET"
    assert "GET" in str(error["message"])


async def test_allow_names_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/avatars/avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX")
    assert_envelope(response, 405, "request.method_not_allowed")
    assert response.headers["allow"] == "GET, DELETE"
    # upload-face also fits /v1/avatars/{avatar_id}, but is its own resource.
    response = await client.put("/v1/avatars/upload-face")
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("query", "param", "says"),
    [
        ("limit=0", "limit", "greater than or equal to 1"),
        ("limit=101", "limit", "less than or equal to 100"),
        ("limit=ten", "limit", "valid integer"),
        ("status=done", "status", "'queued', 'processing', 'ready' or 'failed'"),
    ],
)
async def test_validation_errors_name_the_field_and_what_is_allowed(
    client: httpx.AsyncClient, query: str, param: str, says: str
) -> None:
    response = await client.get(f"/v1/avatars?{query}")
    assert_names_field(
        response, 422, "request.invalid_field", param, says, never=("discriminator",)
    )


async def test_validation_of_a_literal_lists_the_allowed_values(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/avatars/avat_x/image?aspect_ratio=16:9")
    assert_names_field(
        response, 422, "request.invalid_field", "aspect_ratio", "'1:1', '4:3' or '3:4'", "'16:9'"
    )


async def test_a_json_body_route_gets_json_paths_and_400_for_broken_json(
    embedded: Embedded,
) -> None:
    """The handler is the app's, for every route: checked on a route with a nested
    body model, as issue 4's sessions will have."""
    app = embedded.app

    @app.post("/test/nested")
    async def nested(body: NestedBody) -> dict[str, str]:
        return {"ok": "yes"}

    async with open_client(app) as c:
        missing = await c.post("/test/nested", json={"rooms": [{"platform": "daily"}, {}]})
        broken = await c.post(
            "/test/nested", content=b'{"rooms": [', headers={"content-type": "application/json"}
        )
    assert_names_field(missing, 422, "request.invalid_field", "rooms[1].platform", "Field required")
    assert_envelope(broken, 400, "request.malformed_body")


async def test_an_unhandled_exception_is_a_500_envelope_without_details(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    bug = RuntimeError("password=hunter2 at /srv/secret.py line 3")
    fail_with(monkeypatch, services.keys, "authenticate", bug)
    response = await client.get("/v1/avatars")
    error = assert_envelope(response, 500, "api_error")
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert "request id" in str(error["message"])


async def test_every_response_has_a_fresh_request_id(client: httpx.AsyncClient) -> None:
    responses = [
        await client.get("/healthz"),
        await client.get("/v1/avatars"),
        await client.get("/v1/nowhere"),
        await client.get("/v1/avatars?limit=0"),
        await client.get("/docs"),
    ]
    ids = [r.headers["x-request-id"] for r in responses]
    assert all(REQUEST_ID.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)


async def test_a_client_request_id_is_not_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-Id": "req_mine"})
    assert response.headers.get_list("x-request-id") != ["req_mine"]
    assert len(response.headers.get_list("x-request-id")) == 1

"""The session endpoints of docs/api.md: create, get, stop.

POST /v1/sessions reads its JSON body under the same byte cap as a JSON upload
(it may carry a base64 image) and checks the fields that have their own codes
(`room.platform`, `aspect_ratio`, `metadata`: 400) before the schema (422
`request.invalid_field`) and before any image work. An image instead of an
avatar id goes through the upload path itself (`parse_image_text`,
`AvatarService.create`: same checks, same dedupe) and is waited for here, with
async sleeps; the pipeline runs in a worker as for any upload.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.avatars import wait_for_verdict
from api.deps import AccountDep, ServicesDep, SettingsDep
from api.errors import (
    IMAGE_CODES,
    KEYED_ROUTE_CODES,
    error_response,
    error_responses,
)
from api.schemas import AVATAR_ID_EXAMPLE, body_schema
from api.session_schemas import (
    SESSION_ID_EXAMPLE,
    CreatedSession,
    CreateSessionRequest,
    Session,
)
from api.uploads import (
    body_limits,
    check_metadata,
    check_not_an_id,
    json_object,
    media_type_of,
    parse_image_text,
    read_capped,
)
from pipeline.aspect import AspectRatio
from service.avatars import ImageInput
from service.codes import status_for_failed_avatar
from service.domain import Avatar
from service.errors import InvalidRequest
from service.keys import Account
from service.public import session_json
from service.runtime import Services
from service.sessions import Room, check_aspect_ratio, check_platform, is_avatar_reference
from service.status import UNFINISHED, AvatarStatus

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


SessionIdPath = Annotated[str, Path(description="The session's id.", examples=[SESSION_ID_EXAMPLE])]

_location_header = {"Location": {"description": "The session's URL.", "schema": {"type": "string"}}}


_CREATE_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": body_schema(CreateSessionRequest),
            "examples": {
                "avatar_id": {
                    "summary": "A ready avatar, by id",
                    "value": {
                        "avatar_id": AVATAR_ID_EXAMPLE,
                        "room": {
                            "platform": "livekit",
                            "url": "wss://demo.livekit.cloud",
                            "token": "eyJhbGciOiJIUzI1NiJ9...",
                            "room_name": "support-42",
                        },
                        "aspect_ratio": AspectRatio.LANDSCAPE,
                        "metadata": {"customer": "c_42"},
                    },
                },
                "url": {
                    "summary": "An image URL, prepared inline (paid plan)",
                    "value": {
                        "avatar_id": "https://example.com/portrait.jpg",
                        "room": {"platform": "daily", "url": "https://acme.daily.co/demo"},
                    },
                },
                "data_uri": {
                    "summary": "A data URI, prepared inline (paid plan)",
                    "value": {
                        "avatar_id": "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ...",
                        "room": {"platform": "daily", "url": "https://acme.daily.co/demo"},
                        "aspect_ratio": AspectRatio.SQUARE,
                    },
                },
            },
        }
    },
}


@router.post(
    "",
    summary="Create and start a session with an avatar",
    description=(
        "`avatar_id` is an avatar id, resolved at once (`404 avatar.not_found` unknown or "
        "not visible, `409 avatar.not_ready` while queued or processing, `409 avatar.failed`), "
        "or, on the paid plan, an image (URL, data URI or base64) prepared inline exactly as "
        "upload-face prepares it (same checks, same dedupe) and waited for: a rejection is "
        "the `422` face or image error carrying `avatar_id`; an image still being prepared "
        "after `session_inline_wait_seconds` is `409 avatar.not_ready` carrying `avatar_id` "
        "(start the session with that id once it is ready). `expires_at` is `started_at` "
        "plus the plan's maximum session length. `room.token` is write-only. "
        "`session_token` is returned only here."
    ),
    status_code=201,
    response_model=CreatedSession,
    responses={
        201: {"description": "The session, started.", "headers": _location_header},
        **error_responses(
            "room.platform_invalid",
            "session.aspect_ratio_invalid",
            "metadata.not_object",
            "metadata.too_large",
            "request.malformed_body",
            "request.unsupported_content_type",
            "request.invalid_field",
            "plan.image_input_not_allowed",
            "avatar.not_found",
            "avatar.not_ready",
            "avatar.failed",
            *IMAGE_CODES,
            "at_capacity",
            "storage.unavailable",
            *KEYED_ROUTE_CODES,
        ),
    },
    openapi_extra={"requestBody": _CREATE_BODY},
)
async def create_session(
    request: Request, account: AccountDep, services: ServicesDep, settings: SettingsDep
) -> JSONResponse:
    fields = await read_create_request(request, body_limits(settings.pipeline.max_bytes)[1])
    avatar_id = fields.avatar_id.strip()
    inline: Avatar | None = None
    if not is_avatar_reference(avatar_id):
        # A mistyped id is named as such before the plan is asked about images.
        check_not_an_id(avatar_id, "avatar_id")
        services.sessions.check_image_input(account)
        image = parse_image_text(avatar_id, field="avatar_id")
        inline = await _prepare_inline(
            request, services, account, image, settings.session_inline_wait_seconds
        )
        avatar_id = inline.id
    request.state.avatar_id = avatar_id  # for the request's log line (api/observe.py)
    if inline is not None and inline.status != AvatarStatus.READY:
        return _unusable_inline(request, inline, settings.session_inline_wait_seconds)
    room = Room(
        platform=fields.room.platform,
        url=fields.room.url,
        name=fields.room.room_name,
        token=fields.room.token.get_secret_value() if fields.room.token is not None else None,
    )
    session = await run_in_threadpool(
        lambda: services.sessions.create(
            account,
            avatar_id,
            room=room,
            aspect_ratio=fields.aspect_ratio,
            metadata=fields.metadata,
        )
    )
    request.state.session_id = session.id
    return JSONResponse(
        session_json(session), status_code=201, headers={"Location": f"/v1/sessions/{session.id}"}
    )


def _unusable_inline(request: Request, avatar: Avatar, waited: float) -> JSONResponse:
    """An inline image's avatar that cannot back the session: its verdict (the 422
    face or image error, as upload-face answers it), or 409 avatar.not_ready when
    it is still being prepared; both carry `avatar_id`."""
    if avatar.status == AvatarStatus.FAILED and avatar.error is not None:
        error = {**avatar.error, "param": "avatar_id", "avatar_id": avatar.id}
        return error_response(request, status_for_failed_avatar(error["code"]), error)
    return error_response(
        request,
        409,
        {
            "code": "avatar.not_ready",
            "message": f"The image became avatar {avatar.id}, still {avatar.status} "
            f"after {waited:g} s; start the session with that id once it is ready.",
            "param": "avatar_id",
            "avatar_id": avatar.id,
        },
    )


async def _prepare_inline(
    request: Request, services: Services, account: Account, image: ImageInput, wait: float
) -> Avatar:
    """The avatar of an image sent inline, made as upload-face makes it (an existing
    one for the same bytes), once finished or after `wait` seconds."""
    avatar, _ = await run_in_threadpool(
        lambda: services.avatars.create(
            account.id, image, name=None, user_exclusive=True, metadata={}
        )
    )
    if avatar.status in UNFINISHED:
        avatar = await wait_for_verdict(request, services, account.id, avatar, wait)
    return avatar


async def read_create_request(request: Request, limit: int) -> CreateSessionRequest:
    """The body of POST /v1/sessions, at most `limit` bytes of JSON. The fields with
    codes of their own are checked first, on the raw values (400), then the schema
    (422 request.invalid_field, `param` as a JSON path)."""
    media_type = media_type_of(request)
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise InvalidRequest(
            f"Content-Type {media_type or '(none)'} is not accepted; send application/json.",
            code="request.unsupported_content_type",
        )
    body = await read_capped(request, limit)
    doc = json_object(body, '{"avatar_id": "avat_...", "room": {...}}')
    room = doc.get("room")
    if isinstance(room, dict) and "platform" in room:
        check_platform(room["platform"])
    if "aspect_ratio" in doc:
        check_aspect_ratio(doc["aspect_ratio"])
    if "metadata" in doc:
        check_metadata(doc["metadata"])
    try:
        return CreateSessionRequest.model_validate(doc)
    except ValidationError as exc:
        raise RequestValidationError(_body_errors(exc)) from None


def _body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic's errors as FastAPI's body errors (located under `body`), for the one
    validation handler. What came in under `room` is not quoted back: it may be the
    room's token, misspelt or mistyped."""
    errors = []
    for error in exc.errors(include_url=False):
        loc = ("body", *error["loc"])
        entry: dict[str, Any] = {**error, "loc": loc}
        if error["loc"][:1] == ("room",):
            entry.pop("input", None)
        errors.append(entry)
    return errors


@router.get(
    "/{session_id}",
    summary="Get a session",
    response_model=Session,
    responses=error_responses("session.not_found", "storage.unavailable", *KEYED_ROUTE_CODES),
)
async def get_session(
    session_id: SessionIdPath, account: AccountDep, services: ServicesDep
) -> JSONResponse:
    session = await run_in_threadpool(services.sessions.get, account.id, session_id)
    return JSONResponse(session_json(session))


@router.post(
    "/{session_id}/stop",
    summary="Stop a session",
    description="`status` becomes `ended` and `ended_at` is set. Idempotent: stopping an "
    "ended session (stopped before, or expired) answers `200` with it unchanged.",
    response_model=Session,
    responses=error_responses("session.not_found", "storage.unavailable", *KEYED_ROUTE_CODES),
)
async def stop_session(
    session_id: SessionIdPath, account: AccountDep, services: ServicesDep
) -> JSONResponse:
    session = await run_in_threadpool(services.sessions.stop, account.id, session_id)
    return JSONResponse(session_json(session))

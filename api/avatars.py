"""The avatar endpoints of docs/api.md: upload-face, get, list, image, delete.

Routes do cheap work only: parse and cap the request on the event loop, and
call the AvatarService (database and storage I/O) in a worker thread. The
pipeline runs in the Celery worker, never here; `wait` waits to be told the
avatar finished (service/notify.py), re-reading it then.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from api.deps import AccountDep, ServicesDep, SettingsDep
from api.errors import (
    IMAGE_CODES,
    KEYED_ROUTE_CODES,
    error_response,
    error_responses,
)
from api.schemas import (
    AVATAR_ID_EXAMPLE,
    QUEUED_AVATAR_EXAMPLE,
    Avatar,
    AvatarList,
    UploadFaceForm,
    UploadFaceJson,
    body_schema,
)
from api.uploads import read_upload
from pipeline.aspect import AspectRatio
from service import domain
from service.codes import status_for_failed_avatar
from service.notify import FinishListener, wait_until_finished
from service.public import avatar_json
from service.runtime import Services
from service.status import UNFINISHED, AvatarStatus

router = APIRouter(prefix="/v1/avatars", tags=["avatars"])

# Every avatar route also touches storage.
COMMON_CODES = (*KEYED_ROUTE_CODES, "storage.unavailable")

AvatarIdPath = Annotated[str, Path(description="The avatar's id.", examples=[AVATAR_ID_EXAMPLE])]

_location_header = {"Location": {"description": "The avatar's URL.", "schema": {"type": "string"}}}

_UPLOAD_BODY = {
    "required": True,
    "description": "The image as a multipart file, or JSON with a URL, a data URI or base64.",
    "content": {
        "multipart/form-data": {"schema": body_schema(UploadFaceForm)},
        "application/json": {
            "schema": body_schema(UploadFaceJson),
            "examples": {
                "url": {
                    "summary": "An https URL (fetched before the avatar is made)",
                    "value": {"image": "https://example.com/portrait.jpg", "name": "Ada"},
                },
                "data_uri": {
                    "summary": "A data URI (data shortened here)",
                    "value": {
                        "image": "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ...",
                        "metadata": {"team": "blue"},
                    },
                },
                "base64": {
                    "summary": "Bare base64 (shortened here)",
                    "value": {"image": "/9j/4AAQSkZJRgABAQ...", "user_exclusive": False},
                },
            },
        },
    },
}


@router.post(
    "/upload-face",
    summary="Create an avatar from one face photo",
    description=(
        "Send the image as multipart field `file` (optional fields `name`, `user_exclusive`, "
        '`metadata` as JSON text) or as JSON `{"image": ...}`. Cheap checks (size, format, '
        "header, base64, a URL and its fetch) fail at once with no avatar created (a URL is "
        "fetched before the avatar is made, so its bytes dedupe like an upload's); the face "
        "work runs in a worker. `wait` seconds (0-30) waits for the verdict: `201` ready, "
        "`422` rejected (the error carries `avatar_id`), else `202` with `Location`. The same "
        "bytes already uploaded by this account answer `200` with the existing avatar, "
        "unless it failed for a reason that was no verdict on the image: then it is "
        "processed again under its id and answered as a new upload."
    ),
    status_code=202,
    response_model=None,
    responses={
        200: {
            "model": Avatar,
            "description": "The same image bytes were already uploaded by "
            "this account: the existing avatar.",
        },
        201: {"model": Avatar, "description": "Ready within `wait`.", "headers": _location_header},
        202: {
            "model": Avatar,
            "description": "Accepted; `queued` or `processing`.",
            "headers": _location_header,
            "content": {"application/json": {"example": QUEUED_AVATAR_EXAMPLE}},
        },
        **error_responses(
            *IMAGE_CODES,
            "metadata.not_object",
            "metadata.too_large",
            "request.malformed_body",
            "request.unsupported_content_type",
            "request.invalid_field",
            "at_capacity",
            "database.conflict",
            "processing.crashed",
            "storage.object_missing",
            *COMMON_CODES,
        ),
    },
    openapi_extra={"requestBody": _UPLOAD_BODY},
)
async def upload_face(
    request: Request,
    account: AccountDep,
    services: ServicesDep,
    settings: SettingsDep,
    wait: Annotated[
        int, Query(ge=0, le=30, description="Seconds to wait for the verdict (0-30).")
    ] = 0,
) -> Response:
    upload = await read_upload(request, settings.pipeline.max_bytes)
    avatar, created = await run_in_threadpool(
        lambda: services.avatars.create(
            account.id,
            upload.image,
            name=upload.name,
            user_exclusive=upload.user_exclusive,
            metadata=upload.metadata,
        )
    )
    request.state.avatar_id = avatar.id  # for the request's log line (api/observe.py)
    if not created:
        return JSONResponse(avatar_json(avatar), status_code=200)
    if wait and avatar.status in UNFINISHED:
        avatar = await wait_for_verdict(request, services, account.id, avatar, wait)
    location = {"Location": f"/v1/avatars/{avatar.id}"}
    if avatar.status == AvatarStatus.FAILED and avatar.error is not None:
        error = {**avatar.error, "avatar_id": avatar.id}
        return error_response(request, status_for_failed_avatar(error["code"]), error)
    status = 201 if avatar.status == AvatarStatus.READY else 202
    return JSONResponse(avatar_json(avatar), status_code=status, headers=location)


async def wait_for_verdict(
    request: Request, services: Services, account_id: str, avatar: domain.Avatar, wait: float
) -> domain.Avatar:
    """The avatar once it is ready or failed, `wait` seconds pass, or the client goes
    away: re-read when the listener says it finished (or on its fallback schedule)."""
    listener: FinishListener = request.app.state.finishes
    return await wait_until_finished(
        listener,
        avatar,
        lambda: run_in_threadpool(services.avatars.get, account_id, avatar.id),
        wait,
        gone=request.is_disconnected,
    )


@router.get(
    "/{avatar_id}",
    summary="Get an avatar",
    response_model=Avatar,
    responses=error_responses("avatar.not_found", *COMMON_CODES),
)
async def get_avatar(
    avatar_id: AvatarIdPath, account: AccountDep, services: ServicesDep
) -> JSONResponse:
    avatar = await run_in_threadpool(services.avatars.get, account.id, avatar_id)
    return JSONResponse(avatar_json(avatar))


@router.get(
    "",
    summary="List this account's avatars, newest first",
    response_model=AvatarList,
    responses=error_responses("request.invalid_field", *COMMON_CODES),
)
async def list_avatars(
    account: AccountDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size (1-100).")] = 20,
    starting_after: Annotated[
        str | None,
        Query(description="The last avatar id of the previous page.", examples=[AVATAR_ID_EXAMPLE]),
    ] = None,
    status: Annotated[
        AvatarStatus | None, Query(description="Only avatars in this status.")
    ] = None,
) -> JSONResponse:
    avatars, has_more = await run_in_threadpool(
        lambda: services.avatars.list(
            account.id, limit=limit, starting_after=starting_after, status=status
        )
    )
    return JSONResponse(
        {"object": "list", "data": [avatar_json(a) for a in avatars], "has_more": has_more}
    )


@router.get(
    "/{avatar_id}/image",
    summary="Get a prepared image",
    description="The JPEG bytes, or a `302` to a time-limited URL when storage is S3.",
    response_class=Response,
    responses={
        200: {
            "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The prepared JPEG.",
        },
        302: {
            "description": "Redirect to a time-limited URL of the JPEG.",
            "headers": _location_header,
        },
        304: {"description": "Not modified: `If-None-Match` named the image's `ETag`."},
        **error_responses(
            "request.invalid_field",
            "avatar.not_found",
            "avatar.not_ready",
            "avatar.failed",
            *COMMON_CODES,
        ),
    },
)
async def get_avatar_image(
    request: Request,
    avatar_id: AvatarIdPath,
    account: AccountDep,
    services: ServicesDep,
    aspect_ratio: Annotated[
        AspectRatio, Query(description="Which rendition: 1:1 (default), 4:3 or 3:4.")
    ] = AspectRatio.SQUARE,
) -> Response:
    ref = await run_in_threadpool(services.avatars.image, account.id, avatar_id, aspect_ratio)
    if ref.url is not None:
        return RedirectResponse(ref.url, status_code=302)
    data = ref.data or b""
    # Private to the account; the ETag (of the bytes) lets a client revalidate cheaply,
    # and changes if the avatar is ever rendered again.
    headers = {"Cache-Control": "private, max-age=3600", "ETag": entity_tag(data)}
    if not_modified(request.headers.get("if-none-match", ""), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(data))
        return Response(media_type=ref.content_type, headers=headers)
    return Response(data, media_type=ref.content_type, headers=headers)


# HEAD answers GET's headers without the body (not a separate operation in the spec).
router.add_api_route(
    "/{avatar_id}/image", get_avatar_image, methods=["HEAD"], include_in_schema=False
)


def entity_tag(data: bytes) -> str:
    """A strong ETag of `data`: a quoted prefix of its SHA-256."""
    return f'"{hashlib.sha256(data).hexdigest()[:32]}"'


def not_modified(if_none_match: str, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (or `*`); a GET compares weakly,
    so `W/"..."` matches too."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


@router.delete(
    "/{avatar_id}",
    summary="Delete an avatar and every stored object of it",
    status_code=204,
    response_class=Response,
    responses=error_responses("avatar.not_found", "avatar.in_use", *COMMON_CODES),
)
async def delete_avatar(
    avatar_id: AvatarIdPath, account: AccountDep, services: ServicesDep
) -> Response:
    await run_in_threadpool(services.avatars.delete, account.id, avatar_id)
    return Response(status_code=204)

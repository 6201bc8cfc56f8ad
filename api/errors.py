"""The HTTP face of the error tree: the one status table and the error envelope.

Every non-2xx response of the API is built here, in the shape of docs/api.md:
`{"error": {"type", "code", "message", "param", "request_id", ["checks"], ...}}`.
The status of an error is picked from its stable `code` in `CODES`; a code the
table does not know (a new service code) falls back to its class in
`CLASS_STATUS`. The error `type` follows from the status (`TYPE_BY_STATUS`).
Nothing else in the API decides a status for an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.schemas import ErrorEnvelope
from pipeline.errors import AvatarPrepError, ImageError, Rejected
from service.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    TransientError,
    Unavailable,
)
from service.ids import new_id


@dataclass(frozen=True)
class Code:
    """One stable error code: its HTTP status, and a message as clients see it
    (used as the OpenAPI example, so /docs shows every code a route can answer)."""

    status: int
    example: str


# THE status table. Codes of docs/api.md plus the request-level codes of this edge.
CODES: dict[str, Code] = {
    # --- the request itself ---
    "request.malformed_body": Code(400, "The body is not valid JSON: Expecting value (char 0)."),
    "request.unsupported_content_type": Code(
        415,
        "Content-Type text/plain is not accepted; send multipart/form-data or application/json.",
    ),
    "request.invalid_field": Code(422, "wait: Input should be less than or equal to 30 (got 31)."),
    "request.route_not_found": Code(404, "No route GET /v1/avatar; see /docs for the API."),
    "request.method_not_allowed": Code(405, "PUT is not allowed on /v1/avatars; allowed: GET."),
    "metadata.too_large": Code(400, "metadata is 20480 bytes as JSON; the limit is 16384."),
    "metadata.not_object": Code(
        400, 'metadata must be a JSON object such as {"team": "blue"}; got an array.'
    ),
    # --- authentication and plans ---
    "auth.missing_key": Code(
        401, "No API key: send X-API-Key: <key> or Authorization: Bearer <key>."
    ),
    "auth.invalid_key": Code(401, "The API key is unknown or revoked."),
    "plan.not_allowed": Code(403, "The free plan does not allow this operation."),
    "plan.image_input_not_allowed": Code(
        403, "The free plan may only start sessions with an avatar id (avat_...)."
    ),
    # --- cheap image checks at the edge, before any avatar exists ---
    "image.missing": Code(
        400, "No image: send it in the multipart field `file`, or as `image` in a JSON body."
    ),
    "image.base64_invalid": Code(
        400, "image is not valid base64 (standard alphabet, padded to a multiple of 4)."
    ),
    "image.url_invalid": Code(400, "image URL must be an http or https URL with a host."),
    "image.url_forbidden": Code(
        400, "The URL resolves to 10.0.0.5, a private address; only public addresses are fetched."
    ),
    "image.too_large": Code(413, "The image is 25000000 bytes; the limit is 20000000 bytes."),
    "image.too_many_pixels": Code(
        413, "The image is 20000 x 20000 pixels; the limit is 50000000 pixels."
    ),
    "image.unsupported_format": Code(
        415, "SVG is not supported; send JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC or AVIF."
    ),
    "image.unreadable": Code(400, "The JPEG is truncated or corrupt and cannot be decoded."),
    # --- verdicts on the content, known only after processing ---
    "image.fetch_failed": Code(422, "Fetching the image URL failed: HTTP 404."),
    "image.fetch_timeout": Code(422, "Fetching the image URL took longer than 10 s."),
    "image.too_small": Code(422, "The image is 48 x 60 pixels; the short side must be 64 or more."),
    "image.not_a_photo": Code(422, "The image does not look like a photograph."),
    "face.none": Code(422, "No face found; upload a photo with one face clearly visible."),
    "face.multiple": Code(
        422, "The image shows 2 faces of similar size; upload a photo of one person."
    ),
    "face.too_small": Code(422, "The face is too small in the frame; crop closer to the face."),
    "face.not_frontal": Code(422, "The head is turned 52 degrees; face the camera (45 at most)."),
    "face.cut_off": Code(422, "31% of the face is outside the frame; 25% at most."),
    "face.too_blurry": Code(422, "The face is too blurry; use a sharper photo."),
    "face.too_dark": Code(422, "The face is too dark; use a brighter photo."),
    "face.too_bright": Code(422, "48% of the face is blown out to white, at most 40% is allowed."),
    "face.not_human": Code(422, "The face does not look human; upload a photo of a person."),
    "face.eyes_closed": Code(422, "The eyes look closed; use a photo with the eyes open."),
    "face.mouth_open": Code(422, "The mouth is wide open; use a photo with the mouth closed."),
    "face.framing": Code(
        422, "The photo is cropped too tightly for the 4:3 avatar: 31% of it would be invented."
    ),
    "image.too_compressed": Code(
        422, "The JPEG is compressed to quality 6, at least 8 is needed; send the original."
    ),
    # --- objects ---
    "avatar.not_found": Code(404, "No avatar avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX."),
    "avatar.not_ready": Code(409, "The avatar is processing; its images exist once it is ready."),
    "avatar.failed": Code(409, "The avatar failed (face.none); it has no images."),
    "link.invalid": Code(403, "The link is altered or expired; ask for new links."),
    # --- sessions ---
    "room.platform_invalid": Code(400, "room.platform must be one of daily, livekit; got 'zoom'."),
    "session.aspect_ratio_invalid": Code(
        400, "aspect_ratio must be one of 1:1, 4:3, 3:4 (default 4:3); got '16:9'."
    ),
    "session.not_found": Code(404, "No session sess_01JD3Z9B2C4D5E6F7G8H9J0K1M."),
    # --- webhooks ---
    "webhook.url_invalid": Code(400, "The webhook URL must start with http:// or https://."),
    "webhook.url_forbidden": Code(
        400,
        "The webhook URL's host hooks.internal resolves to 10.0.0.5, a private address; "
        "only public internet addresses are fetched.",
    ),
    "webhook.event_invalid": Code(
        400, "events must be a non-empty list of avatar.ready, avatar.failed, ..."
    ),
    "webhook.too_many": Code(400, "The account has 16 webhook endpoints, the most allowed."),
    "webhook.not_found": Code(404, "No webhook endpoint whep_01JD3Z9B2C4D5E6F7G8H9J0K1M."),
    # --- idempotency ---
    "idempotency.key_invalid": Code(
        400, "Idempotency-Key must be 1 to 255 printable ASCII characters."
    ),
    "idempotency.key_reused": Code(
        409,
        "This Idempotency-Key was used with another request (a different path or body) "
        "in the last 24 h; use a new key for a new request.",
    ),
    "idempotency.in_progress": Code(
        409, "The first request with this Idempotency-Key is still running; retry after 1 s."
    ),
    # --- capacity and dependencies ---
    "rate_limited": Code(429, "Too many requests for this key; retry after 2 s."),
    "at_capacity": Code(503, "The work queue is full; retry after 5 s."),
    "dependency.unavailable": Code(503, "A dependency is unreachable; retry shortly."),
    "database.unavailable": Code(503, "The database is unreachable; retry shortly."),
    "database.conflict": Code(503, "The same image was being uploaded and deleted at once; retry."),
    "storage.unavailable": Code(503, "Storage is unreachable; retry shortly."),
    "service.not_ready": Code(503, "Not ready: broker unreachable."),
    "storage.object_missing": Code(500, "The stored original of this avatar is missing."),
    "processing.crashed": Code(
        500, "Processing this image stopped the worker 10 times; it was given up."
    ),
    "api_error": Code(500, "Internal error; quote the request id when reporting it."),
}

# Every code an image can get, as a cheap check or a verdict: what a route that takes
# an image declares.
IMAGE_CODES = tuple(code for code in CODES if code.startswith(("image.", "face.")))

# Status for a code missing from CODES, by the class that raised it (most specific first).
CLASS_STATUS: tuple[tuple[type[AvatarPrepError], int], ...] = (
    (Rejected, 422),
    (ImageError, 400),
    (InvalidRequest, 400),
    (AuthenticationFailed, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (RateLimited, 429),
    (Unavailable, 503),
    (TransientError, 503),
)

TYPE_BY_STATUS: dict[int, str] = {
    400: "invalid_request",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found",
    405: "invalid_request",
    409: "conflict",
    413: "invalid_request",
    415: "invalid_request",
    422: "invalid_request",
    429: "rate_limited",
    503: "at_capacity",
    500: "api_error",
}

# Seconds a client should wait before retrying a 503 that carries no figure of its own.
DEFAULT_RETRY_AFTER = 5


def status_for(error: AvatarPrepError) -> int:
    """The HTTP status of an error raised at the edge (a cheap check, a lookup)."""
    if error.code in CODES:
        return CODES[error.code].status
    for cls, status in CLASS_STATUS:
        if isinstance(error, cls):
            return status
    return 500


def status_for_failed_avatar(code: str) -> int:
    """The status of an upload whose avatar failed while the client waited.

    The upload itself was accepted, so a verdict on its content (every `image.*`
    and `face.*` code, fetch failures included) is 422, whatever status the
    same code has as a cheap check at the edge."""
    if code.startswith(("image.", "face.")):
        return 422
    return CODES[code].status if code in CODES else 500


def request_id_of(request: Request) -> str:
    """The `req_` id the request-id middleware gave this request (a fresh one if the
    error happened before the middleware ran, so the envelope always carries one)."""
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        rid = request.state.request_id = new_id("req")
    return str(rid)


def error_response(
    request: Request,
    status: int,
    error: dict[str, Any],
    *,
    retry_after: int | None = None,
) -> JSONResponse:
    """The envelope around `error` (code, message, param, [checks], [avatar_id]).

    Adds `type` (from the status) and `request_id`; sets `Retry-After` when given."""
    body = {
        "type": TYPE_BY_STATUS.get(status, "invalid_request" if status < 500 else "api_error"),
        "code": error["code"],
        "message": error["message"],
        "param": error.get("param"),
        "request_id": request_id_of(request),
    }
    body.update({k: v for k, v in error.items() if k not in body})
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


async def handle_avatar_prep_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AvatarPrepError)
    status = status_for(exc)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is None and status == 503:
        retry_after = DEFAULT_RETRY_AFTER
    return error_response(request, status, exc.to_dict(), retry_after=retry_after)


def _json_path(loc: tuple[int | str, ...]) -> str | None:
    """`("body", "room", "platform")` -> `room.platform`; list indices as `[i]`."""
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or None


def _describe(error: dict[str, Any]) -> str:
    """One validation error as a sentence naming the field, the rule and what came in.
    pydantic's messages already name the allowed values ("Input should be 'daily' or
    'livekit'"); the received input is added when it is short enough to quote."""
    where = _json_path(tuple(error.get("loc", ()))) or "body"
    text = f"{where}: {error.get('msg', 'invalid value')}"
    given = error.get("input")
    if error.get("type") != "missing" and isinstance(given, str | int | float | bool):
        quoted = repr(given)
        if len(quoted) <= 60:
            text += f" (got {quoted})"
    return text + "."


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's schema validation: 422 `request.invalid_field` with `param` as a JSON
    path; a body that is not JSON at all is 400 `request.malformed_body`."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        ctx = errors[0].get("ctx") or {}
        detail = ctx.get("error", "not valid JSON")
        return error_response(
            request,
            400,
            {"code": "request.malformed_body", "message": f"The body is not valid JSON: {detail}."},
        )
    first = errors[0] if errors else {}
    message = " ".join(_describe(e) for e in errors) or "The request is invalid."
    return error_response(
        request,
        422,
        {
            "code": "request.invalid_field",
            "message": message,
            "param": _json_path(tuple(first.get("loc", ()))),
        },
    )


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own HTTP errors (unknown route, wrong method) in the envelope."""
    assert isinstance(exc, StarletteHTTPException)
    route = f"{request.method} {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        error = {
            "code": "request.route_not_found",
            "message": f"No route {route}; see /docs for the API.",
        }
    elif exc.status_code == 405:
        allowed = _allowed_methods(request, headers.get("Allow", ""))
        headers["Allow"] = allowed
        error = {
            "code": "request.method_not_allowed",
            "message": f"{request.method} is not allowed on {request.url.path}; "
            f"allowed: {allowed}.",
        }
    else:
        error = {"code": f"http.{exc.status_code}", "message": str(exc.detail)}
    response = error_response(request, exc.status_code, error)
    response.headers.update(headers)
    return response


def _allowed_methods(request: Request, fallback: str) -> str:
    """The methods of the most specific documented path matching this request.

    Starlette's own `Allow` names only the first route that matched (GET of GET and
    DELETE /v1/avatars/{id}), and a literal path such as /v1/avatars/upload-face also
    matches the template /v1/avatars/{avatar_id}; the documented path with the
    fewest parameters is the resource the client meant."""
    segments = request.url.path.split("/")
    best: tuple[int, set[str]] | None = None
    for template, item in request.app.openapi().get("paths", {}).items():
        parts = template.split("/")
        if len(parts) != len(segments):
            continue
        params = sum(p.startswith("{") for p in parts)
        if all(p.startswith("{") or p == s for p, s in zip(parts, segments, strict=True)):
            methods = {m.upper() for m in item}
            if best is None or params < best[0]:
                best = (params, methods)
            elif params == best[0]:
                best[1].update(methods)
    if best is None:
        return fallback
    return ", ".join(m for m in ("GET", "POST", "PUT", "PATCH", "DELETE") if m in best[1])


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug: the envelope with no detail (the traceback goes to the server log,
    never to the client). Runs outside the request-id middleware, so it sets the
    header itself."""
    del exc
    response = error_response(
        request,
        500,
        {"code": "api_error", "message": "Internal error; quote the request id when reporting it."},
    )
    response.headers["X-Request-Id"] = request_id_of(request)
    return response


def install_error_handlers(app: FastAPI) -> None:
    """Route every error class to the envelope."""
    app.add_exception_handler(AvatarPrepError, handle_avatar_prep_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_exception_handler(Exception, handle_unexpected)


# Every route behind an API key can answer these.
KEYED_ROUTE_CODES = ("auth.missing_key", "auth.invalid_key", "database.unavailable", "api_error")


def error_responses(*codes: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the error codes a route can answer: one entry per
    status, the envelope schema, and one example per code (from `CODES`)."""
    by_status: dict[int, dict[str, Any]] = {}
    for code in codes:
        entry = CODES[code]
        examples = by_status.setdefault(entry.status, {})
        examples[code] = {
            "summary": code,
            "value": {
                "error": {
                    "type": TYPE_BY_STATUS[entry.status],
                    "code": code,
                    "message": entry.example,
                    "param": None,
                    "request_id": "req_01JD3Z8G9YR3K2N5M6P7Q8W4TX",
                }
            },
        }
    responses: dict[int | str, dict[str, Any]] = {}
    for status, examples in sorted(by_status.items()):
        responses[status] = {
            "model": ErrorEnvelope,
            "description": "Error: " + ", ".join(f"`{c}`" for c in examples),
            "content": {"application/json": {"examples": examples}},
        }
        if status in (429, 503):
            responses[status]["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer"},
                }
            }
    return responses

"""The HTTP face of the error tree: the one status table and the error envelope.

Every non-2xx response of the API is built here, in the shape of docs/api.md:
`{"error": {"type", "code", "message", "param", "request_id", ["checks"], ...}}`.
The status of an error, and the `type` that follows from it, come from the one
registry of codes (`service/codes.py`); nothing else in the API decides a status
for an error.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.schemas import ErrorEnvelope
from pipeline.errors import AvatarPrepError
from service.codes import CODES, TYPE_BY_STATUS, status_for
from service.errors import TryLater
from service.ids import new_id

# Every code an image can get, as a cheap check or a verdict: what a route that takes
# an image declares.
IMAGE_CODES = tuple(name for name, code in CODES.items() if code.verdict)

# Seconds a client should wait before retrying a 503 that carries no figure of its own.
DEFAULT_RETRY_AFTER = 5


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
    request.state.error_code = error["code"]  # for the request's log line (api/observe.py)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


async def handle_avatar_prep_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AvatarPrepError)
    status = status_for(exc)
    retry_after = exc.retry_after if isinstance(exc, TryLater) else None
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


# pydantic's words for what a client never sees (class names, regular expressions),
# by error type, and the forms a pattern allows, by pattern.
_PLAIN_MESSAGES = {
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
}
_PATTERN_FORMS = {
    r"^(wss?|https?)://\S+$": "a URL that starts with wss://, ws://, https:// or http://",
}


def _describe(error: dict[str, Any]) -> str:
    """One validation error as a sentence naming the field, the rule and what came in.
    pydantic's messages already name the allowed values ("Input should be 'daily' or
    'livekit'"); class names and patterns are put in words; the received input is
    added when it is short enough to quote."""
    where = _json_path(tuple(error.get("loc", ()))) or "body"
    kind = error.get("type", "")
    message = _PLAIN_MESSAGES.get(kind, error.get("msg", "invalid value"))
    if kind == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern", "")
        message = f"must be {_PATTERN_FORMS.get(pattern, 'in the documented form')}"
    text = f"{where}: {message}"
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
                    "type": entry.type,
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

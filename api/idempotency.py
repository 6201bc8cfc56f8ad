"""`Idempotency-Key` on every POST of /v1/ (service/idempotency.py has the rules).

A pure ASGI middleware inside the request-id one (a replay gets its own
`X-Request-Id`), around the routes. For a POST carrying the header it:

1. finds the account from the API key (a key that does not authenticate passes
   through: the route answers 401 and nothing is kept);
2. reads the body (at most the JSON upload cap; a larger one passes through and
   gets the route's 413) and fingerprints method, path, query, content type and
   body (a multipart body without its random boundary, so a client library that
   draws a new boundary for the same form still matches);
3. claims the key: the first use runs the route, and its answer is kept when it
   is below 500 and not 429 (a 5xx or a rate limit did nothing: the key is
   released so a retry runs again); a repeat with the same fingerprint gets the
   kept answer with `Idempotent-Replayed: true`; another fingerprint is
   `409 idempotency.key_reused`; a repeat while the first still runs polls for
   its answer for up to `idempotency_wait_seconds`, then `409
   idempotency.in_progress` with `Retry-After`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import anyio
from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import services_of, settings_of
from api.errors import CODES, error_response, error_responses, handle_avatar_prep_error
from api.uploads import body_limits
from pipeline.errors import AvatarPrepError
from service.errors import AuthenticationFailed, InvalidRequest
from service.idempotency import Claim, StoredResponse

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
_KEY = re.compile(rf"[\x21-\x7e]{{1,{MAX_KEY_LENGTH}}}")
# Polling for the first request's answer: one primary-key read each.
POLL_SECONDS = 0.1
IN_PROGRESS_RETRY_AFTER = 1
ERROR_CODES = ("idempotency.key_invalid", "idempotency.key_reused", "idempotency.in_progress")


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not str(scope["path"]).startswith("/v1/")
            or HEADER.lower().encode() not in dict(scope["headers"])
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = headers[HEADER]
        request = Request(scope)
        try:
            account_id = await self._account_id(request, headers)
            if account_id is None:
                await self.app(scope, receive, send)
                return
            if _KEY.fullmatch(key) is None:
                raise InvalidRequest(
                    f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters "
                    "(a UUID is a good key).",
                    code="idempotency.key_invalid",
                    param=HEADER,
                )
            limit = _body_limit(request)
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                await self.app(scope, receive, send)  # refused by the route (413) unread
                return
            body, complete = await _read_body(receive, limit)
            if not complete:
                await self.app(scope, _replaying(body, receive, more=True), send)
                return
            await self._run_once(scope, receive, send, account_id, key, body)
        except AvatarPrepError as exc:
            # Outside the routes' error handlers: the envelope is made here.
            await (await handle_avatar_prep_error(request, exc))(scope, receive, send)

    async def _account_id(self, request: Request, headers: Headers) -> str | None:
        api_key = headers.get("x-api-key")
        bearer = headers.get("authorization", "")
        if api_key is None and bearer.lower().startswith("bearer "):
            api_key = bearer[7:].strip()
        if not api_key:
            return None
        try:
            account = await run_in_threadpool(services_of(request).keys.authenticate, api_key)
        except AuthenticationFailed:
            return None
        return account.id

    async def _run_once(
        self, scope: Scope, receive: Receive, send: Send, account_id: str, key: str, body: bytes
    ) -> None:
        request = Request(scope)
        store = services_of(request).idempotency
        fingerprint = _fingerprint(scope, body)
        deadline = anyio.current_time() + settings_of(request).idempotency_wait_seconds
        while True:
            claim = await run_in_threadpool(store.claim, account_id, key, fingerprint)
            if claim is not Claim.IN_PROGRESS or anyio.current_time() >= deadline:
                break
            await anyio.sleep(POLL_SECONDS)
        if isinstance(claim, StoredResponse):
            await _replay(claim, send)
            return
        if claim is not Claim.RUN:
            await _refuse(request, claim, scope, receive, send)
            return
        kept: dict[str, Any] = {"status": 500, "headers": [], "body": []}

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept["status"] = message["status"]
                kept["headers"] = [
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in message["headers"]
                ]
            elif message["type"] == "http.response.body":
                kept["body"].append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, _replaying(body, receive), keep)
        except BaseException:
            await run_in_threadpool(store.release, account_id, key)
            raise
        status = int(kept["status"])
        if status >= 500 or status == 429:
            await run_in_threadpool(store.release, account_id, key)
            return
        response = StoredResponse(status, kept["headers"], b"".join(kept["body"]))
        await run_in_threadpool(store.complete, account_id, key, response)


def _body_limit(request: Request) -> int:
    """The largest body any POST accepts: a JSON upload's (base64 image)."""
    return max(body_limits(settings_of(request).pipeline.max_bytes))


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """(the body read, whether it is whole): reading stops once it is over `limit`
    (then the route reads the rest and refuses it)."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the route sees what came
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), False
        more = bool(message.get("more_body", False))
    return b"".join(chunks), True


def _replaying(body: bytes, receive: Receive, *, more: bool = False) -> Receive:
    """A `receive` that gives `body` first, then what the client still sends (`more`:
    the rest of the body; otherwise only the disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay


def _fingerprint(scope: Scope, body: bytes) -> str:
    """sha256 over what makes two requests the same one: method, path, query,
    media type and body (a multipart body without its boundary)."""
    content_type = Headers(scope=scope).get("content-type", "")
    media_type, _, params = content_type.partition(";")
    boundary = re.search(r'boundary="?([^";]+)"?', params)
    if boundary is not None:
        body = body.replace(boundary.group(1).encode("latin-1"), b"")
    digest = hashlib.sha256()
    for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode()):
        digest.update(part.encode() + b"\n")
    digest.update(media_type.strip().lower().encode() + b"\n")
    digest.update(body)
    return digest.hexdigest()


async def _replay(response: StoredResponse, send: Send) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((REPLAYED_HEADER.lower().encode(), b"true"))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def _refuse(
    request: Request, claim: Claim, scope: Scope, receive: Receive, send: Send
) -> None:
    if claim is Claim.KEY_REUSED:
        error = {
            "code": "idempotency.key_reused",
            "message": f"This {HEADER} was used with another request (a different path, query "
            "or body) in the last 24 h; use a new key for a new request.",
            "param": HEADER,
        }
        response = error_response(request, CODES[error["code"]].status, error)
    else:
        error = {
            "code": "idempotency.in_progress",
            "message": f"The first request with this {HEADER} is still running; retry after "
            f"{IN_PROGRESS_RETRY_AFTER} s to get its answer.",
            "param": HEADER,
        }
        response = error_response(
            request, CODES[error["code"]].status, error, retry_after=IN_PROGRESS_RETRY_AFTER
        )
    await response(scope, receive, send)


def document(schema: dict[str, Any]) -> None:
    """Declare the header, the replay marker and the three codes on every POST of
    /v1/ in the OpenAPI document (before the app adds `X-Request-Id`)."""
    parameter = {
        "name": HEADER,
        "in": "header",
        "required": False,
        "description": "Any unique string (a UUID) naming this request: a repeat within 24 h "
        "with the same body gets the first answer, marked `Idempotent-Replayed: true`.",
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
    }
    replayed = {
        "description": "`true` when this is the kept answer of an earlier request with the "
        "same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
    extra = error_responses(*ERROR_CODES)
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, item in schema.get("paths", {}).items():
        operation = item.get("post")
        if operation is None or not path.startswith("/v1/"):
            continue
        operation.setdefault("parameters", []).append(parameter)
        responses = operation.setdefault("responses", {})
        for status, response in responses.items():
            if str(status).startswith("2"):
                response.setdefault("headers", {})[REPLAYED_HEADER] = replayed
        for status, entry in extra.items():
            examples = entry["content"]["application/json"]["examples"]
            target = responses.setdefault(
                str(status),
                {"description": "Error: ", "content": {"application/json": {"schema": envelope}}},
            )
            content = target.setdefault("content", {}).setdefault(
                "application/json", {"schema": envelope}
            )
            content.setdefault("examples", {}).update(examples)
            known = target["description"].removeprefix("Error: ")
            target["description"] = "Error: " + ", ".join(
                [*([known] if known else []), *(f"`{c}`" for c in examples)]
            )

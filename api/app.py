"""The FastAPI application: `create_app(settings, services=None)`.

The lifespan makes the heavy things once per process: the work queue (only to
send work; `tasks.queue`), `Services` (registry, storage, AvatarService,
KeyService) and the rate limiter (its Redis client). Tests pass their own
`Services` (made with a fake queue) and the app then owns neither them nor a
broker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from api import (
    avatars,
    docs,
    idempotency,
    links,
    metrics,
    ops,
    page,
    sessions,
    validate,
    webhooks,
)
from api.errors import error_responses, install_error_handlers
from api.idempotency import IdempotencyMiddleware
from api.metrics import ApiMetrics
from api.observe import ObserveMiddleware
from api.ops import BrokerProbe
from api.quota_headers import QuotaHeadersMiddleware
from api.request_ids import RequestIdMiddleware
from pipeline.version import package_version
from service.notify import FinishListener
from service.ratelimit import make_limiter
from service.registry import utcnow
from service.runtime import Services
from service.settings import Settings
from tasks.queue import CeleryQueue

# The response headers a browser app may read besides the plain ones.
CORS_EXPOSED_HEADERS = [
    "X-Request-Id",
    "Location",
    "Retry-After",
    "ETag",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Idempotent-Replayed",
]

DESCRIPTION = """\
Upload a face photo; get back an aligned avatar in three framings (1:1, 4:3, 3:4),
or a precise rejection.

Authenticate with `X-API-Key: <key>` or `Authorization: Bearer <key>`. Every
response carries `X-Request-Id`. Every non-2xx response is the error envelope
`{"error": {"type", "code", "message", "param", "request_id", ...}}`; switch on
`code`.

Each key has a rate limit set by its account's plan: a sustained number of
requests per window (a minute by default), in bursts up to that number. Over it, requests get
`429 rate_limited` with `Retry-After` (seconds). When the queue of images
waiting for a worker is full, new uploads get `503 at_capacity` with
`Retry-After`, before anything is stored.
"""


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    *,
    broker_probe: BrokerProbe | None = None,
) -> FastAPI:
    """The API for `settings` (read from the environment when None: this is the
    uvicorn factory of `avatar-prep serve`, one call per server process).

    With `services` given (tests), the lifespan neither makes nor closes them,
    and `/readyz` checks the broker only through `broker_probe` when one is given."""
    app_settings = settings if settings is not None else Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = app_settings
        app.state.started_at = utcnow()  # /readyz counts a worker's absence from here
        limiter = app.state.limiter = make_limiter(app_settings)
        # Waiters (wait=, inline sessions) are told when their avatar finishes.
        finishes = app.state.finishes = FinishListener(app_settings)
        await finishes.start()
        try:
            if services is not None:
                app.state.services = services
                app.state.broker_ready = broker_probe
                yield
                return
            queue = CeleryQueue.from_settings(app_settings)
            made = await run_in_threadpool(
                lambda: Services.create(app_settings, queue, send_webhook=queue.send_webhook)
            )
            app.state.services = made
            app.state.broker_ready = queue.ping
            try:
                yield
            finally:
                await run_in_threadpool(made.close)
        finally:
            await finishes.close()
            await limiter.close()

    app = FastAPI(
        title="avatar-prep",
        version=package_version(),
        summary="Face upload and avatar preparation for realtime talking avatars.",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by api/docs.py with their assets from this app, not a CDN.
        docs_url=None,
        redoc_url=None,
        # Operation ids are the route functions' names in camelCase (`uploadFace`,
        # `createSession`), so generated clients get methods a person would have named.
        generate_unique_id_function=lambda route: _camel_case(route.name),
    )
    install_error_handlers(app)
    # Inside the request-id middleware: a replayed answer gets its own request id.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(QuotaHeadersMiddleware)
    # Added last, so it wraps the request-id middleware: it times the whole request.
    app.state.metrics = ApiMetrics.from_environment()
    app.add_middleware(ObserveMiddleware, metrics=app.state.metrics.http)
    if app_settings.cors_allowed_origins:
        # Outermost: a preflight is answered before authentication, which it cannot pass.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=app_settings.cors_allowed_origins,
            allow_methods=["GET", "HEAD", "POST", "DELETE"],
            allow_headers=["X-API-Key", "Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=600,
        )
    # Every route of these routers takes the key, so each can answer its rate limit.
    # Before the avatar routes: /v1/avatars/validate is not an avatar id.
    app.include_router(validate.router, responses=error_responses("rate_limited"))
    app.include_router(avatars.router, responses=error_responses("rate_limited"))
    app.include_router(sessions.router, responses=error_responses("rate_limited"))
    app.include_router(links.router, responses=error_responses("rate_limited"))
    app.include_router(webhooks.router, responses=error_responses("rate_limited"))
    app.include_router(links.signed_router)
    app.include_router(page.router)
    app.include_router(docs.router)
    app.include_router(ops.router)
    app.include_router(metrics.router)
    app.openapi = lambda: _openapi_document(app)  # type: ignore[method-assign]
    return app


def _openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus the `X-Request-Id` header on every response, minus
    FastAPI's default 422 schema: validation errors are the error envelope, and
    routes declare 422 themselves where a parameter can fail validation."""
    if app.openapi_schema is None:
        # FastAPI's own method, through the class: `app.openapi` is now this function.
        schema = FastAPI.openapi(app)
        header = {
            "description": "This request's id, `req_` + ULID; quote it in bug reports.",
            "schema": {"type": "string", "example": "req_01JD3Z8G9YR3K2N5M6P7Q8W4TX"},
        }
        idempotency.document(schema)
        _hoist_definitions(schema)
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                if _is_fastapi_default_422(responses.get("422")):
                    del responses["422"]
                for response in responses.values():
                    response.setdefault("headers", {})["X-Request-Id"] = header
                # In status order in /docs (router-wide entries such as 429 come first).
                operation["responses"] = dict(sorted(responses.items()))
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


def _camel_case(name: str) -> str:
    """`upload_face` -> `uploadFace`."""
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def _hoist_definitions(schema: dict[str, Any]) -> None:
    """Move the `$defs` of request bodies written as JSON schemas (the upload and
    session bodies, parsed by hand for their error messages) into the document's
    components, where their `#/components/schemas/...` references point."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                definitions = media.get("schema", {}).pop("$defs", {})
                for name, definition in definitions.items():
                    components.setdefault(name, definition)


def _is_fastapi_default_422(response: dict[str, Any] | None) -> bool:
    if response is None:
        return False
    ref = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
    return bool(ref == "#/components/schemas/HTTPValidationError")

"""What every request leaves behind: one JSON log line and its metrics samples.

A pure ASGI middleware, outermost but for Starlette's own error middleware, so
it times the whole request (body streaming included) and sees the status of
every response, the 500 envelope of an unexpected error too. The line:

    {"message": "request", "request_id": "req_...", "method": "POST",
     "route": "/v1/avatars/upload-face", "path": "/v1/avatars/upload-face",
     "status": 202, "duration_ms": 12.4, "account_id": "acct_...",
     "avatar_id": "avat_...", "session_id": null, ...}

Only these fields are written: never headers (the API key), the query string,
or the body (base64 images, room tokens). `account_id` and `avatar_id` come
from `request.state` (set by the key check in api/deps.py and by routes that
make an avatar) or from the path parameters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import UNMATCHED_ROUTE, HttpMetrics
from service.logs import log_event

logger = logging.getLogger("api.requests")

# nginx's status for a request whose client went away before the answer.
CLIENT_CLOSED = 499
# An unmatched path is logged for debugging, but a client cannot make lines huge.
MAX_LOGGED_PATH = 200


class ObserveMiddleware:
    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except asyncio.CancelledError:
            status = status or CLIENT_CLOSED
            raise
        except Exception:
            # Starlette's error middleware (outside this one) answers the 500.
            status = status or 500
            raise
        finally:
            self._record(scope, status or 500, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = route_template(scope)
        method = str(scope["method"])
        self.metrics.observe(method, route, status, seconds)
        state: dict[str, Any] = scope.get("state", {})
        params: dict[str, Any] = scope.get("path_params", {})
        log_event(
            logger,
            "request",
            request_id=state.get("request_id"),
            method=method,
            route=route,
            path=str(scope.get("path", ""))[:MAX_LOGGED_PATH],
            status=status,
            code=state.get("error_code"),
            duration_ms=round(seconds * 1000, 1),
            account_id=state.get("account_id"),
            avatar_id=state.get("avatar_id") or params.get("avatar_id"),
            session_id=state.get("session_id") or params.get("session_id"),
        )


def route_template(scope: Scope) -> str:
    """The matched route's path template, or `unmatched` (404s): never the raw path,
    so metrics labels stay few."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE

"""The base of the middlewares that add headers to every response: the request id
(api/request_ids.py) and the rate limit's quota (api/quota_headers.py).

A pure ASGI middleware (not `BaseHTTPMiddleware`, which buffers streaming bodies
and hides exceptions): it edits the headers of each HTTP response as the response
starts, and passes other scopes (the lifespan) through untouched.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Headers = list[tuple[bytes, bytes]]


class ResponseHeadersMiddleware:
    """Edits every HTTP response's headers with `edit_headers` as it starts, after
    `prepare` has readied the request's scope before the app runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.prepare(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self.edit_headers(scope, message.get("headers", []))
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def prepare(self, scope: Scope) -> None:
        """Ready the request's scope before the app runs; by default nothing."""

    def edit_headers(self, scope: Scope, headers: Headers) -> Headers:
        """The response's headers, given the request's scope and the headers the app
        set."""
        raise NotImplementedError

"""`X-Request-Id: req_<ULID>` on every response.

A pure ASGI middleware (not `BaseHTTPMiddleware`, which buffers streaming
bodies and hides exceptions): it makes the id before the app runs, puts it in
`request.state.request_id` for the error envelope, and adds the header as the
response starts. The id is always server-made; a client's own header is ignored
so ids stay unique and well-formed.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.ids import new_id


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_id("req")
        # The same scope dict reaches the 500 handler outside this middleware.
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)

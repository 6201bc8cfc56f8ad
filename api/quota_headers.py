"""`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` on every keyed
response (429 included), from the quota the key's rate limit left in
`request.state.quota` (api/deps.py), so a client can slow down before it is
refused. A pure ASGI middleware, as `RequestIdMiddleware` is."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.ratelimit import Quota


class QuotaHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_quota(message: Message) -> None:
            quota = scope.get("state", {}).get("quota")
            if message["type"] == "http.response.start" and isinstance(quota, Quota):
                extra = [(k.lower().encode(), v.encode()) for k, v in quota.headers().items()]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_quota)

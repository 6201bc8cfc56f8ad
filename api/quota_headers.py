"""`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` on every keyed
response (429 included), from the quota the key's rate limit left in
`request.state.quota` (api/deps.py), so a client can slow down before it is
refused. A pure ASGI middleware (api/response_headers.py), as
`RequestIdMiddleware` is."""

from __future__ import annotations

from starlette.types import Scope

from api.response_headers import Headers, ResponseHeadersMiddleware
from service.ratelimit import Quota


class QuotaHeadersMiddleware(ResponseHeadersMiddleware):
    def edit_headers(self, scope: Scope, headers: Headers) -> Headers:
        """The headers, plus the quota's when the request had one (a keyed route)."""
        quota = scope.get("state", {}).get("quota")
        if not isinstance(quota, Quota):
            return headers
        extra = [(k.lower().encode(), v.encode()) for k, v in quota.headers().items()]
        return [*headers, *extra]

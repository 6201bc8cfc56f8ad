"""`X-Request-Id: req_<ULID>` on every response.

A pure ASGI middleware (api/response_headers.py): it makes the id before the app
runs, puts it in `request.state.request_id` for the error envelope, and adds the
header as the response starts. The id is always server-made; a client's own
header is ignored so ids stay unique and well-formed.
"""

from __future__ import annotations

from starlette.types import Scope

from api.response_headers import Headers, ResponseHeadersMiddleware
from service.ids import new_id


class RequestIdMiddleware(ResponseHeadersMiddleware):
    def prepare(self, scope: Scope) -> None:
        """A new request id in the scope's state."""
        # The same scope dict reaches the 500 handler outside this middleware.
        scope.setdefault("state", {})["request_id"] = new_id("req")

    def edit_headers(self, scope: Scope, headers: Headers) -> Headers:
        """The headers with this request's id in place of any `X-Request-Id`."""
        request_id: str = scope["state"]["request_id"]
        kept = [(k, v) for k, v in headers if k != b"x-request-id"]
        return [*kept, (b"x-request-id", request_id.encode())]

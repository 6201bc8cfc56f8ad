"""What a route is given: the process's services and settings (made by the app's
lifespan), and the calling account.

The account comes from the API key in `X-API-Key` or `Authorization: Bearer`.
Both headers are declared as OpenAPI security schemes so /docs offers to fill
them in. The key is checked by `KeyService.authenticate` (a database read, so
in a worker thread); a missing or unknown key is 401 `authentication_error`.
Then the key's rate limit (its plan's, service/ratelimit.py) is counted: over
it, 429 `rate_limited` with `Retry-After`, before the route reads any body.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from service.errors import AuthenticationFailed, RateLimited
from service.keys import Account
from service.ratelimit import Quota, RateLimiter, limit_for, subject_for_key
from service.runtime import Services
from service.settings import Settings

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="ApiKey",
    description="The API key, as created by `avatar-prep keys create`.",
)
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="Bearer",
    description="The same API key as `Authorization: Bearer <key>`.",
)


def services_of(request: Request) -> Services:
    """The process's Services, made by the app's lifespan."""
    services: Services = request.app.state.services
    return services


def settings_of(request: Request) -> Settings:
    """The one Settings the app was made with."""
    settings: Settings = request.app.state.settings
    return settings


# The dependencies are async although they never wait: FastAPI runs a plain `def`
# dependency in a worker thread, a hand-off per request for an attribute lookup.
async def get_services(request: Request) -> Services:
    """The process's Services, made by the app's lifespan."""
    return services_of(request)


async def get_settings(request: Request) -> Settings:
    """The one Settings the app was made with."""
    return settings_of(request)


async def current_account(
    request: Request,
    api_key: Annotated[str | None, Security(api_key_header)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Account:
    key = api_key or (credentials.credentials if credentials else None)
    if not key:
        raise AuthenticationFailed(
            "No API key: send X-API-Key: <key> or Authorization: Bearer <key>.",
            code="auth.missing_key",
        )
    account: Account = await run_in_threadpool(services_of(request).keys.authenticate, key)
    # For the request's log line (api/observe.py).
    request.state.account_id = account.id
    limiter: RateLimiter = request.app.state.limiter
    limit = limit_for(settings_of(request), account.plan)
    # The quota goes to the RateLimit-* headers of this response (api/quota_headers.py).
    try:
        request.state.quota = await limiter.acquire(subject_for_key(key), limit)
    except RateLimited as refused:
        request.state.quota = Quota(limit.requests, 0, refused.retry_after)
        raise
    return account


AccountDep = Annotated[Account, Depends(current_account)]
ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

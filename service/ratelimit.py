"""Per-key rate limits: a sustained `requests` per `window_seconds`, per API key,
with bursts of up to `requests`.

The rule is GCRA (the generic cell rate algorithm: a token bucket of
`requests` tokens refilled at one per `interval` = window / requests, kept as
one number per key, its "theoretical arrival time" `tat`). A request at `now`
moves `tat` to `max(tat, now) + interval` and is allowed when that lands at
most one window ahead of `now`. So a quiet key may send `requests` at once,
then one per `interval`; between any two moments `a` and `b` a key gets at most
`requests + (b - a) / interval` requests through. A refused request does not
move `tat`, and the time until it would be allowed is its exact `Retry-After`.

Two stores, picked by `make_limiter` from the settings:

- `RedisLimiter` when the broker is Redis: one Lua script per request, so the
  read-modify-write is atomic and every API process (on any machine) shares
  the same buckets; times come from the Redis server's clock, so API hosts
  with skewed clocks agree.
- `InProcessLimiter` otherwise (the embedded defaults): a dict in the process.
  Each API process then counts on its own.

Buckets are named by a hash of the key (`subject_for_key`), never the key.
Both limiters are made once per API process (the app's lifespan) and used on
its event loop.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError

from service.errors import RateLimited
from service.settings import Plan, Settings

logger = logging.getLogger(__name__)

# A rate limit must never be what makes a request slow: a Redis that does not
# answer in this time lets the request through (see RedisLimiter.acquire).
REDIS_TIMEOUT_SECONDS = 0.5
# While Redis is unreachable, say so in the log at most this often.
REDIS_DOWN_LOG_INTERVAL_SECONDS = 60.0
KEY_PREFIX = "avatar-prep:rate:"
# The in-process store drops buckets that are back to full once it holds this many.
IN_PROCESS_PRUNE_AT = 10_000

# KEYS[1]: the bucket; ARGV[1]: interval in microseconds; ARGV[2]: window in
# microseconds. Returns {wait, backlog}: wait is 0 when allowed, else the
# microseconds until it would be; backlog is how far the bucket's `tat` lies
# ahead of now afterwards (what the quota headers are made from). Microseconds since the
# epoch (~1.7e15) are exact in a Lua double.
_GCRA_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - now - window
if wait > 0 then return {wait, tat - now} end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {0, new_tat - now}
"""


@dataclass(frozen=True)
class Limit:
    """A sustained `requests` per `window_seconds`, in bursts of up to `requests`."""

    requests: int
    window_seconds: float

    @property
    def interval_seconds(self) -> float:
        return self.window_seconds / self.requests


@dataclass(frozen=True)
class Quota:
    """Where a key stands after a request, for the RateLimit-* response headers:
    `limit` requests per window, `remaining` of them now, and `reset` whole seconds
    until the bucket is full again."""

    limit: int
    remaining: int
    reset: int

    @classmethod
    def after(cls, limit: Limit, backlog_seconds: float) -> Quota:
        """The quota when the bucket's `tat` lies `backlog_seconds` ahead of now."""
        room = limit.window_seconds - backlog_seconds
        remaining = max(0, math.floor(room / limit.interval_seconds + 1e-9))
        return cls(limit.requests, min(remaining, limit.requests), math.ceil(backlog_seconds))

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }


def limit_for(settings: Settings, plan: Plan) -> Limit:
    """The rate limit of a key on `plan`."""
    requests = (
        settings.rate_limit_requests_paid if plan == "paid" else settings.rate_limit_requests_free
    )
    return Limit(requests=requests, window_seconds=settings.rate_limit_window_seconds)


def subject_for_key(plain_key: str) -> str:
    """The bucket name of an API key: a hash with its own prefix, so neither the key
    nor the registry's key hash is ever stored in the limiter."""
    return hashlib.sha256(b"rate-limit:" + plain_key.encode()).hexdigest()[:32]


def rate_limited(retry_after_seconds: float, limit: Limit) -> RateLimited:
    """The 429 error for a request refused under `limit`; Retry-After in whole seconds,
    rounded up, at least 1."""
    retry_after = max(1, math.ceil(retry_after_seconds))
    return RateLimited(
        f"Too many requests for this key: the limit is {limit.requests} per "
        f"{limit.window_seconds:g} s; retry after {retry_after} s.",
        retry_after=retry_after,
    )


class RateLimiter(Protocol):
    async def acquire(self, subject: str, limit: Limit) -> Quota | None:
        """Count one request of `subject` and return its quota (None when it cannot
        be known); raise RateLimited when it is over `limit`."""

    async def close(self) -> None: ...


class InProcessLimiter:
    """GCRA buckets in a dict of this process. Called only from the event loop, and
    `acquire` does not await between reading and writing a bucket, so no lock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}

    async def acquire(self, subject: str, limit: Limit) -> Quota | None:
        now = self._clock()
        tat = max(self._tat.get(subject, now), now)
        new_tat = tat + limit.interval_seconds
        wait = new_tat - now - limit.window_seconds
        if wait > 0:
            raise rate_limited(wait, limit)
        self._tat[subject] = new_tat
        if len(self._tat) > IN_PROCESS_PRUNE_AT:
            self._tat = {s: t for s, t in self._tat.items() if t > now}
        return Quota.after(limit, new_tat - now)

    async def close(self) -> None:
        self._tat.clear()


class RedisLimiter:
    """GCRA buckets in Redis, shared by every API process using the same Redis.

    When Redis cannot be reached the request is let through (and that is logged,
    at most once a minute): refusing every request because the limiter's store is
    down would turn a broker outage into a full API outage, while uploads still
    succeed (rows wait `queued` for the sweeper) and /readyz reports the broker."""

    def __init__(self, url: str, timeout: float = REDIS_TIMEOUT_SECONDS) -> None:
        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        self._script = self._client.register_script(_GCRA_LUA)
        self._down_logged_at = -math.inf

    async def acquire(self, subject: str, limit: Limit) -> Quota | None:
        interval_us = max(1, round(limit.interval_seconds * 1_000_000))
        window_us = round(limit.window_seconds * 1_000_000)
        try:
            wait_us, backlog_us = await self._script(  # {wait, backlog}: see _GCRA_LUA
                keys=[KEY_PREFIX + subject], args=[interval_us, window_us]
            )
        except RedisError as exc:
            now = time.monotonic()
            if now - self._down_logged_at >= REDIS_DOWN_LOG_INTERVAL_SECONDS:
                self._down_logged_at = now
                logger.warning("rate limit not applied: Redis unreachable (%s)", type(exc).__name__)
            return None
        if int(wait_us) > 0:
            raise rate_limited(int(wait_us) / 1_000_000, limit)
        return Quota.after(limit, int(backlog_us) / 1_000_000)

    async def close(self) -> None:
        await self._client.aclose()


def make_limiter(settings: Settings) -> RateLimiter:
    """Redis buckets (shared by all API processes) at `rate_limit_redis_url`, or at
    the broker's URL when that is Redis and no URL of its own is set; else buckets in
    this process. Call once per API process, in its lifespan."""
    url = settings.rate_limit_redis_url
    if url is None and settings.broker_url.startswith(("redis://", "rediss://")):
        url = settings.broker_url
    return RedisLimiter(url) if url is not None else InProcessLimiter()

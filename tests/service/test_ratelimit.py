"""Per-key rate limits: the GCRA rule in process (a fake clock), and the same rule in
a real Redis shared by two limiters, as two API processes share it."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time

import pytest

from service.errors import RateLimited
from service.ratelimit import (
    KEY_PREFIX,
    InProcessLimiter,
    Limit,
    RedisLimiter,
    limit_for,
    make_limiter,
    subject_for_key,
)
from service.settings import Settings

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# The tests against a real Redis wait as long as it takes to answer: on a loaded
# machine a command (60 at once open up to 60 connections) can take longer than
# the 0.5 s after which the service lets a request through unchecked, which
# would count as allowed here (letting through is tested on its own below).
PATIENT = 30.0


async def allowed(limiter: InProcessLimiter | RedisLimiter, subject: str, limit: Limit) -> bool:
    try:
        await limiter.acquire(subject, limit)
    except RateLimited:
        return False
    return True


async def test_a_quiet_key_gets_its_whole_burst_then_one_per_interval() -> None:
    clock = Clock()
    limiter = InProcessLimiter(clock)
    limit = Limit(requests=5, window_seconds=10.0)  # one every 2 s
    assert [await allowed(limiter, "k", limit) for _ in range(6)] == [True] * 5 + [False]
    clock.now += 1.9
    assert not await allowed(limiter, "k", limit)
    clock.now += 0.1
    assert await allowed(limiter, "k", limit)
    assert not await allowed(limiter, "k", limit)


async def test_the_refusal_carries_the_wait_rounded_up_and_does_not_count() -> None:
    clock = Clock()
    limiter = InProcessLimiter(clock)
    limit = Limit(requests=2, window_seconds=5.0)  # one every 2.5 s
    await limiter.acquire("k", limit)
    await limiter.acquire("k", limit)
    for _ in range(10):  # refused requests must not push the next slot further away
        with pytest.raises(RateLimited) as info:
            await limiter.acquire("k", limit)
    assert info.value.code == "rate_limited"
    assert info.value.retry_after == 3  # 2.5 s, rounded up
    assert "2 per 5 s" in info.value.message
    clock.now += 2.5
    assert await allowed(limiter, "k", limit)


async def test_each_request_learns_what_remains_and_when_the_bucket_is_full() -> None:
    clock = Clock()
    limiter = InProcessLimiter(clock)
    limit = Limit(requests=4, window_seconds=60.0)  # one every 15 s
    quotas = [await limiter.acquire("k", limit) for _ in range(4)]
    assert [(q.limit, q.remaining, q.reset) for q in quotas if q] == [
        (4, 3, 15),
        (4, 2, 30),
        (4, 1, 45),
        (4, 0, 60),
    ]
    clock.now += 15.0  # one slot back
    quota = await limiter.acquire("k", limit)
    assert quota is not None and (quota.remaining, quota.reset) == (0, 60)
    assert quota.headers() == {
        "RateLimit-Limit": "4",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "60",
    }


async def test_keys_have_separate_buckets() -> None:
    limiter = InProcessLimiter(Clock())
    limit = Limit(requests=1, window_seconds=60.0)
    assert await allowed(limiter, "a", limit)
    assert not await allowed(limiter, "a", limit)
    assert await allowed(limiter, "b", limit)


async def test_no_stretch_of_time_lets_more_through_than_the_bucket_allows() -> None:
    """Random arrivals above the allowed rate: between any two granted requests at
    `a` and `b`, at most `requests + (b - a) / interval` were let through (the
    token bucket's promise), and the long-run rate is the allowed one, not less."""
    rng = random.Random(7)
    clock = Clock()
    limiter = InProcessLimiter(clock)
    limit = Limit(requests=7, window_seconds=3.0)
    granted: list[float] = []
    for _ in range(1500):
        clock.now += rng.expovariate(4.0)  # about 4 per second, above the 7 per 3 s allowed
        if await allowed(limiter, "k", limit):
            granted.append(clock.now)
    for i, a in enumerate(granted):
        for j in range(i, len(granted)):
            bound = limit.requests + (granted[j] - a) / limit.interval_seconds
            assert j - i + 1 <= bound + 1e-9
    span = granted[-1] - granted[0]
    assert len(granted) >= span / limit.interval_seconds * 0.95


def test_buckets_are_named_by_a_hash_that_is_neither_the_key_nor_its_stored_hash() -> None:
    key = "ak_live_" + "x" * 43
    subject = subject_for_key(key)
    assert key not in subject and "x" * 8 not in subject
    assert subject != hashlib.sha256(key.encode()).hexdigest()[: len(subject)]
    assert subject == subject_for_key(key) != subject_for_key(key + "y")


def test_each_plan_has_its_own_limit() -> None:
    settings = Settings(
        rate_limit_requests_free=10, rate_limit_requests_paid=100, rate_limit_window_seconds=30
    )
    assert limit_for(settings, "free") == Limit(10, 30.0)
    assert limit_for(settings, "paid") == Limit(100, 30.0)


def test_redis_is_used_exactly_when_it_is_the_broker() -> None:
    assert isinstance(make_limiter(Settings()), InProcessLimiter)
    assert isinstance(make_limiter(Settings(broker_url="redis://127.0.0.1:6379/3")), RedisLimiter)


def test_a_redis_of_its_own_shares_the_buckets_whatever_the_broker() -> None:
    rabbit = "amqp://guest:guest@127.0.0.1:5672//"
    assert isinstance(make_limiter(Settings(broker_url=rabbit)), InProcessLimiter)
    own = Settings(broker_url=rabbit, rate_limit_redis_url="redis://127.0.0.1:6379/4")
    assert isinstance(make_limiter(own), RedisLimiter)


# --- Redis -------------------------------------------------------------------


@pytest.mark.integration
async def test_two_limiters_on_one_redis_share_each_bucket(redis_url: str) -> None:
    first, second = RedisLimiter(redis_url, PATIENT), RedisLimiter(redis_url, PATIENT)
    limit = Limit(requests=4, window_seconds=60.0)
    subject = f"shared-{time.time_ns()}"
    try:
        results = [await allowed(lim, subject, limit) for lim in (first, second) * 3]
        assert results == [True, True, True, True, False, False]
        # Both see one bucket's quota: the next key's first request leaves 3 of 4.
        quota = await second.acquire(f"quota-{subject}", limit)
        assert quota is not None and (quota.limit, quota.remaining) == (4, 3)
        assert 14 <= quota.reset <= 15
        with pytest.raises(RateLimited) as info:
            await first.acquire(subject, limit)
        assert info.value.retry_after == 15  # one slot every 60 / 4 s
        assert await allowed(second, f"other-{subject}", limit)
    finally:
        await first.close()
        await second.close()


@pytest.mark.integration
async def test_concurrent_requests_never_exceed_the_limit(redis_url: str) -> None:
    """The check and the update are one Lua script: 60 requests at once from two
    clients, 25 allowed, not one more."""
    limiters = [RedisLimiter(redis_url, PATIENT), RedisLimiter(redis_url, PATIENT)]
    limit = Limit(requests=25, window_seconds=60.0)
    subject = f"race-{time.time_ns()}"
    try:
        results = await asyncio.gather(
            *(allowed(limiters[i % 2], subject, limit) for i in range(60))
        )
        assert sum(results) == 25
    finally:
        for limiter in limiters:
            await limiter.close()


@pytest.mark.integration
async def test_a_bucket_refills_and_its_key_expires_in_redis(redis_url: str) -> None:
    import redis

    limiter = RedisLimiter(redis_url, PATIENT)
    limit = Limit(requests=1, window_seconds=1.0)
    subject = f"refill-{time.time_ns()}"
    client = redis.Redis.from_url(redis_url)
    try:
        await limiter.acquire(subject, limit)
        ttl_ms = client.pttl(KEY_PREFIX + subject)
        assert 0 < ttl_ms <= 1000  # nothing is kept longer than the bucket needs
        with pytest.raises(RateLimited) as info:
            await limiter.acquire(subject, limit)
        assert info.value.retry_after == 1
        await asyncio.sleep(info.value.retry_after)
        assert await allowed(limiter, subject, limit)
    finally:
        client.close()
        await limiter.close()


async def test_an_unreachable_redis_lets_requests_through() -> None:
    # Port 9 (discard) is closed on test machines: the connection is refused at once.
    limiter = RedisLimiter("redis://127.0.0.1:9/0")
    try:
        assert all([await allowed(limiter, "k", Limit(1, 60.0)) for _ in range(3)])
    finally:
        await limiter.close()

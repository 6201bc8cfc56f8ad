"""Finished avatars, told rather than polled for: whoever waits for an avatar's
verdict (`wait=` uploads, inline sessions) wakes when a worker finishes it.

One mechanism per deployment, chosen by `notify_backend` (`auto`: the first that
applies):

- `redis`: Redis pub/sub, on `rate_limit_redis_url` or the broker's URL when the
  broker is Redis. A worker publishes the ids a transaction finished once it
  commits. Preferred over PostgreSQL because a PostgreSQL NOTIFY serialises the
  commits of every transaction that sends one.
- `postgres`: LISTEN/NOTIFY when the registry is PostgreSQL. The NOTIFY is sent
  inside the finishing transaction, so it is delivered exactly when it commits.
- `poll`: nothing is told; waiters re-read the avatar on a short, growing
  interval (the embedded defaults: SQLite and the filesystem broker).

The publishing half (`Announcer`, one per process, in `Services`) hangs on the
registry's transactions: `lifecycle.finish_avatar` marks the ids with
`finished(session, avatar_id)`, the only thing the state machine does here. The
waiting half (`FinishListener`, one per API process, in the app's lifespan) keeps
one subscription open and wakes the waiters of the ids it hears.

A notification can be lost (a worker that dies between commit and publish, a
dropped connection): a waiter told nothing still re-reads the avatar every
`notify_fallback_seconds`, and re-reads at once whenever the listener
reconnects, so a lost notice makes a wait late, never endless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal

import redis
import redis.asyncio as aioredis
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from service.domain import Avatar
from service.registry import Registry
from service.settings import Settings

logger = logging.getLogger(__name__)

Backend = Literal["redis", "postgres", "poll"]

REDIS_CHANNEL = "avatar-prep:avatars:finished"
POSTGRES_CHANNEL = "avatar_prep_avatars_finished"
# session.info key: ids this transaction finished.
_FINISHED = "notify.finished"
# A publish must never hold up a worker: a Redis that does not answer in this time
# is skipped (the waiters' fallback re-read finds the avatar).
PUBLISH_TIMEOUT_SECONDS = 0.5
# After a dropped subscription, wait this long before connecting again.
RECONNECT_SECONDS = 1.0
# Ids heard recently, so a waiter that starts watching just after its avatar's
# notification arrived is still woken (the id is known once create has returned,
# a few milliseconds after the row is queued; a worker needs far longer).
RECENT_IDS = 4096
# Re-reading while nothing can be told (poll backend, or the listener not connected):
# a verdict usually takes 0.1-0.5 s, so often at first, then backing off.
POLL_FIRST_SECONDS = 0.02
POLL_GROWTH = 1.2
POLL_MAX_SECONDS = 0.25


def redis_url(settings: Settings) -> str | None:
    """The Redis the service may use besides the broker: `rate_limit_redis_url`, or
    the broker's URL when the broker is Redis; None when there is none."""
    if settings.rate_limit_redis_url is not None:
        return settings.rate_limit_redis_url
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return None


def choose_backend(settings: Settings) -> Backend:
    """The mechanism `settings` ask for, `auto` resolved: Redis when there is one,
    else PostgreSQL when it is the registry, else polling."""
    if settings.notify_backend != "auto":
        return settings.notify_backend
    if redis_url(settings) is not None:
        return "redis"
    if settings.database_url.startswith("postgresql"):
        return "postgres"
    return "poll"


def finished(session: Session, avatar_id: str) -> None:
    """Mark `avatar_id` as finished by the transaction of `session`: the process's
    Announcer tells the waiters when (and only if) it commits."""
    session.info.setdefault(_FINISHED, []).append(avatar_id)


# --- publishing (every service process) -------------------------------------------


class Announcer:
    """Tells the waiters of the avatars each committed transaction finished, on this
    process's registry. Made once per process; `close()` at its end."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.backend = choose_backend(settings)
        self._redis: redis.Redis | None = None
        factory = registry.session_factory
        if self.backend == "redis":
            url = redis_url(settings)
            if url is None:
                raise ValueError("notify_backend is redis but no Redis URL is set")
            self._redis = redis.Redis.from_url(
                url,
                socket_connect_timeout=PUBLISH_TIMEOUT_SECONDS,
                socket_timeout=PUBLISH_TIMEOUT_SECONDS,
            )
            event.listen(factory, "after_commit", self._publish_committed)
        elif self.backend == "postgres":
            event.listen(factory, "before_commit", self._notify_in_transaction)
        else:  # poll: nothing to tell; the marks die with the session
            pass

    def _notify_in_transaction(self, session: Session) -> None:
        # Inside the transaction: PostgreSQL delivers it at commit, or never.
        for avatar_id in session.info.pop(_FINISHED, []):
            session.execute(
                text("SELECT pg_notify(:channel, :id)"),
                {"channel": POSTGRES_CHANNEL, "id": avatar_id},
            )

    def _publish_committed(self, session: Session) -> None:
        for avatar_id in session.info.pop(_FINISHED, []):
            self.publish(avatar_id)

    def publish(self, avatar_id: str) -> bool:
        """Tell the waiters `avatar_id` finished (Redis only; the other backends tell
        through the transaction, or not at all). False when Redis did not take it:
        logged, and the waiters' fallback re-read finds the avatar."""
        if self._redis is None:
            return False
        try:
            self._redis.publish(REDIS_CHANNEL, avatar_id)
        except redis.RedisError as exc:
            logger.warning("avatar %s finished but not announced (%s)", avatar_id, exc)
            return False
        return True

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


# --- waiting (API processes) --------------------------------------------------------


class Watch:
    """One waiter's view of one avatar: `wait(timeout)` returns True when told the
    avatar finished (or that notifications may have been missed), False after
    `timeout` seconds."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        if not self._event.is_set():
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            except TimeoutError:
                return False
        self._event.clear()
        return True


class FinishListener:
    """One subscription per API process to the finished ids; wakes the `watch`es
    of the ids it hears. `start()` in the app's lifespan, `close()` at its end.
    With the poll backend it listens to nothing and `connected` stays False."""

    def __init__(self, settings: Settings) -> None:
        self.backend = choose_backend(settings)
        self.fallback_seconds = settings.notify_fallback_seconds
        self._settings = settings
        self._watches: dict[str, set[Watch]] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self.connected = False

    async def start(self) -> None:
        """Start listening (in the background: a server that is down now is retried)."""
        if self.backend == "redis":
            self._task = asyncio.create_task(self._run(self._listen_redis))
        elif self.backend == "postgres":
            self._task = asyncio.create_task(self._run(self._listen_postgres))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.connected = False

    @contextmanager
    def watch(self, avatar_id: str) -> Iterator[Watch]:
        """Be woken when `avatar_id` finishes, for the block's length. Already woken
        when its notification arrived shortly before."""
        one = Watch()
        self._watches.setdefault(avatar_id, set()).add(one)
        if avatar_id in self._recent:
            one.wake()
        try:
            yield one
        finally:
            watches = self._watches.get(avatar_id)
            if watches is not None:
                watches.discard(one)
                if not watches:
                    del self._watches[avatar_id]

    def heard(self, avatar_id: str) -> None:
        """`avatar_id` finished: wake its waiters (and remember it for a while)."""
        self._recent[avatar_id] = None
        if len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)
        for one in self._watches.get(avatar_id, ()):
            one.wake()

    def has_heard(self, avatar_id: str) -> bool:
        """Whether `avatar_id` was announced finished lately (the last RECENT_IDS)."""
        return avatar_id in self._recent

    def _wake_all(self) -> None:
        # (Re)connected: anything may have finished unheard meanwhile.
        for watches in self._watches.values():
            for one in watches:
                one.wake()

    async def _run(self, listen: Callable[[], AsyncIterator[str]]) -> None:
        """Listen until cancelled, reconnecting after a dropped connection."""
        while True:
            try:
                async for avatar_id in listen():
                    self.heard(avatar_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the driver's own errors: retried, never fatal
                if self.connected:
                    logger.warning("finish notifications lost (%s); reconnecting", exc)
            self.connected = False
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _listen_redis(self) -> AsyncIterator[str]:
        url = redis_url(self._settings)
        assert url is not None  # choose_backend said redis
        client = aioredis.Redis.from_url(url, socket_connect_timeout=3.0)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(REDIS_CHANNEL)
            self._connected_now()
            async for message in pubsub.listen():
                if message["type"] == "message":
                    yield _text(message["data"])
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
                await client.aclose()

    async def _listen_postgres(self) -> AsyncIterator[str]:
        import psycopg  # only where PostgreSQL is the registry

        url = make_url(self._settings.database_url).set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        connection = await psycopg.AsyncConnection.connect(
            conninfo,
            autocommit=True,
            connect_timeout=max(1, round(self._settings.database_connect_timeout_seconds)),
        )
        try:
            await connection.execute(f"LISTEN {POSTGRES_CHANNEL}")
            self._connected_now()
            async for notify in connection.notifies():
                yield notify.payload
        finally:
            with contextlib.suppress(Exception):
                await connection.close()

    def _connected_now(self) -> None:
        self.connected = True
        self._wake_all()


def _text(data: Any) -> str:
    return data.decode() if isinstance(data, bytes) else str(data)


@asynccontextmanager
async def listening(settings: Settings) -> AsyncIterator[FinishListener]:
    """A started FinishListener for `settings`, closed at the block's end."""
    listener = FinishListener(settings)
    await listener.start()
    try:
        yield listener
    finally:
        await listener.close()


async def wait_until_finished(
    listener: FinishListener,
    avatar: Avatar,
    read: Callable[[], Awaitable[Avatar]],
    timeout: float,
    *,
    gone: Callable[[], Awaitable[bool]] | None = None,
) -> Avatar:
    """`avatar` re-read with `read()` until it is ready or
    failed, `timeout` seconds pass, or `gone()` (the client left) says so. Re-reads
    when told it finished, else every `fallback_seconds` while the listener is
    connected (a lost notification costs that much), else on the polling
    schedule."""
    deadline = time.monotonic() + timeout
    delay = POLL_FIRST_SECONDS
    with listener.watch(avatar.id) as watch:
        while not avatar.status.finished:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (gone is not None and await gone()):
                break
            if listener.connected:
                await watch.wait(min(listener.fallback_seconds, remaining))
            else:
                await watch.wait(min(delay, remaining))
                delay = min(delay * POLL_GROWTH, POLL_MAX_SECONDS)
            avatar = await read()
    return avatar

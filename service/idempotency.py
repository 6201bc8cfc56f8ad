"""Idempotency keys: a POST sent again with the same `Idempotency-Key` gets the
first one's answer instead of doing the work twice (Stripe's semantics).

A key belongs to one account and lives `idempotency_ttl_seconds` (24 h) from its
first use. Its row holds the first request's fingerprint (sha256 of method, path,
query, content type and body) and, once answered, the response (status, headers,
body). A repeat with the same fingerprint replays that response; another
fingerprint is `409 idempotency.key_reused`. The first use of a key is an INSERT
on the (account, key) primary key, so of concurrent first uses exactly one runs
the request on SQLite and PostgreSQL alike; the others wait for its answer
(api/idempotency.py). A key still in progress after `idempotency_stale_seconds`
belongs to a request whose process died: the next repeat takes it over and runs.

Only the client's key's sha256 is stored. The replayed response is stored as
sent, so a creation answer's one-time secret (a session's `session_token`, a
webhook endpoint's `secret`) is kept here for the key's 24 hours: that is what lets
a client that lost the first answer get it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError

from service.registry import IdempotencyKeyRow, Registry, utcnow
from service.settings import Settings

# Tries of claim-or-read when the row vanishes between the two (expired and swept).
_CLAIM_TRIES = 3


class KeyState(StrEnum):
    IN_PROGRESS = "in_progress"
    DONE = "done"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class Claim(StrEnum):
    """What a use of a key may do: run the request, or it must not."""

    RUN = "run"  # this request is the key's first (or takes over a dead one's)
    KEY_REUSED = "key_reused"  # the key was first used with another request
    IN_PROGRESS = "in_progress"  # the first request with this key is still running


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, settings: Settings, registry: Registry) -> None:
        self._settings = settings
        self._registry = registry

    def claim(self, account_id: str, key: str, fingerprint: str) -> Claim | StoredResponse:
        """Start using `key` for a request with `fingerprint`: `Claim.RUN` (run it,
        then `complete` or `release`), the first answer to replay, or why not."""
        digest = key_hash(key)
        for _ in range(_CLAIM_TRIES):
            now = utcnow()
            try:
                with self._registry.transaction() as session:
                    session.add(
                        IdempotencyKeyRow(
                            account_id=account_id,
                            key_hash=digest,
                            fingerprint=fingerprint,
                            status=KeyState.IN_PROGRESS,
                            created_at=now,
                            expires_at=now
                            + timedelta(seconds=self._settings.idempotency_ttl_seconds),
                        )
                    )
                return Claim.RUN
            except IntegrityError:
                pass  # used before: read what it holds
            with self._registry.transaction() as session:
                row = session.get(IdempotencyKeyRow, (account_id, digest))
                if row is None:
                    continue  # released or swept meanwhile: claim again
                if row.expires_at <= now:
                    session.delete(row)
                    continue
                if row.fingerprint != fingerprint:
                    return Claim.KEY_REUSED
                if row.status == KeyState.DONE:
                    return StoredResponse(
                        status=row.response_status or 200,
                        headers=[(k, v) for k, v in row.response_headers or []],
                        body=row.response_body or b"",
                    )
                stale = now - timedelta(seconds=self._settings.idempotency_stale_seconds)
                if row.created_at < stale and self._take_over(account_id, digest, stale):
                    return Claim.RUN
                return Claim.IN_PROGRESS
        return Claim.IN_PROGRESS

    def _take_over(self, account_id: str, digest: str, stale: datetime) -> bool:
        """Restart the key of a request in progress since before `stale` (its process
        died); of several repeats, the one whose UPDATE runs first wins."""
        with self._registry.transaction() as session:
            result = session.execute(
                update(IdempotencyKeyRow)
                .where(
                    IdempotencyKeyRow.account_id == account_id,
                    IdempotencyKeyRow.key_hash == digest,
                    IdempotencyKeyRow.status == KeyState.IN_PROGRESS,
                    IdempotencyKeyRow.created_at < stale,
                )
                .values(created_at=utcnow())
            )
            assert isinstance(result, CursorResult)
            return result.rowcount == 1

    def complete(self, account_id: str, key: str, response: StoredResponse) -> None:
        """Keep the answer of the request that claimed `key`, for its repeats."""
        with self._registry.transaction() as session:
            session.execute(
                update(IdempotencyKeyRow)
                .where(
                    IdempotencyKeyRow.account_id == account_id,
                    IdempotencyKeyRow.key_hash == key_hash(key),
                )
                .values(
                    status=KeyState.DONE,
                    response_status=response.status,
                    response_headers=[list(h) for h in response.headers],
                    response_body=response.body,
                )
            )

    def release(self, account_id: str, key: str) -> None:
        """Forget a key whose request is not to be replayed (it failed on our side or
        was refused before doing anything): a repeat runs it again."""
        with self._registry.transaction() as session:
            session.execute(
                delete(IdempotencyKeyRow).where(
                    IdempotencyKeyRow.account_id == account_id,
                    IdempotencyKeyRow.key_hash == key_hash(key),
                    IdempotencyKeyRow.status == KeyState.IN_PROGRESS,
                )
            )

    def delete_expired(self) -> int:
        """Remove keys past their life (the sweeper runs this); how many."""
        with self._registry.transaction() as session:
            result = session.execute(
                delete(IdempotencyKeyRow).where(IdempotencyKeyRow.expires_at <= utcnow())
            )
            assert isinstance(result, CursorResult)
            return result.rowcount

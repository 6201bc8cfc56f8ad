"""The idempotency key store on SQLite and PostgreSQL: one claim wins, a repeat
gets the kept answer, another request with the key is refused, keys are per
account, a dead request's key is taken over, expired keys go. Concurrent
requests through the real API are in tests/integration/test_idempotency_http.py."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import update

from service.idempotency import Claim, StoredResponse, key_hash
from service.registry import IdempotencyKeyRow, upgrade, utcnow
from service.runtime import Services
from service.settings import Settings
from tests.service.conftest import FakeBroker, account

ANSWER = StoredResponse(201, [("content-type", "application/json")], b'{"id":"sess_1"}')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def services(request: pytest.FixtureRequest, local_settings: Settings) -> Iterator[Services]:
    if request.param == "sqlite":
        settings = local_settings
        upgrade(settings)
    else:
        settings = request.getfixturevalue("service_settings")
    made = Services.create(settings, FakeBroker())
    yield made
    made.close()


def test_of_concurrent_first_uses_exactly_one_runs(services: Services) -> None:
    a = account(services, f"idem-race-{id(services)}")
    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(lambda _: services.idempotency.claim(a, "k", "f"), range(8)))
    assert claims.count(Claim.RUN) == 1
    assert claims.count(Claim.IN_PROGRESS) == 7


def test_the_answer_is_replayed_and_another_request_is_refused(services: Services) -> None:
    a = account(services, f"idem-replay-{id(services)}")
    b = account(services, f"idem-other-{id(services)}")
    store = services.idempotency
    assert store.claim(a, "key-1", "same") is Claim.RUN
    assert store.claim(a, "key-1", "other") is Claim.KEY_REUSED
    store.complete(a, "key-1", ANSWER)
    assert store.claim(a, "key-1", "same") == ANSWER
    assert store.claim(a, "key-1", "other") is Claim.KEY_REUSED
    # Keys belong to an account: the same key elsewhere is a new key.
    assert store.claim(b, "key-1", "other") is Claim.RUN


def test_a_released_key_runs_again(services: Services) -> None:
    a = account(services, f"idem-release-{id(services)}")
    assert services.idempotency.claim(a, "k", "f") is Claim.RUN
    services.idempotency.release(a, "k")
    assert services.idempotency.claim(a, "k", "f") is Claim.RUN


def test_a_key_in_progress_too_long_is_taken_over(services: Services) -> None:
    a = account(services, f"idem-stale-{id(services)}")
    store = services.idempotency
    assert store.claim(a, "k", "f") is Claim.RUN
    stale = utcnow() - timedelta(seconds=services.settings.idempotency_stale_seconds + 1)
    _set(services, a, created_at=stale)
    assert store.claim(a, "k", "f") is Claim.RUN
    assert store.claim(a, "k", "f") is Claim.IN_PROGRESS  # taken over just now


def test_expired_keys_run_again_and_are_swept(services: Services) -> None:
    a = account(services, f"idem-expired-{id(services)}")
    store = services.idempotency
    for key in ("old-1", "old-2", "young"):
        assert store.claim(a, key, "f") is Claim.RUN
        store.complete(a, key, ANSWER)
    _set(services, a, expires_at=utcnow() - timedelta(seconds=1), key_filter=("old-1", "old-2"))
    assert store.claim(a, "old-1", "another body") is Claim.RUN  # expired: a new key
    assert store.delete_expired() == 1  # old-2; old-1 lives again, young is young
    assert store.claim(a, "young", "f") == ANSWER


def _set(
    services: Services, account_id: str, key_filter: tuple[str, ...] = (), **values: object
) -> None:
    query = update(IdempotencyKeyRow).where(IdempotencyKeyRow.account_id == account_id)
    if key_filter:
        query = query.where(IdempotencyKeyRow.key_hash.in_([key_hash(k) for k in key_filter]))
    with services.registry.transaction() as session:
        session.execute(query.values(**values))

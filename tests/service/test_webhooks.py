"""Webhooks in the service layer, on the embedded defaults (SQLite) and a real
receiver on loopback: the outbox rows an event writes (and for whom), one
delivery attempt and its record, the backoff, the URL rules at registration and
again at delivery. The whole path through a real worker and real HTTP is
tests/integration/test_webhooks_http.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from standardwebhooks import Webhook

from pipeline.version import package_version
from service.errors import InvalidRequest
from service.queue import BrokerUnavailable
from service.registry import (
    WebhookDeliveryRow,
    WebhookEndpointRow,
    WebhookEventRow,
    upgrade,
    utcnow,
)
from service.runtime import Services
from service.settings import Settings
from service.webhook_post import new_secret, sign
from service.webhooks import EventType, backoff_seconds, record_event
from tests.service.conftest import FakeBroker, account
from tests.webhook_receiver import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def open_services(settings: Settings, sent: list[str] | None = None) -> Services:
    upgrade(settings)
    return Services.create(
        settings, FakeBroker(), send_webhook=sent.append if sent is not None else None
    )


@pytest.fixture
def services(local_settings: Settings) -> Iterator[Services]:
    """Loopback receivers allowed; a retry a minute after the first failure, which
    tests bring forward with `_make_due` rather than wait for (a sub-second backoff
    could pass during one slow commit on a loaded machine)."""
    settings = local_settings.model_copy(
        update={"allow_loopback_urls": True, "webhook_backoff_seconds": 60}
    )
    made = open_services(settings)
    yield made
    made.close()


def test_the_signature_is_what_a_standard_webhooks_verifier_accepts() -> None:
    secret = new_secret()
    body = b'{"id":"evt_1","type":"avatar.ready","data":{"name":"Zo\xc3\xab"}}'
    now = int(time.time())
    headers = {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(secret, "evt_1", now, body),
    }
    assert Webhook(secret).verify(body, headers)["data"]["name"] == "Zoë"
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(body, headers)


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    settings = Settings(webhook_backoff_seconds=30, webhook_backoff_max_seconds=300)
    assert [backoff_seconds(n, settings) for n in range(1, 7)] == [30, 60, 120, 240, 300, 300]


def test_an_event_is_written_for_the_subscribed_endpoints_of_its_account_only(
    local_settings: Settings,
) -> None:
    sent: list[str] = []
    services = open_services(local_settings.model_copy(update={"allow_loopback_urls": True}), sent)
    try:
        a, b = account(services, "hooks-a"), account(services, "hooks-b")
        all_of_a = services.webhooks.create_endpoint(a, "http://127.0.0.1:9/a-all")
        services.webhooks.create_endpoint(
            a, "http://127.0.0.1:9/a-sessions", events=[EventType.SESSION_STARTED]
        )
        services.webhooks.create_endpoint(b, "http://127.0.0.1:9/b")
        with services.registry.transaction() as session:
            record_event(session, a, EventType.AVATAR_READY, {"id": "avat_x"})
        with services.registry.transaction() as session:
            rows = session.execute(
                select(WebhookDeliveryRow.id, WebhookDeliveryRow.endpoint_id)
            ).all()
            (event,) = session.scalars(select(WebhookEventRow)).all()
        # One delivery, to A's endpoint that takes every type; handed off after commit.
        assert [r.endpoint_id for r in rows] == [all_of_a.id]
        assert sent == [rows[0].id]
        assert event.account_id == a and event.type == EventType.AVATAR_READY
        # A transaction that rolls back leaves no event and sends nothing.
        with pytest.raises(RuntimeError), services.registry.transaction() as session:
            record_event(session, a, EventType.AVATAR_FAILED, {"id": "avat_y"})
            raise RuntimeError("the finishing transaction failed")
        with services.registry.transaction() as session:
            assert len(session.scalars(select(WebhookEventRow)).all()) == 1
        assert len(sent) == 1
    finally:
        services.close()


def test_a_failed_attempt_is_recorded_and_retried_after_its_backoff(
    services: Services, receiver: WebhookReceiver
) -> None:
    a = account(services, "hooks-retry")
    endpoint = services.webhooks.create_endpoint(a, receiver.url("/hook"))
    receiver.answer("/hook", 500)
    with services.registry.transaction() as session:
        record_event(session, a, EventType.AVATAR_READY, {"id": "avat_r"})
    (delivery_id,) = _delivery_ids(services)

    services.webhooks.deliver(delivery_id)
    first = services.webhooks.get_endpoint(a, endpoint.id).recent_deliveries[0]
    assert first.status == "pending" and first.attempts == 1
    assert first.last_error == "HTTP 500."
    assert first.next_attempt_at > first.last_attempt_at
    # Not due yet: a second hand-off (the dispatcher, a redelivery) does nothing.
    services.webhooks.deliver(delivery_id)
    assert len(receiver.at("/hook")) == 1

    _make_due(services)
    assert services.webhooks.dispatch() == 0  # no sender in this process: nothing queued
    services.webhooks.deliver(delivery_id)
    done = services.webhooks.get_endpoint(a, endpoint.id).recent_deliveries[0]
    assert done.status == "delivered" and done.attempts == 2
    assert done.last_error is None and done.next_attempt_at is None
    one, two = receiver.at("/hook")
    assert (one.answered, two.answered) == (500, 200)
    assert one.headers["webhook-id"] == two.headers["webhook-id"] == one.event["id"]
    assert one.headers["User-Agent"] == f"avatar-prep/{package_version()} (webhooks)"
    assert two.verified(endpoint.secret)["data"] == {"id": "avat_r"}


def test_the_last_failed_attempt_exhausts_the_delivery(
    local_settings: Settings, receiver: WebhookReceiver
) -> None:
    settings = local_settings.model_copy(
        update={"allow_loopback_urls": True, "webhook_max_attempts": 2}
    )
    services = open_services(settings)
    try:
        a = account(services, "hooks-exhaust")
        endpoint = services.webhooks.create_endpoint(a, receiver.url("/down"))
        receiver.answer("/down", 503, 502)
        with services.registry.transaction() as session:
            record_event(session, a, EventType.SESSION_ENDED, {"id": "sess_x"})
        (delivery_id,) = _delivery_ids(services)
        services.webhooks.deliver(delivery_id)
        _make_due(services)
        services.webhooks.deliver(delivery_id)
        (record,) = services.webhooks.get_endpoint(a, endpoint.id).recent_deliveries
        assert record.status == "exhausted" and record.attempts == 2
        assert record.last_error == "HTTP 502." and record.next_attempt_at is None
    finally:
        services.close()


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://127.0.0.1:8000/hook", "webhook.url_forbidden"),
        ("http://10.1.2.3/hook", "webhook.url_forbidden"),
        ("http://169.254.169.254/latest", "webhook.url_forbidden"),
        ("http://[::1]/hook", "webhook.url_forbidden"),
        ("ftp://example.com/hook", "webhook.url_invalid"),
        ("example.com/hook", "webhook.url_invalid"),
    ],
)
def test_private_and_malformed_urls_are_refused_at_registration(
    local_settings: Settings, url: str, code: str
) -> None:
    services = open_services(local_settings)
    try:
        with pytest.raises(InvalidRequest) as caught:
            services.webhooks.create_endpoint(account(services, "hooks-ssrf"), url)
        assert caught.value.code == code and caught.value.param == "url"
        assert "webhook URL" in caught.value.message
    finally:
        services.close()


def test_an_address_that_became_private_is_refused_at_delivery(
    local_settings: Settings, receiver: WebhookReceiver
) -> None:
    """An endpoint registered while its host was public, now resolving to loopback (a
    rebinding DNS, say): the delivery is refused before any connection."""
    services = open_services(local_settings)  # loopback not allowed, as in production
    try:
        a = account(services, "hooks-rebind")
        with services.registry.transaction() as session:
            session.add(
                WebhookEndpointRow(
                    id="whep_01JD3Z9B2C4D5E6F7G8H9J0K1M",
                    account_id=a,
                    url=receiver.url("/inside"),
                    secret=new_secret(),
                    events=list(EventType),
                    created_at=utcnow(),
                )
            )
        with services.registry.transaction() as session:
            record_event(session, a, EventType.AVATAR_READY, {"id": "avat_z"})
        (delivery_id,) = _delivery_ids(services)
        services.webhooks.deliver(delivery_id)
        (record,) = services.webhooks.get_endpoint(
            a, "whep_01JD3Z9B2C4D5E6F7G8H9J0K1M"
        ).recent_deliveries
        assert "loopback address" in record.last_error and record.attempts == 1
        assert receiver.at("/inside") == []
    finally:
        services.close()


def test_deleting_an_endpoint_drops_its_pending_deliveries(services: Services) -> None:
    a = account(services, "hooks-delete")
    endpoint = services.webhooks.create_endpoint(a, "http://127.0.0.1:9/gone")
    with services.registry.transaction() as session:
        record_event(session, a, EventType.AVATAR_READY, {"id": "avat_d"})
    services.webhooks.delete_endpoint(a, endpoint.id)
    assert _delivery_ids(services) == []
    assert services.webhooks.list_endpoints(a) == []


def test_a_refused_hand_off_leaves_the_delivery_to_the_dispatcher_and_a_bug_is_not_swallowed(
    local_settings: Settings,
) -> None:
    settings = local_settings.model_copy(update={"allow_loopback_urls": True})
    upgrade(settings)
    outcome: list[BaseException] = [BrokerUnavailable("broker unreachable (test)")]

    def send(delivery_id: str) -> None:
        raise outcome[0]

    services = Services.create(settings, FakeBroker(), send_webhook=send)
    try:
        a = account(services, "hooks-refused")
        services.webhooks.create_endpoint(a, "http://127.0.0.1:9/hook")
        with services.registry.transaction() as session:
            record_event(session, a, EventType.AVATAR_READY, {"id": "avat_q"})
        (delivery_id,) = _delivery_ids(services)
        assert services.webhooks.send(delivery_id) is False
        with services.registry.transaction() as session:
            row = session.get(WebhookDeliveryRow, delivery_id)
            assert row is not None and row.status == "pending" and row.attempts == 0

        outcome[0] = RuntimeError("a bug in the sender")
        with pytest.raises(RuntimeError):
            services.webhooks.send(delivery_id)
    finally:
        services.close()


def _delivery_ids(services: Services) -> list[str]:
    with services.registry.transaction() as session:
        return list(session.scalars(select(WebhookDeliveryRow.id)).all())


def _make_due(services: Services) -> None:
    with services.registry.transaction() as session:
        session.execute(
            update(WebhookDeliveryRow).values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


def test_events_past_their_retention_go_with_their_deliveries(services: Services) -> None:
    a = account(services, "hooks-retention")
    services.webhooks.create_endpoint(a, "http://127.0.0.1:9/old")
    for avatar_id in ("avat_old", "avat_new"):
        with services.registry.transaction() as session:
            record_event(session, a, EventType.AVATAR_READY, {"id": avatar_id})
    retention = timedelta(seconds=services.settings.webhook_retention_seconds)
    with services.registry.transaction() as session:
        oldest = session.scalars(select(WebhookEventRow).order_by(WebhookEventRow.id)).first()
        assert oldest is not None
        oldest.created_at = utcnow() - retention - timedelta(seconds=1)
    assert services.webhooks.delete_old() == 1
    with services.registry.transaction() as session:
        (kept,) = session.scalars(select(WebhookEventRow)).all()
        deliveries = session.scalars(select(WebhookDeliveryRow)).all()
    assert '"avat_new"' in kept.body
    assert [d.event_id for d in deliveries] == [kept.id]

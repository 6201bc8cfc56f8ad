"""Webhooks: endpoints an account registers, the events it is told of, and their
delivery, signed as the Standard Webhooks scheme signs (so its verifier libraries
work).

Events: `avatar.ready` and `avatar.failed` (written by `lifecycle.finish_avatar`, the one
place an avatar finishes), `session.started`, `session.ended` (a stop, or the
beat's expiry sweep). Each is written as an outbox row (`webhook_events`) with
one `webhook_deliveries` row per endpoint of that account subscribed to its type,
IN THE TRANSACTION THAT MADE IT HAPPEN: a process that dies right after the
commit loses no event. After the commit the delivery ids are handed to the
Celery task (`send`); a hand-off that is lost (broker down, process killed
between commit and send) is picked up by the beat's dispatcher, which sends
every pending delivery that is due.

A delivery, one attempt at a time (`service.webhook_post.post_event`): the URL
is checked again with the image URL rules of service/fetch.py (public
addresses only, connect to the checked address), then one POST of the event's
JSON with `webhook-id` (the event id, the same on every retry, for
de-duplication), `webhook-timestamp` (Unix seconds of this attempt) and
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed with
the endpoint's secret (`whsec_<base64 of 32 random bytes>`). A 2xx answer
within `webhook_timeout_seconds` delivers it; anything else (other status,
redirect, time-out, refused address) is retried after `webhook_backoff_seconds`,
doubling each time up to `webhook_backoff_max_seconds`, until
`webhook_max_attempts`, after which it is `exhausted`. At least once, in no
guaranteed order between events: receivers de-duplicate on `webhook-id` and
order on the payload's `created_at`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, event, func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, object_session

from pipeline.errors import AvatarPrepError
from service.domain import Avatar, Delivery, DeliveryStatus, WebhookEndpoint
from service.errors import InvalidRequest, NotFound
from service.fetch import check_url
from service.ids import new_id
from service.logs import log_event
from service.public import avatar_json, rfc3339
from service.queue import BrokerUnavailable
from service.registry import (
    AccountRow,
    AvatarRow,
    Registry,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    WebhookEventRow,
    utcnow,
)
from service.settings import Settings
from service.webhook_post import for_webhook, new_secret, post_event

logger = logging.getLogger(__name__)

MAX_DESCRIPTION = 200
# Delivery ids a transaction recorded, in its session's `info`, sent after commit.
_TO_SEND = "webhook_deliveries_to_send"
# An attempt holds its delivery this much past the time-out; a worker lost mid-attempt
# leaves it due again after that.
LEASE_MARGIN_SECONDS = 30.0
# Sent per dispatcher run at most; the rest go on the next run.
DISPATCH_BATCH = 500


class EventType(StrEnum):
    AVATAR_READY = "avatar.ready"
    AVATAR_FAILED = "avatar.failed"
    SESSION_STARTED = "session.started"
    SESSION_ENDED = "session.ended"


def backoff_seconds(attempts: int, settings: Settings) -> float:
    """Wait after the `attempts`-th failed attempt (1-based): base x 2^(attempts-1),
    capped. No jitter: each delivery's schedule starts at its own failure."""
    delay = settings.webhook_backoff_seconds * 2 ** (attempts - 1)
    return float(min(delay, settings.webhook_backoff_max_seconds))


# --- recording events (inside the caller's transaction) --------------------------


def record_event(session: Session, account_id: str, type_: EventType, data: dict[str, Any]) -> None:
    """Write `type_` with `data` (the avatar or session object) to the outbox, one
    delivery per endpoint of the account subscribed to it, in `session`'s
    transaction. Nothing is written when no endpoint wants it."""
    endpoints = session.scalars(
        select(WebhookEndpointRow).where(WebhookEndpointRow.account_id == account_id)
    ).all()
    subscribed = [e for e in endpoints if type_ in e.events]
    if not subscribed:
        return
    now = utcnow()
    event_id = new_id("evt")
    body = json.dumps(
        {"id": event_id, "type": type_, "created_at": rfc3339(now), "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    session.add(
        WebhookEventRow(id=event_id, account_id=account_id, type=type_, body=body, created_at=now)
    )
    session.flush()  # the event row before the deliveries that point at it
    ids = []
    for endpoint in subscribed:
        delivery_id = new_id("dlv")
        session.add(
            WebhookDeliveryRow(
                id=delivery_id,
                event_id=event_id,
                endpoint_id=endpoint.id,
                status=DeliveryStatus.PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
        ids.append(delivery_id)
    session.info.setdefault(_TO_SEND, []).extend(ids)


def avatar_finished(row: AvatarRow) -> None:
    """`avatar.ready` or `avatar.failed` for a row `lifecycle.finish_avatar` just finished, in
    the transaction the row was locked in."""
    session = object_session(row)
    if session is None:
        raise ValueError(f"avatar {row.id} is not in a transaction; finish it under its lock")
    record_event(
        session, row.account_id, EventType(f"avatar.{row.status}"), avatar_json(Avatar.of(row))
    )


# --- the service ------------------------------------------------------------------


class WebhookService:
    """Endpoints, the after-commit hand-off and delivery. `send(delivery_id)` queues
    the delivery task (None: deliveries wait for the beat's dispatcher)."""

    def __init__(
        self, settings: Settings, registry: Registry, send: Callable[[str], None] | None
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._send = send
        if send is not None:
            event.listen(registry.session_factory, "after_commit", self._after_commit)

    def _after_commit(self, session: Session) -> None:
        for delivery_id in session.info.pop(_TO_SEND, []):
            self.send(delivery_id)

    def send(self, delivery_id: str) -> bool:
        """Queue one delivery; False when the broker refused it (the dispatcher will)."""
        if self._send is None:
            return False
        try:
            self._send(delivery_id)
        except BrokerUnavailable as exc:  # the dispatcher sends it later
            logger.warning("webhook %s not queued (%s); the dispatcher will", delivery_id, exc)
            return False
        return True

    # --- endpoints ---

    def check_url(self, url: str) -> str:
        """The URL if it may receive webhooks: the image URL rules (http(s), a host
        that resolves, public addresses only). 400 webhook.url_invalid or
        webhook.url_forbidden."""
        try:
            return check_url(url, self._settings).url
        except AvatarPrepError as exc:
            code = (
                "webhook.url_forbidden"
                if exc.code == "image.url_forbidden"
                else ("webhook.url_invalid")
            )
            raise InvalidRequest(for_webhook(exc.message), code=code, param="url") from exc

    def create_endpoint(
        self,
        account_id: str,
        url: str,
        *,
        events: Sequence[str] | None = None,
        description: str | None = None,
    ) -> WebhookEndpoint:
        """Register `url` for `events` (default: every type). Returns the endpoint
        with its `secret`, the only time the secret is shown."""
        chosen = check_events(events)
        if description is not None and len(description) > MAX_DESCRIPTION:
            raise InvalidRequest(
                f"description must be at most {MAX_DESCRIPTION} characters.",
                code="request.invalid_field",
                param="description",
            )
        checked = self.check_url(url.strip())
        row = WebhookEndpointRow(
            id=new_id("whep"),
            account_id=account_id,
            url=checked,
            secret=new_secret(),
            events=chosen,
            description=description,
            created_at=utcnow(),
        )
        with self._registry.transaction() as session:
            count = session.scalar(
                select(func.count())
                .select_from(WebhookEndpointRow)
                .where(WebhookEndpointRow.account_id == account_id)
            )
            if (count or 0) >= self._settings.webhook_max_endpoints:
                raise InvalidRequest(
                    f"The account has {count} webhook endpoints, the most allowed; delete "
                    "one first (DELETE /v1/webhook_endpoints/{id}).",
                    code="webhook.too_many",
                )
            session.add(row)
        return WebhookEndpoint.of(row, secret=row.secret)

    def list_endpoints(self, account_id: str) -> list[WebhookEndpoint]:
        with self._registry.transaction() as session:
            rows = session.scalars(
                select(WebhookEndpointRow)
                .where(WebhookEndpointRow.account_id == account_id)
                .order_by(WebhookEndpointRow.id)
            ).all()
        return [WebhookEndpoint.of(r) for r in rows]

    def get_endpoint(self, account_id: str, endpoint_id: str) -> WebhookEndpoint:
        """The endpoint with its last deliveries (newest first)."""
        with self._registry.transaction() as session:
            row = _own(session.get(WebhookEndpointRow, endpoint_id), account_id, endpoint_id)
            deliveries = session.execute(
                select(WebhookDeliveryRow, WebhookEventRow.type)
                .join(WebhookEventRow, WebhookEventRow.id == WebhookDeliveryRow.event_id)
                .where(WebhookDeliveryRow.endpoint_id == endpoint_id)
                .order_by(WebhookDeliveryRow.id.desc())
                .limit(20)
            ).all()
        return WebhookEndpoint.of(
            row,
            deliveries=tuple(Delivery.of(d, t) for d, t in deliveries),
        )

    def delete_endpoint(self, account_id: str, endpoint_id: str) -> None:
        """Remove the endpoint and its deliveries (pending ones are never sent)."""
        with self._registry.transaction() as session:
            row = _own(session.get(WebhookEndpointRow, endpoint_id), account_id, endpoint_id)
            session.execute(
                delete(WebhookDeliveryRow).where(WebhookDeliveryRow.endpoint_id == endpoint_id)
            )
            session.delete(row)

    def account_id(self, name: str) -> str:
        """The id of the account named `name` (the command line names accounts)."""
        with self._registry.transaction() as session:
            found = session.scalar(select(AccountRow.id).where(AccountRow.name == name))
        if found is None:
            raise NotFound(f"No account {name!r}.", code="account.not_found", param="account")
        return found

    # --- delivery (worker side) ---

    def dispatch(self) -> int:
        """Queue every pending delivery that is due; how many were queued."""
        with self._registry.transaction() as session:
            due = session.scalars(
                select(WebhookDeliveryRow.id)
                .where(
                    WebhookDeliveryRow.status == DeliveryStatus.PENDING,
                    WebhookDeliveryRow.next_attempt_at <= utcnow(),
                )
                .order_by(WebhookDeliveryRow.next_attempt_at)
                .limit(DISPATCH_BATCH)
            ).all()
        sent = 0
        for delivery_id in due:
            if not self.send(delivery_id):
                break
            sent += 1
        return sent

    def delete_old(self) -> int:
        """Delete events older than `webhook_retention_seconds` with their deliveries
        (the sweeper runs this); how many events."""
        cutoff = utcnow() - timedelta(seconds=self._settings.webhook_retention_seconds)
        with self._registry.transaction() as session:
            old = select(WebhookEventRow.id).where(WebhookEventRow.created_at < cutoff)
            session.execute(delete(WebhookDeliveryRow).where(WebhookDeliveryRow.event_id.in_(old)))
            result = session.execute(
                delete(WebhookEventRow).where(WebhookEventRow.created_at < cutoff)
            )
            assert isinstance(result, CursorResult)
            return result.rowcount

    def deliver(self, delivery_id: str) -> None:
        """One attempt of a due, pending delivery, recorded; nothing when it is not
        due (another worker holds it, or it was delivered or deleted)."""
        claimed = self._claim(delivery_id)
        if claimed is None:
            return
        url, secret, event_id, body, attempt = claimed
        started = time.monotonic()
        error = post_event(url, secret, event_id, body.encode(), self._settings)
        now = utcnow()
        with self._registry.transaction() as session:
            row = session.get(WebhookDeliveryRow, delivery_id, with_for_update=True)
            if row is None:
                return  # its endpoint was deleted meanwhile
            row.last_attempt_at = now
            row.last_error = error
            if error is None:
                row.status = DeliveryStatus.DELIVERED
                row.delivered_at = now
                row.next_attempt_at = None
            elif attempt >= self._settings.webhook_max_attempts:
                row.status = DeliveryStatus.EXHAUSTED
                row.next_attempt_at = None
            else:
                row.next_attempt_at = now + timedelta(
                    seconds=backoff_seconds(attempt, self._settings)
                )
            status, next_at = row.status, row.next_attempt_at
        log_event(
            logger,
            "webhook delivery",
            delivery_id=delivery_id,
            event_id=event_id,
            attempt=attempt,
            status=status,
            error=error,
            next_attempt_at=rfc3339(next_at) if next_at else None,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )

    def _claim(self, delivery_id: str) -> tuple[str, str, str, str, int] | None:
        """Take a due delivery for one attempt: count it and push its due time past the
        attempt's time-out, in one conditional UPDATE (one winner on any database).
        (url, secret, event id, body, attempt number) or None."""
        now = utcnow()
        lease = timedelta(seconds=self._settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS)
        with self._registry.transaction() as session:
            result = session.execute(
                update(WebhookDeliveryRow)
                .where(
                    WebhookDeliveryRow.id == delivery_id,
                    WebhookDeliveryRow.status == DeliveryStatus.PENDING,
                    WebhookDeliveryRow.next_attempt_at <= now,
                )
                .values(attempts=WebhookDeliveryRow.attempts + 1, next_attempt_at=now + lease)
            )
            assert isinstance(result, CursorResult)
            if result.rowcount != 1:
                return None
            found = session.execute(
                select(
                    WebhookEndpointRow.url,
                    WebhookEndpointRow.secret,
                    WebhookEventRow.id,
                    WebhookEventRow.body,
                    WebhookDeliveryRow.attempts,
                )
                .join(WebhookEndpointRow, WebhookEndpointRow.id == WebhookDeliveryRow.endpoint_id)
                .join(WebhookEventRow, WebhookEventRow.id == WebhookDeliveryRow.event_id)
                .where(WebhookDeliveryRow.id == delivery_id)
            ).one()
        return found[0], found[1], found[2], found[3], found[4]


def check_events(events: Sequence[str] | None) -> list[str]:
    """The event types asked for (every type when None): 400 webhook.event_invalid
    for an unknown one or an empty list."""
    if events is None:
        return list(EventType)
    known = [str(t) for t in EventType]
    unknown = [e for e in events if e not in known]
    if unknown or not events:
        raise InvalidRequest(
            f"events must be a non-empty list of {', '.join(known)}"
            + (f"; unknown: {', '.join(map(str, unknown))}." if unknown else "."),
            code="webhook.event_invalid",
            param="events",
        )
    return list(dict.fromkeys(events))


def _own(row: WebhookEndpointRow | None, account_id: str, endpoint_id: str) -> WebhookEndpointRow:
    if row is None or row.account_id != account_id:
        raise NotFound(f"No webhook endpoint {endpoint_id}.", code="webhook.not_found", param="id")
    return row

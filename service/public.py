"""The documented JSON (docs/api.md) of the services' objects: what the API
answers and what a webhook event carries, one definition for both.

It lives below api/ because webhook payloads are written by the worker, in the
same transaction as the transition they announce (service/webhooks.py), and
must be the very object the API would return at that moment.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipeline.errors import AvatarPrepError
from service.codes import failed_type
from service.domain import Avatar, Delivery, Session, WebhookEndpoint


def avatar_json(avatar: Avatar) -> dict[str, Any]:
    """The api.md avatar object. Each image's `url` is the API route that streams it
    (or redirects to storage)."""
    images = None
    if avatar.images is not None:
        images = {
            ratio: {
                "url": image_route(avatar.id, ratio),
                "width": image.width,
                "height": image.height,
                "content_type": image.content_type,
            }
            for ratio, image in avatar.images.items()
        }
    source = avatar.source
    return {
        "object": "avatar",
        "id": avatar.id,
        "status": avatar.status,
        "name": avatar.name,
        "user_exclusive": avatar.user_exclusive,
        "metadata": avatar.metadata,
        "created_at": rfc3339(avatar.created_at),
        "updated_at": rfc3339(avatar.updated_at),
        "ready_at": _moment(avatar.ready_at),
        "source": {
            "kind": source.kind,
            "sha256": source.sha256,
            "format": source.format,
            "width": source.width,
            "height": source.height,
            "bytes": source.bytes,
        },
        "face": avatar.face,
        "checks": avatar.checks,
        "warnings": avatar.warnings,
        "images": images,
        "error": avatar.error,
    }


def session_json(session: Session) -> dict[str, Any]:
    """The api.md session object; `session_token` only when the session carries it
    (just made)."""
    body: dict[str, Any] = {
        "object": "session",
        "id": session.id,
        "status": "ended" if session.ended else "started",
        "avatar_id": session.avatar_id,
        "avatar_image": {
            "url": session.image_url,
            "width": session.image_width,
            "height": session.image_height,
            "aspect_ratio": session.aspect_ratio,
        },
        "room": {
            "platform": session.room_platform,
            "url": session.room_url,
            "room_name": session.room_name,
        },
        "aspect_ratio": session.aspect_ratio,
        "metadata": session.metadata,
        "started_at": rfc3339(session.started_at),
        "expires_at": rfc3339(session.expires_at),
        "ended_at": _moment(session.ended_at),
    }
    if session.token is not None:
        body["session_token"] = session.token
    return body


def endpoint_json(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """The api.md webhook endpoint object; `secret` and `recent_deliveries` only when
    the endpoint carries them."""
    body: dict[str, Any] = {
        "object": "webhook_endpoint",
        "id": endpoint.id,
        "url": endpoint.url,
        "events": endpoint.events,
        "description": endpoint.description,
        "created_at": rfc3339(endpoint.created_at),
    }
    if endpoint.secret is not None:
        body["secret"] = endpoint.secret
    if endpoint.recent_deliveries is not None:
        body["recent_deliveries"] = [delivery_json(d) for d in endpoint.recent_deliveries]
    return body


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "last_attempt_at": _moment(delivery.last_attempt_at),
        "next_attempt_at": _moment(delivery.next_attempt_at),
        "delivered_at": _moment(delivery.delivered_at),
        "created_at": _moment(delivery.created_at),
    }


def image_route(avatar_id: str, aspect_ratio: str) -> str:
    """The API route that streams a rendition (or redirects to storage), relative to
    the API's base URL; it needs the API key of an account that may see the avatar."""
    return f"/v1/avatars/{avatar_id}/image?aspect_ratio={aspect_ratio}"


def error_object(error: AvatarPrepError) -> dict[str, Any]:
    """`type`, `code`, `message`, `param` and, for verdicts, `checks`. The `type` is
    the failed avatar's (`service.codes.failed_type`): a verdict on the image is the
    client's to fix (`invalid_request`); anything else is ours (`api_error`)."""
    return {"type": failed_type(error.code), **error.to_dict()}


def rfc3339(moment: datetime) -> str:
    """`2025-01-31T12:00:00.123Z`: UTC, milliseconds."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _moment(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment is not None else None

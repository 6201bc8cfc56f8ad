"""What the services return: typed, immutable views of registry rows.

Services hand these to api/ and cli/, which decide how to show them (api/ through
`service.public`, the documented JSON of each). Nothing here knows about HTTP:
no URLs but the session's image, which is a storage fact (a presigned URL, or
the API's own route when storage has none).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from service.registry import AvatarRow, SessionRow, WebhookDeliveryRow, WebhookEndpointRow
from service.status import AvatarStatus


@dataclass(frozen=True, slots=True)
class Source:
    """The uploaded image as it was received: how, its SHA-256, sniffed format,
    pixel size (as decoded, before any EXIF turn) and byte count."""

    kind: str
    sha256: str | None
    format: str | None
    width: int | None
    height: int | None
    bytes: int | None


@dataclass(frozen=True, slots=True)
class Rendition:
    """One stored framing of a ready avatar, in pixels."""

    width: int
    height: int
    content_type: str


@dataclass(frozen=True, slots=True)
class Avatar:
    """One avatar as its row stands. `images` (aspect ratio -> rendition) and
    `warnings` only once it is ready; `error` (the error object) only once it failed;
    `checks` of a ready avatar (a failed one has its checks in `error`)."""

    id: str
    status: AvatarStatus
    name: str | None
    user_exclusive: bool
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    ready_at: datetime | None
    source: Source
    face: dict[str, Any] | None
    checks: list[dict[str, Any]] | None
    warnings: list[dict[str, Any]] | None
    images: dict[str, Rendition] | None
    error: dict[str, Any] | None

    @classmethod
    def of(cls, row: AvatarRow) -> Avatar:
        ready = row.status == AvatarStatus.READY
        return cls(
            id=row.id,
            status=AvatarStatus(row.status),
            name=row.name,
            user_exclusive=row.user_exclusive,
            metadata=row.meta,
            created_at=row.created_at,
            updated_at=row.updated_at,
            ready_at=row.ready_at,
            source=Source(
                kind=row.source_kind,
                sha256=row.sha256,
                format=row.source_format,
                width=row.source_width,
                height=row.source_height,
                bytes=row.source_bytes,
            ),
            face=row.face,
            checks=row.checks,
            warnings=row.warnings if ready else None,
            images=(
                {
                    ratio: Rendition(image["width"], image["height"], image["content_type"])
                    for ratio, image in row.images.items()
                }
                if ready and row.images
                else None
            ),
            error=row.error,
        )


@dataclass(frozen=True, slots=True)
class Session:
    """One session as of a moment. `ended_at` is when it ended (a stop, or its
    expiry once that has passed), None while it runs; `image_url` is where the
    renderer fetches the avatar's image; `token` only on the session just made
    (the one time it is shown)."""

    id: str
    avatar_id: str
    aspect_ratio: str
    image_url: str
    image_width: int
    image_height: int
    room_platform: str
    room_url: str
    room_name: str | None
    metadata: dict[str, Any]
    started_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    token: str | None = None

    @classmethod
    def of(cls, row: SessionRow, now: datetime, image_url: str) -> Session:
        ended_at = row.ended_at
        if ended_at is None and now >= row.expires_at:
            ended_at = row.expires_at
        return cls(
            id=row.id,
            avatar_id=row.avatar_id,
            aspect_ratio=row.aspect_ratio,
            image_url=image_url,
            image_width=row.image_width,
            image_height=row.image_height,
            room_platform=row.room_platform,
            room_url=row.room_url,
            room_name=row.room_name,
            metadata=row.meta,
            started_at=row.started_at,
            expires_at=row.expires_at,
            ended_at=ended_at,
        )

    @property
    def ended(self) -> bool:
        return self.ended_at is not None


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    EXHAUSTED = "exhausted"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt series of one event to one endpoint. `next_attempt_at` only while
    it is pending."""

    id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime | None

    @classmethod
    def of(cls, row: WebhookDeliveryRow, event_type: str) -> Delivery:
        pending = row.status == DeliveryStatus.PENDING
        return cls(
            id=row.id,
            event_id=row.event_id,
            event_type=event_type,
            status=row.status,
            attempts=row.attempts,
            last_error=row.last_error,
            last_attempt_at=row.last_attempt_at,
            next_attempt_at=row.next_attempt_at if pending else None,
            delivered_at=row.delivered_at,
            created_at=row.created_at,
        )


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """A registered webhook endpoint. `secret` only on the endpoint just made (the
    one time it is shown); `recent_deliveries` (newest first) only when one endpoint
    is read."""

    id: str
    url: str
    events: list[str]
    description: str | None
    created_at: datetime
    secret: str | None = None
    recent_deliveries: tuple[Delivery, ...] | None = None

    @classmethod
    def of(
        cls,
        row: WebhookEndpointRow,
        *,
        secret: str | None = None,
        deliveries: tuple[Delivery, ...] | None = None,
    ) -> WebhookEndpoint:
        return cls(
            id=row.id,
            url=row.url,
            events=list(row.events),
            description=row.description,
            created_at=row.created_at,
            secret=secret,
            recent_deliveries=deliveries,
        )

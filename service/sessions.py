"""Sessions: the session service's record of one realtime session with an avatar.

A session is made for a `ready` avatar the account may use (its own, or any
account's avatar with `user_exclusive` false) and starts at once: `started`
until it is stopped or its plan's maximum length has passed, then `ended`. An
expired session reads as ended from its `expires_at` on, without any sweeper.

Secrets: the session token is random (256 bits), shown once in the creation
answer and stored only as its sha256 (as API keys are, and for the same reason:
a token this random cannot be recovered from its hash). The room's token is
write-only: stored for whatever joins the room, never returned, never logged.

An image sent instead of an avatar id (URL or base64) becomes an avatar through
`AvatarService.create` exactly as an upload does; the HTTP edge waits for it
and then calls `create` with its id. Free accounts may only pass ids.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from sqlalchemy import select

from pipeline.aspect import DEFAULT_ASPECT_RATIO, AspectRatio
from service.avatars import visible_to
from service.domain import Session
from service.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from service.ids import new_id
from service.keys import Account
from service.public import image_route, session_json
from service.registry import AvatarRow, Registry, SessionRow, utcnow
from service.settings import Settings
from service.status import AvatarStatus
from service.storage import Storage, rendition_key
from service.webhooks import EventType, record_event

Platform = Literal["daily", "livekit"]
PLATFORMS: tuple[str, ...] = get_args(Platform)
SESSION_TOKEN_PREFIX = "stok_"
# Every rendition is a JPEG (pipeline/encode.py); presigned URLs serve it as one.
RENDITION_CONTENT_TYPE = "image/jpeg"
# Expired sessions ended per beat run at most; the rest on the next.
EXPIRY_BATCH = 500


@dataclass(frozen=True)
class Room:
    """Where the avatar joins: the client's video room. `token` is write-only and
    kept out of `repr` so no log line can carry it."""

    platform: Platform
    url: str
    name: str | None = None
    token: str | None = field(default=None, repr=False)


def is_avatar_reference(text: str) -> bool:
    """Whether a session's `avatar_id` names an avatar (`avat_...`, resolved, 404 when
    there is no such avatar) rather than carrying an image (URL or base64, whose
    alphabets never make `avat_` followed by more: base64 has no `_`)."""
    return text.startswith("avat_")


def check_platform(value: Any) -> Platform:
    """`room.platform` must be `daily` or `livekit`: 400 room.platform_invalid."""
    if value not in PLATFORMS:
        raise InvalidRequest(
            f"room.platform must be one of {', '.join(PLATFORMS)}; got {_quoted(value)}.",
            code="room.platform_invalid",
            param="room.platform",
        )
    platform: Platform = value
    return platform


def check_aspect_ratio(value: Any) -> AspectRatio:
    """`aspect_ratio` must be one of `AspectRatio`: 400 session.aspect_ratio_invalid."""
    if value not in list(AspectRatio):
        raise InvalidRequest(
            f"aspect_ratio must be one of {', '.join(AspectRatio)} (default "
            f"{DEFAULT_ASPECT_RATIO}); got {_quoted(value)}.",
            code="session.aspect_ratio_invalid",
            param="aspect_ratio",
        )
    return AspectRatio(value)


def _quoted(value: Any) -> str:
    text = "null" if value is None else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class SessionService:
    """Made once per process with `Services.create`; every method is a few registry
    reads or writes (no image work)."""

    def __init__(self, settings: Settings, registry: Registry, storage: Storage) -> None:
        self._settings = settings
        self._registry = registry
        self._storage = storage

    def check_image_input(self, account: Account) -> None:
        """An image instead of an avatar id runs the pipeline for the session, which
        the free plan does not include: 403 plan.image_input_not_allowed. Called
        before any work is done for the image."""
        if account.plan == "free":
            raise PermissionDenied(
                "The free plan may only start sessions with an avatar id (avat_...); upload "
                "the photo with POST /v1/avatars/upload-face first, or move to the paid "
                "plan to send a URL or base64 image here.",
                code="plan.image_input_not_allowed",
                param="avatar_id",
            )

    def create(
        self,
        account: Account,
        avatar_id: str,
        *,
        room: Room,
        aspect_ratio: str,
        metadata: dict[str, Any],
    ) -> Session:
        """Start a session with the avatar `avatar_id`. Returns the session with its
        `token` (the only time it is shown). Raises NotFound
        (avatar.not_found: unknown, or another account's user_exclusive avatar),
        Conflict (avatar.not_ready while queued or processing, avatar.failed),
        InvalidRequest (room.platform_invalid, session.aspect_ratio_invalid)."""
        check_platform(room.platform)
        check_aspect_ratio(aspect_ratio)
        token = SESSION_TOKEN_PREFIX + secrets.token_urlsafe(32)
        started = utcnow()
        with self._registry.transaction() as session:
            # One read, locked as a delete locks it (AvatarService.delete): the avatar
            # is either deleted before this session exists, or sees it and is refused.
            avatar = session.get(AvatarRow, avatar_id, with_for_update=True)
            if avatar is None or not visible_to(avatar, account.id):
                raise NotFound(
                    f"No avatar {avatar_id}.", code="avatar.not_found", param="avatar_id"
                )
            image = _ready_image(avatar, aspect_ratio)
            row = SessionRow(
                id=new_id("sess"),
                account_id=account.id,
                avatar_id=avatar_id,
                aspect_ratio=aspect_ratio,
                image_width=image["width"],
                image_height=image["height"],
                room_platform=room.platform,
                room_url=room.url,
                room_name=room.name,
                room_token=room.token,
                meta=metadata,
                token_hash=hashlib.sha256(token.encode()).hexdigest(),
                started_at=started,
                expires_at=started
                + timedelta(seconds=self._settings.session_max_seconds(account.plan)),
            )
            session.add(row)
            started_session = self._session(row, started)
            record_event(
                session, account.id, EventType.SESSION_STARTED, session_json(started_session)
            )
        return replace(started_session, token=token)

    def get(self, account_id: str, session_id: str) -> Session:
        """The session; NotFound(session.not_found) when unknown or another
        account's."""
        with self._registry.transaction() as session:
            row = self._own(session.get(SessionRow, session_id), account_id, session_id)
        return self._session(row, utcnow())

    def stop(self, account_id: str, session_id: str) -> Session:
        """End the session now. Idempotent: stopping an ended session (stopped before,
        or expired) changes nothing and returns it as it is."""
        now = utcnow()
        with self._registry.transaction() as session:
            row = self._own(
                session.get(SessionRow, session_id, with_for_update=True), account_id, session_id
            )
            if row.ended_at is None:
                # An expired session ended when it expired, not when it was stopped.
                row.ended_at = min(now, row.expires_at)
                record_event(
                    session,
                    account_id,
                    EventType.SESSION_ENDED,
                    session_json(self._session(row, now)),
                )
        return self._session(row, now)

    def end_expired(self) -> int:
        """Write `ended_at = expires_at` on open sessions past their expiry (they
        already read as ended) and tell their webhooks `session.ended`; the beat runs
        this. How many were ended."""
        now = utcnow()
        with self._registry.transaction() as session:
            rows = session.scalars(
                select(SessionRow)
                .where(SessionRow.ended_at.is_(None), SessionRow.expires_at <= now)
                .order_by(SessionRow.expires_at)
                .limit(EXPIRY_BATCH)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                row.ended_at = row.expires_at
                record_event(
                    session,
                    row.account_id,
                    EventType.SESSION_ENDED,
                    session_json(self._session(row, now)),
                )
        return len(rows)

    @staticmethod
    def _own(row: SessionRow | None, account_id: str, session_id: str) -> SessionRow:
        if row is None or row.account_id != account_id:
            raise NotFound(f"No session {session_id}.", code="session.not_found", param="id")
        return row

    def _session(self, row: SessionRow, now: datetime) -> Session:
        """The session of `row` as of `now`, its image URL made fresh."""
        return Session.of(row, now, self._image_url(row.avatar_id, row.aspect_ratio))

    def _image_url(self, avatar_id: str, aspect_ratio: str) -> str:
        """A presigned, time-limited URL on S3 (made fresh on every read, so it works
        for `s3_presign_seconds` after each read), else the API's own image route."""
        key = rendition_key(avatar_id, aspect_ratio)
        return self._storage.url(key, RENDITION_CONTENT_TYPE) or image_route(
            avatar_id, aspect_ratio
        )


def _ready_image(avatar: AvatarRow, aspect_ratio: str) -> dict[str, Any]:
    """The stored rendition of `aspect_ratio` of a ready avatar; Conflict
    (avatar.failed, avatar.not_ready) for one that is not."""
    if avatar.status == AvatarStatus.FAILED:
        code = (avatar.error or {}).get("code", "unknown")
        raise Conflict(
            f"The avatar {avatar.id} failed ({code}); upload another photo.",
            code="avatar.failed",
            param="avatar_id",
        )
    if avatar.status != AvatarStatus.READY or not avatar.images:
        raise Conflict(
            f"The avatar {avatar.id} is {avatar.status}; a session can start once it "
            "is ready (poll GET /v1/avatars/{id}).",
            code="avatar.not_ready",
            param="avatar_id",
        )
    image: dict[str, Any] = avatar.images[aspect_ratio]
    return image

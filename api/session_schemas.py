"""The JSON shapes of the session endpoints, for the OpenAPI document and request
parsing (the avatar ones are in api/schemas.py, in the same style: responses are
`service.public`'s JSON of the services' objects, described here; they allow
extra keys)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from api.schemas import AVATAR_ID_EXAMPLE, Timestamp
from pipeline.aspect import DEFAULT_ASPECT_RATIO, AspectRatio
from service.sessions import Platform

SESSION_ID_EXAMPLE = "sess_01JD3Z9B2C4D5E6F7G8H9J0K1M"
SessionStatus = Literal["started", "ended"]


class RoomRequest(BaseModel):
    """The video room the avatar joins."""

    model_config = ConfigDict(extra="forbid")

    platform: Platform = Field(
        description="`daily` or `livekit`; anything else is `400 room.platform_invalid`.",
        examples=["livekit"],
    )
    url: str = Field(
        min_length=1,
        max_length=2048,
        pattern=r"^(wss?|https?)://\S+$",
        description="The room's URL (wss://, ws://, https:// or http://).",
        examples=["wss://demo.livekit.cloud"],
    )
    token: SecretStr | None = Field(
        None,
        max_length=8192,
        description="The platform's token for joining the room. Write-only: stored for "
        "the session, never returned and never logged.",
        examples=["eyJhbGciOiJIUzI1NiJ9..."],
    )
    room_name: str | None = Field(None, max_length=200, examples=["support-42"])


class CreateSessionRequest(BaseModel):
    """The body of POST /v1/sessions."""

    model_config = ConfigDict(extra="forbid")

    avatar_id: str = Field(
        min_length=1,
        description="An avatar id (`avat_...`: it must be `ready` and visible to this "
        "account), or an image to prepare inline as upload-face would: an https URL, a "
        "data URI (`data:image/jpeg;base64,...`) or bare standard base64. Images are for "
        "the paid plan (`403 plan.image_input_not_allowed` on free).",
        examples=[AVATAR_ID_EXAMPLE],
    )
    room: RoomRequest
    aspect_ratio: AspectRatio = Field(
        DEFAULT_ASPECT_RATIO,
        description="Which framing of the avatar the session shows: `4:3` (default), "
        "`3:4` or `1:1`; anything else is `400 session.aspect_ratio_invalid`.",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Your own key/value data, returned as given. Must be a JSON object "
        "(`400 metadata.not_object` otherwise).",
        examples=[{"customer": "c_42"}],
    )


class Room(BaseModel):
    """The room as stored: its token is never returned."""

    platform: Platform = Field(examples=["livekit"])
    url: str = Field(examples=["wss://demo.livekit.cloud"])
    room_name: str | None = Field(examples=["support-42"])


class AvatarImage(BaseModel):
    """The avatar's rendition in the session's aspect ratio."""

    url: str = Field(
        description="Where the session service GETs the JPEG: a presigned URL valid for "
        "`s3_presign_seconds` from this response when storage is S3, else this API's "
        "image route (relative to the API's base URL; send the API key).",
        examples=[f"/v1/avatars/{AVATAR_ID_EXAMPLE}/image?aspect_ratio=4:3"],
    )
    width: int = Field(examples=[640])
    height: int = Field(examples=[480])
    aspect_ratio: AspectRatio = Field(examples=[AspectRatio.LANDSCAPE])


class Session(BaseModel):
    """A session with an avatar: `started` until stopped or expired, then `ended`."""

    object: Literal["session"] = "session"
    id: str = Field(examples=[SESSION_ID_EXAMPLE])
    status: SessionStatus = Field(
        description="`ended` once stopped or once `expires_at` has passed.", examples=["started"]
    )
    avatar_id: str = Field(examples=[AVATAR_ID_EXAMPLE])
    avatar_image: AvatarImage
    room: Room
    aspect_ratio: AspectRatio = Field(examples=[AspectRatio.LANDSCAPE])
    metadata: dict[str, Any] = Field(examples=[{"customer": "c_42"}])
    started_at: Timestamp = Field(
        description="RFC 3339 UTC.", examples=["2025-01-07T10:15:30.123Z"]
    )
    expires_at: Timestamp = Field(
        description="RFC 3339 UTC: `started_at` plus the plan's maximum session length.",
        examples=["2025-01-07T11:15:30.123Z"],
    )
    ended_at: Timestamp | None = Field(
        description="RFC 3339 UTC: when it was stopped, or `expires_at` if it ran out; "
        "null while started.",
        examples=[None],
    )


class CreatedSession(Session):
    """The answer to POST /v1/sessions: the session and its token, shown only here."""

    session_token: str = Field(
        description="Random and unguessable; returned only in this response and stored "
        "hashed, so keep it now.",
        examples=["stok_4q6bJ2v9yYc0n1Qh8m3ZtK5wXe7rA2sD9fG4hJ6kL1p"],
    )

"""The JSON shapes of the HTTP API, for the OpenAPI document and request parsing.

Responses are the services' objects made into their docs/api.md JSON by
`service.public` (the one definition, shared with webhook payloads); these
models describe that JSON so /docs and /openapi.json state every field, and
schemathesis can check real responses against them. They allow extra keys, so
an added field never breaks a client's schema check.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, WithJsonSchema

from service.status import AvatarStatus

AVATAR_ID_EXAMPLE = "avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX"
MAX_NAME_LENGTH = 200  # the registry's column

# RFC 3339 in UTC with milliseconds (`2025-01-07T10:15:30.123Z`). Declared as
# `date-time` so generated clients parse it into their date type; a string here
# because responses carry the service's own formatting.
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A reference to `model` for a request body the route parses itself, carrying
    `model`'s schema and its nested models under `$defs`; the app's OpenAPI document
    moves them into its components (api/app.py), so clients get named types."""
    template = "#/components/schemas/{model}"
    schema = model.model_json_schema(ref_template=template)
    definitions = schema.pop("$defs", {})
    return {
        "$ref": template.format(model=model.__name__),
        "$defs": {**definitions, model.__name__: schema},
    }


class Check(BaseModel):
    """One measured rule of a face or image verdict."""

    name: str = Field(examples=["face_count"])
    passed: bool = Field(examples=[False])
    value: float | int | str | None = Field(examples=[2])
    limit: float | int | str | None = Field(examples=[1])
    bound: Literal["min", "max"] | None = Field(
        default=None,
        description="Which side of the limit is allowed: min (value at least limit) or max "
        "(at most).",
        examples=["max"],
    )
    code: str | None = Field(
        default=None,
        description="The code the check reports when it fails.",
        examples=["face.multiple"],
    )
    severity: Literal["reject", "warn"] | None = Field(
        default=None,
        description="reject: the image is refused with the code; warn: accepted with a "
        "warning of the code; null: passed.",
        examples=["reject"],
    )
    hint: str = Field(examples=["Crop the photo to one person or use a solo portrait."])


ErrorType = Literal[
    "invalid_request",
    "authentication_error",
    "permission_error",
    "not_found",
    "conflict",
    "rate_limited",
    "at_capacity",
    "api_error",
]


class ErrorObject(BaseModel):
    """What went wrong: the inner object of the error envelope, and the `error` of a
    failed avatar. Switch on `code`; show `message`."""

    type: ErrorType = Field(description="The family of the error; follows from the HTTP status.")
    code: str = Field(
        description="Stable, machine-readable code (see the examples of each status).",
        examples=["face.multiple"],
    )
    message: str = Field(
        description="For people: what was wrong and what is allowed.",
        examples=["The image shows 2 faces of similar size; upload a photo of one person."],
    )
    param: str | None = Field(
        None,
        description="The offending input as a JSON path (`room.platform`, `wait`), if any.",
        examples=["image"],
    )
    checks: list[Check] | None = Field(
        None, description="Every rule measured, for face and image verdicts."
    )


class ErrorBody(ErrorObject):
    """The inner object of every non-2xx response."""

    request_id: str = Field(
        description="The `X-Request-Id` of this response.",
        examples=["req_01JD3Z8G9YR3K2N5M6P7Q8W4TX"],
    )
    avatar_id: str | None = Field(
        None,
        description="On an upload rejected while the client waited: the failed avatar.",
        examples=[AVATAR_ID_EXAMPLE],
    )


class ErrorEnvelope(BaseModel):
    error: ErrorBody


class CheckWarning(BaseModel):
    """A check that failed without rejecting: the avatar is ready, but a person should
    know (a dim or soft face animates worse)."""

    code: str = Field(examples=["face.too_dark"])
    name: str = Field(examples=["brightness"])
    message: str = Field(
        examples=[
            "The face is too dark: its lit parts reach a brightness of 96 of 255, at least "
            "110 is needed; use a photo taken in good light."
        ]
    )
    value: float | int | str | None = Field(examples=[96.0])
    limit: float | int | str | None = Field(examples=[110.0])
    bound: Literal["min", "max"] | None = Field(default=None, examples=["min"])
    hint: str = Field(examples=["Use a photo taken in good, even light."])


class Source(BaseModel):
    """What was uploaded: its kind, and what its bytes measure (a URL is fetched
    before the avatar is made, so these are known from the start)."""

    kind: Literal["file", "url", "base64"]
    sha256: str | None = Field(
        None, examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
    )
    format: str | None = Field(None, examples=["jpeg"])
    width: int | None = Field(None, description="Upright width in pixels.", examples=[4032])
    height: int | None = Field(None, description="Upright height in pixels.", examples=[3024])
    bytes: int | None = Field(None, examples=[2480123])


class Landmarks(BaseModel):
    """The five alignment points as [x, y] in upright source pixels; `left_*` is on
    the image's left (the subject's right)."""

    left_eye: list[float] = Field(examples=[[1500.2, 1010.4]])
    right_eye: list[float] = Field(examples=[[1890.0, 1002.8]])
    nose: list[float] = Field(examples=[[1702.6, 1250.3]])
    mouth_left: list[float] = Field(examples=[[1560.1, 1480.9]])
    mouth_right: list[float] = Field(examples=[[1840.4, 1476.2]])


class Pose(BaseModel):
    """The head's rotation in degrees, 0 when facing the camera: yaw (turned left or
    right), pitch (nodded up or down), roll (tilted in the image plane)."""

    yaw: float = Field(examples=[3.1])
    pitch: float = Field(examples=[-4.0])
    roll: float = Field(examples=[1.2])


class Quality(BaseModel):
    """What the quality checks measured on the face (see `checks` for their limits)."""

    sharpness: float = Field(
        description="Edge energy of the face at a fixed scale; higher is sharper.",
        examples=[312.5],
    )
    brightness: float = Field(
        description="How bright the face's lit parts are, 0-255.", examples=[121.0]
    )
    blown_share: float | None = Field(
        None,
        description="The share of the face blown out (two or more colour channels clipped), 0-1.",
        examples=[0.0],
    )


class Face(BaseModel):
    """The chosen face, in upright source pixels (x, y), origin top-left."""

    box: list[float] = Field(
        description="x, y, width, height.", examples=[[1210.5, 640.0, 980.2, 1180.7]]
    )
    score: float = Field(description="The detector's confidence, 0-1.", examples=[0.97])
    landmarks: Landmarks
    pose: Pose
    quality: Quality


class ImageInfo(BaseModel):
    url: str = Field(
        description="Where to GET the image (this API's /image route).",
        examples=[f"/v1/avatars/{AVATAR_ID_EXAMPLE}/image?aspect_ratio=1:1"],
    )
    width: int = Field(examples=[512])
    height: int = Field(examples=[512])
    content_type: str = Field(examples=["image/jpeg"])


class Avatar(BaseModel):
    """An avatar: one uploaded face photo and, once `ready`, its prepared images."""

    object: Literal["avatar"] = "avatar"
    id: str = Field(examples=[AVATAR_ID_EXAMPLE])
    status: AvatarStatus = Field(examples=[AvatarStatus.READY])
    name: str | None = Field(examples=["Ada on stage"])
    user_exclusive: bool = Field(
        description="Usable only by the account that made it.", examples=[True]
    )
    metadata: dict[str, Any] = Field(examples=[{"team": "blue"}])
    created_at: Timestamp = Field(
        description="RFC 3339 UTC.", examples=["2025-01-07T10:15:30.123Z"]
    )
    updated_at: Timestamp = Field(
        description="RFC 3339 UTC.", examples=["2025-01-07T10:15:31.020Z"]
    )
    ready_at: Timestamp | None = Field(
        description="RFC 3339 UTC.", examples=["2025-01-07T10:15:31.020Z"]
    )
    source: Source
    face: Face | None = Field(None, description="Present once the face was found.")
    checks: list[Check] | None = Field(
        None,
        description="Every rule measured; present once `ready` (a failed avatar's are in `error`).",
    )
    warnings: list[CheckWarning] | None = Field(
        None,
        description="Once `ready`: the checks that failed without rejecting, for a "
        "person to see (empty when none).",
    )
    images: dict[str, ImageInfo] | None = Field(
        None, description="Keyed by aspect ratio (1:1, 4:3, 3:4); present once `ready`."
    )
    error: ErrorObject | None = Field(
        None, description="For a `failed` avatar: what failed (code, message, checks)."
    )


# A `202` answer: accepted, nothing measured yet (the field examples show a ready one).
QUEUED_AVATAR_EXAMPLE: dict[str, Any] = {
    "object": "avatar",
    "id": AVATAR_ID_EXAMPLE,
    "status": AvatarStatus.QUEUED.value,
    "name": "Ada on stage",
    "user_exclusive": True,
    "metadata": {"team": "blue"},
    "created_at": "2025-01-07T10:15:30.123Z",
    "updated_at": "2025-01-07T10:15:30.123Z",
    "ready_at": None,
    "source": {
        "kind": "file",
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "format": None,
        "width": None,
        "height": None,
        "bytes": 2480123,
    },
    "face": None,
    "checks": None,
    "warnings": None,
    "images": None,
    "error": None,
}


class AvatarList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Avatar]
    has_more: bool = Field(
        description="Whether a next page exists (pass the last id as `starting_after`)."
    )


class UploadFaceJson(BaseModel):
    """The JSON form of an upload."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(
        description="An https URL (fetched at once, before the avatar is made), a data URI "
        "(`data:image/jpeg;base64,...`) or bare standard base64.",
        examples=["https://example.com/portrait.jpg"],
    )
    name: str | None = Field(None, max_length=MAX_NAME_LENGTH, examples=["Ada on stage"])
    user_exclusive: StrictBool = Field(
        True, description="Usable only by this account (default true)."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Your own key/value data, returned as given. Must be a JSON object.",
        examples=[{"team": "blue"}],
    )


class UploadFaceForm(BaseModel):
    """The multipart form of an upload (documentation of the form fields)."""

    file: bytes = Field(description="The image file (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC, AVIF).")
    name: str | None = Field(None, max_length=MAX_NAME_LENGTH)
    user_exclusive: Literal["true", "false"] = Field("true")
    metadata: str | None = Field(
        None, description="A JSON object as text.", examples=['{"team": "blue"}']
    )


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Workers(BaseModel):
    """The worker processes, from their heartbeats in the registry."""

    alive: int = Field(description="Worker processes that beat recently.", examples=[2])
    last_heartbeat_at: Timestamp | None = Field(
        description="The newest beat of any worker; null when none was ever recorded.",
        examples=["2025-01-07T10:15:30.123Z"],
    )
    oldest_queued_seconds: float | None = Field(
        description="How long the oldest `queued` avatar has waited; null when none waits.",
        examples=[0.4],
    )


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    checks: dict[str, bool] = Field(
        description="Each dependency and whether it answered; `workers`: whether a worker "
        "beat within `ready_without_workers_seconds`.",
        examples=[{"database": True, "storage": True, "broker": True, "workers": True}],
    )
    workers: Workers | None = Field(
        None, description="The workers' heartbeats and the queue's oldest wait."
    )

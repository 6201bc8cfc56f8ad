"""The avatar object of docs/api.md, made from a registry row, and the error
object a failed avatar carries (the error envelope's inner object)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipeline.errors import AvatarPrepError
from service.codes import failed_type
from service.registry import AvatarRow
from service.status import AvatarStatus


def avatar_object(row: AvatarRow) -> dict[str, Any]:
    """The api.md avatar object. `images`, `checks` and `warnings` appear once the
    avatar is ready (a failed one has its checks in `error`); each image's `url` is
    the API route that streams it (or redirects to storage)."""
    images = None
    if row.status == AvatarStatus.READY and row.images:
        images = {
            ratio: {
                "url": image_route(row.id, ratio),
                "width": image["width"],
                "height": image["height"],
                "content_type": image["content_type"],
            }
            for ratio, image in row.images.items()
        }
    return {
        "object": "avatar",
        "id": row.id,
        "status": row.status,
        "name": row.name,
        "user_exclusive": row.user_exclusive,
        "metadata": row.meta,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
        "ready_at": rfc3339(row.ready_at) if row.ready_at else None,
        "source": {
            "kind": row.source_kind,
            "sha256": row.sha256,
            "format": row.source_format,
            "width": row.source_width,
            "height": row.source_height,
            "bytes": row.source_bytes,
        },
        "face": row.face,
        "checks": row.checks,
        "warnings": row.warnings if row.status == AvatarStatus.READY else None,
        "images": images,
        "error": row.error,
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

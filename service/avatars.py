"""Avatar service functions: what api/ and tasks/ both call.

OWNER: service helper. This file states the CONTRACT the API is written
against; keep these names and meanings (add, don't rename). Implementation
replaces the NotImplementedError bodies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ImageKind = Literal["file", "url", "base64"]


@dataclass(frozen=True)
class ImageInput:
    """One image as the client sent it. `data` for file/base64 (already base64-decoded
    by the edge), `url` for url. The edge never trusts `filename`: it is only logged."""

    kind: ImageKind
    data: bytes | None = None
    url: str | None = None
    filename: str | None = None


@dataclass(frozen=True)
class ImageRef:
    """Where a prepared image can be read: exactly one of `data` (local storage)
    or `url` (a presigned, time-limited S3 URL)."""

    content_type: str
    data: bytes | None = None
    url: str | None = None


class AvatarService:
    """Made once per process (FastAPI lifespan, Celery worker_process_init, the
    CLI) from the one `Settings`; holds the registry, storage and enqueue seam."""

    def create(
        self,
        account_id: str,
        image: ImageInput,
        *,
        name: str | None,
        user_exclusive: bool,
        metadata: dict[str, Any],
    ) -> tuple[dict[str, Any], bool]:
        """Cheap checks (size, sniffed format, header limits), store the original
        under a server-made key, insert the row `queued`, enqueue. Returns the avatar
        object (api.md shape) and `created` (False: same bytes already uploaded by
        this account, the existing avatar is returned). Raises ImageError for cheap
        check failures (no row, no object left behind), Unavailable when the queue
        is full."""
        raise NotImplementedError

    def process(self, avatar_id: str) -> None:
        """Worker side: fetch (url) or load the original, run the pipeline, store
        renditions and the record, mark ready/failed. Idempotent. Raises
        TransientError for failures worth a retry."""
        raise NotImplementedError

    def get(self, account_id: str, avatar_id: str) -> dict[str, Any]:
        """The avatar object; NotFound when unknown or not visible."""
        raise NotImplementedError

    def list(
        self, account_id: str, *, limit: int, starting_after: str | None, status: str | None
    ) -> tuple[list[dict[str, Any]], bool]:
        """This account's avatars newest first, and has_more."""
        raise NotImplementedError

    def delete(self, account_id: str, avatar_id: str) -> None:
        """Remove every stored object then the row. NotFound when not visible."""
        raise NotImplementedError

    def image(self, account_id: str, avatar_id: str, aspect_ratio: str) -> ImageRef:
        """The rendition; Conflict(avatar.not_ready / avatar.failed) before ready."""
        raise NotImplementedError

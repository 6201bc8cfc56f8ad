"""Images for people: an avatar's renditions and its overlay (the face box,
landmarks, other faces and crop outlines on the photo) behind short-lived signed
URLs, so a web page can show them in `<img src>` without the API key.

The account's right to see the avatar is checked once, when the links are made;
a signed URL is then the permission for that one image until it expires.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.aspect import AspectRatio
from pipeline.overlay import render_overlay
from service.avatars import AvatarService
from service.errors import Conflict, NotFound, ObjectMissing
from service.registry import AvatarRow, Registry
from service.settings import Settings
from service.signing import UrlSigner
from service.status import AvatarStatus
from service.storage import Storage

OVERLAY = "overlay"


@dataclass(frozen=True)
class Links:
    """Signed URLs (relative to the API's base URL, or absolute for S3) of one
    avatar's images, valid until `expires_at`. `images` is empty unless the avatar
    is ready; `overlay` is None until the pipeline has judged the photo."""

    avatar_id: str
    expires_at: datetime
    images: dict[str, str]
    overlay: str | None


class Previews:
    """Made once per process with the other services."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        storage: Storage,
        avatars: AvatarService,
        signer: UrlSigner,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._storage = storage
        self._avatars = avatars
        self._signer = signer

    def links(self, account_id: str, avatar_id: str) -> Links:
        """The signed URLs of `avatar_id`'s images; NotFound when the account may
        not see it."""
        self._avatars.get(account_id, avatar_id)  # the visibility rule, in one place
        row = self._row(avatar_id)
        expires, _ = self._signer.sign("")
        images: dict[str, str] = {}
        if row.status == AvatarStatus.READY and row.images:
            for ratio, stored in row.images.items():
                presigned = self._storage.url(stored["key"], stored["content_type"])
                images[ratio] = presigned or self._signed(avatar_id, AspectRatio(ratio).slug)
        overlay = self._signed(avatar_id, OVERLAY) if row.record_key else None
        return Links(avatar_id, datetime.fromtimestamp(expires, UTC), images, overlay)

    def verify(self, avatar_id: str, name: str, expires: int, signature: str) -> bool:
        """Whether a signed URL for `name` (a rendition's slug, or `overlay`) of
        `avatar_id` is genuine and unexpired."""
        return self._signer.verify(f"{avatar_id}/{name}", expires, signature)

    def image(self, avatar_id: str, name: str) -> bytes:
        """The JPEG bytes of `name` (see `verify`, which the caller has done):
        a stored rendition, or the overlay drawn now. NotFound when the avatar or
        the image is gone; Conflict when it has no such image."""
        row = self._row(avatar_id)
        if name == OVERLAY:
            if row.record_key is None or row.original_key is None:
                raise Conflict(f"Avatar {avatar_id} has no verdict yet.", code="avatar.not_ready")
            try:
                record = json.loads(self._storage.get(row.record_key))
                original = self._storage.get(row.original_key)
            except ObjectMissing as exc:
                raise _gone(avatar_id) from exc
            return render_overlay(original, record, self._settings.pipeline)
        slugs = {AspectRatio(ratio).slug: stored for ratio, stored in (row.images or {}).items()}
        stored = slugs.get(name)
        if stored is None or row.status != AvatarStatus.READY:
            raise _gone(avatar_id)
        try:
            return self._storage.get(stored["key"])
        except ObjectMissing as exc:
            raise _gone(avatar_id) from exc

    def _signed(self, avatar_id: str, name: str) -> str:
        expires, signature = self._signer.sign(f"{avatar_id}/{name}")
        return f"/signed/{avatar_id}/{name}?expires={expires}&signature={signature}"

    def _row(self, avatar_id: str) -> AvatarRow:
        with self._registry.transaction() as session:
            row = session.get(AvatarRow, avatar_id)
        if row is None:
            raise _gone(avatar_id)
        return row


def _gone(avatar_id: str) -> NotFound:
    return NotFound(f"No such image of avatar {avatar_id}.", code="avatar.not_found", param="id")

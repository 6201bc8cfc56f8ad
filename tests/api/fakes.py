"""A fake at the API's seam: what `Services.create` would make, in memory.

It keeps avatars as api.md dicts and lets a test script what the worker would
do (`finish_after`), or make the next call raise (`fail_with`). The real service
behind real HTTP is tested in tests/integration.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import AvatarPrepError
from service.avatars import ImageInput, ImageRef
from service.errors import AuthenticationFailed, Conflict, NotFound
from service.ids import new_id
from service.keys import Account

FREE_KEY = "ak_test_free_0123456789"
PAID_KEY = "ak_test_paid_0123456789"
ACCOUNTS = {
    FREE_KEY: Account(id="acct_free", name="free-co", plan="free"),
    PAID_KEY: Account(id="acct_paid", name="paid-co", plan="paid"),
}
NOW = "2025-01-07T10:15:30.123Z"


@dataclass
class FakeKeys:
    seen: list[str] = field(default_factory=list)
    fail_with: Exception | None = None

    def authenticate(self, plain_key: str) -> Account:
        self.seen.append(plain_key)
        if self.fail_with is not None:
            raise self.fail_with
        if plain_key not in ACCOUNTS:
            raise AuthenticationFailed("The API key is unknown or revoked.")
        return ACCOUNTS[plain_key]


@dataclass
class Stored:
    account_id: str
    sha256: str
    avatar: dict[str, Any]
    gets: int = 0


@dataclass
class FakeAvatars:
    """`finish_after = (n, outcome)`: the n-th read of an unfinished avatar finds it
    in `outcome` ("ready", or an error dict for "failed")."""

    stored: dict[str, Stored] = field(default_factory=dict)
    created: list[ImageInput] = field(default_factory=list)
    fail_with: AvatarPrepError | None = None
    finish_after: tuple[int, str | dict[str, Any]] | None = None
    image_url: str | None = None

    def create(
        self,
        account_id: str,
        image: ImageInput,
        *,
        name: str | None,
        user_exclusive: bool,
        metadata: dict[str, Any],
    ) -> tuple[dict[str, Any], bool]:
        if self.fail_with is not None:
            raise self.fail_with
        self.created.append(image)
        content = image.data if image.data is not None else str(image.url).encode()
        digest = hashlib.sha256(content).hexdigest()
        for s in self.stored.values():
            if s.account_id == account_id and s.sha256 == digest:
                return s.avatar, False
        avatar_id = new_id("avat")
        avatar = {
            "object": "avatar",
            "id": avatar_id,
            "status": "queued",
            "name": name,
            "user_exclusive": user_exclusive,
            "metadata": metadata,
            "created_at": NOW,
            "updated_at": NOW,
            "ready_at": None,
            "source": {"kind": image.kind, "sha256": digest, "bytes": len(content)},
            "face": None,
            "images": None,
            "error": None,
        }
        self.stored[avatar_id] = Stored(account_id, digest, avatar)
        return avatar, True

    def get(self, account_id: str, avatar_id: str) -> dict[str, Any]:
        s = self._visible(account_id, avatar_id)
        s.gets += 1
        if self.finish_after and s.avatar["status"] == "queued" and s.gets >= self.finish_after[0]:
            outcome = self.finish_after[1]
            if outcome == "ready":
                s.avatar = {
                    **s.avatar,
                    "status": "ready",
                    "ready_at": NOW,
                    "images": {
                        ar: {
                            "url": f"/v1/avatars/{avatar_id}/image?aspect_ratio={ar}",
                            "width": w,
                            "height": h,
                            "content_type": "image/jpeg",
                        }
                        for ar, w, h in (("1:1", 512, 512), ("4:3", 640, 480), ("3:4", 480, 640))
                    },
                }
            else:
                s.avatar = {**s.avatar, "status": "failed", "error": outcome}
        return s.avatar

    def list(
        self, account_id: str, *, limit: int, starting_after: str | None, status: str | None
    ) -> tuple[list[dict[str, Any]], bool]:
        mine = sorted(
            (s.avatar for s in self.stored.values() if s.account_id == account_id),
            key=lambda a: a["id"],
            reverse=True,
        )
        if status is not None:
            mine = [a for a in mine if a["status"] == status]
        if starting_after is not None:
            mine = [a for a in mine if a["id"] < starting_after]  # ULIDs sort by age
        return mine[:limit], len(mine) > limit

    def delete(self, account_id: str, avatar_id: str) -> None:
        self._visible(account_id, avatar_id)
        del self.stored[avatar_id]

    def image(self, account_id: str, avatar_id: str, aspect_ratio: str) -> ImageRef:
        avatar = self._visible(account_id, avatar_id).avatar
        if avatar["status"] != "ready":
            raise Conflict(f"The avatar is {avatar['status']}; its images exist once it is ready.")
        if self.image_url is not None:
            return ImageRef(content_type="image/jpeg", url=f"{self.image_url}?ar={aspect_ratio}")
        return ImageRef(content_type="image/jpeg", data=f"jpeg {aspect_ratio}".encode())

    def _visible(self, account_id: str, avatar_id: str) -> Stored:
        s = self.stored.get(avatar_id)
        if s is None or s.account_id != account_id:
            raise NotFound(f"No avatar {avatar_id}.", param="id")
        return s


@dataclass
class FakeServices:
    avatars: FakeAvatars = field(default_factory=FakeAvatars)
    keys: FakeKeys = field(default_factory=FakeKeys)
    ready: dict[str, bool] = field(default_factory=lambda: {"database": True, "storage": True})
    closed: bool = False

    def check_ready(self) -> dict[str, bool]:
        return dict(self.ready)

    def close(self) -> None:
        self.closed = True

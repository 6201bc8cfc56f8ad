"""The service's branches of the error tree (root: `pipeline.errors.AvatarPrepError`).

Each class fixes its error `type` family; the HTTP edge maps classes (and the
image codes) to statuses in one table, `api/errors.py`.
"""

from __future__ import annotations

from pipeline.errors import AvatarPrepError


class InvalidRequest(AvatarPrepError):
    """Malformed or rule-breaking input that is not an image verdict (400)."""

    code = "request.invalid"


class AuthenticationFailed(AvatarPrepError):
    """Missing, unknown or revoked API key (401)."""

    code = "auth.invalid_key"


class PermissionDenied(AvatarPrepError):
    """The account's plan does not allow the operation (403)."""

    code = "plan.not_allowed"


class NotFound(AvatarPrepError):
    """Unknown id, or not visible to this account (404). Never reveals which."""

    code = "avatar.not_found"


class Conflict(AvatarPrepError):
    """The object exists but is in the wrong state for the operation (409)."""

    code = "avatar.not_ready"


class TryLater(AvatarPrepError):
    """A refusal that says when to ask again: `retry_after` seconds (the HTTP edge
    sends it as `Retry-After`)."""

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class RateLimited(TryLater):
    """Per-key rate limit hit (429)."""

    code = "rate_limited"


class Unavailable(TryLater):
    """Work queue over its limit or a dependency down (503)."""

    code = "at_capacity"


class TransientError(AvatarPrepError):
    """A dependency failed in a way a retry may fix (storage, database, URL fetch).
    Tasks retry these with backoff; after the last retry they fail with `code`."""

    code = "dependency.unavailable"


class ObjectMissing(AvatarPrepError):
    """A stored object the registry points at is gone (deleted out of band). Not
    worth a retry: the avatar fails with this code."""

    code = "storage.object_missing"

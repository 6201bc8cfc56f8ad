"""Short-lived signed URLs: an HMAC-SHA256 over a resource name and its expiry, with
a server secret, so a page can put an image in `<img src>` without sending the API
key, and nobody can alter the URL or use it after it expires.

S3 storage signs its own (presigned) URLs; this signs what the API serves itself.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from service.settings import Settings

SECRET_BYTES = 32
SECRET_FILE = "url-signing-secret"


class UrlSigner:
    """Signs `resource` (any string naming what the URL gives) until an expiry in
    whole Unix seconds; `ttl_seconds` is how long a new signature lives."""

    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        if len(secret) < 16:
            raise ValueError("a URL signing secret needs at least 16 bytes")
        self._secret = secret
        self.ttl_seconds = ttl_seconds

    def sign(self, resource: str, now: float | None = None) -> tuple[int, str]:
        """(expires, signature): the expiry in Unix seconds and the hex HMAC."""
        expires = int((time.time() if now is None else now) + self.ttl_seconds)
        return expires, self._mac(resource, expires)

    def verify(self, resource: str, expires: int, signature: str, now: float | None = None) -> bool:
        """Whether `signature` was made by `sign(resource)` and `expires` has not passed."""
        if (time.time() if now is None else now) > expires:
            return False
        # As bytes: compare_digest refuses str with non-ASCII characters.
        return hmac.compare_digest(self._mac(resource, expires).encode(), signature.encode())

    def _mac(self, resource: str, expires: int) -> str:
        message = f"{resource}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()


def make_signer(settings: Settings) -> UrlSigner:
    """The signer for `settings`: its `url_signing_secret`, or else a random secret
    kept in `data_dir` (made once, readable by this user only), which every process
    on this machine shares; several API hosts must set the setting."""
    if settings.url_signing_secret is not None:
        secret = settings.url_signing_secret.get_secret_value().encode()
    else:
        secret = _local_secret(Path(settings.data_dir) / SECRET_FILE)
    return UrlSigner(secret, settings.signed_url_seconds)


def _local_secret(path: Path) -> bytes:
    """The secret in `path`, made first if missing: written aside and linked into
    place, so concurrent first starts agree on one secret and none reads half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        aside = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(SECRET_BYTES))
        try:
            os.link(aside, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            aside.unlink()
    return path.read_bytes()

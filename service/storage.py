"""Object storage for originals, renditions and records: a local directory by
default, any S3 API (AWS, MinIO, SeaweedFS, R2) via boto3 in production.

Keys are made here from the avatar id, never from anything a client sent:
`avatars/<avatar_id>/original`, `avatars/<avatar_id>/<AspectRatio.slug>.jpg`,
`avatars/<avatar_id>/record.json`; an avatar re-rendered by `reprocess` gets its
renditions and record under a generation folder
(`avatars/<avatar_id>/<generation>/<slug>.jpg`, `.../record.json`) and the
outcome of its last reprocess at `avatars/<avatar_id>/reprocess.json`. Every
object is private; S3 images are handed out as presigned, time-limited GET URLs.

Failures: an unreachable or failing backend raises `TransientError`
(`storage.unavailable`, worth a retry); a missing object raises `ObjectMissing`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.utils import determine_content_length

from pipeline.aspect import AspectRatio
from service.errors import ObjectMissing, TransientError
from service.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

# Segments of letters, digits, `_`, `-`, `.`; none starts with `.` (no `..`, no hidden files).
_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*")
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
_DELETE_ROUNDS = 3
# botocore sends every PUT's headers with "Expect: 100-continue", waits for the
# server's interim answer and reads it a byte at a time before sending the body:
# a round trip and about 50 system calls per object. That pays for a large body
# the server may refuse before it arrives (a redirect, a denied key); for a smaller
# one, sending it at once costs less than asking. The renditions and records are
# 5-100 KB; originals over this size still ask.
EXPECT_CONTINUE_MIN_BYTES = 1 << 20


def avatar_prefix(avatar_id: str) -> str:
    """The folder holding every object of one avatar (ends with `/`)."""
    return f"avatars/{avatar_id}/"


def original_key(avatar_id: str) -> str:
    return f"{avatar_prefix(avatar_id)}original"


def _folder(avatar_id: str, generation: str | None) -> str:
    """The avatar's folder, or its `generation` subfolder (a re-render's objects)."""
    prefix = avatar_prefix(avatar_id)
    return prefix if generation is None else f"{prefix}{generation}/"


def rendition_key(avatar_id: str, aspect_ratio: str, generation: str | None = None) -> str:
    """`1:1` -> `avatars/<id>/1x1.jpg` (the ratio's slug: no `:` in keys), or
    `avatars/<id>/<generation>/1x1.jpg` for a re-render."""
    return f"{_folder(avatar_id, generation)}{AspectRatio(aspect_ratio).slug}.jpg"


def record_key(avatar_id: str, generation: str | None = None) -> str:
    return f"{_folder(avatar_id, generation)}record.json"


def reprocess_key(avatar_id: str) -> str:
    """The outcome of the avatar's last `reprocess` (service/reprocess.py)."""
    return f"{avatar_prefix(avatar_id)}reprocess.json"


class Storage(Protocol):
    """What the avatar service needs from a store of private objects."""

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write (or overwrite) one object; readers see the whole object or nothing."""

    def put_many(self, objects: Sequence[StoredObject]) -> None:
        """`put` each of `objects`, concurrently where the backend gains by it. Returns
        once every one is written; when one fails, raises (its first failure) only
        once no write of these is under way any more, so a caller that cleans up
        after the error leaves nothing behind; the others may have been written."""

    def get(self, key: str) -> bytes:
        """The object's bytes; ObjectMissing when there is none."""

    def delete(self, key: str) -> None:
        """Remove one object; a missing one is fine."""

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object under the folder `prefix` (ends with `/`); none is fine."""

    def list_keys(self, prefix: str) -> list[str]:
        """Keys under the folder `prefix` (ends with `/`), sorted."""

    def url(self, key: str, content_type: str) -> str | None:
        """A time-limited GET URL for the object, or None when the caller must
        read the bytes itself (local storage)."""

    def check(self) -> bool:
        """Whether the backend answers (readiness)."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class StoredObject:
    """One object to write: its key, bytes and content type."""

    key: str
    data: bytes
    content_type: str


def make_storage(settings: Settings) -> Storage:
    """The process's one storage client, from the settings' backend."""
    if settings.storage_backend == "s3":
        return S3Storage(settings)
    return LocalStorage(settings.storage_dir)


def _checked(key: str) -> str:
    # Keys are server-made; this guards against a bug turning into a path escape.
    if not _KEY.fullmatch(key):
        raise ValueError(f"invalid storage key {key!r}")
    return key


def _checked_folder(prefix: str) -> str:
    if not prefix.endswith("/"):
        raise ValueError(f"a storage folder ends with '/': {prefix!r}")
    _checked(prefix[:-1])
    return prefix


class LocalStorage:
    """Objects as files under one directory (the embedded default, and unit tests)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / _checked(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write aside then rename: a crash never leaves half an object.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise _unavailable(exc) from exc

    def put_many(self, objects: Sequence[StoredObject]) -> None:
        # A local write takes microseconds: threads would cost more than they save.
        for one in objects:
            self.put(one.key, one.data, one.content_type)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectMissing(f"No stored object {key}.") from exc
        except OSError as exc:
            raise _unavailable(exc) from exc

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise _unavailable(exc) from exc

    def delete_prefix(self, prefix: str) -> None:
        try:
            shutil.rmtree(self.root / _checked_folder(prefix))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _unavailable(exc) from exc

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root / _checked_folder(prefix)
        if not base.is_dir():
            return []
        paths = (p for p in base.rglob("*") if p.is_file() and not p.name.startswith(".tmp-"))
        return sorted(p.relative_to(self.root).as_posix() for p in paths)

    def url(self, key: str, content_type: str) -> str | None:
        return None

    def check(self) -> bool:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        return os.access(self.root, os.W_OK)

    def close(self) -> None:
        pass


class S3Storage:
    """Private objects in one S3 bucket; time-outs and retries are explicit because
    boto3's defaults (60 s reads, legacy retries) would hang a request."""

    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3_bucket
        self.presign_seconds = settings.s3_presign_seconds
        config = Config(
            connect_timeout=settings.s3_connect_timeout_seconds,
            read_timeout=settings.s3_read_timeout_seconds,
            retries={"max_attempts": settings.s3_max_attempts, "mode": "standard"},
            signature_version="s3v4",
            # Path-style works on every S3 API; virtual hosts need DNS per bucket.
            s3={"addressing_style": "path"},
            # No CRC of every body on the way out and back (botocore's default since
            # 1.36): in transit the payload's signed SHA-256 (http) or TLS (https)
            # already covers it; it cost 0.2-0.3 ms of CPU per call (against
            # SeaweedFS, of about 2 ms in all), and an upload makes six calls.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        key_id, secret = settings.s3_access_key_id, settings.s3_secret_access_key
        self.client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=key_id.get_secret_value() if key_id else None,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=config,
        )
        # After botocore's own handler has added the header (see EXPECT_CONTINUE_MIN_BYTES).
        self.client.meta.events.register_last("before-call.s3", _send_small_bodies_at_once)
        # Several objects of one avatar go out at once (one round trip's latency for
        # all), through this one client: boto3 clients are thread-safe, and its
        # connection pool (10) is larger than the pool of threads.
        self._writers = ThreadPoolExecutor(
            max_workers=settings.s3_max_concurrency, thread_name_prefix="s3-put"
        )

    def put(self, key: str, data: bytes, content_type: str) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=_checked(key), Body=data, ContentType=content_type
            )
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc) from exc

    def put_many(self, objects: Sequence[StoredObject]) -> None:
        futures = [self._writers.submit(self.put, o.key, o.data, o.content_type) for o in objects]
        wait(futures)  # every write ended, failed or not, before anything is raised
        for future in futures:
            future.result()

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=_checked(key))
            return response["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                raise ObjectMissing(f"No stored object {key}.") from exc
            raise _unavailable(exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(exc) from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=_checked(key))
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc) from exc

    def delete_prefix(self, prefix: str) -> None:
        try:
            # Listing again until empty also removes objects written meanwhile. A
            # few rounds suffice (a worker writes five objects at most); a store
            # that keeps listing what it deleted must not keep us here.
            for _ in range(_DELETE_ROUNDS):
                keys = self.list_keys(prefix)
                if not keys:
                    return
                for start in range(0, len(keys), 1000):  # delete_objects takes 1000 at most
                    batch: list[ObjectIdentifierTypeDef] = [
                        {"Key": k} for k in keys[start : start + 1000]
                    ]
                    response = self.client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                    )
                    if errors := response.get("Errors"):
                        raise TransientError(
                            f"Storage refused to delete {len(errors)} objects under {prefix} "
                            f"({errors[0].get('Code')}); the operation can be retried.",
                            code="storage.unavailable",
                        )
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc) from exc
        if self.list_keys(prefix):
            raise TransientError(
                f"Objects under {prefix} remain after deleting them; retry.",
                code="storage.unavailable",
            )

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=_checked_folder(prefix)
            )
            for page in pages:
                keys.extend(obj["Key"] for obj in page.get("Contents", []) if "Key" in obj)
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc) from exc
        return sorted(keys)

    def url(self, key: str, content_type: str) -> str | None:
        # Signing is local: no request, so no failure mode but a bad configuration.
        return self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": _checked(key),
                "ResponseContentType": content_type,
            },
            ExpiresIn=self.presign_seconds,
        )

    def check(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError):
            return False
        return True

    def close(self) -> None:
        self._writers.shutdown(wait=True)
        self.client.close()


def _send_small_bodies_at_once(params: dict[str, Any], **_: Any) -> None:
    """botocore `before-call` handler: no "Expect: 100-continue" on a request whose body
    is under EXPECT_CONTINUE_MIN_BYTES."""
    size = determine_content_length(params.get("body"))
    if size is not None and size < EXPECT_CONTINUE_MIN_BYTES:
        params["headers"].pop("Expect", None)


def _unavailable(exc: Exception) -> TransientError:
    return TransientError(
        f"Storage is unavailable ({type(exc).__name__}); the operation can be retried.",
        code="storage.unavailable",
    )

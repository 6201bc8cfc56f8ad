"""Avatar service functions: what api/ and tasks/ both call.

The state machine of one avatar: `queued` (row written, id sent to the broker)
-> `processing` (a worker claimed it) -> `ready` (renditions and record stored)
or `failed` (the error object stored). The guarantees, and how each is kept:

- Nothing orphaned on create: the original is stored first, then the row is
  written; if the row cannot be written the object is removed again.
- Nothing lost: a row the broker refused stays `queued` with no `enqueued_at`,
  and `requeue_stuck` (the sweeper) sends it again; so is a row `processing` by
  a worker that stopped beating (service/heartbeats.py), or stuck too long.
  Every start counts in `attempts`; an image that keeps killing its worker
  fails with `processing.crashed`.
- Idempotent processing: the same keys are written with the same bytes; a
  `ready` or `failed` avatar is left as it is.
- One avatar per bytes: a URL is fetched at create, so every kind of upload
  meets at the (account, sha256) unique constraint. Only a verdict on the image
  is final: a failed avatar whose bytes come again after any other failure is
  reopened under its id (`service.status.reopened`).
- Nothing orphaned on delete: the row goes with a record of the avatar's folder,
  then the objects and the record (service/purge.py; storage that fails leaves
  the record for the sweeper); a worker that finishes after the row is gone
  removes what it wrote.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Select, func, select, update
from sqlalchemy import delete as sql_delete
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipeline import FaceModels, Prepared
from pipeline.aspect import AspectRatio
from pipeline.errors import AvatarPrepError
from pipeline.probe import Probe, probe
from service import purge
from service.codes import failure_is_final
from service.domain import Avatar
from service.errors import Conflict, InvalidRequest, NotFound, TransientError, Unavailable
from service.fetch import fetch
from service.ids import new_id
from service.processing import Processor, RunOutcome, set_source
from service.queue import BrokerUnavailable, WorkQueue
from service.registry import AvatarRow, Registry, SessionRow, utcnow
from service.settings import Settings
from service.status import UNFINISHED, AvatarStatus, reopened
from service.storage import Storage, avatar_prefix, original_key

logger = logging.getLogger(__name__)

ImageKind = Literal["file", "url", "base64"]

# Seconds a client is asked to wait when the work queue is full: about the time a
# worker needs to take a few images off it.
QUEUE_FULL_RETRY_AFTER_SECONDS = 5


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
    CLI) from the one `Settings`; holds the registry, storage and work queue.
    `models` are needed only where `process` runs (workers), and `worker_id` there
    names the process's heartbeat (service/heartbeats.py)."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        storage: Storage,
        queue: WorkQueue,
        models: FaceModels | None = None,
        worker_id: str | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._storage = storage
        self._queue = queue
        self._processor = Processor(settings, registry, storage, queue, models, worker_id)

    # --- create (API side: cheap work only) ---------------------------------

    def create(
        self,
        account_id: str,
        image: ImageInput,
        *,
        name: str | None,
        user_exclusive: bool,
        metadata: dict[str, Any],
    ) -> tuple[Avatar, bool]:
        """Cheap checks (a URL fetched, size, sniffed format, header limits), store the
        original under a server-made key, insert the row `queued`, enqueue. Returns the
        avatar and `created`: False when this account already has
        an avatar of these bytes, returned as it is; True for a new avatar, or for that
        one processed again under its id because it failed for a reason that was no
        verdict on the image (`service.codes.failure_is_final`). Raises ImageError for
        cheap check failures (no row, no object left behind), Unavailable when the
        queue is full, TransientError when the registry, storage or the URL's server
        is down for now (nothing left behind either)."""
        data = image.data or b""
        source_url: str | None = None
        if image.kind == "url":
            # Fetched here, before any avatar exists: the bytes decide the avatar, so a
            # URL dedupes like an upload and concurrent requests for the same bytes
            # meet at the unique constraint below. A failed fetch leaves nothing.
            source_url = image.url or ""
            data = fetch(source_url, self._settings)
        info = probe(data, self._settings.pipeline)
        sha256 = hashlib.sha256(data).hexdigest()
        existing = self._admit(account_id, sha256)
        if existing is not None:
            return self._same_bytes_again(existing, data, info, sha256)
        row = AvatarRow(
            id=new_id("avat"),
            account_id=account_id,
            status=AvatarStatus.QUEUED,
            name=name,
            user_exclusive=user_exclusive,
            meta=metadata,
            source_kind=image.kind,
            source_url=source_url,
            attempts=0,
        )
        set_source(row, info, sha256)
        row.dedupe_sha256 = sha256
        row.original_key = original_key(row.id)
        self._storage.put(row.original_key, data, f"image/{info.format}")
        try:
            self._insert(row)
        except IntegrityError:
            # Lost a race to the same bytes from the same account: theirs stands.
            self._discard_objects(row.id)
            existing = self._find_same_bytes(account_id, sha256)
            if existing is None:  # and it was deleted meanwhile
                raise _deleted_meanwhile() from None
            return self._same_bytes_again(existing, data, info, sha256)
        except TransientError:
            self._discard_objects(row.id)
            raise
        return self._send(row), True

    def _same_bytes_again(
        self, existing: AvatarRow, data: bytes, info: Probe, sha256: str
    ) -> tuple[Avatar, bool]:
        """The answer to bytes the account already has as `existing`: that avatar
        (`created` False), unless it failed for a reason that was no verdict on the
        image; then it is reopened, its original stored again, and sent (`created`
        True). Concurrent uploads of those bytes reopen it once."""
        if existing.status != AvatarStatus.FAILED or failure_is_final(
            (existing.error or {}).get("code")
        ):
            return Avatar.of(existing), False
        with self._registry.transaction() as session:
            self._check_room(session)  # processing it again is new work
        key = original_key(existing.id)
        # Stored first (the same key, the same bytes: harmless when another upload
        # does it too), so the row never points at a missing original.
        self._storage.put(key, data, f"image/{info.format}")
        with self._registry.transaction() as session:
            # One conditional UPDATE: of concurrent uploads of these bytes, one
            # reopens it (a row lock read first would not serialise them on SQLite).
            result = session.execute(
                update(AvatarRow)
                .where(AvatarRow.id == existing.id, AvatarRow.status == AvatarStatus.FAILED)
                .values(**reopened(utcnow()), original_key=key)
            )
            assert isinstance(result, CursorResult)
            reopened_here = result.rowcount == 1
            row = session.get(AvatarRow, existing.id)
            if reopened_here and row is not None:
                set_source(row, info, sha256)
        if row is None:  # deleted meanwhile: what was just stored must go too
            self._discard_objects(existing.id)
            raise _deleted_meanwhile()
        if not reopened_here:  # another upload reopened it first
            return Avatar.of(row), False
        logger.info(
            "avatar %s: processed again after %s", row.id, (existing.error or {}).get("code")
        )
        return self._send(row), True

    def _admit(self, account_id: str, sha256: str) -> AvatarRow | None:
        """One registry transaction before any work: the account's avatar of these
        bytes when there is one (dedupe: no new work), else check that the work queue
        has room (Unavailable when it has not)."""
        with self._registry.transaction() as session:
            existing = session.scalar(_same_bytes(account_id, sha256))
            if existing is None:
                self._check_room(session)
        return existing

    def _check_room(self, session: Session) -> None:
        """Unavailable (at_capacity) when the work queue is full: new work waits."""
        unfinished = session.scalar(
            select(func.count()).select_from(AvatarRow).where(AvatarRow.status.in_(UNFINISHED))
        )
        if (unfinished or 0) >= self._settings.max_queue_depth:
            raise Unavailable(
                f"The work queue is full ({unfinished} images waiting); retry shortly.",
                retry_after=QUEUE_FULL_RETRY_AFTER_SECONDS,
            )

    def _find_same_bytes(self, account_id: str, sha256: str) -> AvatarRow | None:
        with self._registry.transaction() as session:
            return session.scalar(_same_bytes(account_id, sha256))

    def _insert(self, row: AvatarRow) -> None:
        now = utcnow()
        row.created_at = row.updated_at = row.enqueued_at = now
        with self._registry.transaction() as session:
            session.add(row)

    def _send(self, row: AvatarRow) -> Avatar:
        """Enqueue the id; a broker that refuses leaves the row `queued` for the sweeper."""
        try:
            self._queue.send(row.id)
        except BrokerUnavailable as exc:
            logger.warning("avatar %s: enqueue failed (%s); the sweeper will send it", row.id, exc)
            try:
                with self._registry.transaction() as session:
                    session.execute(
                        update(AvatarRow).where(AvatarRow.id == row.id).values(enqueued_at=None)
                    )
                row.enqueued_at = None
            except TransientError:
                pass  # still swept, once `stuck_after_seconds` have passed
        return Avatar.of(row)

    def _discard_objects(self, avatar_id: str) -> None:
        try:
            self._storage.delete_prefix(avatar_prefix(avatar_id))
        except TransientError:
            logger.error("avatar %s: could not remove its objects after a failed create", avatar_id)

    # --- worker side (service/processing.py) -----------------------------------

    def process(self, avatar_id: str, prepared: Prepared | None = None) -> None:
        """Worker side: fetch (url) or load the original, run the pipeline, store
        renditions and the record, mark ready/failed. Idempotent. Raises
        TransientError for failures worth a retry. `prepared`: the pipeline's result
        for the stored original, when the caller already has it (not run again)."""
        self._processor.process(avatar_id, prepared)

    def fail(self, avatar_id: str, error: AvatarPrepError) -> None:
        """Mark the avatar `failed` with `error` unless it already finished; the task
        calls this after the last retry of a transient failure (or on a bug)."""
        self._processor.fail(avatar_id, error)

    def requeue_stuck(self) -> int:
        """Send again the ids of avatars the broker refused, of avatars held by a worker
        that stopped beating, and of avatars queued or processing for longer than
        `stuck_after_seconds`; how many were sent."""
        return self._processor.requeue_stuck()

    @property
    def pipeline_cpu_seconds(self) -> float:
        """CPU seconds this process has spent inside prepare() (worker side)."""
        return self._processor.pipeline_cpu_seconds

    @property
    def last_run(self) -> RunOutcome | None:
        """What this process's last `process` or `fail` call left (worker side)."""
        return self._processor.last_run

    # --- reads and delete -------------------------------------------------------

    def get(self, account_id: str, avatar_id: str) -> Avatar:
        """The avatar; NotFound when unknown or not visible."""
        return Avatar.of(self._visible(account_id, avatar_id))

    def list(
        self, account_id: str, *, limit: int, starting_after: str | None, status: str | None
    ) -> tuple[list[Avatar], bool]:
        """This account's avatars newest first, and has_more."""
        if status is not None and status not in list(AvatarStatus):
            raise InvalidRequest(
                f"status must be one of {', '.join(AvatarStatus)}; got {status!r}.",
                code="request.invalid_field",
                param="status",
            )
        query = select(AvatarRow).where(AvatarRow.account_id == account_id)
        if status is not None:
            query = query.where(AvatarRow.status == status)
        if starting_after is not None:
            query = query.where(AvatarRow.id < starting_after)  # ULIDs sort by age
        query = query.order_by(AvatarRow.id.desc()).limit(limit + 1)
        with self._registry.transaction() as session:
            rows = session.scalars(query).all()
        return [Avatar.of(r) for r in rows[:limit]], len(rows) > limit

    def delete(self, account_id: str, avatar_id: str) -> None:
        """Remove the row, then every stored object (service/purge.py: recorded with
        the row's delete, so storage that fails only delays them). NotFound when not
        visible or not this account's (another account's shared avatar is not theirs
        to delete); Conflict(avatar.in_use) while a started session shows it, since
        its renderer still reads the images. The row stays locked from the check to
        its delete, and session creation re-reads it locked (service/sessions.py),
        so no session starts on an avatar being deleted."""
        row = self._visible(account_id, avatar_id)
        if row.account_id != account_id:
            raise _not_found(avatar_id)
        prefix = avatar_prefix(avatar_id)
        with self._registry.transaction() as session:
            if session.get(AvatarRow, avatar_id, with_for_update=True) is None:
                raise _not_found(avatar_id)
            in_use = session.scalar(
                select(func.count())
                .select_from(SessionRow)
                .where(
                    SessionRow.avatar_id == avatar_id,
                    SessionRow.ended_at.is_(None),
                    SessionRow.expires_at > utcnow(),
                )
            )
            if in_use:
                raise Conflict(
                    f"The avatar {avatar_id} is in use by {in_use} started session(s); stop "
                    "them first (POST /v1/sessions/{id}/stop), then delete it.",
                    code="avatar.in_use",
                    param="id",
                )
            session.execute(sql_delete(AvatarRow).where(AvatarRow.id == avatar_id))
            purge.record(session, prefix)
        purge.purge(self._registry, self._storage, prefix)

    def purge_deleted(self) -> int:
        """The sweeper's part: empty the folders of deleted avatars that storage
        refused at their delete (service/purge.py). Returns how many were emptied."""
        return purge.purge_pending(self._registry, self._storage)

    def image(self, account_id: str, avatar_id: str, aspect_ratio: str) -> ImageRef:
        """The rendition; Conflict(avatar.not_ready / avatar.failed) before ready."""
        if aspect_ratio not in list(AspectRatio):
            raise InvalidRequest(
                f"aspect_ratio must be one of {', '.join(AspectRatio)}; got {aspect_ratio!r}.",
                code="request.invalid_field",
                param="aspect_ratio",
            )
        row = self._visible(account_id, avatar_id)
        if row.status == AvatarStatus.FAILED:
            code = (row.error or {}).get("code", "unknown")
            raise Conflict(f"The avatar failed ({code}); it has no images.", code="avatar.failed")
        if row.status != AvatarStatus.READY or not row.images:
            raise Conflict(
                f"The avatar is {row.status}; its images exist once it is ready.",
                code="avatar.not_ready",
            )
        stored = row.images[aspect_ratio]
        url = self._storage.url(stored["key"], stored["content_type"])
        if url is not None:
            return ImageRef(content_type=stored["content_type"], url=url)
        return ImageRef(content_type=stored["content_type"], data=self._storage.get(stored["key"]))

    def _visible(self, account_id: str, avatar_id: str) -> AvatarRow:
        with self._registry.transaction() as session:
            row = session.get(AvatarRow, avatar_id)
        if row is None or not visible_to(row, account_id):
            raise _not_found(avatar_id)
        return row


def visible_to(row: AvatarRow, account_id: str) -> bool:
    """Whether `account_id` may see (and start sessions with) the avatar: its own, or
    another account's that is not user_exclusive."""
    return row.account_id == account_id or not row.user_exclusive


def _same_bytes(account_id: str, sha256: str) -> Select[AvatarRow]:
    return select(AvatarRow).where(
        AvatarRow.account_id == account_id, AvatarRow.dedupe_sha256 == sha256
    )


def _deleted_meanwhile() -> TransientError:
    return TransientError(
        "The same image was being uploaded and deleted at once; retry.",
        code="database.conflict",
    )


def _not_found(avatar_id: str) -> NotFound:
    return NotFound(f"No avatar {avatar_id}.", code="avatar.not_found", param="id")

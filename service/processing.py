"""The worker side of an avatar: claim, load or fetch the original, run the
pipeline, store what it made, record the outcome; and the sweeper.

`AvatarService` (service/avatars.py) delegates `process`, `fail` and
`requeue_stuck` here; see its module docstring for the guarantees.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from pipeline import FaceModels, ImageError, Prepared, Rejected, prepare
from pipeline.errors import AvatarPrepError
from pipeline.probe import Probe, probe
from pipeline.record import Check, FaceInfo
from service.errors import ObjectMissing
from service.fetch import fetch
from service.heartbeats import held_by_a_lost_worker
from service.lifecycle import finish_avatar
from service.public import error_object
from service.queue import BrokerUnavailable, WorkQueue
from service.registry import AvatarRow, Registry, utcnow
from service.settings import Settings
from service.stats import Outcome
from service.status import AvatarStatus, claim
from service.storage import (
    Storage,
    StoredObject,
    avatar_prefix,
    original_key,
    record_key,
    rendition_key,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    """What the last `process` or `fail` call of a worker process left, as it saw the
    row under its lock: `outcome` (None: the avatar no longer exists) and whether
    that call finished it (`decided`). Lets the task's observer log and count the
    run without reading the registry again."""

    avatar_id: str
    outcome: Outcome | None
    decided: bool


@dataclass(eq=False)
class Processor:
    """What a worker process does to avatars; `models` are its FaceModels, `worker_id`
    its heartbeat's id (service/heartbeats.py), recorded on every avatar it claims."""

    settings: Settings
    registry: Registry
    storage: Storage
    queue: WorkQueue
    models: FaceModels | None
    worker_id: str | None = None
    # CPU seconds this process spent inside prepare(), all threads: what bench-api
    # subtracts from the worker's CPU to tell what the service adds around it.
    pipeline_cpu_seconds: float = field(default=0.0, init=False)
    last_run: RunOutcome | None = field(default=None, init=False)

    def process(self, avatar_id: str, prepared: Prepared | None = None) -> None:
        """Worker side: fetch (url) or load the original, run the pipeline, store
        renditions and the record, mark ready/failed. Idempotent. Raises
        TransientError for failures worth a retry. `prepared`: the pipeline's result
        for this avatar's original with these settings, already made by the caller
        (`batch --upload`), so it is not run twice; claimed, stored and finished
        the same way."""
        if self.models is None and prepared is None:
            raise RuntimeError("AvatarService.process needs FaceModels (made per worker process)")
        self.last_run = None  # until this run has seen the row
        row = self._claim(avatar_id)
        if row is None:
            return
        try:
            if prepared is not None:
                result = prepared
            else:
                assert self.models is not None  # checked above
                result = self._prepare(self._original(row), self.models)
        except Rejected as rejected:
            # The record of a rejection (face, candidates, checks) is kept for overlays.
            self._store_json(record_key(avatar_id), rejected.to_record())
            self._finish(
                avatar_id, AvatarStatus.FAILED, error=rejected, face=rejected.face, record=True
            )
            return
        except (ImageError, ObjectMissing) as error:
            self._finish(avatar_id, AvatarStatus.FAILED, error=error)
            return
        images = self._store_renditions(avatar_id, result)
        self._finish(
            avatar_id,
            AvatarStatus.READY,
            images=images,
            face=result.face,
            checks=result.checks,
            record=True,
        )

    def _prepare(self, data: bytes, models: FaceModels) -> Prepared:
        """`prepare()` on `data`; its CPU time (this process, every thread: the face
        models run graph threads of their own) is added to `pipeline_cpu_seconds`."""
        start = time.process_time()
        try:
            return prepare(data, models, self.settings.pipeline)
        finally:
            self.pipeline_cpu_seconds += time.process_time() - start

    def _claim(self, avatar_id: str) -> AvatarRow | None:
        """Mark the row `processing` and count the attempt; None when there is
        nothing to do (deleted, or already finished)."""
        with self.registry.transaction() as session:
            row = session.get(AvatarRow, avatar_id, with_for_update=True)
            decided = False
            if row is None or AvatarStatus(row.status).finished:
                gone = row is None
                seen = row
                row = None
            else:
                gone = False
                seen = row
                row.attempts += 1
                if row.attempts > self.settings.max_process_attempts:
                    error = error_object(_crashed(row.attempts - 1))
                    decided = finish_avatar(row, AvatarStatus.FAILED, utcnow(), error=error)
                    row = None
                else:
                    claim(row, utcnow())
                    row.worker_id = self.worker_id
        self.last_run = RunOutcome(avatar_id, _outcome(seen), decided)
        if gone:
            # Deleted: remove anything a crashed earlier run wrote after the delete.
            self.storage.delete_prefix(avatar_prefix(avatar_id))
        return row

    def _original(self, row: AvatarRow) -> bytes:
        """The original's bytes; a URL avatar's are fetched and stored once."""
        if row.original_key is not None:
            return self.storage.get(row.original_key)
        data = fetch(row.source_url or "", self.settings)
        info = probe(data, self.settings.pipeline)
        sha256 = hashlib.sha256(data).hexdigest()
        key = original_key(row.id)
        self.storage.put(key, data, f"image/{info.format}")
        with self.registry.transaction() as session:
            stored = session.get(AvatarRow, row.id)
            if stored is None:
                raise ObjectMissing("The avatar was deleted while its URL was fetched.")
            set_source(stored, info, sha256)
            stored.original_key = key
        self._claim_hash(row.id, row.account_id, sha256)
        return data

    def _claim_hash(self, avatar_id: str, account_id: str, sha256: str) -> None:
        """Make a fetched URL image findable by later uploads of the same bytes.
        When the account already has those bytes under another avatar, this one
        stays a separate avatar (its id was already given out) without the claim."""
        try:
            with self.registry.transaction() as session:
                session.execute(
                    update(AvatarRow).where(AvatarRow.id == avatar_id).values(dedupe_sha256=sha256)
                )
        except IntegrityError:
            logger.info("avatar %s: same bytes as another avatar of %s", avatar_id, account_id)

    def _store_renditions(self, avatar_id: str, result: Prepared) -> dict[str, Any]:
        return store_prepared(self.storage, avatar_id, result)

    def _store_json(self, key: str, record: dict[str, Any]) -> None:
        store_json(self.storage, key, record)

    def _finish(
        self,
        avatar_id: str,
        status: AvatarStatus,
        *,
        images: dict[str, Any] | None = None,
        face: FaceInfo | None = None,
        checks: tuple[Check, ...] = (),
        error: AvatarPrepError | None = None,
        record: bool = False,
    ) -> None:
        """The final state, unless another run got there first."""
        moved = False
        with self.registry.transaction() as session:
            row = session.get(AvatarRow, avatar_id, with_for_update=True)
            if row is not None:
                moved = finish_avatar(
                    row,
                    status,
                    utcnow(),
                    error=error_object(error) if error is not None else None,
                    face=face.to_dict() if face is not None else None,
                    images=images,
                    checks=[c.to_dict() for c in checks] if checks else None,
                    warnings=[c.to_warning() for c in checks if not c.passed] if checks else None,
                    record_key=record_key(avatar_id) if record else None,
                )
        self.last_run = RunOutcome(avatar_id, _outcome(row), moved)
        if row is None:
            # Deleted while this run worked: what it just wrote must go too.
            self.storage.delete_prefix(avatar_prefix(avatar_id))

    def fail(self, avatar_id: str, error: AvatarPrepError) -> None:
        """Mark the avatar `failed` with `error` unless it already finished; the task
        calls this after the last retry of a transient failure (or on a bug)."""
        self._finish(avatar_id, AvatarStatus.FAILED, error=error)

    def requeue_stuck(self) -> int:
        """Send again the ids of avatars the broker refused, of avatars held by a worker
        that stopped beating (`worker_lost_after_seconds`), and of avatars queued or
        processing for longer than `stuck_after_seconds`. Returns how many were sent;
        stops at the first refusal (the broker is still down)."""
        now = utcnow()
        cutoff = now - timedelta(seconds=self.settings.stuck_after_seconds)
        with self.registry.transaction() as session:
            stuck = session.scalars(
                select(AvatarRow.id)
                .where(
                    or_(
                        (AvatarRow.status == AvatarStatus.QUEUED)
                        & (AvatarRow.enqueued_at.is_(None) | (AvatarRow.enqueued_at < cutoff)),
                        (AvatarRow.status == AvatarStatus.PROCESSING)
                        & (AvatarRow.updated_at < cutoff),
                        held_by_a_lost_worker(now, self.settings),
                    )
                )
                .order_by(AvatarRow.id)
                .limit(self.settings.max_queue_depth)
            ).all()
        sent: list[str] = []
        for avatar_id in stuck:
            try:
                self.queue.send(avatar_id)
            except BrokerUnavailable as exc:  # try again next sweep
                logger.warning("sweeper: enqueue failed (%s); %d left", exc, len(stuck) - len(sent))
                break
            sent.append(avatar_id)
        if sent:
            with self.registry.transaction() as session:
                session.execute(
                    update(AvatarRow).where(AvatarRow.id.in_(sent)).values(enqueued_at=utcnow())
                )
        return len(sent)


def store_prepared(
    storage: Storage, avatar_id: str, result: Prepared, generation: str | None = None
) -> dict[str, Any]:
    """Store every rendition and the record (under `generation`'s folder when given);
    returns the row's `images` (aspect ratio -> key, width, height, content_type)."""
    images: dict[str, Any] = {}
    objects: list[StoredObject] = []
    for ratio, rendition in result.renditions.items():
        key = rendition_key(avatar_id, ratio, generation)
        objects.append(StoredObject(key, rendition.data, rendition.content_type))
        images[ratio] = {
            "key": key,
            "width": rendition.width,
            "height": rendition.height,
            "content_type": rendition.content_type,
        }
    objects.append(StoredObject(record_key(avatar_id, generation), *_json(result.to_dict())))
    # All at once; put_many returns only when every write has ended, so the row that
    # names them is still written after its objects.
    storage.put_many(objects)
    return images


def store_json(storage: Storage, key: str, record: dict[str, Any]) -> None:
    storage.put(key, *_json(record))


def _json(record: dict[str, Any]) -> tuple[bytes, str]:
    """A record's stored bytes and content type."""
    return json.dumps(record, sort_keys=True).encode(), "application/json"


def set_source(row: AvatarRow, info: Probe, sha256: str) -> None:
    """Copy what the header says (and the hash) into the row's `source_*` columns."""
    row.sha256 = sha256
    row.source_format = info.format
    row.source_width = info.width
    row.source_height = info.height
    row.source_bytes = info.bytes


def _outcome(row: AvatarRow | None) -> Outcome | None:
    """Where `row` stands (its status, a failed one's code, its attempts)."""
    return None if row is None else Outcome.of(row.status, row.error, row.attempts)


def _crashed(attempts: int) -> AvatarPrepError:
    return AvatarPrepError(
        f"Processing this image was started {attempts} times without finishing "
        "(the worker stopped each time); it was given up. Try another photo.",
        code="processing.crashed",
    )

"""Re-rendering stored avatars with the current pipeline (`avatar-prep reprocess`).

An avatar is *current* when the record its row points at was made by this
pipeline version with these settings (`versions["pipeline"]` and
`versions["settings"]`, pipeline/prepare.py `versions`). The command selects the
finished avatars with a record that are not current (and, with
`before_version`, whose record is older than that version), sends each id to the
workers, and waits for each one's outcome. Only finished avatars are selected:
an unfinished one is made by the current pipeline anyway.

What a worker does with one avatar (`Reprocessor.reprocess`), and why it is safe:

- The original is run through `prepare` again. The avatar id never changes.
- Same verdict: the new renditions and record are written under a generation
  folder named after the versions (`avatars/<id>/<generation>/...`), never over
  the objects the row points at; then the row's `images`, `face`, `checks`,
  `warnings` (or a failed avatar's `error`) and `record_key` are switched in one
  transaction, with the row locked. A reader sees the old set or the new one,
  never a missing image. The old objects are deleted by a later task, once every
  presigned URL made before the switch has expired (`s3_presign_seconds`).
- Verdict changed (an accepted photo now rejected, or the reverse): nothing is
  applied. The avatar keeps its renditions, status and record; the outcome
  (old and new code) is kept at `reprocess.json` and the command lists it.
- The avatar was deleted meanwhile: whatever this run wrote under its folder is
  removed, as `Processor` does.
- Resumable and idempotent: the generation's keys and bytes depend only on the
  original and the versions (same bytes in, same bytes out), so a retried or
  redelivered task writes the same objects, and the switch is skipped when the
  row already points at them. A rerun of the command skips current avatars and
  those whose verdict change was already reported for these versions.

Status moves: none. A `ready` avatar stays `ready` and a `failed` one `failed`
(status.py `finish` stays the only writer of final statuses); only what the
status carries is replaced. No migration: everything lives in the existing
columns and in storage.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from sqlalchemy import select

from pipeline import FaceModels, ImageError, Rejected, prepare
from pipeline.prepare import versions
from service.errors import ObjectMissing
from service.processing import store_json, store_prepared
from service.public import error_object
from service.queue import BrokerUnavailable
from service.registry import AccountRow, AvatarRow, Registry, utcnow
from service.settings import Settings
from service.status import FINISHED, AvatarStatus
from service.storage import Storage, avatar_prefix, record_key, reprocess_key

logger = logging.getLogger(__name__)

# What an accepted avatar's verdict is called in outcomes (a rejection is its code).
ACCEPTED = "accepted"

Result = Literal["replaced", "rejected_again", "verdict_changed", "current", "error"]

# A verdict change is reported once per versions; an error (original missing, a
# decoder error) is tried again by the next run.
_DONE_RESULTS = frozenset({"replaced", "rejected_again", "verdict_changed", "current"})


class ReprocessQueue(Protocol):
    """The seam to the workers for reprocessing (tasks/reprocess.py on Celery)."""

    def send_reprocess(self, avatar_id: str, run: str) -> None:
        """Hand `avatar_id` to the workers for run `run`; BrokerUnavailable when
        the broker refuses."""

    def send_discard(self, avatar_id: str, keys: list[str], delay_seconds: int) -> None:
        """Have a worker delete `keys` of `avatar_id` in `delay_seconds`;
        BrokerUnavailable when the broker refuses."""


@dataclass(frozen=True)
class Outcome:
    """What one reprocess of an avatar did. `old` and `new` are verdicts:
    `accepted` or the rejection's code. `run` is the command run that asked."""

    avatar_id: str
    result: Result
    old: str
    new: str
    run: str
    versions: dict[str, str]
    message: str = ""

    @property
    def verdict_changed(self) -> bool:
        return self.result == "verdict_changed"


@dataclass(frozen=True)
class Candidate:
    """A finished avatar whose record is not current; `pipeline` is the version
    that made its record (None: the record says nothing, as older rejections)."""

    avatar_id: str
    status: str
    pipeline: str | None
    settings: str | None


@dataclass(frozen=True)
class Selection:
    """What a run would do: `todo` in id order, how many are already current,
    and the verdict changes earlier runs reported for these versions."""

    todo: list[Candidate]
    current: int
    reported: list[Outcome]


def generation(current: dict[str, str]) -> str:
    """The folder name of a re-render's objects: `v<pipeline>-<settings hash>`."""
    return f"v{current['pipeline']}-{current['settings']}"


def version_key(version: str) -> tuple[int, ...]:
    """`0.10.2` -> (0, 10, 2): release versions compared by number, not as text.
    Anything after the numbers (`rc1`, `.dev0`) is ignored."""
    numbers = re.match(r"\d+(\.\d+)*", version)
    if numbers is None:
        raise ValueError(f"not a version number: {version!r}")
    return tuple(int(n) for n in numbers.group().split("."))


def is_current(record_versions: dict[str, str] | None, current: dict[str, str]) -> bool:
    """Whether a record was made by this pipeline version with these settings."""
    return record_versions is not None and all(
        record_versions.get(k) == current[k] for k in ("pipeline", "settings")
    )


@dataclass(eq=False)
class Reprocessor:
    """Both sides of `reprocess`: selection and waiting (the command), and the
    re-render of one avatar (a worker, with `models`)."""

    settings: Settings
    registry: Registry
    storage: Storage
    queue: ReprocessQueue
    models: FaceModels | None = None
    # What this pipeline and these settings write in a record's `versions`.
    current: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.current = versions(self.settings.pipeline)

    # --- the command's side -------------------------------------------------

    def select(self, *, account: str | None, before_version: str | None) -> Selection:
        """The finished avatars with a record (of the account with this id or name,
        when given) that a run would reprocess. With `before_version`, only those
        whose record's pipeline version is older (a record without versions is
        older than any). Raises ValueError for an unknown account."""
        query = select(AvatarRow.id, AvatarRow.status, AvatarRow.record_key).where(
            AvatarRow.status.in_(FINISHED), AvatarRow.record_key.is_not(None)
        )
        with self.registry.transaction() as session:
            if account is not None:
                account_id = session.scalar(
                    select(AccountRow.id).where(
                        (AccountRow.id == account) | (AccountRow.name == account)
                    )
                )
                if account_id is None:
                    raise ValueError(f"no account with the id or name {account!r}")
                query = query.where(AvatarRow.account_id == account_id)
            rows = session.execute(query.order_by(AvatarRow.id)).all()
        limit = version_key(before_version) if before_version is not None else None
        todo: list[Candidate] = []
        reported: list[Outcome] = []
        current = 0
        for avatar_id, status, key in rows:
            made_by = self._record_versions(key) if key else None
            if is_current(made_by, self.current):
                current += 1
                continue
            pipeline = made_by.get("pipeline") if made_by else None
            if limit is not None and pipeline is not None and version_key(pipeline) >= limit:
                continue
            last = self.last_outcome(avatar_id)
            if (
                last is not None
                and last.result in _DONE_RESULTS
                and is_current(last.versions, self.current)
            ):
                reported.append(last)
                continue
            settings_hash = made_by.get("settings") if made_by else None
            todo.append(Candidate(avatar_id, status, pipeline, settings_hash))
        return Selection(todo=todo, current=current, reported=reported)

    def send(self, avatar_id: str, run: str) -> None:
        """Hand one avatar to the workers; BrokerUnavailable when the broker refuses."""
        self.queue.send_reprocess(avatar_id, run)

    def last_outcome(self, avatar_id: str) -> Outcome | None:
        """The outcome of the avatar's last reprocess, if any."""
        try:
            stored = json.loads(self.storage.get(reprocess_key(avatar_id)))
        except ObjectMissing:
            return None
        return Outcome(**stored)

    def exists(self, avatar_id: str) -> bool:
        with self.registry.transaction() as session:
            return session.get(AvatarRow, avatar_id) is not None

    def _record_versions(self, key: str) -> dict[str, str] | None:
        try:
            record = json.loads(self.storage.get(key))
        except ObjectMissing:
            return None
        made_by: dict[str, str] | None = record.get("versions")
        return made_by

    # --- the worker's side --------------------------------------------------

    def reprocess(self, avatar_id: str, run: str) -> None:
        """Re-render one avatar with the current pipeline (see the module docstring).
        Raises TransientError for failures worth a retry."""
        if self.models is None:
            raise RuntimeError("Reprocessor.reprocess needs FaceModels (made per worker process)")
        with self.registry.transaction() as session:
            row = session.get(AvatarRow, avatar_id)
        if row is None or not AvatarStatus(row.status).finished or row.record_key is None:
            return  # deleted, or not something reprocess selects
        old = _verdict(row)
        report = self._reporter(avatar_id, run, old)
        if is_current(self._record_versions(row.record_key), self.current):
            report("current", old, "")
            return
        try:
            if row.original_key is None:
                raise ObjectMissing("The avatar has no stored original.")
            result = prepare(
                self.storage.get(row.original_key), self.models, self.settings.pipeline
            )
        except Rejected as rejected:
            if row.status == AvatarStatus.READY:
                report("verdict_changed", rejected.code, rejected.message)
                return
            record = {**rejected.to_record(), "versions": self.current}
            key = record_key(avatar_id, generation(self.current))
            store_json(self.storage, key, record)
            fields = {
                "error": error_object(rejected),
                "face": rejected.face.to_dict() if rejected.face else None,
                "record_key": key,
            }
            if self._switch(row, fields, [key]):
                report("rejected_again", rejected.code, rejected.message)
            return
        except (ImageError, ObjectMissing) as error:
            report("error", error.code, error.message)
            return
        if row.status == AvatarStatus.FAILED:
            report("verdict_changed", ACCEPTED, "The photo is accepted now.")
            return
        images = store_prepared(self.storage, avatar_id, result, generation(self.current))
        record = result.to_dict()
        key = record_key(avatar_id, generation(self.current))
        fields = {
            "images": images,
            "face": record["face"],
            "checks": record["checks"] or None,
            "warnings": record["warnings"] if record["checks"] else None,
            "record_key": key,
        }
        if self._switch(row, fields, [key, *(image["key"] for image in images.values())]):
            report("replaced", ACCEPTED, "")

    def _switch(self, seen: AvatarRow, fields: dict[str, Any], new_keys: list[str]) -> bool:
        """Point the row at the new objects in one transaction, if it is still the
        row `seen` was read from; then schedule the old objects' removal. Returns
        whether the avatar still exists (False: what this run wrote is removed)."""
        old_keys: list[str] = []
        with self.registry.transaction() as session:
            row = session.get(AvatarRow, seen.id, with_for_update=True)
            if row is not None and (row.status, row.record_key) == (seen.status, seen.record_key):
                old_keys = [row.record_key or "", *(i["key"] for i in (row.images or {}).values())]
                for name, value in fields.items():
                    setattr(row, name, value)
                row.updated_at = utcnow()
        if row is None:
            # Deleted while this run worked: what it just wrote must go too.
            self.storage.delete_prefix(avatar_prefix(seen.id))
            return False
        stale = sorted(k for k in old_keys if k and k not in new_keys)
        if stale:
            try:
                self.queue.send_discard(seen.id, stale, self.settings.s3_presign_seconds)
            except BrokerUnavailable as exc:
                # Not orphans: they stay under the avatar's folder and go with it.
                logger.warning("avatar %s: old renditions kept (%s)", seen.id, exc)
        return True

    def discard(self, avatar_id: str, keys: list[str]) -> None:
        """Delete the old objects a re-render replaced, unless the row points at one
        again (it never should: generations only move forward)."""
        with self.registry.transaction() as session:
            row = session.get(AvatarRow, avatar_id)
        used = set()
        if row is not None:
            used = {row.record_key, *(i["key"] for i in (row.images or {}).values())}
        for key in keys:
            if key.startswith(avatar_prefix(avatar_id)) and key not in used:
                self.storage.delete(key)

    def _reporter(self, avatar_id: str, run: str, old: str) -> Callable[[Result, str, str], None]:
        def report(result: Result, new: str, message: str) -> None:
            outcome = Outcome(avatar_id, result, old, new, run, self.current, message)
            store_json(self.storage, reprocess_key(avatar_id), asdict(outcome))
            if not self.exists(avatar_id):
                self.storage.delete_prefix(avatar_prefix(avatar_id))

        return report


def _verdict(row: AvatarRow) -> str:
    if row.status == AvatarStatus.READY:
        return ACCEPTED
    code: str = (row.error or {}).get("code", "unknown")
    return code

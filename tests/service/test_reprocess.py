"""`reprocess` at its seam (service/reprocess.py): the real pipeline, SQLite and
local storage, with a queue fake that records what would reach the workers.

"Old" avatars are made by processing under the framing before issue 7 (no zoom,
no slide, fill only warned: `max_framing_zoom=1.0`, `max_face_offcentre=0.0`,
`max_fill_ratio=None`); the current pipeline rejects a 4:3 filled above 25%, so
a photo cropped tighter than its face (`reject_tight_crop.jpg`) changes verdict."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from pipeline import FaceModels, prepare
from pipeline.settings import PipelineSettings
from service.processing import Processor
from service.registry import AvatarRow
from service.reprocess import Reprocessor, generation, version_key
from service.runtime import Services
from service.settings import Settings
from service.storage import LocalStorage, avatar_prefix, record_key
from tests.service.conftest import FakeBroker, account, sample, stored_keys, upload

OLD_FRAMING = PipelineSettings(max_framing_zoom=1.0, max_face_offcentre=0.0, max_fill_ratio=None)
CURRENT = PipelineSettings()


@dataclass
class FakeReprocessQueue:
    """The seam to the workers: records reprocess sends and delayed discards."""

    sent: list[tuple[str, str]] = field(default_factory=list)
    discards: list[tuple[str, list[str], int]] = field(default_factory=list)

    def send_reprocess(self, avatar_id: str, run: str) -> None:
        self.sent.append((avatar_id, run))

    def send_discard(self, avatar_id: str, keys: list[str], delay_seconds: int) -> None:
        self.discards.append((avatar_id, keys, delay_seconds))


@pytest.fixture
def queue() -> FakeReprocessQueue:
    return FakeReprocessQueue()


@pytest.fixture
def current_settings(local_settings: Settings) -> Settings:
    return local_settings.model_copy(update={"pipeline": CURRENT})


@pytest.fixture
def reprocessor(
    local: Services, current_settings: Settings, queue: FakeReprocessQueue, models: FaceModels
) -> Iterator[Reprocessor]:
    yield Reprocessor(current_settings, local.registry, local.storage, queue, models)


def made_with(services: Services, models: FaceModels, name: str, pipeline: PipelineSettings) -> str:
    """An avatar of sample `name` processed under `pipeline`; its id."""
    account_id = account(services, f"acct-{name}")
    avatar, _ = upload(services, account_id, sample(name))
    settings = services.settings.model_copy(update={"pipeline": pipeline})
    Processor(settings, services.registry, services.storage, FakeBroker(), models).process(
        avatar.id
    )
    return str(avatar.id)


def row(services: Services, avatar_id: str) -> AvatarRow:
    with services.registry.transaction() as session:
        found = session.get(AvatarRow, avatar_id)
    assert found is not None
    return found


def record(services: Services, avatar_id: str) -> dict[str, Any]:
    key = row(services, avatar_id).record_key
    assert key is not None
    loaded: dict[str, Any] = json.loads(services.storage.get(key))
    return loaded


def test_an_old_framing_comes_back_with_the_new_one_under_the_same_id(
    local: Services,
    reprocessor: Reprocessor,
    queue: FakeReprocessQueue,
    models: FaceModels,
    current_settings: Settings,
) -> None:
    avatar_id = made_with(local, models, "accept_portrait.jpg", OLD_FRAMING)
    old = row(local, avatar_id)
    assert record(local, avatar_id)["images"]["4:3"]["filled_ratio"] > 0.2
    keys_before = stored_keys(local)

    selection = reprocessor.select(account=None, before_version=None)
    assert [c.avatar_id for c in selection.todo] == [avatar_id]
    assert stored_keys(local) == keys_before  # selecting changes nothing (--dry-run)

    reprocessor.reprocess(avatar_id, "run1")

    new = row(local, avatar_id)
    assert (new.id, new.status, new.ready_at) == (avatar_id, "ready", old.ready_at)
    folder = f"{avatar_prefix(avatar_id)}{generation(reprocessor.current)}/"
    assert new.record_key == f"{folder}record.json"
    assert {i["key"] for i in (new.images or {}).values()} == {
        f"{folder}1x1.jpg",
        f"{folder}4x3.jpg",
        f"{folder}3x4.jpg",
    }
    assert record(local, avatar_id)["images"]["4:3"]["filled_ratio"] < 0.01
    expected = prepare(sample("accept_portrait.jpg"), models, CURRENT).renditions["4:3"].data
    assert local.storage.get(new.images["4:3"]["key"]) == expected  # type: ignore[index]
    assert reprocessor.last_outcome(avatar_id).result == "replaced"  # type: ignore[union-attr]

    # The old objects stay readable until the delayed discard, then go.
    old_keys = sorted([old.record_key or "", *(i["key"] for i in (old.images or {}).values())])
    assert queue.discards == [(avatar_id, old_keys, current_settings.s3_presign_seconds)]
    assert set(old_keys) <= set(stored_keys(local))
    reprocessor.discard(avatar_id, old_keys)
    remaining = set(stored_keys(local))
    assert not remaining & set(old_keys)
    assert f"{avatar_prefix(avatar_id)}original" in remaining

    # A rerun has nothing left to do.
    again = reprocessor.select(account=None, before_version=None)
    assert (again.todo, again.current) == ([], 1)


def test_a_changed_verdict_is_reported_not_applied(
    local: Services, reprocessor: Reprocessor, models: FaceModels
) -> None:
    # Accepted with the old framing; the current 4:3 still fills about 40%, above 25%.
    avatar_id = made_with(local, models, "reject_tight_crop.jpg", OLD_FRAMING)
    before = row(local, avatar_id)
    keys_before = stored_keys(local)

    reprocessor.reprocess(avatar_id, "run1")

    after = row(local, avatar_id)
    assert (after.status, after.images, after.record_key, after.updated_at) == (
        "ready",
        before.images,
        before.record_key,
        before.updated_at,
    )
    outcome = reprocessor.last_outcome(avatar_id)
    assert outcome is not None
    assert (outcome.result, outcome.old, outcome.new) == (
        "verdict_changed",
        "accepted",
        "face.framing",
    )
    assert stored_keys(local) == sorted([*keys_before, f"{avatar_prefix(avatar_id)}reprocess.json"])
    selection = reprocessor.select(account=None, before_version=None)
    assert selection.todo == []
    assert [o.avatar_id for o in selection.reported] == [avatar_id]


def test_a_rejected_photo_now_accepted_stays_failed_and_is_reported(
    local: Services, reprocessor: Reprocessor, models: FaceModels
) -> None:
    old_strict = OLD_FRAMING.model_copy(update={"max_fill_ratio": 0.2})
    avatar_id = made_with(local, models, "progressive.jpg", old_strict)
    before = row(local, avatar_id)
    assert (before.error or {})["code"] == "face.framing"

    reprocessor.reprocess(avatar_id, "run1")

    after = row(local, avatar_id)
    assert (after.status, after.error, after.images) == ("failed", before.error, None)
    outcome = reprocessor.last_outcome(avatar_id)
    assert outcome is not None
    assert (outcome.result, outcome.old, outcome.new) == (
        "verdict_changed",
        "face.framing",
        "accepted",
    )


def test_selection_by_account_and_version(
    local: Services, reprocessor: Reprocessor, models: FaceModels
) -> None:
    avatar_id = made_with(local, models, "accept_portrait.jpg", OLD_FRAMING)
    made_by = record(local, avatar_id)["versions"]["pipeline"]
    newer = ".".join(str(n) for n in (*version_key(made_by)[:-1], version_key(made_by)[-1] + 1))

    def todo(**options: Any) -> list[str]:
        defaults: dict[str, Any] = {"account": None, "before_version": None}
        chosen = reprocessor.select(**(defaults | options)).todo
        return [c.avatar_id for c in chosen]

    assert todo(before_version=made_by) == []  # not older than its own version
    assert todo(before_version=newer) == [avatar_id]
    assert todo(account="acct-accept_portrait.jpg") == [avatar_id]
    assert todo(account=row(local, avatar_id).account_id) == [avatar_id]
    account(local, "someone-else")
    assert todo(account="someone-else") == []
    with pytest.raises(ValueError, match="no account"):
        todo(account="nobody")


def test_version_numbers_compare_by_number() -> None:
    assert version_key("0.10.0") > version_key("0.9.1")
    assert version_key("1.2.0rc1") == (1, 2, 0)


class DeletingStorage(LocalStorage):
    """Local storage that deletes the avatar (objects, then row, as the API does)
    when the re-render's first rendition is written."""

    def __init__(self, services: Services, avatar_id: str) -> None:
        super().__init__(services.settings.storage_dir)
        self._services = services
        self._avatar_id = avatar_id

    def put(self, key: str, data: bytes, content_type: str) -> None:
        super().put(key, data, content_type)
        if key.endswith("/1x1.jpg") and key.count("/") == 3:
            row_ = row(self._services, self._avatar_id)
            self._services.avatars.delete(row_.account_id, self._avatar_id)


def test_an_avatar_deleted_meanwhile_leaves_no_objects(
    local: Services,
    current_settings: Settings,
    queue: FakeReprocessQueue,
    models: FaceModels,
) -> None:
    avatar_id = made_with(local, models, "accept_portrait.jpg", OLD_FRAMING)
    storage = DeletingStorage(local, avatar_id)
    Reprocessor(current_settings, local.registry, storage, queue, models).reprocess(
        avatar_id, "run1"
    )
    assert local.storage.list_keys(avatar_prefix(avatar_id)) == []
    assert queue.discards == []


def test_a_photo_rejected_again_gets_the_new_rejection_record_and_stays_failed(
    local: Services, reprocessor: Reprocessor, models: FaceModels
) -> None:
    avatar_id = made_with(local, models, "reject_face_too_small.jpg", OLD_FRAMING)
    before = row(local, avatar_id)
    assert before.status == "failed"
    assert "versions" not in record(local, avatar_id)  # rejection records had none

    reprocessor.reprocess(avatar_id, "run1")

    after = row(local, avatar_id)
    # The new error object (its checks as measured now), with the same code.
    assert after.status == "failed"
    assert (after.error or {})["code"] == (before.error or {})["code"] == "face.too_small"
    assert after.record_key == record_key(avatar_id, generation(reprocessor.current))
    assert record(local, avatar_id)["versions"] == reprocessor.current
    outcome = reprocessor.last_outcome(avatar_id)
    assert outcome is not None
    assert outcome.result == "rejected_again"
    assert reprocessor.select(account=None, before_version=None).todo == []

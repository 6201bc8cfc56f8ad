"""The avatar's statuses: which moves are allowed, and that `finish` is the one
place an avatar ends and never ends twice."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.registry import AvatarRow
from service.status import (
    FINISHED,
    TRANSITIONS,
    UNFINISHED,
    AvatarStatus,
    claim,
    finish,
    reopen,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def row(status: AvatarStatus) -> AvatarRow:
    return AvatarRow(id="avat_test", status=status, attempts=1)


def test_every_status_has_its_moves_and_finished_ones_have_none() -> None:
    assert set(TRANSITIONS) == set(AvatarStatus)
    assert set(UNFINISHED) | set(FINISHED) == set(AvatarStatus)
    assert not TRANSITIONS[AvatarStatus.READY]
    # A failed avatar only goes back to the start (service.status.reopen).
    assert TRANSITIONS[AvatarStatus.FAILED] == {AvatarStatus.QUEUED}
    assert all(set(FINISHED) <= TRANSITIONS[s] for s in UNFINISHED)


@pytest.mark.parametrize("start", UNFINISHED)
def test_finish_ready_sets_what_the_run_found(start: AvatarStatus) -> None:
    avatar = row(start)
    images = {"1:1": {"key": "avatars/avat_test/1x1.jpg"}}
    assert finish(avatar, AvatarStatus.READY, NOW, images=images, record_key="k") is True
    assert (avatar.status, avatar.ready_at, avatar.updated_at) == ("ready", NOW, NOW)
    assert (avatar.images, avatar.record_key, avatar.error) == (images, "k", None)


@pytest.mark.parametrize("done", FINISHED)
def test_a_finished_avatar_never_finishes_again(done: AvatarStatus) -> None:
    avatar = row(done)
    error = {"type": "api_error", "code": "processing.crashed"}
    assert finish(avatar, AvatarStatus.FAILED, NOW, error=error) is False
    assert (avatar.status, avatar.error, avatar.updated_at) == (done, None, None)
    with pytest.raises(ValueError, match="cannot be processed"):
        claim(avatar, NOW)


def test_finish_takes_only_a_final_status() -> None:
    with pytest.raises(ValueError, match="not a final status"):
        finish(row(AvatarStatus.QUEUED), AvatarStatus.PROCESSING, NOW)


def test_reopen_moves_only_a_failed_avatar_back_to_queued_as_new() -> None:
    avatar = row(AvatarStatus.FAILED)
    avatar.error = {"code": "storage.unavailable"}
    avatar.attempts = 6
    assert reopen(avatar, NOW) is True
    assert (avatar.status, avatar.error, avatar.attempts) == ("queued", None, 0)
    assert (avatar.updated_at, avatar.enqueued_at) == (NOW, NOW)
    for other in (AvatarStatus.QUEUED, AvatarStatus.PROCESSING, AvatarStatus.READY):
        assert reopen(row(other), NOW) is False

"""SessionService on the embedded defaults (SQLite file, local storage) with avatars
made by the real pipeline from real photos; only the broker is a fake."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from pipeline import FaceModels
from service.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from service.keys import Account
from service.public import session_json
from service.registry import SessionRow, utcnow
from service.runtime import Services
from service.sessions import (
    Room,
    check_aspect_ratio,
    check_platform,
    is_avatar_reference,
)
from service.settings import Plan, Settings
from tests.documented import RENDITION_SIZES
from tests.service.conftest import FakeBroker, open_services, sample, upload

ROOM = Room(platform="livekit", url="wss://demo.livekit.cloud", name="r1", token="room-secret-1")


@pytest.fixture
def local(local_settings: Settings, broker: FakeBroker, models: FaceModels) -> Iterator[Services]:
    """Services on SQLite and local storage with plan lengths unlike the defaults,
    so the test sees they come from settings."""
    settings = local_settings.model_copy(
        update={"session_max_seconds_free": 120, "session_max_seconds_paid": 7200}
    )
    services = open_services(settings, broker, models)
    yield services
    services.close()


def new_account(services: Services, name: str, plan: Plan) -> Account:
    _, key = services.keys.create(name, plan)
    return services.keys.authenticate(key)


def ready_avatar(
    services: Services, owner: Account, photo: str = "accept_portrait.jpg", **options: Any
) -> str:
    """An avatar of `photo` processed by the real pipeline; its id."""
    avatar, _ = upload(services, owner.id, sample(photo), **options)
    services.avatars.process(avatar.id)
    assert services.avatars.get(owner.id, avatar.id).status in ("ready", "failed")
    return avatar.id


def start(services: Services, who: Account, avatar_id: str, **options: Any) -> dict[str, Any]:
    return session_json(
        services.sessions.create(
            who,
            avatar_id,
            room=options.pop("room", ROOM),
            aspect_ratio=options.pop("aspect_ratio", "4:3"),
            metadata=options.pop("metadata", {}),
        )
    )


def session_row(services: Services, session_id: str) -> SessionRow:
    with services.registry.transaction() as session:
        row = session.get(SessionRow, session_id)
    assert row is not None
    return row


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def test_a_ready_avatar_starts_a_session_in_the_asked_framing(local: Services) -> None:
    paid = new_account(local, "acme", "paid")
    avatar_id = ready_avatar(local, paid)
    for ratio, (width, height) in RENDITION_SIZES.items():
        session = start(local, paid, avatar_id, aspect_ratio=ratio, metadata={"n": ratio})
        assert session["object"] == "session"
        assert session["id"].startswith("sess_") and len(session["id"]) == 31
        assert session["status"] == "started"
        assert session["avatar_id"] == avatar_id
        assert session["aspect_ratio"] == ratio
        assert session["avatar_image"] == {
            # Local storage: the API's own image route for that framing.
            "url": f"/v1/avatars/{avatar_id}/image?aspect_ratio={ratio}",
            "width": width,
            "height": height,
            "aspect_ratio": ratio,
        }
        assert session["room"] == {
            "platform": "livekit",
            "url": "wss://demo.livekit.cloud",
            "room_name": "r1",
        }
        assert session["metadata"] == {"n": ratio}
        assert session["ended_at"] is None


def test_expiry_is_the_start_plus_the_plans_maximum_length(local: Services) -> None:
    paid, free = new_account(local, "acme", "paid"), new_account(local, "tiny", "free")
    avatar_id = ready_avatar(local, paid, user_exclusive=False)
    for who, seconds in ((paid, 7200), (free, 120)):
        session = start(local, who, avatar_id)
        assert session["started_at"].endswith("Z")
        length = parse(session["expires_at"]) - parse(session["started_at"])
        assert length == timedelta(seconds=seconds)


def test_the_session_token_is_shown_once_and_stored_hashed(local: Services) -> None:
    paid = new_account(local, "acme", "paid")
    avatar_id = ready_avatar(local, paid)
    first, second = start(local, paid, avatar_id), start(local, paid, avatar_id)
    token = first["session_token"]
    assert token.startswith("stok_") and len(token) >= 45
    assert token != second["session_token"]
    row = session_row(local, first["id"])
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr([getattr(row, c.key) for c in SessionRow.__table__.columns])
    assert "session_token" not in session_json(local.sessions.get(paid.id, first["id"]))


def test_the_room_token_is_kept_but_never_returned(local: Services) -> None:
    paid = new_account(local, "acme", "paid")
    session = start(local, paid, ready_avatar(local, paid))
    assert session_row(local, session["id"]).room_token == "room-secret-1"
    for shown in (session, session_json(local.sessions.get(paid.id, session["id"]))):
        assert "room-secret-1" not in repr(shown)
    assert "room-secret-1" not in repr(ROOM)


def test_a_room_without_token_or_name_is_fine(local: Services) -> None:
    paid = new_account(local, "acme", "paid")
    room = Room(platform="daily", url="https://acme.daily.co/demo")
    session = start(local, paid, ready_avatar(local, paid), room=room)
    assert session["room"] == {
        "platform": "daily",
        "url": "https://acme.daily.co/demo",
        "room_name": None,
    }
    assert session_row(local, session["id"]).room_token is None


def test_another_accounts_exclusive_avatar_is_not_found_a_shared_one_is_usable(
    local: Services,
) -> None:
    owner, other = new_account(local, "acme", "paid"), new_account(local, "globex", "free")
    exclusive = ready_avatar(local, owner)
    shared = ready_avatar(local, owner, "gray.jpg", user_exclusive=False)
    with pytest.raises(NotFound) as info:
        start(local, other, exclusive)
    assert info.value.code == "avatar.not_found"
    session = start(local, other, shared, aspect_ratio="1:1")
    assert session["avatar_image"]["width"] == 512
    # The session belongs to the account that started it, not to the avatar's owner.
    with pytest.raises(NotFound):
        session_json(local.sessions.get(owner.id, session["id"]))


@pytest.mark.parametrize(
    "avatar_id", ["avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX", "avat_", "avat_not-an-id-at-all"]
)
def test_an_unknown_avatar_id_is_not_found(local: Services, avatar_id: str) -> None:
    with pytest.raises(NotFound) as info:
        start(local, new_account(local, "acme", "paid"), avatar_id)
    assert info.value.code == "avatar.not_found"


def test_an_unfinished_avatar_is_not_ready_and_a_failed_one_is_failed(
    local: Services, broker: FakeBroker
) -> None:
    paid = new_account(local, "acme", "paid")
    queued, _ = upload(local, paid.id, sample("progressive.jpg"))
    with pytest.raises(Conflict) as info:
        start(local, paid, queued.id)
    assert info.value.code == "avatar.not_ready"
    assert "queued" in info.value.message

    failed = ready_avatar(local, paid, "reject_multiple_faces.jpg")
    assert local.avatars.get(paid.id, failed).status == "failed"
    with pytest.raises(Conflict) as info:
        start(local, paid, failed)
    assert info.value.code == "avatar.failed"
    assert "face.multiple" in info.value.message
    with local.registry.transaction() as session:
        assert session.query(SessionRow).count() == 0


def test_platform_and_aspect_ratio_are_checked_even_without_the_http_edge(
    local: Services,
) -> None:
    paid = new_account(local, "acme", "paid")
    avatar_id = ready_avatar(local, paid)
    zoom = Room(platform="zoom", url="https://zoom.us/j/1")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest) as info:
        start(local, paid, avatar_id, room=zoom)
    assert (info.value.code, info.value.param) == ("room.platform_invalid", "room.platform")
    with pytest.raises(InvalidRequest) as info:
        start(local, paid, avatar_id, aspect_ratio="16:9")
    assert (info.value.code, info.value.param) == ("session.aspect_ratio_invalid", "aspect_ratio")


@pytest.mark.parametrize("value", ["zoom", "Daily", "", None, 3, ["daily"], {"p": "daily"}])
def test_check_platform_refuses_anything_but_daily_and_livekit(value: Any) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_platform(value)
    assert info.value.code == "room.platform_invalid"
    assert "daily, livekit" in info.value.message


@pytest.mark.parametrize("value", ["16:9", "4x3", "4:3 ", "", None, 1.33, ["4:3"]])
def test_check_aspect_ratio_refuses_anything_but_the_three(value: Any) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_aspect_ratio(value)
    assert info.value.code == "session.aspect_ratio_invalid"
    assert "1:1, 4:3, 3:4" in info.value.message


def test_the_accepted_values_pass_the_checks() -> None:
    assert [check_platform(p) for p in ("daily", "livekit")] == ["daily", "livekit"]
    assert [check_aspect_ratio(r) for r in RENDITION_SIZES] == list(RENDITION_SIZES)


def test_only_paid_accounts_may_send_an_image(local: Services) -> None:
    local.sessions.check_image_input(new_account(local, "acme", "paid"))
    with pytest.raises(PermissionDenied) as info:
        local.sessions.check_image_input(new_account(local, "tiny", "free"))
    assert (info.value.code, info.value.param) == ("plan.image_input_not_allowed", "avatar_id")


@pytest.mark.parametrize(
    ("text", "is_id"),
    [
        ("avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX", True),
        ("avat_whatever", True),
        ("https://example.com/avat_1.jpg", False),
        ("data:image/jpeg;base64,/9j/4AAQ", False),
        ("/9j/4AAQSkZJRgABAQ==", False),
    ],
)
def test_an_avatar_reference_is_told_from_an_image(text: str, is_id: bool) -> None:
    assert is_avatar_reference(text) is is_id


def test_get_is_for_the_sessions_own_account_only(local: Services) -> None:
    paid, other = new_account(local, "acme", "paid"), new_account(local, "globex", "paid")
    session = start(local, paid, ready_avatar(local, paid))
    shown = session_json(local.sessions.get(paid.id, session["id"]))
    assert shown == {k: v for k, v in session.items() if k != "session_token"}
    for account_id, session_id in (
        (other.id, session["id"]),
        (paid.id, "sess_01JD3Z9B2C4D5E6F7G8H9J0K1M"),
        (paid.id, "nonsense"),
    ):
        with pytest.raises(NotFound) as info:
            session_json(local.sessions.get(account_id, session_id))
        assert info.value.code == "session.not_found"
    with pytest.raises(NotFound):
        session_json(local.sessions.stop(other.id, session["id"]))
    assert session_json(local.sessions.get(paid.id, session["id"]))["status"] == "started"


def test_stop_ends_the_session_and_is_idempotent(local: Services) -> None:
    paid = new_account(local, "acme", "paid")
    session = start(local, paid, ready_avatar(local, paid))
    before = utcnow()
    stopped = session_json(local.sessions.stop(paid.id, session["id"]))
    assert stopped["status"] == "ended"
    ended_at = parse(stopped["ended_at"])
    assert parse(session["started_at"]) <= ended_at
    assert before - timedelta(milliseconds=1) <= ended_at <= utcnow()
    again = session_json(local.sessions.stop(paid.id, session["id"]))
    assert again == stopped
    assert session_json(local.sessions.get(paid.id, session["id"])) == stopped


def test_a_session_past_its_expiry_reads_as_ended_when_it_expired(local: Services) -> None:
    paid = new_account(local, "acme", "paid")
    session = start(local, paid, ready_avatar(local, paid))
    # Move the session two hours and a minute into the past: it ran out a minute ago.
    shift = timedelta(hours=2, minutes=1)
    with local.registry.transaction() as db:
        db.execute(
            update(SessionRow)
            .where(SessionRow.id == session["id"])
            .values(
                started_at=parse(session["started_at"]) - shift,
                expires_at=parse(session["expires_at"]) - shift,
            )
        )
    expired = session_json(local.sessions.get(paid.id, session["id"]))
    assert expired["status"] == "ended"
    assert expired["ended_at"] == expired["expires_at"]
    # Stopping it afterwards keeps the time it really ended.
    assert session_json(local.sessions.stop(paid.id, session["id"])) == expired
    assert session_row(local, session["id"]).ended_at == parse(expired["expires_at"])


def test_a_session_outlives_its_avatar(local: Services) -> None:
    paid = new_account(local, "acme", "paid")
    avatar_id = ready_avatar(local, paid)
    session = start(local, paid, avatar_id, aspect_ratio="3:4")
    # A started session keeps its avatar (avatar.in_use); once stopped, it may go.
    assert session_json(local.sessions.stop(paid.id, session["id"]))["status"] == "ended"
    local.avatars.delete(paid.id, avatar_id)
    shown = session_json(local.sessions.get(paid.id, session["id"]))
    assert shown["avatar_id"] == avatar_id and shown["status"] == "ended"
    assert (shown["avatar_image"]["width"], shown["avatar_image"]["height"]) == (480, 640)

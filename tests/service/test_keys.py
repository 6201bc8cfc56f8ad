"""Accounts and API keys on the SQLite registry."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from service.errors import AuthenticationFailed, Conflict, InvalidRequest, NotFound
from service.keys import KEY_PREFIX
from service.registry import AccountRow, ApiKeyRow
from service.runtime import Services


def test_a_new_key_authenticates_as_its_account(local: Services) -> None:
    key_id, plain = local.keys.create("acme", "free")
    assert key_id.startswith("key_")
    assert plain.startswith(KEY_PREFIX) and len(plain) == len(KEY_PREFIX) + 43
    account = local.keys.authenticate(plain)
    assert account.name == "acme" and account.plan == "free"
    assert account.id.startswith("acct_")


def test_only_a_hash_of_the_key_is_stored(local: Services) -> None:
    key_id, plain = local.keys.create("acme", "paid")
    with local.registry.transaction() as session:
        row = session.get(ApiKeyRow, key_id)
        assert row is not None
        assert plain not in row.key_hash and len(row.key_hash) == 64
    with open(local.settings.database_url.removeprefix("sqlite:///"), "rb") as f:
        assert plain.encode() not in f.read()


def test_keys_are_unique_and_an_account_may_hold_several(local: Services) -> None:
    first_id, first = local.keys.create("acme", "free")
    second_id, second = local.keys.create("acme", "free")
    assert first != second and first_id != second_id
    assert local.keys.authenticate(first).id == local.keys.authenticate(second).id


def test_a_key_for_an_existing_account_never_changes_its_plan(local: Services) -> None:
    # Issue 8: `keys create --plan free` once downgraded a paid account silently.
    _, paid = local.keys.create("acme", "paid")
    with pytest.raises(Conflict) as refused:
        local.keys.create("acme", "free")
    assert refused.value.code == "account.plan_mismatch"
    assert "accounts set-plan acme free" in refused.value.message
    _, second = local.keys.create("acme", None)
    assert local.keys.authenticate(paid).plan == local.keys.authenticate(second).plan == "paid"
    with local.registry.transaction() as session:
        assert len(session.scalars(select(AccountRow)).all()) == 1
    assert local.keys.set_plan("acme", "free") == "paid"
    assert local.keys.authenticate(paid).plan == "free"


@pytest.mark.parametrize(
    "key",
    [
        "",
        "ak_live_",
        "ak_live_wrong",
        "Bearer ak_live_x",
        "sk_live_" + "a" * 43,
        "ak_live_" + "x" * 200,
    ],
)
def test_unknown_and_malformed_keys_fail(local: Services, key: str) -> None:
    local.keys.create("acme", "paid")
    with pytest.raises(AuthenticationFailed) as info:
        local.keys.authenticate(key)
    assert info.value.code == "auth.invalid_key"


def test_a_revoked_key_fails_and_others_still_work(local: Services) -> None:
    revoked_id, revoked = local.keys.create("acme", "paid")
    _, kept = local.keys.create("acme", "paid")
    local.keys.revoke(revoked_id)
    local.keys.revoke(revoked_id)  # twice is fine
    with pytest.raises(AuthenticationFailed):
        local.keys.authenticate(revoked)
    assert local.keys.authenticate(kept).name == "acme"
    with pytest.raises(NotFound) as info:
        local.keys.revoke("key_01JD3Z8G9YR3K2N5M6P7Q8W4TX")
    assert info.value.code == "key.not_found"


@pytest.mark.parametrize(
    ("name", "plan"), [("", "free"), ("   ", "paid"), ("x" * 201, "paid"), ("acme", "gold")]
)
def test_invalid_account_name_or_plan(local: Services, name: str, plan: str) -> None:
    with pytest.raises(InvalidRequest):
        local.keys.create(name, plan)  # type: ignore[arg-type]

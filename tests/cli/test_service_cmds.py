"""`avatar-prep db upgrade` and `keys create | revoke`, run as an operator runs
them (the console script, settings from the environment) on a SQLite file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from harness.local_stack import run
from service.errors import AuthenticationFailed
from service.keys import KeyService
from service.registry import Registry
from service.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")


def test_db_upgrade_is_idempotent_and_hides_passwords(settings: Settings) -> None:
    first = run(settings, "db", "upgrade")
    assert run(settings, "db", "upgrade") == first
    assert first.startswith("database at head: sqlite:///")


def test_keys_create_prints_a_working_key_once_and_revoke_stops_it(settings: Settings) -> None:
    run(settings, "db", "upgrade")
    out = run(settings, "keys", "create", "--account", "acme", "--plan", "free")
    key_id = re.search(r"^key id:\s*(key_\w+)$", out, re.MULTILINE)
    plain = re.search(r"^api key:\s*(ak_live_\S+)$", out, re.MULTILINE)
    assert key_id and plain, out
    registry = Registry(settings)
    try:
        keys = KeyService(registry)
        account = keys.authenticate(plain.group(1))
        assert (account.name, account.plan) == ("acme", "free")
        revoked = run(settings, "keys", "revoke", key_id.group(1))
        assert key_id.group(1) in revoked
        with pytest.raises(AuthenticationFailed):
            keys.authenticate(plain.group(1))
    finally:
        registry.close()


def test_keys_create_refuses_an_unknown_plan(settings: Settings) -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        run(settings, "keys", "create", "--account", "acme", "--plan", "gold")
    assert failed.value.returncode == 2
    assert "invalid choice: 'gold'" in failed.value.stderr


def test_keys_never_change_a_plan_silently_and_never_print_a_secret(settings: Settings) -> None:
    run(settings, "db", "upgrade")
    first = run(settings, "keys", "create", "--account", "acme", "--plan", "paid")
    plain = re.search(r"^api key:\s*(ak_live_\S+)$", first, re.MULTILINE)
    assert plain, first
    # Another key for the same account: its plan stays; asking for another one is refused.
    again = run(settings, "keys", "create", "--account", "acme")
    assert "api key:" in again
    with pytest.raises(subprocess.CalledProcessError) as refused:
        run(settings, "keys", "create", "--account", "acme", "--plan", "free")
    assert refused.value.returncode == 1
    assert "accounts set-plan acme free" in refused.value.stderr
    with pytest.raises(subprocess.CalledProcessError) as new_without_plan:
        run(settings, "keys", "create", "--account", "newco")
    assert "give its plan" in new_without_plan.value.stderr

    listed = run(settings, "keys", "list")
    assert listed.count("acme") == 2 and "paid" in listed and "ak_live_" not in listed
    # Revoked by the key itself: only its id is echoed.
    revoked = run(settings, "keys", "revoke", plain.group(1))
    assert plain.group(1) not in revoked and re.search(r"revoked key_\w+", revoked)
    with pytest.raises(subprocess.CalledProcessError) as unknown:
        run(settings, "keys", "revoke", "ak_live_" + "x" * 43)
    assert "ak_live_" not in unknown.value.stderr + unknown.value.stdout
    assert re.search(r"acme\s+paid\s+\S+ \S+\s+\d{4}-", run(settings, "keys", "list"))

    moved = run(settings, "accounts", "set-plan", "acme", "free")
    assert "paid -> free" in moved
    registry = Registry(settings)
    try:
        assert KeyService(registry).list_keys("acme")[0].plan == "free"
    finally:
        registry.close()
    with pytest.raises(subprocess.CalledProcessError) as missing:
        run(settings, "accounts", "set-plan", "nobody", "free")
    assert "No account 'nobody'" in missing.value.stderr

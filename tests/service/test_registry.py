"""The registry: migrations that match the models on both databases, times in
UTC, and a database outage reported as a transient error."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError, StatementError

from service.errors import TransientError
from service.registry import AccountRow, Base, Registry, upgrade
from service.settings import Settings


def assert_schema_matches_models(settings: Settings) -> None:
    registry = Registry(settings)
    try:
        with registry.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            tables = set(inspect(connection).get_table_names())
    finally:
        registry.close()
    assert diff == []
    assert {"accounts", "api_keys", "avatars", "alembic_version"} <= tables


def test_sqlite_migrations_match_the_models_and_upgrade_twice(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'deep' / 'registry.db'}")
    upgrade(settings)
    upgrade(settings)  # already at head: nothing to do, no error
    assert_schema_matches_models(settings)


@pytest.mark.integration
def test_postgres_migrations_match_the_models(postgres_url: str) -> None:
    settings = Settings(database_url=postgres_url)
    upgrade(settings)
    assert_schema_matches_models(settings)


@pytest.mark.integration
def test_a_transaction_its_client_abandoned_stops_holding_its_locks(postgres_url: str) -> None:
    # A worker host that dies inside a transaction sends no reset: to the server
    # its session is idle in a transaction, holding the avatar's row lock. The
    # server ends it after database_idle_transaction_seconds, and whoever waits
    # on that row (the sweep, the retry) goes on.
    settings = Settings(database_url=postgres_url, database_idle_transaction_seconds=1.0)
    registry = Registry(settings)
    with registry.transaction() as session:
        session.add(AccountRow(id="acct_lock", name="a", plan="free", created_at=datetime.now(UTC)))
    dead = registry.engine.connect()  # the host that will die: never commits, never closes
    dead.execute(text("SELECT 1 FROM accounts WHERE id = 'acct_lock' FOR UPDATE"))
    start = time.monotonic()
    with registry.transaction() as session:
        # Without the server's timeout this would wait for hours: fail instead.
        session.execute(text("SET LOCAL lock_timeout = '5s'"))
        session.execute(text("UPDATE accounts SET name = 'b' WHERE id = 'acct_lock'"))
    waited = time.monotonic() - start
    assert 0.5 < waited < 5, waited  # blocked by the lock, then freed by the server
    with pytest.raises(DBAPIError, match="idle-in-transaction timeout"):
        dead.execute(text("SELECT 1"))  # the server ended the abandoned session
    dead.invalidate()
    registry.close()


def test_times_come_back_in_utc(local_settings: Settings) -> None:
    upgrade(local_settings)
    registry = Registry(local_settings)
    moment = datetime(2025, 1, 7, 12, 0, 0, 123000, tzinfo=timezone(timedelta(hours=2)))
    with registry.transaction() as session:
        session.add(AccountRow(id="acct_x", name="x", plan="free", created_at=moment))
    with registry.transaction() as session:
        row = session.get(AccountRow, "acct_x")
        assert row is not None
        assert row.created_at == moment and row.created_at.tzinfo == UTC
    naive = AccountRow(id="acct_y", name="y", plan="free", created_at=datetime(2025, 1, 1))
    with pytest.raises(StatementError, match="naive datetime"), registry.transaction() as session:
        session.add(naive)
    registry.close()


def test_a_database_that_is_down_is_transient_and_not_ready() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the block ends
    registry = Registry(
        Settings(
            database_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/none",
            database_connect_timeout_seconds=1,
        )
    )
    assert registry.check() is False
    with pytest.raises(TransientError) as info, registry.transaction() as session:
        session.get(AccountRow, "acct_x")
    assert info.value.code == "database.unavailable"
    registry.close()

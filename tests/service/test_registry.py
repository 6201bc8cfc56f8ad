"""The registry: migrations that match the models on both databases, times in
UTC, and a database outage reported as a transient error."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.exc import StatementError

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

"""Alembic environment. `service.registry.upgrade` hands over an open connection;
the alembic command line (writing migrations) builds one from `Settings()`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from service.registry import Base, make_engine
from service.settings import Settings


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = make_engine(Settings())
    try:
        with engine.begin() as own_connection:
            _migrate(own_connection)
    finally:
        engine.dispose()


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()

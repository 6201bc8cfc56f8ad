"""The SQL registry: accounts, API keys, avatars and sessions (SQLAlchemy 2).

PostgreSQL in production and tests, a SQLite file by default. The schema is
owned by the Alembic migrations in `service/migrations/` (`avatar-prep db
upgrade` calls `upgrade`); these models must match the latest migration, and a
test checks that they do. Times are timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import InterfaceError, InternalError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from service.errors import TransientError
from service.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
Json = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the registry; use UTC-aware times")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class AccountRow(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # acct_<ULID>
    name: Mapped[str] = mapped_column(String(200), unique=True)
    plan: Mapped[str] = mapped_column(String(16))  # free | paid
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # key_<ULID>
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    # sha256 hex of the plain key; the plain key itself is never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AvatarRow(Base):
    """One avatar. The `source_*` columns, `face`, `images` and `error` are the api.md
    object's parts; the `*_key` columns are server-made storage keys."""

    __tablename__ = "avatars"
    __table_args__ = (
        # Same bytes from the same account are one avatar; the constraint (not a
        # read-then-write) is what makes concurrent identical uploads safe.
        # NULLs never collide (rows made before URLs were fetched at create have none).
        UniqueConstraint("account_id", "dedupe_sha256", name="uq_avatars_account_sha256"),
        # Listing: one account's avatars by id (ULID = age), optionally by status.
        Index("ix_avatars_account_id_id", "account_id", "id"),
        # Sweeper and queue depth: unfinished rows by status and age.
        Index("ix_avatars_status_enqueued_at", "status", "enqueued_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # avat_<ULID>
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))  # queued | processing | ready | failed
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    user_exclusive: Mapped[bool] = mapped_column(Boolean, default=True)
    # `metadata` is taken by SQLAlchemy's declarative base; the column keeps the name.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    source_kind: Mapped[str] = mapped_column(String(8))  # file | url | base64
    source_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    dedupe_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source_format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    source_width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source_height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    original_key: Mapped[str | None] = mapped_column(String(200), nullable=True)

    face: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    # A ready avatar's checks (`Check.to_dict()`) and the failed ones that only warn
    # (`Check.to_warning()`); a failed avatar's checks are in `error`.
    checks: Mapped[list[dict[str, Any]] | None] = mapped_column(Json, nullable=True)
    warnings: Mapped[list[dict[str, Any]] | None] = mapped_column(Json, nullable=True)
    # aspect ratio -> {"key", "width", "height", "content_type"}
    images: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    record_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)

    # Processing starts so far (retries and redeliveries), and when the id was last
    # handed to the broker (NULL: the broker refused it; the sweeper sends it again).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The worker process that claimed it last (`workers.id`, not a foreign key: a
    # worker's row goes when it stops or is forgotten, the avatar stays). The
    # sweeper re-sends a `processing` avatar whose worker stopped beating.
    worker_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class StorageDeletionRow(Base):
    """The storage folder of a deleted avatar, until its objects are gone
    (service/purge.py). Written in the transaction that deletes the avatar's row."""

    __tablename__ = "storage_deletions"

    prefix: Mapped[str] = mapped_column(String(200), primary_key=True)  # avatars/<id>/
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WorkerRow(Base):
    """One worker process, alive while `heartbeat_at` is recent (service/heartbeats.py)."""

    __tablename__ = "workers"
    # The sweeper: workers by last beat (gone ones, and old rows to forget).
    __table_args__ = (Index("ix_workers_heartbeat_at", "heartbeat_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # wrk_<ULID>
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SessionRow(Base):
    """One session (service/sessions.py). `avatar_id` is not a foreign key: a session
    is a record of what ran, kept when its avatar is deleted later."""

    __tablename__ = "sessions"
    # The beat's expiry sweep: open sessions by expiry (service/sessions.py end_expired).
    __table_args__ = (Index("ix_sessions_ended_at_expires_at", "ended_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # sess_<ULID>
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    # Indexed for a delete's question: is a started session showing this avatar?
    avatar_id: Mapped[str] = mapped_column(String(32), index=True)
    aspect_ratio: Mapped[str] = mapped_column(String(8))  # 1:1 | 4:3 | 3:4
    # The avatar's rendition of that ratio, in pixels (its URL is made when read).
    image_width: Mapped[int] = mapped_column(Integer)
    image_height: Mapped[int] = mapped_column(Integer)
    room_platform: Mapped[str] = mapped_column(String(16))  # daily | livekit
    room_url: Mapped[str] = mapped_column(Text)
    room_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Write-only: kept for whatever joins the room on the session's behalf, never
    # returned by the API nor logged. Room tokens are short-lived platform tokens.
    room_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", Json, default=dict)
    # sha256 hex of the session token; the token itself is shown once, at creation.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set by a stop; a session past `expires_at` reads as ended without one.
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebhookEndpointRow(Base):
    """A URL an account receives events at (service/webhooks.py). `secret` signs every
    delivery, so it is kept as given out (`whsec_` + base64), never returned again."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # whep_<ULID>
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(100))
    events: Mapped[list[str]] = mapped_column(Json)  # event types it receives
    description: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookEventRow(Base):
    """The outbox: one event, written in the transaction that made it happen. `body` is
    the exact JSON every delivery of it sends (and signs)."""

    __tablename__ = "webhook_events"
    # The sweeper deletes events past their retention by age.
    __table_args__ = (Index("ix_webhook_events_created_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # evt_<ULID>, webhook-id
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookDeliveryRow(Base):
    """One event to one endpoint: pending (due at `next_attempt_at`), delivered or
    exhausted, with its attempts and the last attempt's error."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The dispatcher: pending deliveries by due time.
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # dlv_<ULID>
    event_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | exhausted
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Due time while pending (during an attempt: when a lost attempt may be retried).
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IdempotencyKeyRow(Base):
    """One `Idempotency-Key` of one account (service/idempotency.py): the request's
    fingerprint and, once answered, the response to replay until `expires_at`."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        # The primary key is what makes concurrent first uses safe: one insert wins.
        PrimaryKeyConstraint("account_id", "key_hash", name="pk_idempotency_keys"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    key_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the client's key
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of method, path, body
    status: Mapped[str] = mapped_column(String(16))  # in_progress | done
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_headers: Mapped[list[list[str]] | None] = mapped_column(Json, nullable=True)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Registry:
    """The process's engine and session factory. `transaction()` is the one way in:
    a database that is down or drops the connection becomes `TransientError`
    (`database.unavailable`); constraint violations (IntegrityError) pass through."""

    def __init__(self, settings: Settings) -> None:
        self.engine = make_engine(settings)
        # Rows stay readable after commit: callers turn them into dicts afterwards.
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside one transaction, committed when the block ends."""
        try:
            with self._sessions.begin() as session:
                yield session
        except (OperationalError, InterfaceError, PoolTimeout, InternalError) as exc:
            cause = getattr(exc, "orig", None) or exc  # the driver's own error, when there is one
            if isinstance(exc, InternalError) and getattr(cause, "sqlstate", "") != IDLE_ENDED:
                raise
            raise TransientError(
                f"The registry database is unavailable ({type(cause).__name__}); "
                "the operation can be retried.",
                code="database.unavailable",
            ) from exc

    @property
    def session_factory(self) -> sessionmaker[Session]:
        """The factory behind `transaction()`, for session event listeners (webhooks
        sends what a transaction recorded once it commits)."""
        return self._sessions

    def check(self) -> bool:
        """Whether the database answers (readiness)."""
        try:
            with self.transaction() as session:
                session.execute(text("SELECT 1"))
        except TransientError:
            return False
        return True

    def close(self) -> None:
        self.engine.dispose()


# PostgreSQL's SQLSTATE for a session it ended for idling inside a transaction.
IDLE_ENDED = "25P03"


def make_engine(settings: Settings) -> Engine:
    """The process's one engine. Call once per process (lifespan, worker init, CLI)."""
    url = settings.database_url
    if url.startswith("sqlite"):
        return _sqlite_engine(url, settings.database_connect_timeout_seconds)
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        # psycopg takes whole seconds; a dead server must fail fast, not hang a request.
        connect_args["connect_timeout"] = max(1, round(settings.database_connect_timeout_seconds))
        # A transaction left open by a host that died must not hold its locks for hours.
        idle_ms = round(settings.database_idle_transaction_seconds * 1000)
        connect_args["options"] = f"-c idle_in_transaction_session_timeout={idle_ms}"
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_engine(url: str, busy_timeout_seconds: float) -> Engine:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # The API's threads and the worker processes share the file.
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": busy_timeout_seconds}
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers run while a writer writes; foreign keys are off by default.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database at `settings.database_url` to `revision` (Alembic)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = settings.database_url
    engine = make_engine(settings)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()

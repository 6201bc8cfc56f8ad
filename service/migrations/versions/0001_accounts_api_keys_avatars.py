"""accounts, api keys, avatars

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Written out here, not imported from service.registry: a migration is history
# and must not change when the models do.
TIME = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("plan", sa.String(16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "account_id",
            sa.String(32),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("revoked_at", TIME, nullable=True),
    )
    op.create_table(
        "avatars",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "account_id",
            sa.String(32),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("user_exclusive", sa.Boolean(), nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("ready_at", TIME, nullable=True),
        sa.Column("source_kind", sa.String(8), nullable=False),
        sa.Column("source_url", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("dedupe_sha256", sa.String(64), nullable=True),
        sa.Column("source_format", sa.String(16), nullable=True),
        sa.Column("source_width", sa.Integer(), nullable=True),
        sa.Column("source_height", sa.Integer(), nullable=True),
        sa.Column("source_bytes", sa.Integer(), nullable=True),
        sa.Column("original_key", sa.String(200), nullable=True),
        sa.Column("face", JSON, nullable=True),
        sa.Column("images", JSON, nullable=True),
        sa.Column("record_key", sa.String(200), nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("enqueued_at", TIME, nullable=True),
        sa.UniqueConstraint("account_id", "dedupe_sha256", name="uq_avatars_account_sha256"),
    )
    op.create_index("ix_avatars_account_id_id", "avatars", ["account_id", "id"])
    op.create_index("ix_avatars_status_enqueued_at", "avatars", ["status", "enqueued_at"])


def downgrade() -> None:
    op.drop_table("avatars")
    op.drop_table("api_keys")
    op.drop_table("accounts")

"""sessions

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Written out here, not imported from service.registry: a migration is history
# and must not change when the models do.
TIME = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "account_id",
            sa.String(32),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("avatar_id", sa.String(32), nullable=False),
        sa.Column("aspect_ratio", sa.String(8), nullable=False),
        sa.Column("image_width", sa.Integer(), nullable=False),
        sa.Column("image_height", sa.Integer(), nullable=False),
        sa.Column("room_platform", sa.String(16), nullable=False),
        sa.Column("room_url", sa.Text(), nullable=False),
        sa.Column("room_name", sa.String(200), nullable=True),
        sa.Column("room_token", sa.Text(), nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("ended_at", TIME, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("sessions")

"""sessions by avatar: a delete asks whether a started session shows the avatar

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sessions_avatar_id", "sessions", ["avatar_id"])


def downgrade() -> None:
    op.drop_index("ix_sessions_avatar_id", table_name="sessions")

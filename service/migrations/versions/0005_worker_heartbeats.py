"""worker heartbeats: each worker process's last beat, and which one holds an avatar

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_workers_heartbeat_at", "workers", ["heartbeat_at"])
    op.add_column("avatars", sa.Column("worker_id", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("avatars", "worker_id")
    op.drop_index("ix_workers_heartbeat_at", table_name="workers")
    op.drop_table("workers")

"""avatar checks and warnings: every rule measured on a ready avatar, and those that warned

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Written out here, not imported from service.registry: a migration is history.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("avatars", sa.Column("checks", JSON, nullable=True))
    op.add_column("avatars", sa.Column("warnings", JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("avatars", "warnings")
    op.drop_column("avatars", "checks")

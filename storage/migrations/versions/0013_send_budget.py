"""send budget: the next free send slot per channel and sender, shared by every process

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 04:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_budget",
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "sender"),
    )


def downgrade() -> None:
    op.drop_table("send_budget")

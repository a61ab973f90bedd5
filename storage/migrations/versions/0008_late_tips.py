"""late tips: messages that arrive after their action ended are kept apart from live tips

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 00:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The server default fills the rows already there: every tip stored so far was a live one.
    with op.batch_alter_table("tip", schema=None) as batch_op:
        batch_op.add_column(sa.Column("late", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("tip", schema=None) as batch_op:
        batch_op.drop_column("late")

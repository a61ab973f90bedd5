"""tip question outbound: an operator's question points at the outbound row that sends it

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # No foreign key: a plain ADD COLUMN (SQLite cannot add a constraint without recreating the table),
    # and the outbound row may be purged long before the tip.
    op.add_column("tip_message", sa.Column("outbound_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+), never batch mode (it recreates the table).
    op.drop_column("tip_message", "outbound_id")

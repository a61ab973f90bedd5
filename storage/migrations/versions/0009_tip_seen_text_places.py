"""tip values: the time phrase as written, and every place the tip names

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 00:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Tips stored before keep their one place in location_text; their list of places starts empty.
    with op.batch_alter_table("tip", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seen_text", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("places", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("tip", schema=None) as batch_op:
        batch_op.drop_column("places")
        batch_op.drop_column("seen_text")

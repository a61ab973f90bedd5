"""cap alerts in: which draft action a dispatch system's CAP Alert became, for its later Update or Cancel

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 00:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cap_alert_in",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("cap_sender", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("cap_identifier", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("cap_sent", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["action_id"], ["action.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cap_sender", "cap_identifier", name="uq_cap_alert_in_message"),
    )
    op.create_index("ix_cap_alert_in_action_id", "cap_alert_in", ["action_id"])


def downgrade() -> None:
    op.drop_index("ix_cap_alert_in_action_id", table_name="cap_alert_in")
    op.drop_table("cap_alert_in")

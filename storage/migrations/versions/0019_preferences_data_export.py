"""alert preferences (kinds of action, quiet hours) and one-time data export links

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-06 07:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0019"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_preference",
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("skipped_types", sqlmodel.sql.sqltypes.AutoString(), server_default="", nullable=False),
        sa.Column("quiet_days", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("quiet_start", sa.Time(), nullable=True),
        sa.Column("quiet_end", sa.Time(), nullable=True),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["participant_id"], ["participant.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("participant_id"),
    )
    op.create_table(
        "data_export",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["participant_id"], ["participant.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_data_export_participant_id", "data_export", ["participant_id"])
    op.create_index("ix_data_export_created_at", "data_export", ["created_at"])
    op.create_index("ix_data_export_expires_at", "data_export", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_data_export_expires_at", table_name="data_export")
    op.drop_index("ix_data_export_created_at", table_name="data_export")
    op.drop_index("ix_data_export_participant_id", table_name="data_export")
    op.drop_table("data_export")
    op.drop_table("alert_preference")

"""cap changes: a CAP Update or Cancel of one of our actions, waiting for an operator's confirmation

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 16:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cap_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("update", "cancel", name="capchangekind", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("instruction", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("cap_sender", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("cap_identifier", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("cap_sent", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("waiting", "sent", "discarded", name="capchangestatus", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("decided_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("decided_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("update_no", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["action_id"], ["action.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cap_sender", "cap_identifier", name="uq_cap_change_message"),
    )
    op.create_index("ix_cap_change_action_id", "cap_change", ["action_id"])
    op.create_index("ix_cap_change_status", "cap_change", ["status"])


def downgrade() -> None:
    op.drop_index("ix_cap_change_status", table_name="cap_change")
    op.drop_index("ix_cap_change_action_id", table_name="cap_change")
    op.drop_table("cap_change")

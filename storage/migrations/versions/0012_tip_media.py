"""tip media: the photos and files of tips, fetched from the provider and kept encrypted with the tip

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-06 03:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNELS = ("telegram", "sms", "whatsapp", "voice")


def upgrade() -> None:
    op.create_table(
        "tip_media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tip_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("channel", sa.Enum(*CHANNELS, name="channelkind", native_enum=False, length=24), nullable=False),
        sa.Column("ref", sa.String(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("lease_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("content_type", sa.String(length=64), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("data_enc", sa.Text(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("fetched_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["tip_id"], ["tip.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tip_id", "position", name="uq_tip_media_position"),
    )
    op.create_index("ix_tip_media_tip_id", "tip_media", ["tip_id"], unique=False)
    op.create_index("ix_tip_media_queue", "tip_media", ["state", "next_attempt_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tip_media_queue", table_name="tip_media")
    op.drop_index("ix_tip_media_tip_id", table_name="tip_media")
    op.drop_table("tip_media")

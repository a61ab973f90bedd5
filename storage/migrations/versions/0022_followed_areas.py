"""followed areas: PC4 areas a person follows without an address

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 07:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "followed_area",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("pc4", sa.String(length=4), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("municipality_code", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(["participant_id"], ["participant.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("participant_id", "pc4", name="uq_followed_area_pc4"),
    )
    op.create_index("ix_followed_area_participant_id", "followed_area", ["participant_id"])
    op.create_index("ix_followed_area_lat", "followed_area", ["lat"])
    op.create_index("ix_followed_area_municipality_code", "followed_area", ["municipality_code"])


def downgrade() -> None:
    op.drop_index("ix_followed_area_municipality_code", table_name="followed_area")
    op.drop_index("ix_followed_area_lat", table_name="followed_area")
    op.drop_index("ix_followed_area_participant_id", table_name="followed_area")
    op.drop_table("followed_area")

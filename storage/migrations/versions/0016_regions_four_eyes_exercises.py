"""regions operators may launch in, four-eyes rules, exercises (action flag, participant opt-in and test flag)

Existing operators get the region "Heel Nederland" (everywhere), so an install keeps launching as before;
accounts made later launch only where an admin gives them a region.

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-06 06:50:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0016"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVERYWHERE = "Heel Nederland"


def upgrade() -> None:
    region = op.create_table(
        "region",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("everywhere", sa.Boolean(), nullable=False),
        sa.Column("municipalities", sa.JSON(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "operator_region",
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["operator_id"], ["operator.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["region_id"], ["region.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("operator_id", "region_id"),
    )
    op.create_index(op.f("ix_operator_region_region_id"), "operator_region", ["region_id"], unique=False)
    op.create_table(
        "approval_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=False),
        sa.Column("action_type", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.ForeignKeyConstraint(["region_id"], ["region.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("region_id", "action_type"),
    )
    op.create_index(op.f("ix_approval_rule_region_id"), "approval_rule", ["region_id"], unique=False)
    false = sa.false()
    op.add_column("participant", sa.Column("exercises", sa.Boolean(), server_default=false, nullable=False))
    op.add_column("participant", sa.Column("test", sa.Boolean(), server_default=false, nullable=False))
    op.add_column("action", sa.Column("exercise", sa.Boolean(), server_default=false, nullable=False))
    op.add_column(
        "action", sa.Column("approval_requested_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
    )
    op.add_column(
        "action", sa.Column("approval_requested_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
    )
    op.add_column("action", sa.Column("approved_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column("action", sa.Column("approved_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))

    bind = op.get_bind()
    bind.execute(
        region.insert().values(
            name=EVERYWHERE,
            everywhere=True,
            municipalities=[],
            created_at=datetime.now(UTC),
        )
    )
    region_id = bind.execute(
        sa.text("SELECT id FROM region WHERE name = :name"), {"name": EVERYWHERE}
    ).scalar_one()
    bind.execute(
        sa.text("INSERT INTO operator_region (operator_id, region_id) SELECT id, :region FROM operator"),
        {"region": region_id},
    )


def downgrade() -> None:
    for column in (
        "approved_at",
        "approved_by",
        "approval_requested_at",
        "approval_requested_by",
        "exercise",
    ):
        op.drop_column("action", column)
    op.drop_column("participant", "test")
    op.drop_column("participant", "exercises")
    op.drop_index(op.f("ix_approval_rule_region_id"), table_name="approval_rule")
    op.drop_table("approval_rule")
    op.drop_index(op.f("ix_operator_region_region_id"), table_name="operator_region")
    op.drop_table("operator_region")
    op.drop_table("region")

"""action updates: updates of a running action, the update number of a delivery, an action's rings

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 13:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0003 left the delivery's unique constraint unnamed: SQLite reflects it without a name (this convention
# gives it one to drop), PostgreSQL named it after its columns.
_SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
_OLD_UNIQUE = {"sqlite": "uq_delivery_action_id", "postgresql": "delivery_action_id_participant_id_kind_key"}


def upgrade() -> None:
    op.create_table(
        "action_update",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("instruction", sa.String(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["action_id"], ["action.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("action_id", "number", name="uq_action_update_number"),
    )
    op.create_index("ix_action_update_action_id", "action_update", ["action_id"])
    op.add_column("action", sa.Column("rings", sa.JSON(), nullable=True))
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("delivery", naming_convention=_SQLITE_NAMES) as batch_op:
        batch_op.add_column(sa.Column("update_no", sa.Integer(), server_default="0", nullable=False))
        batch_op.drop_constraint(_OLD_UNIQUE[dialect], type_="unique")
        batch_op.create_unique_constraint(
            "uq_delivery_once", ["action_id", "participant_id", "kind", "update_no"]
        )
        batch_op.drop_index("uq_delivery_relay")
        batch_op.create_index(
            "uq_delivery_relay", ["relay_id", "action_id", "kind", "update_no"], unique=True
        )


def downgrade() -> None:
    # Updates and corrections cannot stay without their number: the old constraint allows one per person.
    op.execute("DELETE FROM delivery WHERE kind IN ('update', 'relay_update', 'cancel', 'relay_cancel')")
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("delivery", naming_convention=_SQLITE_NAMES) as batch_op:
        batch_op.drop_index("uq_delivery_relay")
        batch_op.create_index("uq_delivery_relay", ["relay_id", "action_id", "kind"], unique=True)
        batch_op.drop_constraint("uq_delivery_once", type_="unique")
        batch_op.create_unique_constraint(_OLD_UNIQUE[dialect], ["action_id", "participant_id", "kind"])
        batch_op.drop_column("update_no")
    with op.batch_alter_table("action") as batch_op:
        batch_op.drop_column("rings")
    op.drop_index("ix_action_update_action_id", table_name="action_update")
    op.drop_table("action_update")

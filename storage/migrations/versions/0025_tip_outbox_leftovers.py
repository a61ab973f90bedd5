"""tip outbox leftovers: drop the operators' chat lane of tip_forward and the sending columns of tip_message

Both are sent as outbound rows by the one dispatcher now; these columns were written and never read.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHAT = ("chat_state", "chat_attempts", "chat_next_at", "chat_lease_until", "chat_error", "chat_sent_at")
_SENDING = ("attempts", "next_attempt_at", "lease_until", "error")


def upgrade() -> None:
    # Plain DROP INDEX and DROP COLUMN (SQLite 3.35+), never batch mode (it recreates the tables).
    op.drop_index("ix_tip_forward_chat", table_name="tip_forward")
    op.drop_index("ix_tip_message_queue", table_name="tip_message")
    for name in _CHAT:
        op.drop_column("tip_forward", name)
    for name in _SENDING:
        op.drop_column("tip_message", name)


def downgrade() -> None:
    when = sqlmodel.sql.sqltypes.UTCDateTime()
    text = sqlmodel.sql.sqltypes.AutoString()
    op.add_column(
        "tip_forward",
        sa.Column(
            "chat_state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default="skipped"
        ),
    )
    op.add_column("tip_forward", sa.Column("chat_attempts", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("tip_forward", sa.Column("chat_next_at", when, nullable=True))
    op.add_column("tip_forward", sa.Column("chat_lease_until", when, nullable=True))
    op.add_column("tip_forward", sa.Column("chat_error", text, nullable=True))
    op.add_column("tip_forward", sa.Column("chat_sent_at", when, nullable=True))
    op.add_column("tip_message", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("tip_message", sa.Column("next_attempt_at", when, nullable=True))
    op.add_column("tip_message", sa.Column("lease_until", when, nullable=True))
    op.add_column("tip_message", sa.Column("error", text, nullable=True))
    op.create_index("ix_tip_forward_chat", "tip_forward", ["chat_state", "id"])
    op.create_index("ix_tip_message_queue", "tip_message", ["state", "next_attempt_at"])

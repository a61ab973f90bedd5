"""typed phone numbers are verified with a code; a per-sender reply budget on paid channels

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 03:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch copy: on SQLite the copy drops the old table, and with foreign keys
    # on that would cascade into every table that points at an identity (reach, conversations, ...).
    op.add_column(
        "channel_identity", sa.Column("verified", sa.Boolean(), nullable=False, server_default=sa.true())
    )
    op.add_column(
        "channel_identity", sa.Column("reply_window_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
    )
    op.add_column(
        "channel_identity",
        sa.Column("replies_in_window", sa.Integer(), nullable=False, server_default="0"),
    )
    # A phone identity we never heard from was typed by someone in a chat: its owner never agreed.
    op.execute(
        "UPDATE channel_identity SET verified = false "
        "WHERE channel IN ('sms', 'whatsapp', 'voice') AND last_inbound_at IS NULL"
    )
    # The reach table is derived from verified identities only.
    op.execute(
        "DELETE FROM reach WHERE identity_id IN (SELECT id FROM channel_identity WHERE verified = false)"
    )
    op.create_table(
        "phone_verification",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("phone_hash", sa.String(), nullable=False),
        sa.Column(
            "requester_id",
            sa.Integer(),
            sa.ForeignKey("channel_identity.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "channel",
            sa.Enum("telegram", "sms", "whatsapp", "voice", name="channelkind", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("salt", sa.String(length=32), nullable=False),
        sa.Column("code_hash", sa.String(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("verified_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("message_enc", sa.String(), nullable=True),
        sa.Column("phone_enc", sa.String(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("lease_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("provider_id", sa.String(), nullable=True),
    )
    op.create_index("ix_phone_verification_phone_hash", "phone_verification", ["phone_hash"])
    op.create_index("ix_phone_verification_requester_id", "phone_verification", ["requester_id"])
    op.create_index("ix_phone_verification_created_at", "phone_verification", ["created_at"])
    op.create_index(
        "ix_phone_verification_queue", "phone_verification", ["state", "channel", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_phone_verification_queue", table_name="phone_verification")
    op.drop_index("ix_phone_verification_created_at", table_name="phone_verification")
    op.drop_index("ix_phone_verification_requester_id", table_name="phone_verification")
    op.drop_index("ix_phone_verification_phone_hash", table_name="phone_verification")
    op.drop_table("phone_verification")
    # ALTER TABLE DROP COLUMN (SQLite 3.35+), for the same reason as above.
    op.drop_column("channel_identity", "replies_in_window")
    op.drop_column("channel_identity", "reply_window_at")
    op.drop_column("channel_identity", "verified")

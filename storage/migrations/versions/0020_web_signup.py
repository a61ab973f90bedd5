"""web sign-up: the public page's sign-ups, their per-address limits and Telegram link tokens

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 07:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_signup",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ref_hash", sa.String(), nullable=False),
        sa.Column("client_hash", sa.String(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("data_enc", sa.String(), nullable=True),
        sa.Column(
            "verification_id",
            sa.Integer(),
            sa.ForeignKey("phone_verification.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column(
            "requester_id", sa.Integer(), sa.ForeignKey("channel_identity.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column(
            "participant_id", sa.Integer(), sa.ForeignKey("participant.id", ondelete="CASCADE"), nullable=True
        ),
        sa.Column("link_hash", sa.String(), nullable=True),
        sa.Column("link_expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("link_used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.UniqueConstraint("ref_hash"),
        sa.UniqueConstraint("link_hash"),
    )
    op.create_index("ix_web_signup_client_hash", "web_signup", ["client_hash"])
    op.create_index("ix_web_signup_created_at", "web_signup", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_web_signup_created_at", table_name="web_signup")
    op.drop_index("ix_web_signup_client_hash", table_name="web_signup")
    op.drop_table("web_signup")

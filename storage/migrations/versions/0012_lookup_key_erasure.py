"""opted-out identities keep their keyed hash alone

An identity that said STOP could get its encrypted address back from a later message; what was
re-stored that way is removed here (the retention job keeps it so from now on). The look-up hashes
themselves are unchanged: LOOKUP_KEY set to the oldest DATA_KEY reproduces every stored one.

Revision ID: 0012_lookup_key_erasure
Revises: 0009
Create Date: 2026-12-06 03:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_lookup_key_erasure"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    identity = sa.table(
        "channel_identity",
        sa.column("id", sa.Integer),
        sa.column("opted_out", sa.Boolean),
        sa.column("address_enc", sa.String),
    )
    tip = sa.table("tip", sa.column("identity_id", sa.Integer), sa.column("phone_enc", sa.String))
    out = sa.select(identity.c.id).where(identity.c.opted_out.is_(True))
    op.execute(sa.update(tip).where(tip.c.identity_id.in_(out)).values(phone_enc=None))
    op.execute(sa.update(identity).where(identity.c.opted_out.is_(True)).values(address_enc=None))


def downgrade() -> None:
    # What was erased cannot come back; the schema did not change, so there is nothing to undo.
    pass

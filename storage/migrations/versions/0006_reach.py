"""reach: one row per address and reachable identity of an active participant, for fast selection

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 19:40:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0006'
# Another branch adds 0005; the two are chained when they are merged.
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXED = ['lat', 'lon', 'participant_id', 'identity_id', 'channel', 'preferred_channel', 'language',
            'window_days', 'window_start', 'window_end', 'last_inbound_at']

# The backfill, frozen here as it was when the table came (storage/reach.py keeps it from then on).
# CAST truncates on SQLite and rounds on PostgreSQL; selection allows one strip of margin for that.
_BACKFILL = """
INSERT INTO reach (address_id, identity_id, participant_id, lon_cell, lat, lon, municipality_code,
                   window_days, window_start, window_end, channel, preferred_channel, language,
                   last_inbound_at)
SELECT a.id, i.id, p.id, CAST(a.lon * 100 AS INTEGER), a.lat, a.lon, a.municipality_code,
       a.window_days, a.window_start, a.window_end, i.channel, p.preferred_channel, p.language,
       i.last_inbound_at
FROM address a
JOIN participant p ON p.id = a.participant_id AND p.status = 'active'
JOIN channel_identity i ON i.participant_id = a.participant_id
     AND i.opted_out = false AND i.address_enc IS NOT NULL
"""


def upgrade() -> None:
    op.create_table('reach',
    sa.Column('address_id', sa.Integer(), nullable=False),
    sa.Column('identity_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('lon_cell', sa.Integer(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('municipality_code', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('window_days', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('window_start', sa.Time(), nullable=True),
    sa.Column('window_end', sa.Time(), nullable=True),
    sa.Column('channel', sa.Enum('telegram', 'sms', 'whatsapp', 'voice', name='channelkind', native_enum=False, length=24), nullable=False),
    sa.Column('preferred_channel', sa.Enum('telegram', 'sms', 'whatsapp', 'voice', name='channelkind', native_enum=False, length=24), nullable=True),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('last_inbound_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['address_id'], ['address.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['identity_id'], ['channel_identity.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('address_id', 'identity_id')
    )
    # Filled before the indexes are built: one sort per index instead of a million index inserts.
    op.execute(_BACKFILL)
    with op.batch_alter_table('reach', schema=None) as batch_op:
        batch_op.create_index('ix_reach_area', ['lon_cell', *_INDEXED], unique=False)
        batch_op.create_index('ix_reach_municipality', ['municipality_code', *_INDEXED], unique=False)
        batch_op.create_index(batch_op.f('ix_reach_identity_id'), ['identity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reach_participant_id'), ['participant_id'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        # Selection is an index-only scan: it needs the visibility map, which every inbound message
        # (last_inbound_at) and registration clears for a page; vacuum this table early, not at 20%.
        op.execute('ALTER TABLE reach SET (autovacuum_vacuum_scale_factor = 0.01, '
                   'autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02)')


def downgrade() -> None:
    with op.batch_alter_table('reach', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reach_participant_id'))
        batch_op.drop_index(batch_op.f('ix_reach_identity_id'))
        batch_op.drop_index('ix_reach_municipality')
        batch_op.drop_index('ix_reach_area')

    op.drop_table('reach')

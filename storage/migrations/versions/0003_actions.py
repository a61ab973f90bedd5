"""actions and their deliveries (the outbox)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 20:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('action',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('type', sa.Enum('missing_person', 'robbery', 'hit_and_run', 'burglary', 'stolen_vehicle', 'other', name='actiontype', native_enum=False, length=24), nullable=False),
    sa.Column('headline', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('instruction', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('area', sa.JSON(), nullable=False),
    sa.Column('urgency', sa.Enum('immediate', 'expected', 'future', 'past', 'unknown', name='urgency', native_enum=False, length=24), nullable=False),
    sa.Column('severity', sa.Enum('extreme', 'severe', 'moderate', 'minor', 'unknown', name='severity', native_enum=False, length=24), nullable=False),
    sa.Column('certainty', sa.Enum('observed', 'likely', 'possible', 'unlikely', 'unknown', name='certainty', native_enum=False, length=24), nullable=False),
    sa.Column('status', sa.Enum('draft', 'active', 'closed', 'cancelled', name='actionstatus', native_enum=False, length=24), nullable=False),
    sa.Column('outcome', sa.Enum('found', 'arrested', 'no_result', 'cancelled', name='actionoutcome', native_enum=False, length=24), nullable=True),
    sa.Column('closing_text', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('launched_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('closed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_action_code'), ['code'], unique=True)
        batch_op.create_index(batch_op.f('ix_action_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_action_status'), ['status'], unique=False)

    op.create_table('delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('action_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=True),
    sa.Column('identity_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.Enum('alert', 'closing', 'tip_result', name='deliverykind', native_enum=False, length=24), nullable=False),
    sa.Column('channel', sa.Enum('telegram', 'sms', 'whatsapp', 'voice', name='channelkind', native_enum=False, length=24), nullable=False),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('distance_m', sa.Float(), nullable=True),
    sa.Column('status', sa.Enum('queued', 'sending', 'sent', 'delivered', 'read', 'undelivered', 'failed', name='deliverystatus', native_enum=False, length=24), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('claimed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('provider_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('segments', sa.Integer(), nullable=True),
    sa.Column('error_code', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('tried', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['action_id'], ['action.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['identity_id'], ['channel_identity.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('action_id', 'participant_id', 'kind')
    )
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_provider_id'), ['provider_id'], unique=False)
        batch_op.create_index('ix_delivery_queue', ['status', 'channel', 'rank'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_queue')
        batch_op.drop_index(batch_op.f('ix_delivery_provider_id'))

    op.drop_table('delivery')
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_action_status'))
        batch_op.drop_index(batch_op.f('ix_action_expires_at'))
        batch_op.drop_index(batch_op.f('ix_action_code'))

    op.drop_table('action')

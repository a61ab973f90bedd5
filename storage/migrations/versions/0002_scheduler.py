"""scheduler: reconfirmation requests and monthly municipality reports

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 20:05:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('municipality_report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('period', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('municipality_code', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('municipality_name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('participants', sa.Integer(), nullable=False),
    sa.Column('new', sa.Integer(), nullable=False),
    sa.Column('expired', sa.Integer(), nullable=False),
    sa.Column('unsubscribed', sa.Integer(), nullable=False),
    sa.Column('actions', sa.Integer(), nullable=False),
    sa.Column('reach', sa.Integer(), nullable=False),
    sa.Column('tips', sa.Integer(), nullable=False),
    sa.Column('solved', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('period', 'municipality_code')
    )
    op.create_index(op.f('ix_municipality_report_period'), 'municipality_report', ['period'], unique=False)
    op.create_table('reconfirm_request',
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('asked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('reminders', sa.Integer(), nullable=False),
    sa.Column('last_sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('participant_id')
    )
    op.create_index(op.f('ix_reconfirm_request_asked_at'), 'reconfirm_request', ['asked_at'], unique=False)
    op.create_index(op.f('ix_reconfirm_request_expires_at'), 'reconfirm_request', ['expires_at'], unique=False)
    op.create_index(op.f('ix_reconfirm_request_last_sent_at'), 'reconfirm_request', ['last_sent_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_reconfirm_request_last_sent_at'), table_name='reconfirm_request')
    op.drop_index(op.f('ix_reconfirm_request_expires_at'), table_name='reconfirm_request')
    op.drop_index(op.f('ix_reconfirm_request_asked_at'), table_name='reconfirm_request')
    op.drop_table('reconfirm_request')
    op.drop_index(op.f('ix_municipality_report_period'), table_name='municipality_report')
    op.drop_table('municipality_report')

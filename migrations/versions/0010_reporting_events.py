"""Reporting events, CSAT and volume alerts (#10).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 23:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('reporting_rollups',
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('scope', sa.String(length=8), nullable=False),
    sa.Column('scope_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('hour', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('value_sum', sa.Double(), nullable=False),
    sa.Column('business_sum', sa.Double(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_reporting_rollups_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'name', 'scope', 'scope_id', 'hour', name=op.f('pk_reporting_rollups'))
    )
    op.create_table('volume_alerts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.Column('window_start', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('window_end', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('observed', sa.Integer(), nullable=False),
    sa.Column('baseline_median', sa.Double(), nullable=False),
    sa.Column('score', sa.Double(), nullable=False),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_volume_alerts_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volume_alerts')),
    sa.UniqueConstraint('account_id', 'scope', 'value', 'window_start', name=op.f('uq_volume_alerts_account_id_scope_value_window_start'))
    )
    op.create_table('volume_peaks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('starts_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('label', sa.String(length=255), nullable=True),
    sa.Column('channel_type', sa.String(length=32), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_volume_peaks_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volume_peaks'))
    )
    op.create_index(op.f('ix_volume_peaks_account_id'), 'volume_peaks', ['account_id'], unique=False)
    op.create_table('csat_responses',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('inbox_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('conversation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('assignee_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('delivery', sa.String(length=16), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=True),
    sa.Column('feedback', sa.Text(), nullable=True),
    sa.Column('answered_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_csat_responses_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_csat_responses_conversation_id_conversations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_csat_responses')),
    sa.UniqueConstraint('conversation_id', name=op.f('uq_csat_responses_conversation_id')),
    sa.UniqueConstraint('uuid', name=op.f('uq_csat_responses_uuid'))
    )
    op.create_index(op.f('ix_csat_responses_account_id_answered_at'), 'csat_responses', ['account_id', 'answered_at'], unique=False)
    op.create_index(op.f('ix_csat_responses_contact_id'), 'csat_responses', ['contact_id'], unique=False)
    op.create_table('reporting_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('inbox_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('conversation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('team_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=96), nullable=False),
    sa.Column('value', sa.Double(), nullable=False),
    sa.Column('value_in_business_hours', sa.Double(), nullable=False),
    sa.Column('event_start_time', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('event_end_time', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_reporting_events_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_reporting_events_conversation_id_conversations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reporting_events')),
    sa.UniqueConstraint('account_id', 'key', name=op.f('uq_reporting_events_account_id_key'))
    )
    op.create_index(op.f('ix_reporting_events_conversation_id'), 'reporting_events', ['conversation_id'], unique=False)
    op.create_index('ix_reporting_events_report', 'reporting_events', ['account_id', 'name', 'event_end_time'], unique=False, postgresql_include=['value', 'value_in_business_hours', 'inbox_id', 'user_id', 'team_id'])


def downgrade() -> None:
    op.drop_index('ix_reporting_events_report', table_name='reporting_events', postgresql_include=['value', 'value_in_business_hours', 'inbox_id', 'user_id', 'team_id'])
    op.drop_index(op.f('ix_reporting_events_conversation_id'), table_name='reporting_events')
    op.drop_table('reporting_events')
    op.drop_index(op.f('ix_csat_responses_contact_id'), table_name='csat_responses')
    op.drop_index(op.f('ix_csat_responses_account_id_answered_at'), table_name='csat_responses')
    op.drop_table('csat_responses')
    op.drop_index(op.f('ix_volume_peaks_account_id'), table_name='volume_peaks')
    op.drop_table('volume_peaks')
    op.drop_table('volume_alerts')
    op.drop_table('reporting_rollups')

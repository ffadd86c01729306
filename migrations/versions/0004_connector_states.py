"""Connector runner: per-inbox state and lease (connector_states).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('connector_states',
    sa.Column('inbox_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_fetch_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('next_attempt_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('stale_warned_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lease_owner', sa.String(length=255), nullable=True),
    sa.Column('lease_until', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['inbox_id'], ['inboxes.id'], name=op.f('fk_connector_states_inbox_id_inboxes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('inbox_id', name=op.f('pk_connector_states'))
    )


def downgrade() -> None:
    op.drop_table('connector_states')

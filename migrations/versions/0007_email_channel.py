"""Email channel: quarantine, raw mail, threading keys (#4).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 23:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('quarantined_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('inbox_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source_ref', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('raw_path', sa.Text(), nullable=True),
    sa.Column('raw_size', sa.Integer(), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_quarantined_messages_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['inbox_id'], ['inboxes.id'], name=op.f('fk_quarantined_messages_inbox_id_inboxes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quarantined_messages')),
    sa.UniqueConstraint('inbox_id', 'source_ref', name=op.f('uq_quarantined_messages_inbox_id_source_ref'))
    )
    op.create_index(op.f('ix_quarantined_messages_account_id_inbox_id_id'), 'quarantined_messages', ['account_id', 'inbox_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_quarantined_messages_account_id_inbox_id_id'), table_name='quarantined_messages')
    op.drop_table('quarantined_messages')

"""The conversation list sorted by time left to reply; e-mail copies of live-chat replies.

* ``GET …/conversations?sort_by=sla_due_at_asc`` reads an account's conversations of one
  status by ``(next_due_at, id)``; ``ix_conversations_list_due`` makes each page one
  range scan.
* ``contact_inboxes.online_until``: a live-chat visitor's socket is open until then.
* ``continuity_emails``: agents' replies to e-mail to visitors who were not connected.

Plain ``CREATE INDEX`` / ``ADD COLUMN`` / ``CREATE TABLE`` only: no SQLite batch
move-and-copy, so migration 0011's search triggers stay.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_index('ix_conversations_list_due', 'conversations', ['account_id', 'status', 'next_due_at', 'id'],
                    unique=False)
    op.add_column('contact_inboxes', sa.Column('online_until', app.models.base.UTCDateTime(timezone=True),
                                               nullable=True))
    op.create_table(
        'continuity_emails',
        sa.Column('id', _ID, nullable=False),
        sa.Column('account_id', _ID, nullable=False),
        sa.Column('conversation_id', _ID, nullable=False),
        sa.Column('message_id', _ID, nullable=False),
        sa.Column('to_address', sa.String(length=320), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('email_inbox_id', _ID, nullable=True),
        sa.Column('mail_message_id', sa.Text(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('sent_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_continuity_emails_account_id_accounts'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'],
                                name=op.f('fk_continuity_emails_conversation_id_conversations'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_continuity_emails_message_id_messages'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_continuity_emails')),
        sa.UniqueConstraint('message_id', name=op.f('uq_continuity_emails_message_id')),
    )
    op.create_index('ix_continuity_emails_due', 'continuity_emails', ['next_attempt_at', 'id'], unique=False,
                    postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
    op.create_index(op.f('ix_continuity_emails_conversation_id'), 'continuity_emails', ['conversation_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_continuity_emails_conversation_id'), table_name='continuity_emails')
    op.drop_index('ix_continuity_emails_due', table_name='continuity_emails')
    op.drop_table('continuity_emails')
    with op.batch_alter_table('contact_inboxes', schema=None) as batch_op:
        batch_op.drop_column('online_until')
    op.drop_index('ix_conversations_list_due', table_name='conversations')

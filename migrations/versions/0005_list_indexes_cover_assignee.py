"""The conversation list's indexes carry assignee_id (PostgreSQL), so the counts that a
list request without a cursor returns (mine, unassigned, assigned, all) are index-only
scans instead of a heap visit per conversation counted.

SQLite has no INCLUDE: its indexes stay as they are. On PostgreSQL each index is built
anew under a temporary name without blocking writes (CONCURRENTLY), then swapped in.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 13:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    'ix_conversations_list_inbox': ['account_id', 'inbox_id', 'status', 'last_activity_at', 'id'],
    'ix_conversations_list_account': ['account_id', 'status', 'last_activity_at', 'id'],
}


def _rebuild(include: list[str] | None) -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    with op.get_context().autocommit_block():
        for name, columns in INDEXES.items():
            op.execute(f'DROP INDEX CONCURRENTLY IF EXISTS {name}_rebuild')
            op.create_index(
                f'{name}_rebuild', 'conversations', columns, unique=False,
                postgresql_include=include or [], postgresql_concurrently=True,
            )
            op.drop_index(name, table_name='conversations', postgresql_concurrently=True)
            op.execute(f'ALTER INDEX {name}_rebuild RENAME TO {name}')


def upgrade() -> None:
    _rebuild(['assignee_id'])


def downgrade() -> None:
    _rebuild(None)

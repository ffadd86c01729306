"""Inbox search and page features (#9).

Search in any script by substring, backed by trigram indexes (see app/tickets/search.py):
SQLite gets FTS5 ``trigram`` tables kept in step by triggers; PostgreSQL gets pg_trgm
GIN indexes. These objects live outside the models; Alembic's comparison skips them
(``app.tickets.search.is_search_object``).

SQLite note: a later batch migration that *recreates* ``messages`` or ``contacts``
(``batch_alter_table`` with move-and-copy) drops these triggers; such a migration must
re-run ``create_sqlite_search()`` from this module.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 23:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CONTACT_COLUMNS = ("name", "email", "phone_number", "identifier")


def _fts_statements(table: str, columns: Sequence[str]) -> list[str]:
    """An external-content FTS5 trigram table over ``table`` and its three triggers."""
    fts = f"{table}_fts"
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    return [
        f"CREATE VIRTUAL TABLE {fts} USING fts5({cols}, content='{table}', content_rowid='id', "
        "tokenize='trigram')",
        f"CREATE TRIGGER {fts}_ai AFTER INSERT ON {table} BEGIN "
        f"INSERT INTO {fts}(rowid, {cols}) VALUES (new.id, {new}); END",
        f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {table} BEGIN "
        f"INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.id, {old}); END",
        f"CREATE TRIGGER {fts}_au AFTER UPDATE OF {cols} ON {table} BEGIN "
        f"INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.id, {old}); "
        f"INSERT INTO {fts}(rowid, {cols}) VALUES (new.id, {new}); END",
        f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",
    ]


def create_sqlite_search() -> None:
    """The FTS5 tables and triggers (SQLite), filled from the existing rows."""
    for table, columns in (("messages", ("content",)), ("contacts", _CONTACT_COLUMNS)):
        for statement in _fts_statements(table, columns):
            op.execute(statement)


def drop_sqlite_search() -> None:
    """Remove what ``create_sqlite_search`` made."""
    for table in ("messages", "contacts"):
        for suffix in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_fts_{suffix}")
        op.execute(f"DROP TABLE IF EXISTS {table}_fts")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        create_sqlite_search()
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE INDEX ix_messages_content_trgm ON messages USING gin (content gin_trgm_ops)")
    op.execute(
        "CREATE INDEX ix_contacts_search_trgm ON contacts USING gin ("
        + ", ".join(f"{c} gin_trgm_ops" for c in _CONTACT_COLUMNS) + ")"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        drop_sqlite_search()
        return
    op.execute("DROP INDEX IF EXISTS ix_contacts_search_trgm")
    op.execute("DROP INDEX IF EXISTS ix_messages_content_trgm")

"""The schema exists only through Alembic: models and migrations must agree."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from app.migrate import current_revision, head_revision
from app.models import Base
from app.tickets.search import alembic_include_name


async def test_models_and_migrations_agree(runtime):
    def diff(connection):
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": alembic_include_name})
        return compare_metadata(context, Base.metadata)

    async with runtime.db.engine.connect() as connection:
        changes = await connection.run_sync(diff)
    assert changes == [], f"models differ from migrations; add a migration: {changes}"


async def test_database_is_at_head(runtime):
    async with runtime.db.engine.connect() as connection:
        assert await connection.run_sync(current_revision) == head_revision()


async def test_sqlite_runs_in_wal_with_foreign_keys(runtime):
    if runtime.db.dialect != "sqlite":
        pytest.skip("SQLite pragmas: this run is on PostgreSQL")
    async with runtime.db.engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1

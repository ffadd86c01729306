"""The PostgreSQL pool survives connections cut while idle (a restart, a proxy's idle timeout)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text

import app.db as db_module
from app.db import Database
from tests.conftest import TEST_DATABASE

pytestmark = pytest.mark.skipif(
    TEST_DATABASE != "postgresql", reason="connection pooling with pings is PostgreSQL's: runs in its pass of the suite"
)


async def backend_pid(db: Database) -> int:
    async with db.read_session() as session:
        return await session.scalar(text("SELECT pg_backend_pid()"))


async def test_a_connection_cut_while_idle_is_replaced_not_handed_out(settings, monkeypatch):
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.2)
    db = Database(settings.resolved_database_url)
    try:
        first = await backend_pid(db)
        assert await backend_pid(db) == first  # pooled: the same connection again
        admin = await asyncpg.connect(settings.database_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        await asyncio.sleep(0.3)
        replaced = await backend_pid(db)  # would raise "connection was closed" if handed out
        assert replaced != first
    finally:
        await db.dispose()


async def test_a_connection_in_steady_use_is_not_pinged(settings, monkeypatch):
    pings: list[int] = []
    db = Database(settings.resolved_database_url)
    original = db.engine.dialect.do_ping
    monkeypatch.setattr(db.engine.dialect, "do_ping", lambda connection: pings.append(1) or original(connection))
    try:
        for _ in range(20):
            await backend_pid(db)
        assert pings == []
    finally:
        await db.dispose()

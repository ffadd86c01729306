"""The PostgreSQL broker's wake-ups between processes survive a lost NOTIFY connection."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from app.realtime.broker import PostgresBroker, broker_for
from tests.conftest import TEST_DATABASE

pytestmark = pytest.mark.skipif(
    TEST_DATABASE != "postgresql",
    reason="LISTEN/NOTIFY between two brokers: runs in the PostgreSQL pass of the suite",
)


async def _received_within(inbox: asyncio.Queue, seconds: float) -> dict:
    async with asyncio.timeout(seconds):
        return await inbox.get()


async def test_wakeups_still_arrive_after_the_notify_connection_was_cut(settings):
    sender, listener = broker_for(settings.database_url), broker_for(settings.database_url)
    assert isinstance(sender, PostgresBroker) and isinstance(listener, PostgresBroker)
    inbox: asyncio.Queue = asyncio.Queue()
    listener.on_message(inbox.put_nowait)
    await listener.start()
    await sender.start()
    try:
        await sender.publish({"kind": "wake", "seq": 1})
        assert (await _received_within(inbox, 10))["seq"] == 1

        # The backend behind the sender's NOTIFY connection goes away (an operator's
        # pg_terminate_backend, a proxy's idle timeout); the sender is not told.
        admin = await asyncpg.connect(sender.dsn)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", sender._notify.get_server_pid())
        finally:
            await admin.close()

        for seq in (2, 3):
            await sender.publish({"kind": "wake", "seq": seq})
            assert (await _received_within(inbox, 10))["seq"] == seq
    finally:
        await sender.stop()
        await listener.stop()

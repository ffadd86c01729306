"""The brokers' wake-ups between processes: a lost NOTIFY connection is replaced, and a
broker that stops answering never holds up a publish (which runs after every commit)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from app.realtime import metrics
from app.realtime.broker import PUBLISH_TIMEOUT, Broker, PostgresBroker, broker_for
from tests.conftest import TEST_DATABASE

pytestmark = pytest.mark.skipif(
    TEST_DATABASE != "postgresql",
    reason="brokers between two processes: run in the PostgreSQL pass of the suite",
)


async def _received_within(inbox: asyncio.Queue, seconds: float) -> dict:
    async with asyncio.timeout(seconds):
        return await inbox.get()


@asynccontextmanager
async def _linked(sender_url: str, listener_url: str) -> AsyncIterator[tuple[Broker, asyncio.Queue]]:
    """A sending broker and what a listening one receives, once a first wake-up (seq 1)
    went through."""
    sender, listener = broker_for(sender_url), broker_for(listener_url)
    inbox: asyncio.Queue = asyncio.Queue()
    listener.on_message(inbox.put_nowait)
    await listener.start()
    await sender.start()
    published, received = counted("postroom_broker_published_total"), counted("postroom_broker_received_total")
    try:
        await sender.publish({"kind": "wake", "seq": 1})
        assert (await _received_within(inbox, 10))["seq"] == 1
        # Both ends count in /metrics (here one process is both; on Redis, other processes
        # of the machine may publish on the channel too).
        assert counted("postroom_broker_published_total") == published + 1
        assert counted("postroom_broker_received_total") >= received + 1
        yield sender, inbox
    finally:
        await sender.stop()
        await listener.stop()


def counted(name: str) -> float:
    """A counter's value as /metrics shows it."""
    return metrics.REGISTRY.get_sample_value(name) or 0.0


async def test_wakeups_still_arrive_after_the_notify_connection_was_cut(settings):
    async with _linked(settings.database_url, settings.database_url) as (sender, inbox):
        assert isinstance(sender, PostgresBroker)
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


class FreezableProxy:
    """A TCP relay in front of a server that can stop passing bytes (a hung server or a
    dead network path: connections stay open, nothing comes back)."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                await self.flowing.wait()
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.mark.parametrize("kind", ["postgresql", "redis"])
async def test_a_broker_that_stops_answering_never_holds_up_a_publish(settings, kind):
    """Publishing runs after every commit: a hung broker must delay wake-ups, not writes."""
    if kind == "postgresql":
        direct = settings.database_url
        url = make_url(direct.replace("+asyncpg", ""))
        proxy = FreezableProxy(url.host or "127.0.0.1", url.port or 5432)
        through = url.set(host="127.0.0.1", port=await proxy.start()).render_as_string(hide_password=False)
    else:
        direct = "redis://127.0.0.1:6379/0"
        proxy = FreezableProxy("127.0.0.1", 6379)
        through = f"redis://127.0.0.1:{await proxy.start()}/0"
    try:
        async with _linked(through, direct) as (sender, inbox):
            proxy.flowing.clear()
            failures = counted("postroom_broker_publish_failures_total")
            started = time.monotonic()
            async with asyncio.timeout(30):  # without a limit of its own, the publish hangs here
                await sender.publish({"kind": "wake", "seq": 2})
            assert time.monotonic() - started < PUBLISH_TIMEOUT + 1
            assert counted("postroom_broker_publish_failures_total") == failures + 1  # shown in /metrics

            proxy.flowing.set()
            await sender.publish({"kind": "wake", "seq": 3})
            seqs = {(await _received_within(inbox, 10))["seq"]}
            while 3 not in seqs:  # seq 2 may still arrive, late
                seqs.add((await _received_within(inbox, 10))["seq"])
    finally:
        proxy.flowing.set()
        await proxy.close()

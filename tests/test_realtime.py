"""The agents' stream: live events, resume without gaps, authorization, fan-out
between processes, and survival of a killed process."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.db import Database
from app.models import Event, utcnow
from app.realtime.broker import Broker
from app.realtime.hub import Hub, Subscriber, outgoing
from app.tickets.ingest import ingest_messages
from connectors.base import InboundMessage, SenderIdentity
from tests.conftest import TEST_DATABASE


@asynccontextmanager
async def stream(ws_base: str, tenant, *, token: str | None = None, query: str = ""):
    url = f"{ws_base}/api/v1/accounts/{tenant.account_id}/stream{query}"
    headers = {"api_access_token": token or tenant.token}
    async with connect(url, additional_headers=headers, open_timeout=10, max_size=None) as ws:
        yield ws


async def frames_until(ws, predicate, *, timeout: float = 15.0) -> list[dict]:
    """Read frames until ``predicate(frames)`` holds."""
    frames: list[dict] = []
    async with asyncio.timeout(timeout):
        while not predicate(frames):
            frames.append(json.loads(await ws.recv()))
    return frames


def created(frames: list[dict], prefix: str = "") -> list[dict]:
    """``message.created`` frames, optionally only those whose text starts with ``prefix``
    (a stream opened without ``since`` may also carry events committed just before)."""
    return [f for f in frames if f["event"] == "message.created" and (f["data"]["content"] or "").startswith(prefix)]


def ws_base(http_base: str) -> str:
    return http_base.replace("http://", "ws://")


async def seed_conversation(runtime, inbox_id: int, source: str = "seed") -> int:
    (result,) = await ingest_messages(runtime.db, [InboundMessage(
        inbox_id=inbox_id, source_id=source, sender=SenderIdentity(source_id=f"{source}-c"), text="hello")])
    return result.conversation_id


async def display_id(base: str, tenant) -> int:
    async with httpx.AsyncClient(base_url=base, headers=tenant.headers) as http:
        return (await http.get(tenant.path("/conversations"))).json()["data"]["payload"][0]["id"]


async def test_live_events_arrive_in_order(live_server, tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    await seed_conversation(runtime, inbox_id)
    number = await display_id(live_server, tenant)
    async with stream(ws_base(live_server), tenant) as ws, httpx.AsyncClient(base_url=live_server, headers=tenant.headers) as http:
        for i in range(5):
            await http.post(tenant.path(f"/conversations/{number}/messages"), json={"content": f"reply {i}"})
        frames = await frames_until(ws, lambda fs: len(created(fs, "reply")) == 5)
    replies = created(frames, "reply")
    assert [f["data"]["content"] for f in replies] == [f"reply {i}" for i in range(5)]
    seqs = [f["seq"] for f in frames if f["seq"] is not None]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert replies[0]["data"]["conversation"]["id"] == number


async def test_resume_with_since_delivers_exactly_the_missed_events(live_server, tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    await seed_conversation(runtime, inbox_id)
    number = await display_id(live_server, tenant)
    async with stream(ws_base(live_server), tenant) as ws, httpx.AsyncClient(base_url=live_server, headers=tenant.headers) as http:
        await http.post(tenant.path(f"/conversations/{number}/messages"), json={"content": "before"})
        last_seq = created(await frames_until(ws, lambda fs: len(created(fs, "before")) == 1), "before")[-1]["seq"]
    # Disconnected: 500 messages arrive meanwhile.
    for start in range(0, 500, 100):
        await ingest_messages(runtime.db, [
            InboundMessage(inbox_id=inbox_id, source_id=f"missed-{i}", sender=SenderIdentity(source_id="seed-c"), text=f"missed {i}")
            for i in range(start, start + 100)])
    async with stream(ws_base(live_server), tenant, query=f"?since={last_seq}") as ws:
        frames = await frames_until(ws, lambda fs: len(created(fs)) >= 500)
        # Nothing more from the log, in particular no duplicate. The agent's own presence
        # (online again: ephemeral, seq null) comes after the replay when the replay holds
        # every missed event, i.e. when the server's hub rested while nobody was connected.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.5):
                while True:
                    extra = json.loads(await ws.recv())
                    assert extra["seq"] is None and extra["event"] == "presence.update", extra
    missed = created(frames)
    assert [f["data"]["content"] for f in missed] == [f"missed {i}" for i in range(500)]
    seqs = [f["seq"] for f in frames if f["seq"] is not None]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] > last_seq


async def test_since_older_than_the_log_asks_for_a_resync(live_server, tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    await seed_conversation(runtime, inbox_id, "resync")
    async with runtime.db.write_session() as session:  # the retention job removed the oldest events
        from sqlalchemy import delete, func, select

        from app.models import Event
        oldest = await session.scalar(select(func.min(Event.seq)))
        await session.execute(delete(Event).where(Event.seq == oldest))
    async with stream(ws_base(live_server), tenant, query=f"?since={oldest - 1}") as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert first["event"] == "resync.required"


async def closed_with(url: str, headers: dict[str, str]) -> int:
    async with connect(url, additional_headers=headers, open_timeout=10) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    frame = await ws.recv()
                    raise AssertionError(f"a refused stream sent {frame!r}")
    return closed.value.rcvd.code


async def test_bad_credentials_and_foreign_accounts_are_refused(live_server, tenants):
    tenant, other = await tenants.new(), await tenants.new()
    url = f"{ws_base(live_server)}/api/v1/accounts/{tenant.account_id}/stream"
    assert await closed_with(url, {"api_access_token": "wrong"}) == 4401
    assert await closed_with(url, {}) == 4401
    assert await closed_with(url + "?ticket=1.2.3.forged", {}) == 4401
    assert await closed_with(url, {"api_access_token": other.token}) == 4404


async def test_browser_ticket_opens_the_stream(live_server, tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    async with httpx.AsyncClient(base_url=live_server, headers=tenant.headers) as http:
        ticket = (await http.post(tenant.path("/stream/tickets"))).json()["ticket"]
    url = f"{ws_base(live_server)}/api/v1/accounts/{tenant.account_id}/stream?ticket={ticket}"
    async with connect(url, open_timeout=10) as ws:
        await seed_conversation(runtime, inbox_id, "ticket")
        frames = await frames_until(ws, lambda fs: len(created(fs)) == 1)
    assert created(frames)[0]["data"]["content"] == "hello"


async def test_agents_receive_only_their_inboxes_events(live_server, tenants, runtime):
    tenant = await tenants.new()
    mine, other = await tenant.inbox("api"), await tenant.inbox("api")
    _, token = await tenant.agent(inbox_ids=[mine])
    async with stream(ws_base(live_server), tenant, token=token) as ws:
        await seed_conversation(runtime, other, "hidden")
        await seed_conversation(runtime, mine, "visible")
        frames = await frames_until(ws, lambda fs: len(created(fs)) == 1)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.5):
                frames.append(json.loads(await ws.recv()))
    assert {f["data"]["inbox_id"] for f in frames if f["event"].startswith(("message.", "conversation."))} == {mine}


async def test_typing_reaches_other_agents_and_is_not_logged(live_server, tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    _, token = await tenant.agent(inbox_ids=[inbox_id])
    await seed_conversation(runtime, inbox_id, "typing")
    number = await display_id(live_server, tenant)
    async with stream(ws_base(live_server), tenant) as watcher, stream(ws_base(live_server), tenant, token=token) as typist:
        await typist.send(json.dumps({"action": "typing", "conversation_id": number, "on": True}))
        frames = await frames_until(watcher, lambda fs: any(f["event"] == "conversation.typing_on" for f in fs))
    typing = next(f for f in frames if f["event"] == "conversation.typing_on")
    assert typing["seq"] is None and typing["data"]["conversation"]["id"] == number
    from sqlalchemy import func, select

    from app.models import Event
    async with runtime.db.read_session() as session:
        logged = await session.scalar(select(func.count()).where(Event.event_type.like("conversation.typing%")))
    assert logged == 0


async def test_a_slow_subscriber_is_cut_off_not_the_others(runtime, tenants):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    hub = Hub(Database(runtime.db.url), Broker())
    await hub.start()
    try:
        slow = Subscriber(tenant.account_id, tenant.admin_id, True, frozenset(), queue_size=5)
        fast = Subscriber(tenant.account_id, tenant.admin_id, True, frozenset(), queue_size=10_000)
        hub.register(slow)
        hub.register(fast)
        await ingest_messages(runtime.db, [InboundMessage(
            inbox_id=inbox_id, source_id=f"slow-{i}", sender=SenderIdentity(source_id=f"s{i}"), text="x") for i in range(20)])
        await hub._dispatch_batch()
        assert slow.overflowed.is_set() and not fast.overflowed.is_set()
        assert fast.queue.qsize() == 60  # contact, conversation and message events for each of 20
    finally:
        await hub.stop()
        await hub.db.dispose()


def queued_seqs(subscriber: Subscriber) -> list[int]:
    seqs = []
    while not subscriber.queue.empty():
        seqs.append(json.loads(subscriber.queue.get_nowait())["seq"])
    return seqs


async def test_a_commit_of_this_process_is_dispatched_from_memory_when_it_is_next(runtime, tenants):
    """Embedded set-up (SQLite, memory broker): the committing process dispatches the events
    it wrote without reading the log back, when they follow what was dispatched; after a
    gap (another writer's commit) the reader takes over. Every frame once, in order."""
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    hub = Hub(runtime.db, Broker(), catch_up_seconds=3600)
    await hub.start()
    other_writer = Database(runtime.db.url)
    try:
        subscriber = Subscriber(tenant.account_id, tenant.admin_id, True, frozenset(), queue_size=10_000)
        hub.register(subscriber)
        start = hub.last_dispatched

        def message(i: int) -> InboundMessage:
            return InboundMessage(inbox_id=inbox_id, source_id=f"mem-{i}", sender=SenderIdentity(source_id="m"), text="x")

        await ingest_messages(runtime.db, [message(i) for i in range(5)])
        from_memory = queued_seqs(subscriber)
        if TEST_DATABASE == "sqlite":
            assert from_memory == list(range(start + 1, start + 1 + len(from_memory))) and len(from_memory) >= 6
            assert not hub._wake.is_set()  # the reader was not needed
        else:  # several processes may write: the log's reader dispatches
            assert from_memory == [] and hub._wake.is_set()
        await hub._dispatch_batch()
        read = queued_seqs(subscriber)
        await ingest_messages(other_writer, [message(5)])  # a commit the hub did not see
        await ingest_messages(runtime.db, [message(6)])
        assert queued_seqs(subscriber) == []  # not next: left to the reader
        assert hub._wake.is_set()
        await hub._dispatch_batch()
        seqs = from_memory + read + queued_seqs(subscriber)
        async with runtime.db.read_session() as session:
            logged = list(await session.scalars(select(Event.seq).where(
                Event.account_id == tenant.account_id, Event.seq > start).order_by(Event.seq)))
        assert seqs == logged
    finally:
        await hub.stop()
        await other_writer.dispose()


class FakeWriter:
    """Stands in for a socket: accepts frames unless paused."""

    def __init__(self) -> None:
        self.paused = False
        self.written: list[bytes] = []

    def write(self, frame: bytes) -> bool:
        if self.paused:
            return False
        self.written.append(frame)
        return True


async def test_frames_written_directly_never_overtake_queued_ones():
    subscriber = Subscriber(1, 1, True, frozenset(), queue_size=3)
    writer = subscriber.writer = FakeWriter()  # type: ignore[assignment]
    frames = [outgoing(seq, "message.created", {"n": seq}) for seq in range(1, 11)]
    subscriber.deliver(frames[0])
    writer.paused = True
    subscriber.deliver(frames[1])  # the socket is paused: queued
    writer.paused = False
    subscriber.deliver(frames[2])  # behind a queued frame: queued too
    assert writer.written == [frames[0].wire]
    assert [subscriber.queue.get_nowait(), subscriber.queue.get_nowait()] == [frames[1].text, frames[2].text]
    subscriber.sent()  # the connection's task sent one of them and still holds the other
    subscriber.deliver(frames[3])
    assert subscriber.queue.get_nowait() == frames[3].text
    subscriber.sent()
    subscriber.sent()  # everything taken from the queue is out: direct writes again
    subscriber.deliver(frames[4])
    assert writer.written == [frames[0].wire, frames[4].wire]
    writer.paused = True
    for frame in frames[5:]:  # a client that stays paused fills its queue and is told to go
        subscriber.deliver(frame)
    assert subscriber.overflowed.is_set()


async def test_live_frames_go_straight_to_the_socket_under_postroom_serve(live_server, tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    await seed_conversation(runtime, inbox_id)
    number = await display_id(live_server, tenant)
    async with httpx.AsyncClient(base_url=live_server, headers=tenant.headers) as http:
        before = direct_writes((await http.get("/metrics")).text)
        async with stream(ws_base(live_server), tenant) as ws:
            # The stream's own presence frame: it is registered, live frames may go direct.
            await frames_until(ws, lambda fs: any(f["event"] == "presence.update" for f in fs))
            for i in range(3):
                await http.post(tenant.path(f"/conversations/{number}/messages"), json={"content": f"direct {i}"})
            frames = await frames_until(ws, lambda fs: len(created(fs, "direct")) == 3)
        after = direct_writes((await http.get("/metrics")).text)
    assert [f["data"]["content"] for f in created(frames, "direct")] == [f"direct {i}" for i in range(3)]
    # Fails if uvicorn's protocol object changed and every frame took the send_text path.
    assert after - before >= 3


def direct_writes(metrics_text: str) -> float:
    return next(float(line.split()[-1]) for line in metrics_text.splitlines()
                if line.startswith("postroom_stream_direct_writes_total "))


needs_postgresql = pytest.mark.skipif(
    TEST_DATABASE != "postgresql",
    reason="two server processes share one database: runs in the PostgreSQL pass of the suite",
)


@needs_postgresql
@pytest.mark.parametrize("broker", ["postgresql", "redis"])
async def test_events_cross_processes_through_the_broker(start_server, tenants, runtime, settings, broker):
    url = settings.database_url if broker == "postgresql" else "redis://127.0.0.1:6379/0"
    # A long catch-up interval: only the broker's wake-up can deliver in time.
    env = {"POSTROOM_BROKER_URL": url, "POSTROOM_STREAM_CATCH_UP_SECONDS": "60"}
    a, b = start_server(**env), start_server(**env)
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    await seed_conversation(runtime, inbox_id, "xproc")
    number = await display_id(a.base, tenant)
    frames: list[dict] = []
    async with stream(b.ws_base, tenant) as ws, httpx.AsyncClient(base_url=a.base, headers=tenant.headers) as http:
        for i in range(20):
            await http.post(tenant.path(f"/conversations/{number}/messages"), json={"content": f"from A {i}"})
        try:
            async with asyncio.timeout(20):
                while len(created(frames, "from A")) < 20:
                    frames.append(json.loads(await ws.recv()))
        except TimeoutError:
            pytest.fail(f"{len(created(frames, 'from A'))} of 20 frames in 20 s\n"
                        f"A, the writer: {what_happened(a)}\nB, the streamer: {what_happened(b)}")
    assert [f["data"]["content"] for f in created(frames, "from A")] == [f"from A {i}" for i in range(20)]


def what_happened(server) -> str:
    """A server's hub and broker figures and the warnings of its log, for a failure message."""
    wanted = ("postroom_broker_", "postroom_stream_events_total", "postroom_stream_log_reads_total",
              "postroom_stream_connections")
    figures = [line for line in httpx.get(server.base + "/metrics").text.splitlines()
               if line.startswith(wanted) and "_created " not in line]
    warnings = [line for line in server.log_path.read_text(errors="replace").splitlines()
                if '"level": "warning"' in line or '"level": "error"' in line]
    return f"{figures}; {len(warnings)} warnings in {server.log_path}, the last: {warnings[-5:]}"


@needs_postgresql
async def test_client_survives_kill_9_of_its_server_without_loss_or_duplicates(start_server, tenants, runtime, settings):
    env = {"POSTROOM_BROKER_URL": settings.database_url}
    a, b = start_server(**env), start_server(**env)
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    await seed_conversation(runtime, inbox_id, "kill")
    number = await display_id(b.base, tenant)
    total = 300
    received: list[dict] = []

    async def burst():
        async with httpx.AsyncClient(base_url=b.base, headers=tenant.headers) as http:
            for i in range(total):
                response = await http.post(tenant.path(f"/conversations/{number}/messages"), json={"content": f"burst {i}"})
                assert response.status_code == 200

    sender = None
    try:
        async with stream(a.ws_base, tenant) as ws:
            # The burst starts once the stream is open: a stream without ``since`` carries
            # only what is dispatched after it connects.
            await ws.send(json.dumps({"action": "heartbeat"}))
            await frames_until(ws, lambda fs: any(f["event"] == "presence.update" for f in fs))
            sender = asyncio.create_task(burst())
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(30):
                    while True:
                        received.append(json.loads(await ws.recv()))
                        if len(created(received, "burst")) == 40:
                            a.kill()
        last_seq = max(f["seq"] for f in received if f["seq"] is not None)
        async with stream(b.ws_base, tenant, query=f"?since={last_seq}") as ws:
            received += await frames_until(ws, lambda fs: len(created(received + fs, "burst")) >= total, timeout=60)
    finally:
        if sender is not None:
            await sender
    seqs = [f["seq"] for f in received if f["seq"] is not None]
    assert len(seqs) == len(set(seqs)), "a frame arrived twice"
    assert [f["data"]["content"] for f in created(received, "burst")] == [f"burst {i}" for i in range(total)]


async def test_pruning_old_events_never_hands_their_seqs_out_again(runtime, tenants):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    await seed_conversation(runtime, inbox_id, "prune-old")
    async with runtime.db.read_session() as session:
        newest = await session.scalar(select(func.max(Event.seq)))
    # The newest events are past the retention (an inbox idle for a month).
    async with runtime.db.write_session() as session:
        await session.execute(update(Event).where(Event.seq > newest - 3).values(created_at=utcnow() - timedelta(days=30)))
    removed = await Hub(runtime.db, Broker(), retention_days=7).prune()
    assert removed >= 2
    await seed_conversation(runtime, inbox_id, "prune-new")
    async with runtime.db.read_session() as session:
        seqs = list(await session.scalars(select(Event.seq).where(Event.inbox_id == inbox_id).order_by(Event.seq)))
    assert seqs[0] == newest  # the newest old one is kept
    assert all(seq > newest for seq in seqs[1:]) and len(seqs) > 1  # a reader past it sees the new ones


async def test_a_hub_without_subscribers_reads_nothing_and_the_next_one_starts_at_the_end(runtime, tenants):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    hub = Hub(Database(runtime.db.url), Broker())
    await hub.start()
    try:
        await seed_conversation(runtime, inbox_id, "unheard")
        assert await hub._dispatch_batch() == 0  # nobody listens: the log is not read
        async with runtime.db.read_session() as session:
            newest = await session.scalar(select(func.max(Event.seq)))
        subscriber = Subscriber(tenant.account_id, tenant.admin_id, True, frozenset(), queue_size=100)
        log_end = await hub.log_end()  # read before the stream is accepted
        assert log_end == newest
        assert hub.join(subscriber, log_end) == newest  # the seam: what came before is the replay's
        await seed_conversation(runtime, inbox_id, "heard")
        await hub._dispatch_batch()
        frames = [json.loads(subscriber.queue.get_nowait()) for _ in range(subscriber.queue.qsize())]
        assert frames and all(f["seq"] > newest for f in frames)
        assert [f["data"]["content"] for f in frames if f["event"] == "message.created"] == ["hello"]
    finally:
        await hub.stop()
        await hub.db.dispose()


async def test_wake_ups_that_come_before_a_stream_joins_are_not_left_to_the_catch_up(runtime, tenants):
    """A stream is accepted, authenticated, then joined to the hub: a wake-up arriving in
    between finds nobody to send to. Once it joins, what that wake-up announced reaches it
    at once, not at the next periodic catch-up (an hour here)."""
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    hub = Hub(Database(runtime.db.url), Broker(), catch_up_seconds=3600)
    await hub.start()
    try:
        log_end = await hub.log_end()  # read before the stream is accepted
        await seed_conversation(runtime, inbox_id, "between")  # committed by another process
        hub._set_wake()  # its wake-up, through the broker
        async with asyncio.timeout(10):
            while not hub._skipped:  # the hub's pass ran and found nobody
                await asyncio.sleep(0.01)
        subscriber = Subscriber(tenant.account_id, tenant.admin_id, True, frozenset(), queue_size=100)
        hub.join(subscriber, log_end)
        async with asyncio.timeout(10):
            frame = json.loads(await subscriber.queue.get())
            while frame["event"] != "message.created":
                frame = json.loads(await subscriber.queue.get())
        assert frame["data"]["content"] == "hello"
    finally:
        await hub.stop()
        await hub.db.dispose()


async def test_a_stream_opened_on_a_resting_hub_gets_everything_after_it_opened(live_server, tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    await seed_conversation(runtime, inbox_id, "resting")
    number = await display_id(live_server, tenant)
    async with httpx.AsyncClient(base_url=live_server, headers=tenant.headers) as http:
        # A commit in the server while no stream is open: its hub rests (reads nothing).
        await http.post(tenant.path(f"/conversations/{number}/messages"), json={"content": "unheard"})
        await asyncio.sleep(0.3)
        async with stream(ws_base(live_server), tenant) as ws:
            for i in range(20):  # at once, while the server is still registering the stream
                await http.post(tenant.path(f"/conversations/{number}/messages"), json={"content": f"right after {i}"})
            frames = await frames_until(ws, lambda fs: len(created(fs, "right after")) == 20)
    assert [f["data"]["content"] for f in created(frames, "right after")] == [f"right after {i}" for i in range(20)]
    assert not created(frames, "unheard")  # what came before the stream is not sent

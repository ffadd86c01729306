"""Background loops are woken by the commits that concern them, in this process and others."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select

from app.events.log import OUTBOX
from app.models import Event
from app.realtime.broker import Broker
from app.realtime.hub import Hub
from app.tickets.continuity import CONTINUITY
from app.tickets.ingest import ingest_messages
from connectors.base import InboundMessage, SenderIdentity


async def display_id(client: httpx.AsyncClient, tenant) -> int:
    return (await client.get(tenant.path("/conversations"), headers=tenant.headers)).json()["data"]["payload"][0]["id"]


async def test_a_reply_to_send_wakes_the_outbox_and_a_customer_message_does_not(runtime, tenants, client):
    hub = Hub(runtime.db, Broker())  # its after-commit hook only: what a server's hub does on commit
    outbox, continuity, followers = asyncio.Event(), asyncio.Event(), asyncio.Event()
    hub.listen(OUTBOX, outbox)
    hub.listen(CONTINUITY, continuity)
    hub.wake_listeners.append(followers)
    runtime.db.after_commit.append(hub._after_commit)
    try:
        tenant = await tenants.new()
        inbox_id = await tenant.inbox("telegram")
        await ingest_messages(runtime.db, [InboundMessage(
            inbox_id=inbox_id, source_id="wake-1", sender=SenderIdentity(source_id="wake-c"), text="hello")])
        assert followers.is_set()  # the stream and the webhooks follow every commit
        assert not outbox.is_set() and not continuity.is_set()

        followers.clear()
        number = await display_id(client, tenant)
        response = await client.post(tenant.path(f"/conversations/{number}/messages"), headers=tenant.headers,
                                     json={"content": "on its way"})
        assert response.status_code == 200 and response.json()["status"] == "pending"
        assert outbox.is_set() and followers.is_set()
        assert not continuity.is_set()  # not a live-chat reply

        outbox.clear()
        response = await client.post(tenant.path(f"/conversations/{number}/messages"), headers=tenant.headers,
                                     json={"content": "a note", "private": True})
        assert response.status_code == 200
        assert not outbox.is_set()  # a private note is never sent
    finally:
        runtime.db.after_commit.remove(hub._after_commit)


class HeldBroker(Broker):
    """A broker whose every publish waits until released (a slow or hung broker)."""

    def __init__(self) -> None:
        super().__init__()
        self.released = asyncio.Event()
        self.sent: list[dict] = []

    async def publish(self, message: dict) -> None:
        self.sent.append(message)
        await self.released.wait()


async def test_commits_never_wait_for_the_broker_and_their_wake_ups_are_merged(runtime, tenants, client):
    """While the broker holds a wake-up, commits go on (a customer message, an agent's
    reply); what they committed meanwhile reaches the other processes as one wake-up,
    with the newest seq and every topic."""
    broker = HeldBroker()
    hub = Hub(runtime.db, broker)
    hub.wakes.start()
    runtime.db.after_commit.append(hub._after_commit)
    try:
        tenant = await tenants.new()
        inbox_id = await tenant.inbox("telegram")
        async with asyncio.timeout(10):  # each commit would otherwise wait for the broker forever
            for n in range(3):
                await ingest_messages(runtime.db, [InboundMessage(
                    inbox_id=inbox_id, source_id=f"held-{n}", sender=SenderIdentity(source_id="held-c"),
                    text=f"message {n}")])
            number = await display_id(client, tenant)
            response = await client.post(tenant.path(f"/conversations/{number}/messages"), headers=tenant.headers,
                                         json={"content": "on its way"})
            assert response.status_code == 200
        assert len(broker.sent) == 1  # the first wake-up, still held
        broker.released.set()
        async with asyncio.timeout(10):
            while len(broker.sent) < 2:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert len(broker.sent) == 2  # the later commits' wake-ups, merged into one
        first, merged = broker.sent
        async with runtime.db.read_session() as session:
            newest = await session.scalar(select(func.max(Event.seq)).where(Event.account_id == tenant.account_id))
        assert first["seq"] < merged["seq"] == newest
        assert OUTBOX in merged["topics"]  # the reply waits to be sent by whichever process owns the inbox
    finally:
        runtime.db.after_commit.remove(hub._after_commit)
        await hub.wakes.stop()


async def test_topics_travel_through_the_broker_to_other_processes(runtime):
    hub = Hub(runtime.db, Broker())
    outbox = asyncio.Event()
    hub.listen(OUTBOX, outbox)
    await hub._on_broker_message({"kind": "wake", "seq": 1, "topics": []})
    assert not outbox.is_set()
    await hub._on_broker_message({"kind": "wake", "seq": 2, "topics": [OUTBOX]})
    assert outbox.is_set()


async def test_a_loop_waiting_for_its_wake_up_stops_when_cancelled_as_it_is_woken():
    """The background loops' wait (hub, webhook worker, outbox poll, e-mail copies) must not
    drop a cancellation that arrives together with the wake-up (Python 3.11's wait_for does:
    the loop then ran on and stop() waited for its next period)."""
    from app.waits import wake_or_timeout

    woken = asyncio.Event()
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            await wake_or_timeout(woken, 3600)
            woken.clear()
            rounds += 1

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    woken.set()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    assert task in done and task.cancelled() and rounds == 0
    assert await wake_or_timeout(asyncio.Event(), 0.01) is False

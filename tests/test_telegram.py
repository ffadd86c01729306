"""Telegram end to end: the connector runner against the loopback Bot API sandbox.

``connectors/telegram/sandbox.py`` speaks the wire format of the official Bot API page
(https://core.telegram.org/bots/api): getUpdates with offsets and long polls, getFile and
file downloads, sendMessage / sendPhoto / sendDocument, and its error answers (429 with
``parameters.retry_after``, 401 for a bad token, 403 for a blocked bot).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from app.models import Attachment, ConnectorCursor, ConnectorState, Conversation, Event, Message, utcnow
from app.runner.stale import warn_stale_inboxes
from app.tickets.ingest import ingest_messages
from connectors.base import ConnectorConfig, InboundAttachment, InboundMessage, OutboundMessage, SenderIdentity
from connectors.telegram import TelegramConnector
from connectors.telegram.sandbox import TelegramSandbox
from tests.conftest import TEST_DATABASE
from tests.connector_runner import eventually, running

@pytest.fixture
def sandbox() -> Any:
    with TelegramSandbox() as server:
        yield server


async def telegram_inbox(client: httpx.AsyncClient, tenant: Any, sandbox: TelegramSandbox, **channel: Any) -> int:
    body = {"name": "Telegram bot", "channel": {
        "type": "telegram", "bot_token": sandbox.token, "api_base_url": sandbox.base_url, "poll_timeout": 1, **channel}}
    response = await client.post(tenant.path("/inboxes"), headers=tenant.headers, json=body)
    assert response.status_code == 200, response.text
    assert "bot_token" not in response.json()
    return response.json()["id"]


async def messages_of(runtime: Any, inbox_id: int) -> list[Message]:
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(Message).where(Message.inbox_id == inbox_id).order_by(Message.id)))


def stored(runtime: Any, inbox_id: int, count: int) -> Callable[[], Awaitable[list[Message] | None]]:
    async def check() -> list[Message] | None:
        rows = await messages_of(runtime, inbox_id)
        return rows if len(rows) >= count else None
    return check


async def inbox_body(client: httpx.AsyncClient, tenant: Any, inbox_id: int) -> dict[str, Any]:
    return (await client.get(tenant.path(f"/inboxes/{inbox_id}"), headers=tenant.headers)).json()


async def test_messages_arrive_as_one_conversation_per_chat_with_files_and_edits(client, tenants, runtime, sandbox):
    tenant = await tenants.new()
    inbox_id = await telegram_inbox(client, tenant, sandbox)
    assert (await inbox_body(client, tenant, inbox_id))["connection"]["state"] == "starting"
    sara = sandbox.user(731902211, "سارا", last_name="احمدی", username="sara_a", language_code="fa")
    somchai = sandbox.user(55501, "สมชาย")
    first = sandbox.user_writes(sara, "سلام، آیا امکان ارسال به تهران وجود دارد؟")
    sandbox.user_writes(sara, "Here is the receipt", photo=b"\xff\xd8\xff" + b"p" * 5000)
    sandbox.user_writes(sara, document=("invoice.pdf", "application/pdf", b"%PDF-1.4 fake"))
    sandbox.user_writes(sara, voice=b"OggS voice bytes")
    sandbox.group_message(-100200300, somchai, "in a group: not for the inbox")
    sandbox.user_writes(somchai, "สวัสดีครับ")

    async with running(runtime, inbox_id):
        rows = await eventually(stored(runtime, inbox_id, 5))
        edit = sandbox.user_edits(first, "سلام! ارسال به تهران؟")
        await eventually(lambda: _content_is(runtime, rows[0].id, "سلام! ارسال به تهران؟"))
        await eventually(lambda: _state_is(runtime, inbox_id, "connected"))

    rows = await messages_of(runtime, inbox_id)
    assert len(rows) == 5  # the group message is skipped
    by_chat: dict[str, set[int]] = {}
    for row in rows:
        by_chat.setdefault(row.source_id.split(":")[0], set()).add(row.conversation_id)
    assert set(by_chat) == {str(sara), str(somchai)}
    assert all(len(conversations) == 1 for conversations in by_chat.values())
    assert by_chat[str(sara)] != by_chat[str(somchai)]
    assert rows[0].source_id == f"{sara}:{first['message']['message_id']}"
    assert rows[0].content_attributes["edited"] is True
    assert rows[0].content_attributes["previous_content"] == "سلام، آیا امکان ارسال به تهران وجود دارد؟"
    assert rows[1].content == "Here is the receipt"

    async with runtime.db.read_session() as session:
        files = list(await session.scalars(select(Attachment).where(
            Attachment.message_id.in_([r.id for r in rows])).order_by(Attachment.id)))
        conversation = await session.get(Conversation, rows[0].conversation_id)
        cursor = await session.get(ConnectorCursor, (inbox_id, "default"))
    assert [(f.file_type, f.content_type, f.file_size) for f in files] == [
        ("image", "image/jpeg", 5003), ("file", "application/pdf", 13), ("audio", "audio/ogg", 16)]
    assert files[1].file_name == "invoice.pdf"
    assert runtime.store.path(files[0].storage_path).read_bytes().startswith(b"\xff\xd8\xff")
    assert cursor.value["offset"] == edit["update_id"] + 1  # Telegram forgets what is below it

    contact = (await client.get(tenant.path(f"/conversations/{conversation.display_id}"), headers=tenant.headers)).json()
    assert contact["meta"]["sender"]["name"] == "سارا احمدی"
    body = await inbox_body(client, tenant, inbox_id)
    assert body["connection"]["state"] == "connected" and body["connection"]["last_fetch_at"]
    assert body["reauthorization_required"] is False
    # Long polls were used, and never two at once.
    assert all(c.body.get("timeout") == 1 for c in sandbox.calls_of("getUpdates"))
    assert sandbox.conflicts == 0


async def test_redelivery_and_offset_replay_store_each_message_once(client, tenants, runtime, sandbox):
    tenant = await tenants.new()
    inbox_id = await telegram_inbox(client, tenant, sandbox)
    user = sandbox.user(4242, "Ann")
    updates = [sandbox.user_writes(user, f"message {i}") for i in range(3)]
    sandbox.push_update({"message": updates[1]["message"]})  # the same message again, a new update id
    async with running(runtime, inbox_id):
        await eventually(lambda: _cursor_past(runtime, inbox_id, updates[-1]["update_id"] + 1))
    assert [m.content for m in await messages_of(runtime, inbox_id)] == [f"message {i}" for i in range(3)]

    # A crash after the fetch and before the commit: the cursor is older than what
    # Telegram handed out, so the same updates come again.
    async with runtime.db.write_session() as session:
        await session.execute(update(ConnectorCursor).where(ConnectorCursor.inbox_id == inbox_id).values(value={}))
    for original in updates:
        sandbox.push_update(original)
    sandbox.user_writes(user, "message 3")
    async with running(runtime, inbox_id):
        await eventually(stored(runtime, inbox_id, 4))
        await asyncio.sleep(0.5)
    rows = await messages_of(runtime, inbox_id)
    assert [m.content for m in rows] == [f"message {i}" for i in range(4)]
    assert len({m.conversation_id for m in rows}) == 1


async def test_flood_control_429_is_honoured_and_nothing_is_lost(client, tenants, runtime, sandbox):
    tenant = await tenants.new()
    inbox_id = await telegram_inbox(client, tenant, sandbox)
    user = sandbox.user(9001, "Flood")
    sandbox.fail_next("getUpdates", 429, "Too Many Requests: retry after 2", retry_after=2)
    sandbox.user_writes(user, "before the limit")
    async with running(runtime, inbox_id):
        await eventually(lambda: _state_is(runtime, inbox_id, "backing_off"))
        body = await inbox_body(client, tenant, inbox_id)
        assert body["connection"]["state"] == "backing_off"
        assert "retry after 2" in body["connection"]["last_error"] and body["connection"]["next_attempt_at"]
        sandbox.user_writes(user, "during the limit")
        await eventually(stored(runtime, inbox_id, 2))
        await eventually(lambda: _state_is(runtime, inbox_id, "connected"))

        # The reply side: a 429 on sendMessage waits and sends once.
        conversation = await _display_id(runtime, inbox_id)
        sandbox.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
        reply = await client.post(tenant.path(f"/conversations/{conversation}/messages"), headers=tenant.headers,
                                  json={"content": "thanks for waiting"})
        assert reply.json()["status"] == "pending"
        await eventually(lambda: _status_is(runtime, reply.json()["id"], "sent"))

    polls = sandbox.calls_of("getUpdates")
    limited = next(i for i, c in enumerate(polls) if c.status == 429)
    assert polls[limited + 1].at - polls[limited].at >= 2.0
    assert [m.content for m in await messages_of(runtime, inbox_id)][:2] == ["before the limit", "during the limit"]
    sends = sandbox.calls_of("sendMessage")
    assert [c.status for c in sends] == [429, 200] and sends[1].at - sends[0].at >= 1.0
    assert [m["text"] for m in sandbox.sent] == ["thanks for waiting"]


async def test_an_agent_reply_reaches_telegram_and_becomes_sent(client, tenants, runtime, sandbox):
    tenant = await tenants.new()
    inbox_id = await telegram_inbox(client, tenant, sandbox)
    user = sandbox.user(123456789, "Hoa")
    question = sandbox.user_writes(user, "Áo này còn size M không ạ?")
    async with running(runtime, inbox_id):
        (incoming,) = await eventually(stored(runtime, inbox_id, 1))
        number = await _display_id(runtime, inbox_id)
        first = await client.post(tenant.path(f"/conversations/{number}/messages"), headers=tenant.headers,
                                  json={"content": "Dạ còn ạ!", "content_attributes": {"in_reply_to": incoming.id}})
        note = await client.post(tenant.path(f"/conversations/{number}/messages"), headers=tenant.headers,
                                 json={"content": "internal: check stock", "private": True})
        second = await client.post(tenant.path(f"/conversations/{number}/messages"), headers=tenant.headers,
                                   json={"content": "x" * 5000})
        assert first.json()["status"] == "pending" and note.json()["status"] == "sent"
        await eventually(lambda: _status_is(runtime, second.json()["id"], "sent"))

    sends = sandbox.calls_of("sendMessage")
    assert [c.body["chat_id"] for c in sends] == [str(user)] * 3  # JSON string: Telegram takes both
    assert sends[0].body["text"] == "Dạ còn ạ!"
    assert sends[0].body["reply_parameters"] == {
        "message_id": question["message"]["message_id"], "allow_sending_without_reply": True}
    assert [len(c.body["text"]) for c in sends[1:]] == [4096, 904]  # split at Telegram's limit
    async with runtime.db.read_session() as session:
        sent = await session.get(Message, first.json()["id"])
        events = list(await session.scalars(select(Event.event_type).where(
            Event.conversation_id == sent.conversation_id).order_by(Event.seq)))
    assert sent.status == "sent" and sent.source_id == f"{user}:{sandbox.sent[0]['message_id']}"
    assert events.count("message.updated") == 2  # each reply's status change is announced


async def test_a_send_the_platform_refuses_becomes_failed_with_the_reason(client, tenants, runtime, sandbox):
    tenant = await tenants.new()
    inbox_id = await telegram_inbox(client, tenant, sandbox)
    user = sandbox.user(777, "Blocker")
    sandbox.user_writes(user, "bye")
    async with running(runtime, inbox_id):
        await eventually(stored(runtime, inbox_id, 1))
        sandbox.block(user)
        number = await _display_id(runtime, inbox_id)
        reply = await client.post(tenant.path(f"/conversations/{number}/messages"), headers=tenant.headers,
                                  json={"content": "are you there?"})
        await eventually(lambda: _status_is(runtime, reply.json()["id"], "failed"))
    listed = (await client.get(tenant.path(f"/conversations/{number}/messages"), headers=tenant.headers)).json()
    failed = next(m for m in listed["payload"] if m["id"] == reply.json()["id"])
    assert failed["status"] == "failed"
    assert failed["external_error"] == "403: Forbidden: bot was blocked by the user"
    assert len(sandbox.calls_of("sendMessage")) == 1  # refused for good: not retried


async def test_a_wrong_token_shows_auth_failed_until_the_token_is_fixed(client, tenants, runtime, sandbox):
    tenant = await tenants.new()
    inbox_id = await telegram_inbox(client, tenant, sandbox, bot_token="123456:WRONG")
    sandbox.user_writes(sandbox.user(31337, "Waiting"), "hello?")
    async with running(runtime, inbox_id):
        await eventually(lambda: _state_is(runtime, inbox_id, "auth_failed"))
        body = await inbox_body(client, tenant, inbox_id)
        assert body["reauthorization_required"] is True
        assert body["connection"]["last_error"] == "getUpdates: 401 Unauthorized"
        assert "WRONG" not in str(body)
        fixed = await client.patch(tenant.path(f"/inboxes/{inbox_id}"), headers=tenant.headers,
                                   json={"channel": {"bot_token": sandbox.token}})
        assert fixed.status_code == 200
        await eventually(stored(runtime, inbox_id, 1))
        await eventually(lambda: _state_is(runtime, inbox_id, "connected"))


async def test_an_inbox_without_a_token_is_disabled_and_its_replies_fail(client, tenants, runtime, sandbox):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("telegram")
    await ingest_messages(runtime.db, [InboundMessage(
        inbox_id=inbox_id, source_id="1:1", sender=SenderIdentity(source_id="1"), text="from before")])
    async with running(runtime, inbox_id):
        await eventually(lambda: _state_is(runtime, inbox_id, "disabled"))
        number = await _display_id(runtime, inbox_id)
        reply = await client.post(tenant.path(f"/conversations/{number}/messages"), headers=tenant.headers,
                                  json={"content": "nobody will get this"})
        await eventually(lambda: _status_is(runtime, reply.json()["id"], "failed"))
    body = await inbox_body(client, tenant, inbox_id)
    assert body["connection"]["state"] == "disabled" and body["connection"]["last_error"] == "bot_token is not set"
    async with runtime.db.read_session() as session:
        assert (await session.get(Message, reply.json()["id"])).external_error == "not sent: bot_token is not set"


async def test_a_silent_inbox_warns_once_per_silence(client, tenants, runtime, sandbox):
    tenant = await tenants.new()
    inbox_id = await telegram_inbox(client, tenant, sandbox)
    async with running(runtime, inbox_id):
        await eventually(lambda: _state_is(runtime, inbox_id, "connected"))
    async with runtime.db.write_session() as session:
        await session.execute(update(ConnectorState).where(ConnectorState.inbox_id == inbox_id).values(
            state="backing_off", last_fetch_at=utcnow() - timedelta(hours=21), last_error="getUpdates: 502 Bad Gateway"))
    assert await warn_stale_inboxes(runtime.db, only=[inbox_id]) == 1
    assert await warn_stale_inboxes(runtime.db, only=[inbox_id]) == 0
    async with runtime.db.read_session() as session:
        (event,) = await session.scalars(select(Event).where(
            Event.inbox_id == inbox_id, Event.event_type == "inbox.connection_warning"))
    assert event.payload["last_error"] == "getUpdates: 502 Bad Gateway" and "20 hours" in event.payload["message"]


async def test_the_lease_moves_to_another_runner_when_its_owner_stops_beating(client, tenants, runtime, sandbox):
    """Two runners on one inbox: one polls; when it dies silently the other takes over."""
    tenant = await tenants.new()
    inbox_id = await telegram_inbox(client, tenant, sandbox)
    user = sandbox.user(5150, "Lease")
    async with running(runtime, inbox_id) as one:
        await eventually(lambda: _state_is(runtime, inbox_id, "connected"))
        async with running(runtime, inbox_id) as two:
            await asyncio.sleep(1.0)
            assert list(one.workers) == [inbox_id] and not two.workers
            sandbox.user_writes(user, "while one polls")
            await eventually(stored(runtime, inbox_id, 1))
            # "Crash" one: it stops without releasing anything; the lease must run out.
            await one.stop(release=False)
            sandbox.user_writes(user, "while nobody polls")
            await eventually(lambda: _owner_is(runtime, inbox_id, two.owner), timeout=10)
            await eventually(stored(runtime, inbox_id, 2))
    assert [m.content for m in await messages_of(runtime, inbox_id)] == ["while one polls", "while nobody polls"]


async def test_connector_sends_files_with_send_photo_and_send_document(sandbox):
    user = sandbox.user(6060, "Files")
    connector = TelegramConnector(ConnectorConfig(inbox_id=1, settings={"api_base_url": sandbox.base_url},
                                                  secrets={"bot_token": sandbox.token}))
    try:
        platform_id = await connector.send(OutboundMessage(
            inbox_id=1, message_id=1, recipient_source_id=str(user), text="your label and invoice",
            attachments=[InboundAttachment(file_name="label.png", content_type="image/png", data=b"\x89PNG.."),
                         InboundAttachment(file_name="invoice.pdf", content_type="application/pdf", data=b"%PDF")]))
    finally:
        await connector.aclose()
    photo, document = sandbox.sent
    assert platform_id == f"{user}:{photo['message_id']}"
    assert photo["caption"] == "your label and invoice" and photo["_files"]["photo"] == ("label.png", "image/png", 6)
    assert "caption" not in document and document["_files"]["document"] == ("invoice.pdf", "application/pdf", 4)


@pytest.mark.skipif(TEST_DATABASE != "postgresql",
                    reason="two server processes share one database: runs in the PostgreSQL pass of the suite")
async def test_kill_9_of_the_polling_process_loses_and_doubles_nothing(start_server, client, tenants, runtime, sandbox):
    env = {"POSTROOM_CONNECTOR_LEASE_SECONDS": "2", "POSTROOM_CONNECTOR_SCAN_SECONDS": "0.3",
           "POSTROOM_CONNECTOR_BACKOFF": "0.2,0.5"}
    tenant = await tenants.new()
    inbox_id = await telegram_inbox(client, tenant, sandbox)
    # Only this inbox: the suite's database holds many others, which would keep them busy.
    servers = [start_server(**env, POSTROOM_CONNECTOR_INBOXES=str(inbox_id)) for _ in range(2)]
    users = [sandbox.user(880000 + i, f"Buyer {i}") for i in range(5)]
    total = 60
    sent: list[str] = []

    async def customers() -> None:
        for i in range(total):
            text = f"message {i}"
            sandbox.user_writes(users[i % len(users)], text)
            sent.append(text)
            await asyncio.sleep(0.05)

    writing = asyncio.create_task(customers())
    owner = await eventually(lambda: _lease_owner(runtime, inbox_id), timeout=20)
    victim = next(s for s in servers if s.process.pid == int(owner.split(":")[1]))
    survivor = next(s for s in servers if s is not victim)
    await eventually(stored(runtime, inbox_id, 15), timeout=20)
    os.kill(victim.process.pid, signal.SIGKILL)
    victim.process.wait(timeout=10)
    await writing
    await eventually(lambda: _owner_is_pid(runtime, inbox_id, survivor.process.pid), timeout=20)
    rows = await eventually(stored(runtime, inbox_id, total), timeout=30)
    await asyncio.sleep(1.0)  # anything doubled would land now
    rows = await messages_of(runtime, inbox_id)
    assert sorted(m.content for m in rows) == sorted(sent)
    assert len({m.conversation_id for m in rows}) == len(users)

    # The survivor also sends: a reply made through it reaches Telegram once.
    number = await _display_id(runtime, inbox_id)
    async with httpx.AsyncClient(base_url=survivor.base, headers=tenant.headers) as http:
        reply = (await http.post(tenant.path(f"/conversations/{number}/messages"), json={"content": "after the crash"})).json()
    await eventually(lambda: _status_is(runtime, reply["id"], "sent"), timeout=20)
    assert [m["text"] for m in sandbox.sent] == ["after the crash"]


# -- helpers -------------------------------------------------------------------------
async def _state(runtime: Any, inbox_id: int) -> ConnectorState | None:
    async with runtime.db.read_session() as session:
        return await session.get(ConnectorState, inbox_id)


async def _state_is(runtime: Any, inbox_id: int, state: str) -> bool:
    row = await _state(runtime, inbox_id)
    return row is not None and row.state == state


async def _owner_is(runtime: Any, inbox_id: int, owner: str) -> bool:
    row = await _state(runtime, inbox_id)
    return row is not None and row.lease_owner == owner


async def _lease_owner(runtime: Any, inbox_id: int) -> str | None:
    row = await _state(runtime, inbox_id)
    return row.lease_owner if row is not None and row.state == "connected" else None


async def _owner_is_pid(runtime: Any, inbox_id: int, pid: int) -> bool:
    owner = await _lease_owner(runtime, inbox_id)
    return owner is not None and owner.split(":")[1] == str(pid)


async def _cursor_past(runtime: Any, inbox_id: int, offset: int) -> bool:
    async with runtime.db.read_session() as session:
        row = await session.get(ConnectorCursor, (inbox_id, "default"))
    return row is not None and row.value.get("offset", 0) >= offset


async def _content_is(runtime: Any, message_id: int, content: str) -> bool:
    async with runtime.db.read_session() as session:
        return (await session.get(Message, message_id)).content == content


async def _status_is(runtime: Any, message_id: int, status: str) -> bool:
    async with runtime.db.read_session() as session:
        return (await session.get(Message, message_id)).status == status


async def _display_id(runtime: Any, inbox_id: int) -> int:
    async with runtime.db.read_session() as session:
        return await session.scalar(select(func.min(Conversation.display_id)).where(Conversation.inbox_id == inbox_id))

"""Webhooks and bots against real processes: a Postroom server, a receiver that verifies
signatures with the ``standardwebhooks`` library, and a bot that answers through the API."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.tickets.ingest import ingest_messages
from app.webhooks import signing
from connectors.base import InboundMessage, SenderIdentity
from tests.conftest import ROOT, free_port, wait_for_http

FAST = {"POSTROOM_WEBHOOK_ALLOW_PRIVATE": "true", "POSTROOM_WEBHOOK_BACKOFF": "0.3,0.6,1"}


class Receiver:
    """``tests/webhook_receiver.py`` as a child process."""

    def __init__(self, out: Path, secret: str, *bot_args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.out = out
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.webhook_receiver", str(self.port), str(out), secret, *bot_args], cwd=ROOT)
        wait_for_http(f"http://127.0.0.1:{self.port}/", process=self.process)

    def records(self) -> list[dict]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


async def eventually(check, timeout: float = 20.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def incoming(runtime, inbox_id: int, source: str, text: str, sender: str = "buyer-1") -> None:
    await ingest_messages(runtime.db, [InboundMessage(
        inbox_id=inbox_id, source_id=source, sender=SenderIdentity(source_id=sender, name="Buyer"), text=text)])


async def test_deliveries_are_signed_by_the_standard_and_survive_a_receiver_outage(start_server, tenants, runtime, tmp_path):
    server = start_server(**FAST)
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    port = free_port()
    async with httpx.AsyncClient(base_url=server.base, headers=tenant.headers) as api:
        created = (await api.post(tenant.path("/webhooks"), json={
            "url": f"http://127.0.0.1:{port}/hook", "subscriptions": ["message_created", "conversation_created"]})).json()
    secret = created["payload"]["webhook"]["secret"]
    assert secret.startswith("whsec_")
    # The receiver is down: these events wait and are retried.
    for i in range(6):
        await incoming(runtime, inbox_id, f"out-{i}", f"while down {i}", sender=f"buyer-{i % 2}")
    await asyncio.sleep(1.0)
    receiver = Receiver(tmp_path / "events.jsonl", secret, port=port)
    try:
        records = await eventually(lambda: len(receiver.records()) >= 8 and receiver.records())
        await asyncio.sleep(1.0)  # nothing more may come: no duplicates
        records = receiver.records()
    finally:
        receiver.stop()
    assert all(r["verified"] for r in records), records
    # 2 conversations + 6 messages, each once
    assert len({r["id"] for r in records}) == len(records) == 8, [(r["id"], r["event"]) for r in records]
    for buyer in ("buyer-0", "buyer-1"):
        texts = [r["body"]["content"] for r in records if r["event"] == "message_created"
                 and r["body"]["sender"]["name"] == "Buyer" and int(r["body"]["content"][-1]) % 2 == int(buyer[-1])]
        assert texts == sorted(texts)
    message = next(r["body"] for r in records if r["event"] == "message_created")
    assert message["message_type"] == "incoming" and message["account"]["id"] == tenant.account_id
    async with httpx.AsyncClient(base_url=server.base, headers=tenant.headers) as api:
        webhook_id = created["payload"]["webhook"]["id"]
        log = (await api.get(tenant.path(f"/webhooks/{webhook_id}/deliveries"))).json()["payload"]
    assert {d["status"] for d in log} == {"delivered"}
    assert any(len(d["attempt_log"]) > 1 and d["attempt_log"][0]["error"] for d in log)


async def test_a_rotated_secret_signs_with_old_and_new_during_the_grace(start_server, tenants, runtime, tmp_path):
    server = start_server(**FAST)
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    port = free_port()
    async with httpx.AsyncClient(base_url=server.base, headers=tenant.headers) as api:
        created = (await api.post(tenant.path("/webhooks"), json={"url": f"http://127.0.0.1:{port}/hook",
                                                                 "subscriptions": ["message_created"]})).json()
        webhook_id, old = created["payload"]["webhook"]["id"], created["payload"]["webhook"]["secret"]
        new = (await api.post(tenant.path(f"/webhooks/{webhook_id}/rotate_secret"))).json()["secret"]
        listed = (await api.get(tenant.path("/webhooks"))).json()["payload"]["webhooks"]
    assert new != old and "secret" not in listed[0]
    old_receiver = Receiver(tmp_path / "old.jsonl", old, port=port)
    try:
        await incoming(runtime, inbox_id, "rot-1", "hello")
        records = await eventually(lambda: old_receiver.records())
    finally:
        old_receiver.stop()
    new_receiver = Receiver(tmp_path / "new.jsonl", new, port=port)
    try:
        await incoming(runtime, inbox_id, "rot-2", "again")
        records += await eventually(lambda: new_receiver.records())
    finally:
        new_receiver.stop()
    assert [r["verified"] for r in records] == [True, True]


async def test_a_bot_answers_and_hands_over_through_the_live_server(start_server, tenants, runtime, tmp_path):
    server = start_server(**FAST)
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    port = free_port()
    async with httpx.AsyncClient(base_url=server.base, headers=tenant.headers) as api:
        bot = (await api.post(tenant.path("/agent_bots"), json={
            "name": "Greeter", "outgoing_url": f"http://127.0.0.1:{port}/hook"})).json()
        assert (await api.post(tenant.path(f"/inboxes/{inbox_id}/set_agent_bot"), json={"agent_bot": bot["id"]})).status_code == 200
    receiver = Receiver(tmp_path / "bot.jsonl", bot["secret"], "bot", server.base, str(tenant.account_id),
                        bot["access_token"], port=port)
    try:
        await incoming(runtime, inbox_id, "bot-1", "hi there")
        async with httpx.AsyncClient(base_url=server.base, headers=tenant.headers) as api:
            async def conversation():
                return (await api.get(tenant.path("/conversations?status=all"))).json()["data"]["payload"][0]

            first = await conversation()
            assert first["status"] == "pending"  # a bot's inbox starts conversations pending

            async def messages():
                return (await api.get(tenant.path(f"/conversations/{first['id']}/messages"))).json()["payload"]

            await eventually_async(lambda: _has_bot_reply(messages))
            await incoming(runtime, inbox_id, "bot-2", "I want a human please")
            await eventually_async(lambda: _status_is(conversation, "open"))
            final = await messages()
    finally:
        receiver.stop()
    bot_replies = [m for m in final if m["sender_type"] == "agent_bot"]
    assert len(bot_replies) == 1  # greeted once; never woken by its own message
    assert all(r["verified"] for r in receiver.records())
    assert not any(r["body"].get("sender_type") == "agent_bot" for r in receiver.records())
    conv = (await httpx.AsyncClient(base_url=server.base, headers=tenant.headers).get(
        tenant.path(f"/conversations/{first['id']}"))).json()
    assert conv["first_reply_created_at"] is None  # a bot's reply is not a person's first response


async def _has_bot_reply(messages) -> bool:
    return any(m["sender_type"] == "agent_bot" for m in await messages())


async def _status_is(conversation, status: str) -> bool:
    return (await conversation())["status"] == status


async def eventually_async(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_a_dead_bot_hands_the_conversation_to_people(start_server, tenants, runtime):
    server = start_server(**FAST, POSTROOM_BOT_HANDOFF_AFTER_ATTEMPTS="2")
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    async with httpx.AsyncClient(base_url=server.base, headers=tenant.headers) as api:
        bot = (await api.post(tenant.path("/agent_bots"), json={
            "name": "Dead bot", "outgoing_url": f"http://127.0.0.1:{free_port()}/hook"})).json()
        await api.post(tenant.path(f"/inboxes/{inbox_id}/set_agent_bot"), json={"agent_bot": bot["id"]})
        await incoming(runtime, inbox_id, "dead-1", "anyone?")

        async def status() -> bool:
            payload = (await api.get(tenant.path("/conversations?status=all"))).json()["data"]["payload"]
            return payload[0]["status"] == "open"

        await eventually_async(status)


async def test_bot_tokens_reach_only_conversation_endpoints(client, tenants):
    tenant = await tenants.new()
    bot = (await client.post(tenant.path("/agent_bots"), headers=tenant.headers,
                             json={"name": "B", "outgoing_url": "https://example.com/bot"})).json()
    headers = {"api_access_token": bot["access_token"]}
    assert (await client.get(tenant.path("/contacts"), headers=headers)).status_code == 403
    assert (await client.get(tenant.path("/agents"), headers=tenant.headers)).json()[0]["role"] != "agent_bot"


async def test_private_addresses_are_refused_unless_allowed():
    from app.webhooks.safety import UnsafeURL, resolve_target

    for url in ("http://127.0.0.1/x", "http://10.0.0.8/x", "http://169.254.169.254/latest", "http://[::1]/x",
                "http://localhost/x", "http://[::ffff:10.0.0.1]/x"):
        with pytest.raises(UnsafeURL):
            await resolve_target(url, allow_private=False)
    target = await resolve_target("http://127.0.0.1:8080/x?a=1", allow_private=True)
    assert target.url == "http://127.0.0.1:8080/x?a=1" and target.host == "127.0.0.1"


def public(tenant_inbox_identifier: str, path: str = "") -> str:
    return f"/public/api/v1/inboxes/{tenant_inbox_identifier}{path}"


async def test_public_api_channel_with_idempotency_and_replies_to_webhook_url(client, tenants, runtime):
    tenant = await tenants.new()
    inbox = (await client.post(tenant.path("/inboxes"), headers=tenant.headers, json={
        "name": "Bridge", "channel": {"type": "api", "webhook_url": "https://bridge.example.com/replies"}})).json()
    identifier = inbox["inbox_identifier"]
    contact = (await client.post(public(identifier, "/contacts"), json={"name": "Lê Minh", "email": "minh@example.vn"})).json()
    conversation = (await client.post(public(identifier, f"/contacts/{contact['source_id']}/conversations"), json={})).json()
    url = public(identifier, f"/contacts/{contact['source_id']}/conversations/{conversation['id']}/messages")
    first = await client.post(url, json={"content": "Xin chào"}, headers={"Idempotency-Key": "k-1"})
    again = await client.post(url, json={"content": "Xin chào"}, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 200 and first.json()["id"] == again.json()["id"]
    assert [m["content"] for m in (await client.get(url)).json()] == ["Xin chào"]
    from sqlalchemy import select

    from app.models import Webhook
    async with runtime.db.read_session() as session:
        hook = await session.scalar(select(Webhook).where(Webhook.inbox_id == inbox["id"]))
    assert hook.webhook_type == "api_inbox" and hook.url == "https://bridge.example.com/replies"


async def test_inbound_refuses_bad_signatures_old_timestamps_big_bodies_and_broken_json(client, tenants, runtime):
    tenant = await tenants.new()
    secret = signing.new_secret()
    inbox = (await client.post(tenant.path("/inboxes"), headers=tenant.headers, json={
        "name": "Signed", "channel": {"type": "api", "inbound_signing_secret": secret}})).json()
    url = public(inbox["inbox_identifier"], "/contacts")
    body = json.dumps({"name": "Signed contact"}).encode()

    def signed(payload: bytes, *, age: float = 0, key: str = secret) -> dict[str, str]:
        return {**signing.sign_headers([key], "msg_1", payload, now=time.time() - age), "content-type": "application/json"}

    assert (await client.post(url, content=body, headers=signed(body, key=signing.new_secret()))).status_code == 401
    assert (await client.post(url, content=body, headers=signed(body, age=6 * 60))).status_code == 401
    assert (await client.post(url, content=body)).status_code == 401
    broken = b"{not json"
    assert (await client.post(url, content=broken, headers=signed(broken))).status_code == 422
    big = json.dumps({"name": "x" * (1024 * 1024 + 10)}).encode()
    assert (await client.post(url, content=big, headers=signed(big))).status_code == 413
    ok = await client.post(url, content=body, headers=signed(body))
    assert ok.status_code == 200
    from sqlalchemy import func, select

    from app.models import Contact
    async with runtime.db.read_session() as session:
        stored = await session.scalar(select(func.count()).where(Contact.account_id == tenant.account_id))
    assert stored == 1  # only the correctly signed request stored anything


async def test_hmac_identity_is_enforced_when_mandatory(client, tenants):
    import hashlib
    import hmac as hmac_lib

    tenant = await tenants.new()
    inbox = (await client.post(tenant.path("/inboxes"), headers=tenant.headers, json={
        "name": "HMAC", "channel": {"type": "api", "hmac_mandatory": True, "hmac_token": "tok"}})).json()
    url = public(inbox["inbox_identifier"], "/contacts")
    bad = await client.post(url, json={"identifier": "user-9", "identifier_hash": "0" * 64})
    assert bad.status_code == 401
    good_hash = hmac_lib.new(b"tok", b"user-9", hashlib.sha256).hexdigest()
    assert (await client.post(url, json={"identifier": "user-9", "identifier_hash": good_hash})).status_code == 200


class RawReceiver:
    """An in-process HTTP/1.1 server answering by path, noting every request it gets."""

    ANSWERS = {
        "/ok": b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{\"ok\":true}",
        "/moved": b"HTTP/1.1 302 Found\r\nlocation: /ok\r\ncontent-length: 0\r\n\r\n",
        "/busy": b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 120\r\ncontent-length: 4\r\n\r\nslow",
        "/down": b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
        "/gone": b"HTTP/1.1 410 Gone\r\ncontent-length: 0\r\n\r\n",
    }

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []

    async def __aenter__(self) -> RawReceiver:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                request_line, *lines = head.decode("latin-1").strip().split("\r\n")
                headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                path = request_line.split(" ")[1]
                self.requests.append((path, headers, body))
                if path == "/endless":  # an answer that never ends
                    writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                    while True:
                        writer.write(b"4000\r\n" + b"x" * 0x4000 + b"\r\n")
                        await writer.drain()
                writer.write(self.ANSWERS[path.split("?")[0]])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_the_sender_connects_to_the_checked_address_and_never_follows_redirects():
    from app.webhooks.sender import EXCERPT_BYTES, Sender

    sender = Sender(timeout_seconds=5, allow_private=True)
    signed = signing.sign_headers([signing.new_secret()], "msg_1", b'{"a":1}')
    try:
        async with RawReceiver() as receiver:
            base = f"http://localhost:{receiver.port}"
            ok = await sender.send(f"{base}/ok?x=1", b'{"a":1}', signed)
            assert ok.delivered and ok.status_code == 200 and ok.excerpt == '{"ok":true}'
            path, headers, body = receiver.requests[0]
            assert (path, body) == ("/ok?x=1", b'{"a":1}')
            assert headers["host"] == f"localhost:{receiver.port}"  # the URL's host, not the address
            assert headers["content-type"] == "application/json"
            assert headers["webhook-signature"] == signed["webhook-signature"]

            moved = await sender.send(f"{base}/moved", b"{}", signed)
            assert (moved.delivered, moved.retry, moved.error) == (False, False, "redirects are not followed")
            busy = await sender.send(f"{base}/busy", b"{}", signed)
            assert (busy.retry, busy.retry_after, busy.excerpt) == (True, 120.0, "slow")
            assert (await sender.send(f"{base}/down", b"{}", signed)).retry
            gone = await sender.send(f"{base}/gone", b"{}", signed)
            assert (gone.delivered, gone.retry, gone.error) == (False, False, "HTTP 410")
            assert [p for p, _, _ in receiver.requests] == ["/ok?x=1", "/moved", "/busy", "/down", "/gone"]

            started = time.monotonic()
            endless = await sender.send(f"{base}/endless", b"{}", signed)
            assert endless.delivered and len(endless.excerpt) == EXCERPT_BYTES
            assert time.monotonic() - started < 4  # read up to the cap, not until the timeout
            count = len(receiver.requests)
        refused = await Sender(timeout_seconds=5, allow_private=False).send(f"{base}/ok", b"{}", signed)
        assert not refused.delivered and not refused.retry and refused.error.startswith("refused")
        assert len(receiver.requests) == count
        down = await sender.send(f"http://127.0.0.1:{free_port()}/hook", b"{}", signed)
        assert (down.delivered, down.retry, down.status_code) == (False, True, None) and down.error
    finally:
        await sender.close()

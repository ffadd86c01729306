"""E-mail end to end against real servers: Dovecot (Debian's ``dovecot-imapd``, started
per test module on loopback by :mod:`connectors.email.dovecot`) for IMAP, ``aiosmtpd`` as
the inbox's outgoing SMTP server, and Postroom's own SMTP receiver."""

from __future__ import annotations

import asyncio
import email
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email import policy
from email.utils import format_datetime
from typing import Any

import aioimaplib
import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from app.models import Attachment, ConnectorCursor, Conversation, Event, Message, QuarantinedMessage
from app.smtp_in import SmtpReceiver
from app.tickets.ingest import ingest_messages
from connectors.base import ConnectorConfig
from connectors.email import dovecot
from connectors.email.connector import EmailConnector
from connectors.email.parse import parse_mail
from connectors.email.threading import parse_own_id, token_in_address
from tests.test_telegram import eventually, inbox_body, messages_of, running, stored

pytestmark = pytest.mark.skipif(
    not dovecot.available(),
    reason="Dovecot is not installed (bash scripts/services.sh dovecot installs Debian's dovecot-imapd)")


@pytest.fixture(scope="module")
def imap() -> Iterator[dovecot.Dovecot]:
    with dovecot.Dovecot() as server:
        yield server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Outgoing:
    """An aiosmtpd server standing in for the inbox's SMTP relay; keeps what it is sent."""

    def __init__(self, refuse: str | None = None) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []
        self.refuse = refuse
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return self.refuse
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 OK"


@pytest.fixture
def outgoing() -> Iterator[Outgoing]:
    server = Outgoing()
    server.controller.start()
    yield server
    server.controller.stop()


async def imap_client(server: dovecot.Dovecot) -> aioimaplib.IMAP4:
    client = aioimaplib.IMAP4(host="127.0.0.1", port=server.port, timeout=10)
    await client.wait_hello_from_server()
    assert (await client.login(server.user, server.password)).result == "OK"
    return client


async def append(server: dovecot.Dovecot, *raws: bytes, folder: str = "INBOX", when: datetime | None = None) -> None:
    client = await imap_client(server)
    try:
        for raw in raws:
            response = await client.append(raw, mailbox=folder, date=when)
            assert response.result == "OK", response
    finally:
        await client.logout()


async def imap_command(server: dovecot.Dovecot, name: str, *args: str) -> None:
    client = await imap_client(server)
    try:
        await client.protocol.simple_command(name, *args)
    finally:
        await client.logout()


def mail(message_id: str, body: str, *, sender: str = "Somchai <somchai@customer.example>",
         subject: str = "สอบถามเรื่องการจัดส่ง", to: str = "help@shop.example", extra: str = "") -> bytes:
    msg = email.message.EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}>"
    msg["Date"] = format_datetime(datetime.now(UTC))
    for line in filter(None, extra.split("\n")):
        name, _, value = line.partition(": ")
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes(policy=policy.SMTP)


async def email_inbox(client: Any, tenant: Any, server: dovecot.Dovecot, outgoing: Outgoing | None = None,
                      **channel: Any) -> int:
    body = {"name": "Support mail", "channel": {
        "type": "email", "email": "help@shop.example",
        "imap_enabled": True, "imap_address": "127.0.0.1", "imap_port": server.port,
        "imap_login": server.user, "imap_password": server.password, "imap_enable_ssl": False,
        "imap_idle_seconds": 1, "imap_poll_seconds": 0.5, "imap_timeout": 5,
        **({"smtp_enabled": True, "smtp_address": "127.0.0.1", "smtp_port": outgoing.port,
            "smtp_enable_starttls_auto": False} if outgoing else {}),
        **channel}}
    response = await client.post(tenant.path("/inboxes"), headers=tenant.headers, json=body)
    assert response.status_code == 200, response.text
    assert "imap_password" not in response.json() and server.password not in response.text
    return int(response.json()["id"])


_FOLDER = 0


async def new_folder(server: dovecot.Dovecot) -> str:
    """A folder of its own per test, so tests sharing the server see only their mail."""
    global _FOLDER
    _FOLDER += 1
    name = f"T{_FOLDER}{datetime.now(UTC):%H%M%S%f}"
    await imap_command(server, "CREATE", name)
    return name


async def test_appended_mail_is_ingested_threaded_and_the_sync_window_holds(client, tenants, runtime, imap):
    tenant = await tenants.new()
    folder = await new_folder(imap)
    old = mail("old-1@customer.example", "from last month")
    await append(imap, old, folder=folder, when=datetime.now(UTC) - timedelta(days=30))
    first = mail("t1@customer.example", "สวัสดีครับ พัสดุยังไม่ถึงครับ")
    await append(imap, first, folder=folder)
    inbox_id = await email_inbox(client, tenant, imap, imap_folder=folder)
    async with running(runtime, inbox_id):
        await eventually(stored(runtime, inbox_id, 1))
        # Pushed by IDLE while the runner waits; a reply to the first mail and a new thread.
        await append(imap, mail("t2@customer.example", "ขอเลขพัสดุด้วยครับ",
                                extra="In-Reply-To: <t1@customer.example>\nReferences: <t1@customer.example>"),
                     mail("n1@other.example", "Xin chào, tôi muốn đổi hàng", sender="Lan <lan@other.example>",
                          subject="Đổi hàng"), folder=folder)
        rows = await eventually(stored(runtime, inbox_id, 3))
        body = await eventually(lambda: _connected(client, tenant, inbox_id))
    assert body["connection"]["last_error"] is None or body["connection"]["state"] == "connected"
    rows = await messages_of(runtime, inbox_id)
    assert [r.source_id for r in rows] == ["t1@customer.example", "t2@customer.example", "n1@other.example"]
    assert rows[0].conversation_id == rows[1].conversation_id != rows[2].conversation_id
    assert rows[0].content == "สวัสดีครับ พัสดุยังไม่ถึงครับ" and rows[2].content == "Xin chào, tôi muốn đổi hàng"
    assert rows[0].content_type == "incoming_email"
    async with runtime.db.read_session() as session:
        conversation = await session.get(Conversation, rows[0].conversation_id)
        cursor = await session.scalar(select(ConnectorCursor.value).where(ConnectorCursor.inbox_id == inbox_id))
    assert conversation.additional_attributes["mail_subject"] == "สอบถามเรื่องการจัดส่ง"
    assert cursor["last_uid"] == 4 and cursor["uidvalidity"]
    # The raw mail is kept and downloadable by agents.
    attachments = (await client.get(tenant.path(f"/conversations/{conversation.display_id}/messages"),
                                    headers=tenant.headers)).json()["payload"][0]["attachments"]
    original = [a for a in attachments if a.get("file_name") == "original.eml" or "original" in str(a)]
    assert original


async def _connected(client: Any, tenant: Any, inbox_id: int) -> dict[str, Any] | None:
    body = await inbox_body(client, tenant, inbox_id)
    return body if body["connection"]["state"] == "connected" else None


async def test_a_server_restart_mid_sync_loses_and_duplicates_nothing(client, tenants, runtime, imap):
    tenant = await tenants.new()
    folder = await new_folder(imap)
    total = 120
    await append(imap, *[mail(f"bulk-{i}@customer.example", f"message {i}", sender=f"c{i % 7}@customer.example",
                              subject=f"order {i % 11}") for i in range(total)], folder=folder)
    inbox_id = await email_inbox(client, tenant, imap, imap_folder=folder, imap_batch=10)
    async with running(runtime, inbox_id):
        await eventually(stored(runtime, inbox_id, 10))
        await asyncio.to_thread(imap.restart)
        rows = await eventually(stored(runtime, inbox_id, total), timeout=60)
        await asyncio.sleep(1.0)
    rows = await messages_of(runtime, inbox_id)
    assert len(rows) == total
    assert sorted(r.source_id for r in rows) == sorted(f"bulk-{i}@customer.example" for i in range(total))


async def test_a_uidvalidity_change_is_survived_without_duplicates(client, tenants, runtime, imap):
    tenant = await tenants.new()
    folder = await new_folder(imap)
    mails = [mail(f"uv-{i}@customer.example", f"hello {i}") for i in range(3)]
    await append(imap, *mails, folder=folder)
    inbox_id = await email_inbox(client, tenant, imap, imap_folder=folder)
    async with running(runtime, inbox_id):
        await eventually(stored(runtime, inbox_id, 3))
        before = await _cursor(runtime, inbox_id)
    # The folder is recreated (new UIDVALIDITY, UIDs from 1 again) with the same mail and one more.
    await imap_command(imap, "DELETE", folder)
    await asyncio.sleep(1.1)  # Dovecot's UIDVALIDITY is a timestamp
    await imap_command(imap, "CREATE", folder)
    await append(imap, *mails, mail("uv-new@customer.example", "one more"), folder=folder)
    async with running(runtime, inbox_id):
        await eventually(stored(runtime, inbox_id, 4))
        after = await eventually(lambda: _cursor_moved(runtime, inbox_id, before))
        await asyncio.sleep(1.0)
    rows = await messages_of(runtime, inbox_id)
    assert sorted(r.source_id for r in rows) == sorted([*(f"uv-{i}@customer.example" for i in range(3)),
                                                        "uv-new@customer.example"])
    assert after["uidvalidity"] != before["uidvalidity"] and after["resynced_from"] == before["uidvalidity"]


async def _cursor(runtime: Any, inbox_id: int) -> dict[str, Any]:
    async with runtime.db.read_session() as session:
        return await session.scalar(select(ConnectorCursor.value).where(ConnectorCursor.inbox_id == inbox_id)) or {}


async def _cursor_moved(runtime: Any, inbox_id: int, before: dict[str, Any]) -> dict[str, Any] | None:
    cursor = await _cursor(runtime, inbox_id)
    return cursor if cursor.get("uidvalidity") != before.get("uidvalidity") and cursor.get("last_uid") else None


async def test_unreadable_mail_is_quarantined_and_the_sync_goes_on(client, tenants, runtime, imap):
    tenant = await tenants.new()
    folder = await new_folder(imap)
    await append(imap, b"X-Nothing: here\r\n\r\n", mail("after-bad@customer.example", "still here"), folder=folder)
    inbox_id = await email_inbox(client, tenant, imap, imap_folder=folder)
    async with running(runtime, inbox_id):
        await eventually(stored(runtime, inbox_id, 1))
    listed = (await client.get(tenant.path(f"/inboxes/{inbox_id}/quarantine"), headers=tenant.headers)).json()
    assert len(listed["payload"]) == 1
    item = listed["payload"][0]
    assert item["error"] == "no sender, no Message-ID and no readable body"
    assert item["source_ref"].startswith("imap:") and item["source_ref"].endswith(":1")
    raw = await client.get(tenant.path(f"/inboxes/{inbox_id}/quarantine/{item['id']}/raw"), headers=tenant.headers)
    assert raw.content.startswith(b"X-Nothing: here")
    agent_id, agent_token = await tenant.agent(inbox_ids=[inbox_id])
    refused = await client.get(tenant.path(f"/inboxes/{inbox_id}/quarantine"), headers={"api_access_token": agent_token})
    assert refused.status_code in (401, 403)
    other = await tenants.new()
    assert (await client.get(other.path(f"/inboxes/{inbox_id}/quarantine"), headers=other.headers)).status_code == 404


async def test_a_refused_password_shows_on_the_inbox_and_nothing_crashes(client, tenants, runtime, imap):
    tenant = await tenants.new()
    inbox_id = await email_inbox(client, tenant, imap, imap_password="wrong-password-123")
    async with running(runtime, inbox_id):
        body = await eventually(lambda: _state(client, tenant, inbox_id, "auth_failed"))
    assert "login refused" in body["connection"]["last_error"]
    assert "wrong-password-123" not in str(body)


async def _state(client: Any, tenant: Any, inbox_id: int, state: str) -> dict[str, Any] | None:
    body = await inbox_body(client, tenant, inbox_id)
    return body if body["connection"]["state"] == state else None


async def test_a_reply_goes_out_threaded_and_the_answer_lands_in_the_same_conversation(
        client, tenants, runtime, imap, outgoing):
    tenant = await tenants.new()
    folder = await new_folder(imap)
    await append(imap, mail("q1@customer.example", "请问我的订单什么时候发货？", sender="王芳 <wang@customer.example>",
                            subject="订单 #1042"), folder=folder)
    inbox_id = await email_inbox(client, tenant, imap, outgoing, imap_folder=folder)
    async with running(runtime, inbox_id):
        (first,) = await eventually(stored(runtime, inbox_id, 1))
        async with runtime.db.read_session() as session:
            conversation = await session.get(Conversation, first.conversation_id)
        reply = await client.post(tenant.path(f"/conversations/{conversation.display_id}/messages"),
                                  headers=tenant.headers, json={"content": "您好，明天发货。\nThanks!"})
        assert reply.status_code == 200, reply.text
        sent = await eventually(lambda: _message_status(runtime, reply.json()["id"], "sent"))
        assert outgoing.received
        mail_from, rcpt_tos, raw = outgoing.received[0]
        sent_mail = email.message_from_bytes(raw, policy=policy.default)
        assert rcpt_tos == ["wang@customer.example"] and mail_from == "help@shop.example"
        assert str(sent_mail["Subject"]) == "Re: 订单 #1042"
        message_id = str(sent_mail["Message-ID"]).strip("<>")
        assert sent.source_id == message_id
        token, own_message = parse_own_id(message_id)
        assert token == conversation.thread_key and own_message == sent.id
        assert str(sent_mail["In-Reply-To"]) == "<q1@customer.example>"
        assert "<q1@customer.example>" in str(sent_mail["References"])
        assert token_in_address(str(sent_mail["Reply-To"])) == conversation.thread_key
        assert sent_mail.get_content_type() == "multipart/alternative"
        assert sent_mail.get_body(("plain",)).get_content().strip() == "您好，明天发货。\nThanks!"
        assert "您好" in sent_mail.get_body(("html",)).get_content()
        # Our own copy showing up in the mailbox (BCC, a synced Sent folder) is not ingested.
        await append(imap, raw, folder=folder)
        # The customer answers, with the headers a mail client builds from our reply.
        answer = mail("a1@customer.example", "好的，谢谢！\n\n> 您好，明天发货。", sender="王芳 <wang@customer.example>",
                      subject="Re: 订单 #1042", to=str(sent_mail["Reply-To"]),
                      extra=f"In-Reply-To: <{message_id}>\nReferences: {sent_mail['References']} <{message_id}>")
        # A second answer with a client that drops In-Reply-To and References: the
        # reply token in the address still threads it.
        bare = mail("a2@customer.example", "还有一个问题", sender="王芳 <wang@customer.example>",
                    subject="another question", to=str(sent_mail["Reply-To"]))
        await append(imap, answer, bare, folder=folder)
        await eventually(lambda: _incoming_count(runtime, inbox_id, 3))
        await asyncio.sleep(1.0)
    rows = await messages_of(runtime, inbox_id)
    incoming = [r for r in rows if r.message_type == "incoming"]
    assert [r.source_id for r in incoming] == ["q1@customer.example", "a1@customer.example", "a2@customer.example"]
    assert {r.conversation_id for r in rows} == {conversation.id}
    assert incoming[1].content == "好的，谢谢！"
    assert len(rows) == 4  # three from the customer, our reply; the copy of our reply was skipped


async def _message_status(runtime: Any, message_id: int, status: str) -> Message | None:
    async with runtime.db.read_session() as session:
        row = await session.get(Message, message_id)
    return row if row is not None and row.status == status else None


async def _incoming_count(runtime: Any, inbox_id: int, count: int) -> bool:
    rows = await messages_of(runtime, inbox_id)
    return len([r for r in rows if r.message_type == "incoming"]) >= count


async def test_a_refused_reply_is_failed_with_the_servers_answer(client, tenants, runtime, imap):
    refusing = Outgoing(refuse="554 5.7.1 Message rejected: policy violation")
    refusing.controller.start()
    try:
        tenant = await tenants.new()
        folder = await new_folder(imap)
        await append(imap, mail("r1@customer.example", "hello"), folder=folder)
        inbox_id = await email_inbox(client, tenant, imap, refusing, imap_folder=folder)
        async with running(runtime, inbox_id):
            (first,) = await eventually(stored(runtime, inbox_id, 1))
            async with runtime.db.read_session() as session:
                conversation = await session.get(Conversation, first.conversation_id)
            reply = await client.post(tenant.path(f"/conversations/{conversation.display_id}/messages"),
                                      headers=tenant.headers, json={"content": "hi"})
            failed = await eventually(lambda: _message_status(runtime, reply.json()["id"], "failed"))
        assert failed.external_error.startswith("554: ") and "policy violation" in failed.external_error
    finally:
        refusing.controller.stop()


@asynccontextmanager
async def receiver(runtime: Any) -> AsyncIterator[SmtpReceiver]:
    server = SmtpReceiver(runtime.db, runtime.store, f"127.0.0.1:{free_port()}")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_smtp_in_takes_mail_for_an_inbox_and_refuses_other_addresses(client, tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("email", email="help@shop.example")
    identifier = (await inbox_body(client, tenant, inbox_id))["inbox_identifier"]
    async with receiver(runtime) as server:
        smtp = aiosmtplib.SMTP(hostname=server.host, port=server.port, start_tls=False)
        await smtp.connect()
        try:
            await smtp.sendmail("sara@customer.example", [f"{identifier}@in.postroom.example"],
                                mail("in-1@customer.example", "سلام، سفارش من کجاست؟", sender="سارا <sara@customer.example>",
                                     subject="سفارش"))
            with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
                await smtp.sendmail("x@customer.example", ["nobody@in.postroom.example"], mail("in-2@x.example", "x"))
            assert refused.value.recipients[0].code == 550
            await smtp.sendmail("x@customer.example", [f"{identifier}@in.postroom.example"], b"X-Nothing: here\r\n\r\n")
        finally:
            await smtp.quit()
    rows = await messages_of(runtime, inbox_id)
    assert [r.source_id for r in rows] == ["in-1@customer.example"]
    assert rows[0].content == "سلام، سفارش من کجاست؟"
    async with runtime.db.read_session() as session:
        quarantined = list(await session.scalars(select(QuarantinedMessage).where(QuarantinedMessage.inbox_id == inbox_id)))
    assert len(quarantined) == 1 and quarantined[0].source_ref.startswith("smtp:")


# Amazon's relay as Seller Central describes it: each buyer writes from an anonymised
# alias ...@marketplace.amazon.com, the order id is in the subject or text
# ("Order: 111-1234567-1234567"), and the seller answers the alias from the registered
# address; notices come from Amazon's own addresses and are not answered.
AMAZON_BUYER = "Kanya <8xq3ppd2vwm1kjt@marketplace.amazon.com>"


async def test_amazon_relay_mail_takes_the_order_and_notices_are_never_answered(
        client, tenants, runtime, imap, outgoing):
    tenant = await tenants.new()
    folder = await new_folder(imap)
    await append(imap,
                 mail("amz-1@marketplace.amazon.com", "The charger I received does not fit Thai sockets.\n"
                      "Order ID: 503-8812734-1123345", sender=AMAZON_BUYER,
                      subject="Inquiry from Amazon customer Kanya (Order: 503-8812734-1123345)"),
                 mail("amz-notice@amazon.com", "Your listing has been updated.", sender="Amazon <donotreply@amazon.com>",
                      subject="Listing update for ASIN B0EXAMPLE"),
                 folder=folder)
    body = {"name": "Amazon TH", "channel": {
        "type": "amazon", "email": "seller@shop.example", "imap_address": "127.0.0.1", "imap_port": imap.port,
        "imap_login": imap.user, "imap_password": imap.password, "imap_enable_ssl": False, "imap_idle_seconds": 1,
        "imap_timeout": 5, "imap_folder": folder, "smtp_address": "127.0.0.1", "smtp_port": outgoing.port,
        "smtp_enable_starttls_auto": False}}
    inbox_id = (await client.post(tenant.path("/inboxes"), headers=tenant.headers, json=body)).json()["id"]
    async with running(runtime, inbox_id):
        buyer, notice = await eventually(stored(runtime, inbox_id, 2))
        async with runtime.db.read_session() as session:
            conversation = await session.get(Conversation, buyer.conversation_id)
            notice_conversation = await session.get(Conversation, notice.conversation_id)
        assert conversation.custom_attributes == {"marketplace": "amazon", "order_id": "503-8812734-1123345"}
        assert not buyer.automatic and notice.automatic
        assert notice.additional_attributes["metadata"]["automatic"] == "marketplace_notice"
        reply = await client.post(tenant.path(f"/conversations/{conversation.display_id}/messages"),
                                  headers=tenant.headers, json={"content": "We will send an adapter today."})
        refused = await client.post(tenant.path(f"/conversations/{notice_conversation.display_id}/messages"),
                                    headers=tenant.headers, json={"content": "thanks"})
        await eventually(lambda: _message_status(runtime, reply.json()["id"], "sent"))
        failed = await eventually(lambda: _message_status(runtime, refused.json()["id"], "failed"))
    assert "not a amazon buyer's relay address" in failed.external_error
    assert [r[1] for r in outgoing.received] == [["8xq3ppd2vwm1kjt@marketplace.amazon.com"]]
    assert outgoing.received[0][0] == "seller@shop.example"


async def test_seen_is_set_only_when_asked(client, tenants, runtime, imap):
    tenant = await tenants.new()
    folders = [await new_folder(imap), await new_folder(imap)]
    for folder in folders:
        await append(imap, mail(f"seen-{folder}@customer.example", "hello"), folder=folder)
    quiet = await email_inbox(client, tenant, imap, imap_folder=folders[0])
    marking = await email_inbox(client, tenant, imap, imap_folder=folders[1], imap_mark_seen=True)
    async with running(runtime, quiet, marking):
        await eventually(stored(runtime, quiet, 1))
        await eventually(stored(runtime, marking, 1))
    assert await _flags(imap, folders[0]) == ""
    assert "\\Seen" in await _flags(imap, folders[1])


async def _flags(server: dovecot.Dovecot, folder: str) -> str:
    client = await imap_client(server)
    try:
        await client.select(folder)
        response = await client.uid("fetch", "1", "(FLAGS)")
        line = next(bytes(x) for x in response.lines if b"FLAGS" in bytes(x))
        return line.decode().split("FLAGS (", 1)[1].split(")", 1)[0]
    finally:
        await client.logout()


def _with_invoice(message_id: str, body: str, *, extra: str = "") -> bytes:
    msg = email.message_from_bytes(mail(message_id, body, extra=extra), _class=email.message.EmailMessage,
                                   policy=policy.SMTP)
    msg.add_attachment(b"%PDF-1.4\n" + b"0" * 300, maintype="application", subtype="pdf", filename="invoice.pdf")
    return msg.as_bytes(policy=policy.SMTP)


async def test_a_batch_keeps_each_file_with_its_mail_and_finds_replies_among_its_own(client, tenants, runtime):
    tenant = await tenants.new()
    response = await client.post(tenant.path("/inboxes"), headers=tenant.headers, json={
        "name": "Files", "channel": {"type": "email", "email": "help@shop.example"}})
    assert response.status_code == 200, response.text
    inbox_id = int(response.json()["id"])
    raws = [
        _with_invoice("files-1@customer.example", "the invoice is attached"),
        mail("files-2@other.example", "another customer", sender="Lan <lan@other.example>"),
        # Threaded under a root this inbox never got: only the mail it answers, earlier in
        # the same batch, tells its conversation.
        mail("files-3@customer.example", "and one more thing", extra=(
            "In-Reply-To: <files-1@customer.example>\n"
            "References: <lost-root@customer.example> <files-1@customer.example>")),
    ]
    parsed = [parse_mail(raw, inbox_id=inbox_id).message for raw in raws]
    assert parsed[2].thread_key != parsed[0].thread_key
    await ingest_messages(runtime.db, parsed, store=runtime.store)

    rows = await messages_of(runtime, inbox_id)
    assert [r.source_id for r in rows] == ["files-1@customer.example", "files-2@other.example",
                                           "files-3@customer.example"]
    assert rows[2].conversation_id == rows[0].conversation_id != rows[1].conversation_id
    async with runtime.db.read_session() as session:
        files = list(await session.scalars(select(Attachment).where(
            Attachment.message_id.in_([r.id for r in rows])).order_by(Attachment.id)))
        events = list(await session.scalars(select(Event).where(
            Event.inbox_id == inbox_id, Event.event_type == "message.created").order_by(Event.seq)))
    kept = {(a.message_id, a.file_name) for a in files}
    assert kept == {(rows[0].id, "invoice.pdf"), (rows[0].id, "original.eml"), (rows[1].id, "original.eml"),
                    (rows[2].id, "original.eml")}
    for attachment in files:
        data = runtime.store.path(attachment.storage_path).read_bytes()
        if attachment.file_name == "original.eml":
            assert data == raws[[r.id for r in rows].index(attachment.message_id)]
        else:
            assert data.startswith(b"%PDF-1.4")
    # The events name every file by the id it was stored under, with its own message.
    shown = {(e.payload["id"], a["id"], a["message_id"], a["file_name"]) for e in events
             for a in e.payload["attachments"]}
    assert shown == {(a.message_id, a.id, a.message_id, a.file_name) for a in files}


async def test_a_backlog_is_fetched_ahead_and_an_abandoned_fetch_costs_nothing(imap):
    folder = await new_folder(imap)
    await append(imap, *[mail(f"ahead-{i}@customer.example", f"mail {i}") for i in range(5)], folder=folder)
    connector = EmailConnector(ConnectorConfig(inbox_id=1, settings={
        "email": "help@shop.example", "imap_address": "127.0.0.1", "imap_port": imap.port,
        "imap_login": imap.user, "imap_enable_ssl": False, "imap_folder": folder, "imap_idle": False,
        "imap_poll_seconds": 0.01, "imap_batch": 2}, secrets={"imap_password": imap.password}))
    try:
        first, cursor = await connector.fetch({})
        assert [m.source_id for m in first] == ["ahead-0@customer.example", "ahead-1@customer.example"]
        assert connector.fetch_ahead(cursor)
        # The runner drops a fetch started ahead when storing the batch before it failed.
        ahead = asyncio.ensure_future(connector.fetch(cursor))
        for _ in range(3):
            await asyncio.sleep(0)
        ahead.cancel()
        with pytest.raises(asyncio.CancelledError):
            await ahead
        second, cursor = await connector.fetch(cursor)
        assert [m.source_id for m in second] == ["ahead-2@customer.example", "ahead-3@customer.example"]
        assert connector.fetch_ahead(cursor)
        last, cursor = await connector.fetch(cursor)
        assert [m.source_id for m in last] == ["ahead-4@customer.example"]
        assert not connector.fetch_ahead(cursor)
    finally:
        await connector.aclose()

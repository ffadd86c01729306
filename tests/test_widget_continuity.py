"""E-mail copies of agents' live-chat replies to visitors who left an address and are not
connected, sent through an e-mail inbox's SMTP server (a real aiosmtpd server here)."""

from __future__ import annotations

import asyncio
import email
import time
from email import policy

import httpx
import pytest
from sqlalchemy import select
from websockets.asyncio.client import connect

from app.api.widget import WidgetGuard
from app.models import ContactInbox, ContinuityEmail
from app.tickets.continuity_mailer import ContinuityMailer
from connectors.email.threading import token_in_address
from tests.test_attachments_upload import PNG
from tests.test_email import Outgoing, free_port
from tests.test_widget import new_visitor, next_frame, visitor_headers, widget_inbox, ws_url


@pytest.fixture(autouse=True)
def fresh_limits(app):
    """Its own rate limits for each test: the in-process app's buckets are shared by all
    tests, which all come from one client address."""
    saved = getattr(app.state, "widget_guard", None)
    app.state.widget_guard = WidgetGuard()
    yield
    app.state.widget_guard = saved


@pytest.fixture
def smtp_server():
    server = Outgoing()
    server.controller.start()
    yield server
    server.controller.stop()


async def _email_inbox(tenant, port: int, **extra) -> int:
    return await tenant.inbox("email", name="Support mail", email="help@teashop.example", smtp_enabled=True,
                              smtp_address="127.0.0.1", smtp_port=port, smtp_enable_starttls_auto=False, **extra)


async def _copies(runtime, account_id: int) -> list[ContinuityEmail]:
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(ContinuityEmail).where(ContinuityEmail.account_id == account_id)
                                          .order_by(ContinuityEmail.id)))


async def _settled_copy(runtime, account_id: int, mailer: ContinuityMailer) -> ContinuityEmail:
    """The account's one copy once a mailer has tried it. The session's live server runs a
    mailer on the same database too, and may claim the copy first: wait for its outcome."""
    async with asyncio.timeout(15):
        while True:
            await mailer.send_due()
            (copy,) = await _copies(runtime, account_id)
            if copy.status != "sending" and copy.attempts >= 1:
                return copy
            await asyncio.sleep(0.1)


async def _conversation_path(http, tenant) -> str:
    (conversation,) = (await http.get(tenant.path("/conversations"), headers=tenant.headers)).json()["data"]["payload"]
    return tenant.path(f"/conversations/{conversation['id']}/messages")


async def test_a_reply_to_an_absent_visitor_goes_by_email_once(client, tenants, runtime, smtp_server):
    tenant = await tenants.new()
    await _email_inbox(tenant, smtp_server.port)
    _, website_token = await widget_inbox(tenant)
    visitor = await new_visitor(client, website_token, name="Somchai", email="Somchai@Example.com", locale="th-TH")
    await client.post("/widget/api/messages", headers=visitor_headers(visitor), json={"content": "มีชาเขียวไหมครับ"})
    path = await _conversation_path(client, tenant)

    reply = await client.post(path, headers=tenant.headers, data={"content": "มีครับ ส่งรูปให้ดูนะครับ"},
                              files=[("attachments[]", ("ชา.png", PNG, "image/png"))])
    await client.post(path, headers=tenant.headers, json={"content": "check stock first", "private": True})
    assert reply.status_code == 200
    (copy,) = await _copies(runtime, tenant.account_id)  # the note is never copied
    assert (copy.status, copy.to_address, copy.message_id) == ("pending", "somchai@example.com", reply.json()["id"])
    assert smtp_server.received == []  # queued in the reply's transaction, sent by the mailer

    mailer = ContinuityMailer(runtime.db, runtime.store, runtime.box)
    await mailer.send_due()
    await mailer.send_due()  # nothing is sent twice
    assert len(smtp_server.received) == 1
    sender, recipients, raw = smtp_server.received[0]
    mail = email.message_from_bytes(raw, policy=policy.default)
    assert recipients == ["somchai@example.com"] and sender == "help@teashop.example"
    assert "Website chat" in mail["Subject"] and "Admin" in str(mail["From"])
    body = mail.get_body(("plain",)).get_content()
    assert "มีครับ ส่งรูปให้ดูนะครับ" in body and "แชท" in body  # the footer in the visitor's language
    assert [part.get_filename() for part in mail.iter_attachments()] == ["ชา.png"]
    token = token_in_address(str(mail["Reply-To"]))
    assert token and token in mail["Message-ID"]
    (copy,) = await _copies(runtime, tenant.account_id)
    assert copy.status == "sent" and copy.attempts == 1 and copy.mail_message_id in mail["Message-ID"]

    # A second reply continues the same mail thread.
    await client.post(path, headers=tenant.headers, json={"content": "ราคา 280 บาทครับ"})
    await mailer.send_due()
    second = email.message_from_bytes(smtp_server.received[1][2], policy=policy.default)
    assert token_in_address(str(second["Reply-To"])) == token
    assert copy.mail_message_id in second["References"] and copy.mail_message_id in second["In-Reply-To"]


async def test_no_copy_without_an_address_or_with_the_setting_off(client, tenants, runtime, smtp_server):
    tenant = await tenants.new()
    await _email_inbox(tenant, smtp_server.port)
    inbox_id, website_token = await widget_inbox(tenant)
    anonymous = await new_visitor(client, website_token)
    await client.post("/widget/api/messages", headers=visitor_headers(anonymous), json={"content": "hello"})
    path = await _conversation_path(client, tenant)
    await client.post(path, headers=tenant.headers, json={"content": "hi there"})
    assert await _copies(runtime, tenant.account_id) == []

    # The address given later counts; the inbox setting turns the copies off.
    await client.patch("/widget/api/visitor", headers=visitor_headers(anonymous), json={"email": "lan@example.com"})
    await client.patch(tenant.path(f"/inboxes/{inbox_id}"), headers=tenant.headers,
                       json={"channel": {"continuity_via_email": False}})
    await client.post(path, headers=tenant.headers, json={"content": "still here?"})
    assert await _copies(runtime, tenant.account_id) == []
    await client.patch(tenant.path(f"/inboxes/{inbox_id}"), headers=tenant.headers,
                       json={"channel": {"continuity_via_email": True}})
    await client.post(path, headers=tenant.headers, json={"content": "we replied"})
    assert [c.to_address for c in await _copies(runtime, tenant.account_id)] == ["lan@example.com"]


async def test_refusals_and_outages_are_recorded_not_retried_forever(client, tenants, runtime):
    refusing = Outgoing(refuse="550 5.1.1 mailbox unknown")
    refusing.controller.start()
    try:
        tenant = await tenants.new()
        await _email_inbox(tenant, refusing.port)
        _, website_token = await widget_inbox(tenant)
        visitor = await new_visitor(client, website_token, email="gone@example.com")
        await client.post("/widget/api/messages", headers=visitor_headers(visitor), json={"content": "hi"})
        path = await _conversation_path(client, tenant)
        assert (await client.post(path, headers=tenant.headers, json={"content": "hello"})).status_code == 200
        mailer = ContinuityMailer(runtime.db, runtime.store, runtime.box)
        copy = await _settled_copy(runtime, tenant.account_id, mailer)
        assert copy.status == "failed" and "mailbox unknown" in copy.last_error
    finally:
        refusing.controller.stop()

    # Nobody listening: a transient error, tried again later (not now).
    tenant = await tenants.new()
    await _email_inbox(tenant, free_port())
    _, website_token = await widget_inbox(tenant)
    visitor = await new_visitor(client, website_token, email="later@example.com")
    await client.post("/widget/api/messages", headers=visitor_headers(visitor), json={"content": "hi"})
    await client.post(await _conversation_path(client, tenant), headers=tenant.headers, json={"content": "hello"})
    copy = await _settled_copy(runtime, tenant.account_id, mailer)
    assert copy.status == "pending" and copy.attempts == 1 and copy.last_error
    assert copy.next_attempt_at.timestamp() > time.time() + 10

    # No e-mail inbox with SMTP in the account: failed, saying why.
    tenant = await tenants.new()
    _, website_token = await widget_inbox(tenant)
    visitor = await new_visitor(client, website_token, email="nobody@example.com")
    await client.post("/widget/api/messages", headers=visitor_headers(visitor), json={"content": "hi"})
    await client.post(await _conversation_path(client, tenant), headers=tenant.headers, json={"content": "hello"})
    copy = await _settled_copy(runtime, tenant.account_id, mailer)
    assert copy.status == "failed" and "no e-mail inbox" in copy.last_error


async def test_a_connected_visitor_gets_no_email_until_they_leave(live_server, tenants, runtime, smtp_server):
    tenant = await tenants.new()
    await _email_inbox(tenant, smtp_server.port)
    _, website_token = await widget_inbox(tenant)
    async with httpx.AsyncClient(base_url=live_server) as http:
        visitor = await new_visitor(http, website_token, email="online@example.com")
        await http.post("/widget/api/messages", headers=visitor_headers(visitor), json={"content": "hi"})
        path = await _conversation_path(http, tenant)
        async with connect(ws_url(live_server, visitor["token"]), open_timeout=10) as ws:
            await next_frame(ws, "ready")
            await http.post(path, headers=tenant.headers, json={"content": "seen live"})
            assert (await next_frame(ws, "message.created"))["data"]["content"] == "seen live"
        assert await _copies(runtime, tenant.account_id) == []
        # The socket closed: the server clears the mark, and the next reply is mailed by the
        # server's own mailer, without the reply request waiting for it.
        async with asyncio.timeout(10):
            while True:
                async with runtime.db.read_session() as session:
                    mark = await session.scalar(select(ContactInbox.online_until).where(
                        ContactInbox.source_id == visitor["source_id"]))
                if mark is None:
                    break
                await asyncio.sleep(0.1)
        started = time.monotonic()
        answer = await http.post(path, headers=tenant.headers, json={"content": "after you left"})
        assert answer.status_code == 200 and time.monotonic() - started < 2
        async with asyncio.timeout(15):
            while not smtp_server.received:
                await asyncio.sleep(0.1)
    mail = email.message_from_bytes(smtp_server.received[0][2], policy=policy.default)
    assert "after you left" in mail.get_body(("plain",)).get_content()
    # The mailer records the copy as sent once the server has answered its last command,
    # which can be just after the test's SMTP server has the mail.
    async with asyncio.timeout(5):
        while (statuses := [c.status for c in await _copies(runtime, tenant.account_id)]) == ["sending"]:
            await asyncio.sleep(0.05)
    assert statuses == ["sent"]

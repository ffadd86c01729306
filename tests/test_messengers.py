"""Push channels end to end: Messenger, Instagram, WhatsApp and LINE against their
loopback emulators (``connectors/<channel>/sandbox.py``), through the webhook route,
ingest, the runner's dispatcher and the reply-window rules.

The emulators follow the official pages named in their docstrings: Meta's *Webhook
Events Reference*, *Send API*, *Message Tags* and error codes; WhatsApp's *messages
webhook reference* (messages and statuses), *messages* endpoint, error codes and
*message_templates*; LINE's *Webhook event objects*, *Send reply / push message*,
*Get profile* and *Retrying an API request*.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from app.models import Attachment, Contact, ContactInbox, Conversation, Message, QuarantinedMessage, utcnow
from connectors.line.sandbox import LineSandbox
from connectors.meta.sandbox import MetaSandbox, graph_error
from connectors.whatsapp.sandbox import WhatsAppSandbox
from tests.test_telegram import eventually, running

FAST = {"rate_limit_retry_seconds": 0.3}


@pytest.fixture
def meta() -> Any:
    with MetaSandbox() as server:
        yield server


@pytest.fixture
def whatsapp() -> Any:
    with WhatsAppSandbox() as server:
        yield server


@pytest.fixture
def line() -> Any:
    with LineSandbox() as server:
        yield server


async def make_inbox(client: Any, tenant: Any, channel: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(tenant.path("/inboxes"), headers=tenant.headers,
                                 json={"name": f"{channel['type']} inbox", "channel": channel})
    assert response.status_code == 200, response.text
    return response.json()


async def facebook_inbox(client: Any, tenant: Any, meta: MetaSandbox, kind: str = "facebook") -> dict[str, Any]:
    return await make_inbox(client, tenant, {
        "type": kind, "page_id": meta.page_id, "page_access_token": meta.page_token, "app_secret": meta.app_secret,
        "graph_base_url": meta.base_url, **FAST})


async def whatsapp_inbox(client: Any, tenant: Any, wa: WhatsAppSandbox) -> dict[str, Any]:
    return await make_inbox(client, tenant, {
        "type": "whatsapp", "phone_number": "+" + wa.display_phone_number, "provider": "whatsapp_cloud",
        "provider_config": {"api_key": wa.token, "phone_number_id": wa.phone_number_id,
                            "business_account_id": wa.business_account_id},
        "app_secret": wa.app_secret, "graph_base_url": wa.base_url, **FAST})


async def line_inbox(client: Any, tenant: Any, line: LineSandbox) -> dict[str, Any]:
    return await make_inbox(client, tenant, {
        "type": "line", "line_channel_id": "1650000000", "line_channel_secret": line.channel_secret,
        "line_channel_token": line.channel_token, "api_base_url": line.base_url})


async def messages_of(runtime: Any, inbox_id: int) -> list[Message]:
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(Message).where(Message.inbox_id == inbox_id).order_by(Message.id)))


async def reply(client: Any, tenant: Any, conversation_display_id: int, **body: Any) -> Any:
    return await client.post(tenant.path(f"/conversations/{conversation_display_id}/messages"),
                             headers=tenant.headers, json=body)


async def only_conversation(client: Any, tenant: Any, inbox_id: int) -> dict[str, Any]:
    body = (await client.get(tenant.path(f"/conversations?inbox_id={inbox_id}"), headers=tenant.headers)).json()
    (conversation,) = body["data"]["payload"]
    return conversation


def status_is(runtime: Any, message_id: int, *wanted: str) -> Callable[[], Awaitable[Message | None]]:
    async def check() -> Message | None:
        async with runtime.db.read_session() as session:
            row = await session.get(Message, message_id)
        return row if row is not None and row.status in wanted else None
    return check


# -- Messenger ---------------------------------------------------------------------------


async def test_meta_inbox_shows_what_to_paste_and_answers_the_handshake(client, tenants, meta):
    tenant = await tenants.new()
    inbox = await facebook_inbox(client, tenant, meta)
    assert inbox["channel_type"] == "Channel::FacebookPage"
    assert inbox["webhook_url"] == f"http://postroom.test/webhooks/facebook/{inbox['inbox_identifier']}"
    assert len(inbox["verify_token"]) >= 24
    assert "app_secret" not in inbox and "page_access_token" not in inbox
    ok = await client.get(inbox["webhook_url"], params={
        "hub.mode": "subscribe", "hub.verify_token": inbox["verify_token"], "hub.challenge": "1158201444"})
    assert ok.status_code == 200 and ok.text == "1158201444"
    wrong = await client.get(inbox["webhook_url"], params={
        "hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1158201444"})
    assert wrong.status_code == 403 and "1158201444" not in wrong.text
    unknown = await client.get("/webhooks/facebook/not-an-inbox", params={"hub.mode": "subscribe"})
    assert unknown.status_code == 404


async def test_meta_signature_failures_store_nothing(client, tenants, runtime, meta):
    tenant = await tenants.new()
    inbox = await facebook_inbox(client, tenant, meta)
    meta.user("24000001", "Nguyễn", "Văn An")
    raw, headers = meta.signed(meta.body(meta.user_writes("24000001", "Xin chào, còn hàng không?")))
    missing = await client.post(inbox["webhook_url"], content=raw, headers={"content-type": "application/json"})
    assert missing.status_code == 401
    forged = {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}
    assert (await client.post(inbox["webhook_url"], content=raw, headers=forged)).status_code == 403
    tampered = raw.replace("còn hàng".encode(), "hết hàng".encode())
    assert (await client.post(inbox["webhook_url"], content=tampered, headers=headers)).status_code == 403
    other_secret = MetaSandbox(app_secret="another-app").signature_headers(raw)
    assert (await client.post(inbox["webhook_url"], content=raw, headers={**headers, **other_secret})).status_code == 403
    assert await messages_of(runtime, inbox["id"]) == []
    good = await client.post(inbox["webhook_url"], content=raw, headers=headers)
    assert good.status_code == 200 and good.json()["stored"] == 1


async def test_messenger_messages_postbacks_redeliveries_and_profiles(client, tenants, runtime, meta):
    tenant = await tenants.new()
    inbox = await facebook_inbox(client, tenant, meta)
    meta.user("24000002", "สมหญิง", "ใจดี")
    first = meta.user_writes("24000002", "สวัสดีค่ะ สินค้ายังมีไหมคะ")
    photo = meta.user_writes("24000002", attachments=[("image", "https://scontent.example/v/receipt%20photo.jpg?x=1")])
    button = meta.postback("24000002", "Track my order", "TRACK_ORDER")
    response = await meta.deliver(client, inbox["webhook_url"], meta.body(first, photo, button))
    assert response.status_code == 200 and response.json()["stored"] == 3
    again = await meta.deliver(client, inbox["webhook_url"], meta.body(first, photo))  # Meta redelivers
    assert again.status_code == 200 and again.json() | {"stored": 0, "duplicates": 2} == again.json()

    rows = await messages_of(runtime, inbox["id"])
    assert [r.content for r in rows] == ["สวัสดีค่ะ สินค้ายังมีไหมคะ", None, "Track my order"]
    assert rows[0].source_id == first["message"]["mid"]
    assert rows[2].additional_attributes["metadata"]["postback_payload"] == "TRACK_ORDER"
    assert len({r.conversation_id for r in rows}) == 1
    conversation = await only_conversation(client, tenant, inbox["id"])
    assert conversation["meta"]["sender"]["name"] == "สมหญิง ใจดี"
    listed = (await client.get(tenant.path(f"/conversations/{conversation['id']}/messages"), headers=tenant.headers)).json()
    assert listed["payload"][1]["attachments"][0]["data_url"].startswith("https://scontent.example/")
    assert len(meta.calls_of("profile")) == 1  # asked once, for the new contact


async def test_messenger_echoes_replies_and_receipts(client, tenants, runtime, meta):
    tenant = await tenants.new()
    inbox = await facebook_inbox(client, tenant, meta)
    meta.user("24000003", "Sara", "Ahmadi")
    await meta.deliver(client, inbox["webhook_url"], meta.body(meta.user_writes("24000003", "سلام، سفارشم کجاست؟")))
    conversation = await only_conversation(client, tenant, inbox["id"])

    # A person answered in Meta's own inbox: stored as outgoing, which stops the waiting clock.
    echo = meta.page_echo("24000003", "Checking now", app_id=263902037430900)
    assert (await meta.deliver(client, inbox["webhook_url"], meta.body(echo))).json()["stored"] == 1
    async with runtime.db.read_session() as session:
        row = await session.scalar(select(Message).where(Message.source_id == echo["message"]["mid"]))
        stored = await session.get(Conversation, row.conversation_id)
    assert row.message_type == "outgoing" and row.content_attributes.get("external_echo") is True
    assert stored.first_reply_created_at is not None and stored.waiting_since is None

    sent = await reply(client, tenant, conversation["id"], content="ارسال شد 📦")
    assert sent.status_code == 200 and sent.json()["status"] == "pending"
    async with running(runtime, inbox["id"]):
        done = await eventually(status_is(runtime, sent.json()["id"], "sent"))
    (request,) = meta.sent
    assert request["recipient"] == {"id": "24000003"} and request["messaging_type"] == "RESPONSE"
    assert request["message"] == {"text": "ارسال شد 📦", "metadata": f"postroom:{done.id}"}
    assert "tag" not in request
    assert done.source_id == request["_mid"]
    assert meta.calls_of("me/messages")[0].headers["authorization"] == f"Bearer {meta.page_token}"

    # Meta echoes our own reply back: recognised by its metadata, never stored twice.
    ours = meta.page_echo("24000003", "ارسال شد 📦", metadata=f"postroom:{done.id}", app_id=meta.app_id)
    answer = (await meta.deliver(client, inbox["webhook_url"], meta.body(ours))).json()
    assert answer["stored"] == 0 and answer["skipped"] == 1

    await meta.deliver(client, inbox["webhook_url"], meta.body(meta.delivery("24000003", [done.source_id])))
    assert (await status_is(runtime, done.id, "delivered")()) is not None
    await meta.deliver(client, inbox["webhook_url"], meta.body(meta.read("24000003")))
    assert (await status_is(runtime, done.id, "read")()) is not None
    await meta.deliver(client, inbox["webhook_url"], meta.body(meta.delivery("24000003", [done.source_id])))
    assert (await status_is(runtime, done.id, "read")()) is not None  # never moves back


async def test_messenger_reply_windows_response_human_agent_refused(client, tenants, runtime, meta):
    tenant = await tenants.new()
    inbox = await facebook_inbox(client, tenant, meta)
    meta.user("24000004", "Wei", "Zhang")
    await meta.deliver(client, inbox["webhook_url"], meta.body(meta.user_writes("24000004", "你好,我想退货")))
    conversation = await only_conversation(client, tenant, inbox["id"])

    async def customer_wrote(hours_ago: float) -> None:
        meta.last_wrote("24000004", time.time() - hours_ago * 3600)
        async with runtime.db.write_session() as session:
            await session.execute(update(Conversation).where(Conversation.inbox_id == inbox["id"]).values(
                reply_window_closes_at=utcnow() - timedelta(hours=hours_ago) + timedelta(hours=24)))

    await customer_wrote(30)  # past 24 hours, within 7 days: a person's reply goes with HUMAN_AGENT
    tagged = await reply(client, tenant, conversation["id"], content="抱歉久等了")
    assert tagged.status_code == 200 and tagged.json()["content_attributes"]["message_tag"] == "HUMAN_AGENT"
    async with running(runtime, inbox["id"]):
        await eventually(status_is(runtime, tagged.json()["id"], "sent"))
    assert meta.sent[-1]["messaging_type"] == "MESSAGE_TAG" and meta.sent[-1]["tag"] == "HUMAN_AGENT"

    await customer_wrote(8 * 24)  # past 7 days: refused, with the rule named
    refused = await reply(client, tenant, conversation["id"], content="还在吗?")
    assert refused.status_code == 422
    assert "24 hours" in refused.json()["message"] and "HUMAN_AGENT" in refused.json()["message"]
    assert len(meta.sent) == 1

    # Postroom thought the window open, Meta did not: the platform's refusal fails the reply.
    async with runtime.db.write_session() as session:
        await session.execute(update(Conversation).where(Conversation.inbox_id == inbox["id"]).values(
            reply_window_closes_at=utcnow() + timedelta(hours=1)))
    late = await reply(client, tenant, conversation["id"], content="还在吗?")
    async with running(runtime, inbox["id"]):
        failed = await eventually(status_is(runtime, late.json()["id"], "failed"))
    assert failed.external_error.startswith("10: This message is sent outside of allowed window")


async def test_messenger_outage_and_throttling_are_survived_in_order(client, tenants, runtime, meta):
    tenant = await tenants.new()
    inbox = await facebook_inbox(client, tenant, meta)
    meta.user("24000005", "Ann")
    await meta.deliver(client, inbox["webhook_url"], meta.body(meta.user_writes("24000005", "hello?")))
    conversation = await only_conversation(client, tenant, inbox["id"])
    meta.fail_next("me/messages", 503, {"error": {"message": "Service temporarily unavailable", "code": 2}}, times=3)
    meta.fail_next("me/messages", 400, graph_error(613, "Calls to this api have exceeded the rate limit."), times=1)
    ids = [(await reply(client, tenant, conversation["id"], content=f"part {n}")).json()["id"] for n in range(3)]
    async with running(runtime, inbox["id"]):
        for message_id in ids:
            await eventually(status_is(runtime, message_id, "sent"), timeout=30)
    statuses = [c.status for c in meta.calls_of("me/messages")]
    assert statuses[:4] == [503, 503, 503, 400] and statuses[4:] == [200, 200, 200]
    assert [s["message"]["text"] for s in meta.sent] == ["part 0", "part 1", "part 2"]


async def test_instagram_messages_and_replies(client, tenants, runtime):
    with MetaSandbox(object_="instagram", page_id="17841400000000001") as ig:
        tenant = await tenants.new()
        inbox = await facebook_inbox(client, tenant, ig, kind="instagram")
        assert inbox["channel_type"] == "Channel::Instagram"
        ig.user("99001", "Linh", "Tran")
        page_body = {"object": "page", "entry": ig.body(ig.user_writes("99001", "wrong object"))["entry"]}
        quarantined = await ig.deliver(client, inbox["webhook_url"], page_body)
        assert quarantined.status_code == 200 and quarantined.json()["quarantined"] == 1
        async with runtime.db.read_session() as session:
            kept = list(await session.scalars(select(QuarantinedMessage).where(QuarantinedMessage.inbox_id == inbox["id"])))
        assert len(kept) == 1 and "object" in kept[0].error
        await ig.deliver(client, inbox["webhook_url"], ig.body(ig.user_writes("99001", "Còn size M không ạ?")))
        conversation = await only_conversation(client, tenant, inbox["id"])
        assert conversation["meta"]["sender"]["name"] == "Linh Tran"
        sent = await reply(client, tenant, conversation["id"], content="Dạ còn ạ")
        async with running(runtime, inbox["id"]):
            await eventually(status_is(runtime, sent.json()["id"], "sent"))
        assert ig.sent[0]["recipient"] == {"id": "99001"} and ig.sent[0]["message"]["text"] == "Dạ còn ạ"


# -- WhatsApp ----------------------------------------------------------------------------


async def test_whatsapp_messages_replies_and_statuses(client, tenants, runtime, whatsapp):
    tenant = await tenants.new()
    inbox = await whatsapp_inbox(client, tenant, whatsapp)
    assert inbox["channel_type"] == "Channel::Whatsapp" and inbox["verify_token"]
    assert "provider_config" not in inbox and "app_secret" not in inbox
    bad = await client.post(inbox["webhook_url"], content=b'{"object":"whatsapp_business_account","entry":[]}',
                            headers={"X-Hub-Signature-256": "sha256=00"})
    assert bad.status_code == 403
    value = whatsapp.user_writes("66812345678", "สั่งของไปแล้วยังไม่ได้รับเลยค่ะ", name="Ploy")
    assert (await whatsapp.deliver(client, inbox["webhook_url"], whatsapp.body(value))).json()["stored"] == 1
    assert (await whatsapp.deliver(client, inbox["webhook_url"], whatsapp.body(value))).json()["duplicates"] == 1
    conversation = await only_conversation(client, tenant, inbox["id"])
    assert conversation["meta"]["sender"]["name"] == "Ploy"
    assert conversation["meta"]["sender"]["phone_number"] == "+66812345678"

    sent = await reply(client, tenant, conversation["id"], content="ขออภัยค่ะ กำลังตรวจสอบให้นะคะ")
    async with running(runtime, inbox["id"]):
        done = await eventually(status_is(runtime, sent.json()["id"], "sent"))
    (request,) = whatsapp.sent
    assert {k: v for k, v in request.items() if k != "_id"} == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "66812345678", "type": "text",
        "text": {"preview_url": False, "body": "ขออภัยค่ะ กำลังตรวจสอบให้นะคะ"}}
    assert done.source_id == request["_id"]
    statuses = whatsapp.statuses()
    assert [s["status"] for s in statuses["statuses"]] == ["sent", "delivered"]
    await whatsapp.deliver(client, inbox["webhook_url"], whatsapp.body(statuses))
    assert (await status_is(runtime, done.id, "delivered")()) is not None


async def test_whatsapp_131047_and_templates_outside_the_window(client, tenants, runtime, whatsapp):
    tenant = await tenants.new()
    inbox = await whatsapp_inbox(client, tenant, whatsapp)
    await whatsapp.deliver(client, inbox["webhook_url"], whatsapp.body(whatsapp.user_writes("84901234567", "Chào shop")))
    conversation = await only_conversation(client, tenant, inbox["id"])

    # WhatsApp's clock says the window closed (Postroom's did not): accepted, then failed 131047.
    whatsapp.last_wrote("84901234567", time.time() - 25 * 3600)
    free = await reply(client, tenant, conversation["id"], content="Shop đây ạ")
    async with running(runtime, inbox["id"]):
        await eventually(status_is(runtime, free.json()["id"], "sent"))
    await whatsapp.deliver(client, inbox["webhook_url"], whatsapp.body(whatsapp.statuses()))
    failed = await status_is(runtime, free.json()["id"], "failed")()
    assert failed is not None and failed.external_error.startswith("131047: Re-engagement message")
    assert "24 hours" in failed.external_error

    # Postroom's own rule: free-form refused, an approved template goes out.
    async with runtime.db.write_session() as session:
        await session.execute(update(Conversation).where(Conversation.inbox_id == inbox["id"]).values(
            reply_window_closes_at=utcnow() - timedelta(hours=1)))
    refused = await reply(client, tenant, conversation["id"], content="Shop đây ạ")
    assert refused.status_code == 422 and "templates" in refused.json()["message"]
    listed = await client.get(tenant.path(f"/inboxes/{inbox['id']}/message_templates?"), headers=tenant.headers)
    assert listed.status_code == 200
    assert {(t["name"], t["language"], t["status"]) for t in listed.json()["payload"]} >= {
        ("order_update", "en", "APPROVED"), ("order_update", "th", "APPROVED"), ("spring_sale", "en", "REJECTED")}
    template = await reply(client, tenant, conversation["id"], content="Your order A-1 is shipped.",
                           message_type="template", template_params={  # Chatwoot's shape
                               "name": "order_update", "language": "en", "processed_params": {"1": "A-1", "2": "shipped"}})
    assert template.status_code == 200, template.text
    rejected = await reply(client, tenant, conversation["id"], content="Sale!", message_type="template",
                           content_attributes={"template_params": {"name": "spring_sale", "language": "en"}})
    async with running(runtime, inbox["id"]):
        await eventually(status_is(runtime, template.json()["id"], "sent"))
        bad = await eventually(status_is(runtime, rejected.json()["id"], "failed"))
    assert whatsapp.sent[-1]["template"] == {"name": "order_update", "language": {"code": "en"}, "components": [
        {"type": "body", "parameters": [{"type": "text", "text": "A-1"}, {"type": "text", "text": "shipped"}]}]}
    assert bad.external_error.startswith("132001:")


# -- LINE --------------------------------------------------------------------------------


async def test_line_signature_follow_messages_redelivery_and_profiles(client, tenants, runtime, line):
    tenant = await tenants.new()
    inbox = await line_inbox(client, tenant, line)
    assert inbox["channel_type"] == "Channel::Line" and "line_channel_secret" not in inbox
    line.user("U1a2b3c", "มานี มีนา", language="th")
    hello = line.user_writes("U1a2b3c", "สวัสดีค่ะ อยากสอบถามเรื่องการจัดส่ง")
    raw, headers = line.signed(line.body(hello))
    assert (await client.post(inbox["webhook_url"], content=raw, headers={"content-type": "application/json"})).status_code == 401
    forged = {**headers, "X-Line-Signature": "bm90IHRoZSBzaWduYXR1cmU="}
    assert (await client.post(inbox["webhook_url"], content=raw, headers=forged)).status_code == 403
    assert await messages_of(runtime, inbox["id"]) == []

    assert (await line.deliver(client, inbox["webhook_url"], line.body(line.follow("U1a2b3c")))).status_code == 200
    async with runtime.db.read_session() as session:
        contact = await session.scalar(select(Contact).join(ContactInbox, ContactInbox.contact_id == Contact.id)
                                       .where(ContactInbox.inbox_id == inbox["id"]))
    assert contact.name == "มานี มีนา" and contact.additional_attributes["followed"] is True

    group = line.group_message("C77", "U1a2b3c", "in a group")
    first = await line.deliver(client, inbox["webhook_url"], line.body(hello, group))
    assert first.json()["stored"] == 1 and first.json()["skipped"] == 1
    again = await line.deliver(client, inbox["webhook_url"], line.body(line.redelivered(hello)))
    assert again.json()["stored"] == 0 and again.json()["duplicates"] == 1
    rows = await messages_of(runtime, inbox["id"])
    assert [r.content for r in rows] == ["สวัสดีค่ะ อยากสอบถามเรื่องการจัดส่ง"]
    conversation = await only_conversation(client, tenant, inbox["id"])
    assert conversation["meta"]["sender"]["name"] == "มานี มีนา"

    await line.deliver(client, inbox["webhook_url"], line.body(line.unfollow("U1a2b3c")))
    async with runtime.db.read_session() as session:
        contact = await session.get(Contact, contact.id)
    assert contact.additional_attributes["followed"] is False


async def test_line_reply_token_then_push_with_retry_key(client, tenants, runtime, line):
    tenant = await tenants.new()
    inbox = await line_inbox(client, tenant, line)
    line.user("U9f8e7d", "陈美玲")
    await line.deliver(client, inbox["webhook_url"], line.body(line.user_writes("U9f8e7d", "请问可以开发票吗?")))
    conversation = await only_conversation(client, tenant, inbox["id"])
    first = await reply(client, tenant, conversation["id"], content="可以的")
    second = await reply(client, tenant, conversation["id"], content="请提供抬头")
    line.fail_next("push", 500, {"message": "An error occurred in the backend"}, times=1)
    async with running(runtime, inbox["id"]):
        await eventually(status_is(runtime, first.json()["id"], "sent"))
        await eventually(status_is(runtime, second.json()["id"], "sent"), timeout=20)
    assert [s["endpoint"] for s in line.sent] == ["reply", "push"]  # the token works once
    assert line.sent[0]["body"]["messages"] == [{"type": "text", "text": "可以的"}]
    assert line.sent[1]["body"] == {"to": "U9f8e7d", "messages": [{"type": "text", "text": "请提供抬头"}]}
    pushes = line.calls_of("push")
    assert [c.status for c in pushes] == [500, 200]
    assert pushes[0].headers["x-line-retry-key"] == pushes[1].headers["x-line-retry-key"]  # a retry, not a new push


async def test_line_expired_reply_token_falls_back_to_push(client, tenants, runtime):
    with LineSandbox(reply_token_seconds=0.0) as line:
        tenant = await tenants.new()
        inbox = await line_inbox(client, tenant, line)
        line.user("Uaa11", "Minh")
        await line.deliver(client, inbox["webhook_url"], line.body(line.user_writes("Uaa11", "Alo")))
        conversation = await only_conversation(client, tenant, inbox["id"])
        sent = await reply(client, tenant, conversation["id"], content="Dạ shop nghe")
        async with running(runtime, inbox["id"]):
            await eventually(status_is(runtime, sent.json()["id"], "sent"))
        assert [c.status for c in line.calls_of("reply")] == [400]
        assert [s["endpoint"] for s in line.sent] == ["push"]


async def test_concurrent_calls_share_transactions_and_store_each_event_once(client, tenants, runtime, meta):
    import asyncio

    tenant = await tenants.new()
    inbox = await facebook_inbox(client, tenant, meta)
    events = [meta.user_writes(f"2500{n % 7}", f"message {n}") for n in range(40)]
    bodies = [meta.body(e) for e in events] + [meta.body(e) for e in events[::4]]  # with redeliveries
    answers = await asyncio.gather(*(meta.deliver(client, inbox["webhook_url"], b) for b in bodies))
    assert {a.status_code for a in answers} == {200}
    assert sum(a.json()["stored"] for a in answers) == 40
    rows = await messages_of(runtime, inbox["id"])
    assert sorted(r.source_id for r in rows) == sorted(e["message"]["mid"] for e in events)
    async with runtime.db.read_session() as session:
        conversations = set(await session.scalars(select(Conversation.id).where(Conversation.inbox_id == inbox["id"])))
    assert len(conversations) == 7  # one per customer, however the calls were grouped


async def test_templates_and_webhooks_stay_within_their_inbox(client, tenants, runtime, whatsapp, meta):
    owner, other = await tenants.new(), await tenants.new()
    inbox = await whatsapp_inbox(client, owner, whatsapp)
    foreign = await client.get(other.path(f"/inboxes/{inbox['id']}/message_templates"), headers=other.headers)
    assert foreign.status_code == 404
    _, agent_token = await owner.agent()  # an agent of the account, not a member of the inbox
    outsider = await client.get(owner.path(f"/inboxes/{inbox['id']}/message_templates"),
                                headers={"api_access_token": agent_token})
    assert outsider.status_code == 404
    # A Messenger body signed for another channel's inbox URL finds no such inbox.
    facebook = await facebook_inbox(client, owner, meta)
    wrong_channel = facebook["webhook_url"].replace("/facebook/", "/whatsapp/")
    assert (await meta.deliver(client, wrong_channel, meta.body(meta.user_writes("1", "x")))).status_code == 404
    assert (await meta.deliver(client, "/webhooks/telegram/" + facebook["inbox_identifier"],
                               meta.body(meta.user_writes("1", "x")))).status_code == 404
    assert await messages_of(runtime, facebook["id"]) == []


# -- files users send (fetched by platform id) ----------------------------------------------

async def attachments_of(runtime: Any, message_id: int) -> list[Attachment]:
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(Attachment).where(Attachment.message_id == message_id)
                                          .order_by(Attachment.id)))


async def test_whatsapp_media_are_fetched_and_stored_once(client, tenants, runtime, whatsapp):
    tenant = await tenants.new()
    inbox = await whatsapp_inbox(client, tenant, whatsapp)
    photo = b"\xff\xd8\xff\xe0" + b"j" * 3000
    image = whatsapp.user_sends("989121234567", "image", photo, "image/jpeg", caption="رسید پرداخت", name="Sara")
    document = whatsapp.user_sends("989121234567", "document", b"%PDF-1.7 invoice", "application/pdf",
                                   filename="hóa đơn 会计.pdf")
    body = whatsapp.body(image, document)
    assert (await whatsapp.deliver(client, inbox["webhook_url"], body)).json()["stored"] == 2
    rows = await messages_of(runtime, inbox["id"])
    assert [r.content for r in rows] == ["رسید پرداخت", None]
    (jpeg,) = await attachments_of(runtime, rows[0].id)
    (pdf,) = await attachments_of(runtime, rows[1].id)
    assert (jpeg.file_type, jpeg.content_type, jpeg.file_size, jpeg.file_name) == ("image", "image/jpeg", len(photo), "image.jpg")
    assert runtime.store.path(jpeg.storage_path).read_bytes() == photo
    assert (pdf.file_name, pdf.content_type) == ("hóa đơn 会计.pdf", "application/pdf")
    assert runtime.store.path(pdf.storage_path).read_bytes() == b"%PDF-1.7 invoice"
    lookups, downloads = whatsapp.calls_of("media"), whatsapp.calls_of("download")
    assert [c.body["phone_number_id"] for c in lookups] == [whatsapp.phone_number_id] * 2
    assert all(c.headers["authorization"] == f"Bearer {whatsapp.token}" and c.status == 200 for c in downloads)
    assert len(downloads) == 2

    again = await whatsapp.deliver(client, inbox["webhook_url"], body)
    assert again.json()["duplicates"] == 2
    assert len(whatsapp.calls_of("media")) == 2  # a redelivery downloads nothing


async def test_whatsapp_media_that_cannot_be_fetched_keep_the_message(client, tenants, runtime, whatsapp):
    tenant = await tenants.new()
    inbox = await whatsapp_inbox(client, tenant, whatsapp)
    lost = whatsapp.user_sends("66812345678", "audio", b"OggS voice", "audio/ogg; codecs=opus")
    media_id = lost["messages"][0]["audio"]["id"]
    del whatsapp.media[media_id]  # expired: the lookup answers error 100
    whatsapp.fail_next("download", 500, {})
    broken = whatsapp.user_sends("66812345678", "video", b"\x00\x00\x00 ftypmp4", "video/mp4", caption="ดูนี่")
    answer = await whatsapp.deliver(client, inbox["webhook_url"], whatsapp.body(lost, broken))
    assert answer.status_code == 200 and answer.json()["stored"] == 2
    first, second = await messages_of(runtime, inbox["id"])
    assert f"could not be fetched from WhatsApp (id {media_id})" in first.content
    assert "Unsupported get request" in first.content and whatsapp.token not in first.content
    assert first.additional_attributes["metadata"]["media_errors"][0]["id"] == media_id
    assert first.additional_attributes["metadata"]["media"]["id"] == media_id
    assert second.content.startswith("ดูนี่\n[video.mp4 could not be fetched from WhatsApp") and "HTTP 500" in second.content
    (kept,) = await attachments_of(runtime, first.id)
    assert (kept.file_type, kept.storage_path, kept.file_size) == ("audio", None, None)


async def test_line_contents_are_fetched_with_the_token(client, tenants, runtime, line):
    tenant = await tenants.new()
    inbox = await line_inbox(client, tenant, line)
    line.user("U4d5e6f", "Nguyễn Thị Hoa")
    picture = line.user_sends("U4d5e6f", "image", b"\x89PNG\r\n\x1a\n" + b"p" * 500, "image/png")
    upload = line.user_sends("U4d5e6f", "file", "สัญญา.docx".encode() * 3, "application/octet-stream",
                             file_name="สัญญา.docx")
    gone = line.user_sends("U4d5e6f", "video", b"mp4", "video/mp4")
    del line.contents[gone["message"]["id"]]  # LINE deletes contents after a while
    answer = await line.deliver(client, inbox["webhook_url"], line.body(picture, upload, gone))
    assert answer.json()["stored"] == 3
    rows = await messages_of(runtime, inbox["id"])
    png, docx, video = [await attachments_of(runtime, r.id) for r in rows]
    assert (png[0].content_type, png[0].file_type, png[0].file_name) == ("image/png", "image", "image.png")
    assert runtime.store.path(png[0].storage_path).read_bytes().startswith(b"\x89PNG")
    assert docx[0].file_name == "สัญญา.docx" and docx[0].content_type == "application/octet-stream"
    assert runtime.store.path(docx[0].storage_path).read_bytes() == "สัญญา.docx".encode() * 3
    assert video[0].storage_path is None
    assert rows[2].content.startswith(f"[video.mp4 could not be fetched from LINE (id {gone['message']['id']}): HTTP 404")
    calls = line.calls_of("content")
    assert sorted(c.status for c in calls) == [200, 200, 404]
    assert all(c.headers["authorization"] == f"Bearer {line.channel_token}" for c in calls)


async def test_sandboxes_refuse_media_without_the_token(whatsapp, line):
    import httpx

    value = whatsapp.user_sends("1555", "image", b"x", "image/jpeg")
    media_id = value["messages"][0]["image"]["id"]
    async with httpx.AsyncClient() as http:
        refused = await http.get(f"{whatsapp.base_url}/v21.0/{media_id}")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == 190
        info = (await http.get(f"{whatsapp.base_url}/v21.0/{media_id}",
                               headers={"Authorization": f"Bearer {whatsapp.token}"})).json()
        assert (await http.get(info["url"])).status_code == 401
        event = line.user_sends("U1", "image", b"x", "image/jpeg")
        assert (await http.get(f"{line.base_url}/v2/bot/message/{event['message']['id']}/content")).status_code == 401


# -- replies with files ----------------------------------------------------------------------

async def test_whatsapp_replies_with_files_are_uploaded_then_sent_by_id(client, tenants, runtime, whatsapp):
    tenant = await tenants.new()
    inbox = await whatsapp_inbox(client, tenant, whatsapp)
    await whatsapp.deliver(client, inbox["webhook_url"], whatsapp.body(whatsapp.user_writes("84901234567", "Gửi giúp em báo giá")))
    conversation = await only_conversation(client, tenant, inbox["id"])
    png, pdf = b"\x89PNG\r\n\x1a\n" + b"i" * 200, b"%PDF-1.7 quote"
    sent = await client.post(tenant.path(f"/conversations/{conversation['id']}/messages"), headers=tenant.headers,
                             data={"content": "Dạ em gửi anh ảnh và báo giá ạ"},
                             files=[("attachments[]", ("ảnh.png", png, "image/png")),
                                    ("attachments[]", ("báo giá.pdf", pdf, "application/pdf"))])
    assert sent.status_code == 200, sent.text
    async with running(runtime, inbox["id"]):
        done = await eventually(status_is(runtime, sent.json()["id"], "sent"))
    assert [(u["file_name"], u["type"], u["size"]) for u in whatsapp.uploads] == [
        ("ảnh.png", "image/png", len(png)), ("báo giá.pdf", "application/pdf", len(pdf))]
    assert [whatsapp.media[u["id"]][0] for u in whatsapp.uploads] == [png, pdf]
    image, document = whatsapp.sent
    assert image["type"] == "image" and image["image"] == {"id": whatsapp.uploads[0]["id"],
                                                           "caption": "Dạ em gửi anh ảnh và báo giá ạ"}
    assert document["type"] == "document" and document["document"] == {"id": whatsapp.uploads[1]["id"],
                                                                        "filename": "báo giá.pdf"}
    assert done.source_id == image["_id"]
    assert all(c.headers["authorization"] == f"Bearer {whatsapp.token}" for c in whatsapp.calls_of("upload"))


async def test_whatsapp_audio_has_no_caption_and_templates_go_alone(whatsapp):
    from connectors.base import ConnectorConfig, InboundAttachment, OutboundMessage, PermanentSendError
    from connectors.whatsapp.connector import WhatsAppConnector

    whatsapp.user_writes("66899999999", "hi")  # opens the window
    connector = WhatsAppConnector(ConnectorConfig(
        inbox_id=1, settings={"graph_base_url": whatsapp.base_url},
        secrets={"app_secret": whatsapp.app_secret, "api_key": whatsapp.token, "phone_number_id": whatsapp.phone_number_id}))
    voice = InboundAttachment(file_name="voice.ogg", content_type="audio/ogg; codecs=opus", data=b"OggS")
    long_text = "ข้อความยาว " * 150
    try:
        first = await connector.send(OutboundMessage(inbox_id=1, message_id=7, recipient_source_id="66899999999",
                                                     text=long_text, attachments=[voice]))
        with pytest.raises(PermanentSendError, match="template is sent on its own"):
            await connector.send(OutboundMessage(inbox_id=1, message_id=8, recipient_source_id="66899999999",
                                                 attachments=[voice], metadata={"template_params": {"name": "order_update"}}))
        with pytest.raises(PermanentSendError, match="no stored bytes and no public HTTPS URL"):
            await connector.send(OutboundMessage(inbox_id=1, message_id=9, recipient_source_id="66899999999",
                                                 attachments=[InboundAttachment(file_name="x.pdf")]))
    finally:
        await connector.aclose()
    audio, text = whatsapp.sent
    assert audio["type"] == "audio" and audio["audio"] == {"id": whatsapp.uploads[0]["id"]}
    assert whatsapp.uploads[0]["type"] == "audio/ogg"
    assert text["type"] == "text" and text["text"]["body"] == long_text  # over 1,024: no caption, a text of its own
    assert first == audio["_id"] and len(whatsapp.uploads) == 1


async def test_line_replies_with_files_are_refused_with_the_reason(client, tenants, runtime, line):
    tenant = await tenants.new()
    inbox = await line_inbox(client, tenant, line)
    line.user("Ubb22", "ปิติ")
    await line.deliver(client, inbox["webhook_url"], line.body(line.user_writes("Ubb22", "ขอรูปสินค้าหน่อยครับ")))
    conversation = await only_conversation(client, tenant, inbox["id"])
    sent = await client.post(tenant.path(f"/conversations/{conversation['id']}/messages"), headers=tenant.headers,
                             data={"content": "นี่ครับ"}, files=[("attachments[]", ("shirt.jpg", b"\xff\xd8\xff", "image/jpeg"))])
    async with running(runtime, inbox["id"]):
        failed = await eventually(status_is(runtime, sent.json()["id"], "failed"))
    assert "public HTTPS URLs (originalContentUrl, previewImageUrl)" in failed.external_error
    assert line.calls_of("reply") == [] and line.calls_of("push") == []


# -- Click-to-Messenger referrals ----------------------------------------------------------

async def test_ad_referrals_mark_the_conversations_entry_point(client, tenants, runtime, meta):
    tenant = await tenants.new()
    inbox = await facebook_inbox(client, tenant, meta)
    meta.user("24000101", "Somchai")
    referral = meta.ad_referral("24000101", "6040000001", "โปรลดราคา 11.11", ref="promo_1111")
    first = meta.user_writes("24000101", "สนใจสินค้าในโฆษณาครับ", referral=referral)
    meta.user("24000102", "Lan")
    returning = meta.user_writes("24000102", "Chào shop")
    await meta.deliver(client, inbox["webhook_url"], meta.body(first, returning))
    came_back = meta.referral_event("24000102", meta.ad_referral("24000102", "6040000002", "Tết sale"))
    answer = await meta.deliver(client, inbox["webhook_url"], meta.body(came_back))
    assert answer.json()["stored"] == 1
    assert (await meta.deliver(client, inbox["webhook_url"], meta.body(came_back))).json()["duplicates"] == 1
    plain = meta.user_writes("24000103", "m.me link", referral={"source": "SHORTLINK", "type": "OPEN_THREAD", "ref": "x"})
    await meta.deliver(client, inbox["webhook_url"], meta.body(plain))

    async with runtime.db.read_session() as session:
        conversations = {c.contact_inbox_id: c for c in await session.scalars(
            select(Conversation).where(Conversation.inbox_id == inbox["id"]))}
        by_sender = {ci.source_id: conversations[ci.id] for ci in await session.scalars(
            select(ContactInbox).where(ContactInbox.inbox_id == inbox["id"]))}
    ad = by_sender["24000101"].custom_attributes
    assert ad["entry_point"] == "ad"
    assert {k: ad["ad_referral"][k] for k in ("source", "ad_id", "ad_title", "ref")} == {
        "source": "ADS", "ad_id": "6040000001", "ad_title": "โปรลดราคา 11.11", "ref": "promo_1111"}
    assert by_sender["24000102"].custom_attributes["ad_referral"]["ad_title"] == "Tết sale"
    assert "entry_point" not in (by_sender["24000103"].custom_attributes or {})
    rows = await messages_of(runtime, inbox["id"])
    note = next(r for r in rows if r.source_id.startswith("referral:"))
    assert note.content == "(opened the conversation from the ad: Tết sale)" and note.automatic
    link = next(r for r in rows if r.content == "m.me link")
    assert link.additional_attributes["metadata"]["referral"]["source"] == "SHORTLINK"


async def test_first_message_after_an_ad_gets_a_seven_day_window(client, tenants, runtime, meta):
    tenant = await tenants.new()
    inbox = await facebook_inbox(client, tenant, meta)
    meta.user("24000104", "Ploy")
    referral = meta.ad_referral("24000104", "6040000003", "Songkran")
    await meta.deliver(client, inbox["webhook_url"], meta.body(meta.user_writes("24000104", "สวัสดีค่ะ", referral=referral)))
    async with runtime.db.read_session() as session:
        conversation = await session.scalar(select(Conversation).where(Conversation.inbox_id == inbox["id"]))
    assert conversation.reply_window_closes_at - utcnow().replace(tzinfo=conversation.reply_window_closes_at.tzinfo) > timedelta(days=6)

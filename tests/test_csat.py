"""Satisfaction surveys: sent on resolve where the inbox wants them, answered once, leaking nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.models import Conversation, Inbox
from app.reports import csat
from app.tickets.ingest import ingest_messages
from connectors.base import InboundMessage, SenderIdentity

SECRET = "ที่อยู่ของฉันคือ 99 ถนนสุขุมวิท"  # a customer's address: must never reach the survey page


async def resolved_chat(tenant, runtime, client, *, enabled: bool = True) -> tuple[int, dict]:
    inbox = await tenant.inbox("api", name="Shop chat", csat_survey_enabled=enabled)
    (result,) = await ingest_messages(runtime.db, [InboundMessage(
        inbox_id=inbox, source_id="m1", sender=SenderIdentity(source_id="somchai", name="Somchai สมชาย"),
        text=SECRET, sent_at=datetime.now(UTC))])
    async with runtime.db.read_session() as session:
        display = (await session.get(Conversation, result.conversation_id)).display_id
    response = await client.post(tenant.path(f"/conversations/{display}/toggle_status"), headers=tenant.headers,
                                 json={"status": "resolved"})
    assert response.status_code == 200, response.text
    messages = (await client.get(tenant.path(f"/conversations/{display}/messages"), headers=tenant.headers)).json()
    return display, messages


def survey_message(messages: dict) -> dict | None:
    rows = messages["payload"] if isinstance(messages, dict) else messages
    return next((m for m in rows if m["content_type"] == "input_csat"), None)


async def test_live_chat_gets_a_rating_message_and_the_answer_is_stored_once(tenants, runtime, client):
    tenant = await tenants.new()
    display, messages = await resolved_chat(tenant, runtime, client)
    message = survey_message(messages)
    assert message is not None and message["content_attributes"]["survey_url"].endswith(
        message["content_attributes"]["survey_uuid"])
    uuid = message["content_attributes"]["survey_uuid"]
    answer = await client.post(f"/survey/responses/{uuid}", json={"rating": 2, "feedback_message": "ช้าไปหน่อย"})
    assert answer.status_code == 200 and answer.json()["rating"] == 2
    again = await client.post(f"/survey/responses/{uuid}", json={"rating": 5})
    assert again.status_code == 409
    shown = (await client.get(tenant.path(f"/conversations/{display}/csat"), headers=tenant.headers)).json()
    assert shown["payload"]["rating"] == 2 and shown["payload"]["feedback_message"] == "ช้าไปหน่อย"
    report = (await client.get(f"/api/v2/accounts/{tenant.account_id}/reports/csat", headers=tenant.headers)).json()
    assert report["sent"] == 1 and report["answered"] == 1 and report["distribution"]["2"] == 1
    summary = (await client.get(f"/api/v2/accounts/{tenant.account_id}/reports", headers=tenant.headers,
                                params={"metric": "csat_score"})).json()
    assert sum(r["count"] for r in summary) == 1
    # Resolving again (after a reopen) sends no second survey.
    await client.post(tenant.path(f"/conversations/{display}/toggle_status"), headers=tenant.headers, json={"status": "open"})
    await client.post(tenant.path(f"/conversations/{display}/toggle_status"), headers=tenant.headers,
                      json={"status": "resolved"})
    messages = (await client.get(tenant.path(f"/conversations/{display}/messages"), headers=tenant.headers)).json()
    rows = messages["payload"] if isinstance(messages, dict) else messages
    assert sum(m["content_type"] == "input_csat" for m in rows) == 1


async def test_public_page_needs_no_login_leaks_nothing_and_refuses_a_second_answer(tenants, runtime, client):
    tenant = await tenants.new()
    _, messages = await resolved_chat(tenant, runtime, client)
    uuid = survey_message(messages)["content_attributes"]["survey_uuid"]
    page = await client.get(f"/survey/responses/{uuid}", headers={"accept-language": "th-TH,th;q=0.9"})
    assert page.status_code == 200 and 'name="rating"' in page.text
    assert "คุณให้คะแนน" in page.text  # in the customer's language
    for secret in (SECRET, "Somchai", "Shop chat", tenant.admin_email):
        assert secret not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    posted = await client.post(f"/survey/responses/{uuid}", content="rating=4&feedback_message=ok",
                               headers={"content-type": "application/x-www-form-urlencoded"})
    assert posted.status_code == 200
    second = await client.post(f"/survey/responses/{uuid}", content="rating=1",
                               headers={"content-type": "application/x-www-form-urlencoded"})
    assert second.status_code == 409
    assert "ok" not in (await client.get(f"/survey/responses/{uuid}")).text.split("<body>")[1]
    assert (await client.get("/survey/responses/not-a-survey")).status_code == 404
    bad = await client.post(f"/survey/responses/{uuid}", json={"rating": 9})
    assert bad.status_code in (400, 409, 422)


async def test_no_survey_when_the_inbox_does_not_ask_for_one(tenants, runtime, client):
    tenant = await tenants.new()
    _, messages = await resolved_chat(tenant, runtime, client, enabled=False)
    assert survey_message(messages) is None


def test_delivery_by_channel_and_reply_window():
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def conversation(closes_at):
        return Conversation(reply_window_closes_at=closes_at, additional_attributes={})

    chat = Inbox(channel_type="web_widget", settings={})
    email = Inbox(channel_type="email", settings={})
    messenger = Inbox(channel_type="facebook", settings={})
    shop = Inbox(channel_type="shopee", settings={})
    assert csat.delivery_for(conversation(None), chat, now) == "message"
    assert csat.delivery_for(conversation(None), email, now) == "email_link"
    assert csat.delivery_for(conversation(now + timedelta(hours=1)), messenger, now) == "quick_replies"
    assert csat.delivery_for(conversation(now - timedelta(minutes=1)), messenger, now) is None
    assert csat.delivery_for(conversation(None), shop, now) is None


async def resolve_on(tenant, runtime, client, inbox: int, sent_at: datetime, sender: str = "hoa") -> list[dict]:
    (result,) = await ingest_messages(runtime.db, [InboundMessage(
        inbox_id=inbox, source_id=f"m-{sent_at.timestamp()}", sender=SenderIdentity(source_id=sender, name=sender),
        text="Cảm ơn shop", sent_at=sent_at)])
    async with runtime.db.read_session() as session:
        display = (await session.get(Conversation, result.conversation_id)).display_id
    response = await client.post(tenant.path(f"/conversations/{display}/toggle_status"), headers=tenant.headers,
                                 json={"status": "resolved"})
    assert response.status_code == 200, response.text
    messages = (await client.get(tenant.path(f"/conversations/{display}/messages"), headers=tenant.headers)).json()
    return messages["payload"] if isinstance(messages, dict) else messages


async def test_email_gets_a_link_and_a_messenger_only_inside_its_reply_window(tenants, runtime, client):
    tenant = await tenants.new()
    email = await tenant.inbox("email", email="support@shop.example", csat_survey_enabled=True)
    rows = await resolve_on(tenant, runtime, client, email, datetime.now(UTC) - timedelta(days=3))
    survey = survey_message(rows)
    assert survey["content"].endswith(survey["content_attributes"]["survey_url"])
    assert survey["content_attributes"]["survey_url"].startswith("http")
    assert survey["status"] == "pending"  # the e-mail dispatcher sends it

    messenger = await tenant.inbox("facebook", csat_survey_enabled=True)
    inside = await resolve_on(tenant, runtime, client, messenger, datetime.now(UTC) - timedelta(hours=1))
    assert survey_message(inside)["content_attributes"]["quick_replies"] == ["1", "2", "3", "4", "5"]
    outside = await resolve_on(tenant, runtime, client, messenger, datetime.now(UTC) - timedelta(days=9), "lan")
    assert survey_message(outside) is None
    assert any(m["message_type"] == 2 and "not sent" in (m["content"] or "") for m in outside)


def test_the_widget_sees_a_link_to_an_unanswered_survey_only():
    from app.realtime.visitor import visitor_message

    message = {"id": 7, "message_type": 3, "content_type": "input_csat", "content": csat.QUESTION,
               "content_attributes": {"survey_uuid": "abc", "survey_url": "https://x/survey/responses/abc"}}
    assert visitor_message(message)["survey"] == {"url": "/survey/responses/abc", "answered": False}
    message["content_attributes"]["submitted_values"] = {"csat_survey_response": {"rating": 5}}
    assert visitor_message(message)["survey"]["answered"] is True
    assert visitor_message({**message, "content_type": "text"})["survey"] is None


async def test_inbox_setting_is_chatwoots_top_level_csat_survey_enabled(tenants, client):
    tenant = await tenants.new()
    created = await client.post(tenant.path("/inboxes"), headers=tenant.headers,
                                json={"name": "Chat", "channel": {"type": "api"}, "csat_survey_enabled": True})
    assert created.status_code == 200, created.text
    assert created.json()["csat_survey_enabled"] is True
    changed = await client.patch(tenant.path(f"/inboxes/{created.json()['id']}"), headers=tenant.headers,
                                 json={"csat_survey_enabled": False})
    assert changed.status_code == 200 and changed.json()["csat_survey_enabled"] is False

"""Customer insight on the contact, contacts filtered by activity, and the volume spike rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.models import Conversation, Event, WebhookDelivery
from app.reports import alerts
from app.webhooks.fanout import fan_out
from app.tickets.ingest import ingest_messages
from connectors.base import InboundMessage, SenderIdentity

NOW = datetime.now(UTC)


async def writes(runtime, inbox: int, source: str, sender: str, at: datetime, thread: str | None = None) -> int:
    (result,) = await ingest_messages(runtime.db, [InboundMessage(
        inbox_id=inbox, source_id=source, thread_key=thread, sender=SenderIdentity(source_id=sender, name=sender),
        text=f"สวัสดี {source}", sent_at=at)])
    return result.conversation_id


async def test_insight_and_filter_wrote_three_times_with_a_low_last_csat(tenants, runtime, client):
    tenant = await tenants.new()
    inbox = await tenant.inbox("api", csat_survey_enabled=True)
    for n in range(3):
        conversation_id = await writes(runtime, inbox, f"lan-{n}", "lan", NOW - timedelta(minutes=30 - n))
    await writes(runtime, inbox, "minh-0", "minh", NOW - timedelta(minutes=20))
    async with runtime.db.read_session() as session:
        conversation = await session.get(Conversation, conversation_id)
    display, contact_id = conversation.display_id, conversation.contact_id
    await client.post(tenant.path(f"/conversations/{display}/custom_attributes"), headers=tenant.headers,
                      json={"custom_attributes": {"order_id": "2611300001", "marketplace": "shopee"}})
    await client.post(tenant.path(f"/conversations/{display}/messages"), headers=tenant.headers, json={"content": "ok"})
    await client.post(tenant.path(f"/conversations/{display}/toggle_status"), headers=tenant.headers,
                      json={"status": "resolved"})
    messages = (await client.get(tenant.path(f"/conversations/{display}/messages"), headers=tenant.headers)).json()
    rows = messages["payload"] if isinstance(messages, dict) else messages
    uuid = next(m for m in rows if m["content_type"] == "input_csat")["content_attributes"]["survey_uuid"]
    assert (await client.post(f"/survey/responses/{uuid}", json={"rating": 1})).status_code == 200

    body = (await client.get(tenant.path(f"/contacts/{contact_id}/insight"), headers=tenant.headers)).json()["payload"]
    assert body["incoming_messages_by_channel"] == {"api": 3}
    assert body["conversations_by_channel"] == {"api": 1}
    assert [c["rating"] for c in body["csat"]] == [1]
    assert body["orders"] == [{"conversation_id": display, "at": body["orders"][0]["at"], "marketplace": "shopee",
                               "order_id": "2611300001", "product_id": None}]
    assert body["avg_response_time"] is not None and body["first_contact_at"] <= body["last_contact_at"]

    path = tenant.path("/contact_insights/filter")
    found = (await client.get(path, headers=tenant.headers, params={"min_messages": 3, "last_csat_lte": 2})).json()
    assert [c["id"] for c in found["payload"]] == [contact_id]
    none = (await client.get(path, headers=tenant.headers, params={"min_messages": 4})).json()
    assert none["payload"] == []
    other = await tenants.new()
    assert (await client.get(tenant.path(f"/contacts/{contact_id}/insight"), headers=other.headers)).status_code == 404


def test_spike_rule_on_synthetic_series():
    steady = [10, 12, 9, 11, 10, 13, 8, 11]
    assert not alerts.robust_score(12, steady).spike          # an ordinary day
    assert alerts.robust_score(40, steady).spike              # a jump far above the weeks before
    assert alerts.robust_score(40, steady).z > 3.5
    assert alerts.robust_score(6, [0, 0, 0, 0, 0, 0]).spike   # flat baseline: MAD 0 counts as 1
    assert not alerts.robust_score(4, [0, 0, 0, 0, 0, 0]).spike  # too few more than usual
    assert alerts.robust_score(50, [10, 12]) is None          # not enough history
    noisy = [5, 40, 8, 35, 6, 38, 7, 36]
    assert not alerts.robust_score(40, noisy).spike           # wide baseline: 40 is normal


async def test_volume_spike_is_raised_once_with_samples_and_not_inside_a_known_peak(tenants, runtime, client):
    tenant = await tenants.new()
    inbox = await tenant.inbox("line")
    hook = await client.post(tenant.path("/webhooks"), headers=tenant.headers,
                             json={"url": "https://hooks.example.invalid/postroom", "subscriptions": ["volume_spike"]})
    assert hook.status_code == 200, hook.text
    now = NOW.replace(minute=30)
    window_start = now.replace(minute=0) - timedelta(hours=alerts.WINDOW_HOURS)
    for week in range(1, 5):  # a steady 2 conversations in the same hours of past weeks
        for n in range(2):
            await writes(runtime, inbox, f"w{week}-{n}", f"past-{week}-{n}", window_start + timedelta(weeks=-week, minutes=10 + n))
    for n in range(12):  # 12 now
        await writes(runtime, inbox, f"now-{n}", f"now-{n}", window_start + timedelta(minutes=5 + n))

    marked = await client.post(f"/api/v2/accounts/{tenant.account_id}/reports/peaks", headers=tenant.headers, json={
        "starts_at": (window_start - timedelta(hours=1)).isoformat(), "ends_at": now.isoformat(),
        "channel_type": "line", "note": "11.11 sale"})
    assert marked.status_code == 200, marked.text
    async with runtime.db.write_session() as session:
        assert await alerts.check_account(session, tenant.account_id, now) == []
    deleted = await client.delete(f"/api/v2/accounts/{tenant.account_id}/reports/peaks/{marked.json()['id']}",
                                  headers=tenant.headers)
    assert deleted.status_code == 200
    async with runtime.db.write_session() as session:
        raised = await alerts.check_account(session, tenant.account_id, now)
    assert len(raised) == 1 and raised[0]["channel_type"] == "line" and raised[0]["observed"] == 12
    # four weeks of 2 and four empty weeks (before the account had traffic): median 1
    assert raised[0]["baseline_median"] == 1 and len(raised[0]["sample_conversation_ids"]) == alerts.SAMPLES
    async with runtime.db.write_session() as session:
        assert await alerts.check_account(session, tenant.account_id, now) == []  # once per window
    async with runtime.db.read_session() as session:
        events = (await session.scalars(select(Event).where(Event.account_id == tenant.account_id,
                                                             Event.event_type == "volume.spike"))).all()
    assert len(events) == 1 and events[0].inbox_id is None  # to every agent of the account
    while await fan_out(runtime.db):
        pass
    async with runtime.db.read_session() as session:
        deliveries = (await session.scalars(select(WebhookDelivery).where(
            WebhookDelivery.account_id == tenant.account_id))).all()
    assert [d.event for d in deliveries] == ["volume_spike"]
    assert deliveries[0].payload["channel_type"] == "line" and deliveries[0].payload["event"] == "volume_spike"
    listed = (await client.get(f"/api/v2/accounts/{tenant.account_id}/reports/volume_alerts", headers=tenant.headers)).json()
    assert listed["payload"][0]["value"] == "line"

"""SLA clocks, one definition at a time, with explicit times (no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from app.db import Database
from app.models import BusinessCalendarRow, Conversation, Event, Inbox, SlaClock
from app.sla import engine
from app.sla import service as sla_service
from app.sla.scheduler import SlaScheduler
from app.tickets.ingest import ingest_messages
from connectors.base import InboundMessage, SenderIdentity
from tests.conftest import TEST_DATABASE

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday
H = 3600


async def policy(runtime, tenant, **fields) -> int:
    fields.setdefault("name", "Policy")
    fields.setdefault("rules", {"channel_types": ["api", "email", "amazon", "facebook"]})
    async with runtime.db.write_session() as session:
        return (await sla_service.save_policy(session, tenant.account_id, None, fields)).id


async def customer(runtime, inbox_id: int, source: str, at: datetime, *, sender: str = "buyer", thread: str | None = None,
                   direction: str = "incoming", automatic: bool = False):
    (result,) = await ingest_messages(runtime.db, [InboundMessage(
        inbox_id=inbox_id, source_id=source, thread_key=thread, sender=SenderIdentity(source_id=sender),
        text=source, sent_at=at, direction=direction, automatic=automatic)])
    return result


async def person_replies(runtime, inbox_id: int, source: str, at: datetime, **kw):
    """A person's reply, echoed from the platform (the same clocks as a reply typed in Postroom)."""
    return await customer(runtime, inbox_id, source, at, direction="outgoing", **kw)


async def clocks(runtime, conversation_id: int) -> dict[str, SlaClock]:
    async with runtime.db.read_session() as session:
        rows = await session.scalars(select(SlaClock).where(SlaClock.conversation_id == conversation_id).order_by(SlaClock.id))
        return {f"{row.kind}#{row.cycle}": row for row in rows}


async def with_conversation(runtime, conversation_id: int, fn):
    async with runtime.db.write_session() as session:
        conversation = await session.get(Conversation, conversation_id)
        inbox = await session.get(Inbox, conversation.inbox_id)
        await fn(session, conversation, inbox)


async def test_first_response_is_met_by_a_persons_reply(tenants, runtime):
    tenant = await tenants.new()
    inbox = await tenant.inbox("api")
    await policy(runtime, tenant, first_response_time_threshold=H)
    first = await customer(runtime, inbox, "q1", T0)
    await customer(runtime, inbox, "q2", T0 + timedelta(minutes=10))
    await person_replies(runtime, inbox, "a1", T0 + timedelta(minutes=40))
    clock = (await clocks(runtime, first.conversation_id))["first_response#1"]
    assert (clock.status, clock.started_at, clock.calendar_seconds) == ("met", T0, 2400)


async def test_first_response_breached_ends_once_with_its_time(tenants, runtime):
    tenant = await tenants.new()
    inbox = await tenant.inbox("api")
    await policy(runtime, tenant, first_response_time_threshold=H)
    first = await customer(runtime, inbox, "q1", T0)
    await person_replies(runtime, inbox, "a1", T0 + timedelta(hours=3))
    clock = (await clocks(runtime, first.conversation_id))["first_response#1"]
    assert (clock.status, clock.breached_at, clock.calendar_seconds) == ("breached", T0 + timedelta(hours=1), 3 * H)
    async with runtime.db.read_session() as session:
        breaches = await session.scalar(select(func.count()).where(
            Event.conversation_id == first.conversation_id, Event.event_type == "sla.breached"))
    assert breaches == 1


async def test_private_notes_and_bot_replies_do_not_count_unless_the_policy_says(tenants, runtime):
    tenant = await tenants.new()
    inbox = await tenant.inbox("api")
    await policy(runtime, tenant, first_response_time_threshold=H)
    first = await customer(runtime, inbox, "q1", T0)

    async def note_then_bot(session, conversation, box):
        await engine.on_message(session, conversation, box, author="person", at=T0 + timedelta(minutes=5), private=True)
        await engine.on_message(session, conversation, box, author="bot", at=T0 + timedelta(minutes=6))
    await with_conversation(runtime, first.conversation_id, note_then_bot)
    assert (await clocks(runtime, first.conversation_id))["first_response#1"].status == "active"

    other = await tenants.new()
    other_inbox = await other.inbox("api")
    await policy(runtime, other, first_response_time_threshold=H, bot_replies_count=True)
    second = await customer(runtime, other_inbox, "q1", T0)

    async def bot(session, conversation, box):
        await engine.on_message(session, conversation, box, author="bot", at=T0 + timedelta(minutes=6))
    await with_conversation(runtime, second.conversation_id, bot)
    assert (await clocks(runtime, second.conversation_id))["first_response#1"].status == "met"


async def test_next_response_starts_at_the_oldest_unanswered_message(tenants, runtime):
    tenant = await tenants.new()
    inbox = await tenant.inbox("api")
    await policy(runtime, tenant, first_response_time_threshold=H, next_response_time_threshold=2 * H)
    first = await customer(runtime, inbox, "q1", T0)
    await person_replies(runtime, inbox, "a1", T0 + timedelta(minutes=20))
    await customer(runtime, inbox, "q2", T0 + timedelta(hours=1))
    await customer(runtime, inbox, "q3", T0 + timedelta(hours=2))
    await person_replies(runtime, inbox, "a2", T0 + timedelta(hours=2, minutes=30))
    found = await clocks(runtime, first.conversation_id)
    nrt = found["next_response#1"]
    assert nrt.started_at == T0 + timedelta(hours=1) and nrt.status == "met" and nrt.calendar_seconds == 1.5 * H
    assert "next_response#2" not in found


async def test_resolution_pauses_while_pending_and_a_reopen_starts_a_new_cycle(tenants, runtime):
    tenant = await tenants.new()
    inbox = await tenant.inbox("api")
    await policy(runtime, tenant, resolution_time_threshold=4 * H)
    first = await customer(runtime, inbox, "q1", T0)

    def status(new: str, at: datetime):
        async def change(session, conversation, box):
            previous, conversation.status = conversation.status, new
            await engine.on_status(session, conversation, box, previous, at)
        return change

    await with_conversation(runtime, first.conversation_id, status("pending", T0 + timedelta(hours=1)))
    await with_conversation(runtime, first.conversation_id, status("open", T0 + timedelta(hours=4)))
    clock = (await clocks(runtime, first.conversation_id))["resolution#1"]
    assert clock.due_at == T0 + timedelta(hours=7) and clock.paused_seconds == 3 * H
    await with_conversation(runtime, first.conversation_id, status("resolved", T0 + timedelta(hours=6)))
    clock = (await clocks(runtime, first.conversation_id))["resolution#1"]
    assert (clock.status, clock.calendar_seconds) == ("met", 3 * H)  # 6 h minus 3 h pending

    await with_conversation(runtime, first.conversation_id, status("open", T0 + timedelta(hours=10)))
    second = (await clocks(runtime, first.conversation_id))["resolution#2"]
    assert second.started_at == T0 + timedelta(hours=10) and second.status == "active"


async def test_business_hours_policy_counts_only_opening_hours(tenants, runtime):
    tenant = await tenants.new()
    inbox = await tenant.inbox("api")
    async with runtime.db.write_session() as session:
        calendar = await sla_service.save_calendar(session, tenant.account_id, None, {
            "name": "NY", "timezone": "America/New_York", "is_default": True,
            "weekly": {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}})
    await policy(runtime, tenant, first_response_time_threshold=2 * H, only_during_business_hours=True, calendar_id=calendar.id)
    friday_4pm_ny = datetime(2026, 11, 6, 21, 0, tzinfo=UTC)
    first = await customer(runtime, inbox, "q1", friday_4pm_ny)
    clock = (await clocks(runtime, first.conversation_id))["first_response#1"]
    assert clock.due_at == datetime(2026, 11, 9, 15, 0, tzinfo=UTC)  # Monday 10:00 New York
    await person_replies(runtime, inbox, "a1", datetime(2026, 11, 9, 14, 30, tzinfo=UTC))
    clock = (await clocks(runtime, first.conversation_id))["first_response#1"]
    assert clock.status == "met" and clock.business_seconds == 1.5 * H and clock.calendar_seconds > 60 * H


async def test_a_calendar_created_as_default_is_the_only_default(tenants, runtime):
    tenant = await tenants.new()
    week = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
    async with runtime.db.write_session() as session:
        first = await sla_service.save_calendar(session, tenant.account_id, None,
                                                {"name": "A", "timezone": "UTC", "is_default": True, "weekly": week})
        second = await sla_service.save_calendar(session, tenant.account_id, None,
                                                 {"name": "B", "timezone": "Asia/Bangkok", "is_default": True, "weekly": week})
        first_id, second_id = first.id, second.id
    async with runtime.db.read_session() as session:
        defaults = {row.id: row.is_default for row in await session.scalars(
            select(BusinessCalendarRow).where(BusinessCalendarRow.account_id == tenant.account_id))}
    assert defaults == {first_id: False, second_id: True}


async def test_amazon_clock_starts_at_the_oldest_unanswered_buyer_message(tenants, runtime):
    tenant = await tenants.new()
    inbox = await tenant.inbox("amazon")
    first = await customer(runtime, inbox, "m1", T0, thread="order-1")
    await customer(runtime, inbox, "m2", T0 + timedelta(hours=20), thread="order-1")
    clock = (await clocks(runtime, first.conversation_id))["amazon#1"]
    assert clock.started_at == T0 and clock.due_at == T0 + timedelta(hours=24)  # not 20 h later
    await person_replies(runtime, inbox, "r1", T0 + timedelta(hours=23), thread="order-1")
    assert (await clocks(runtime, first.conversation_id))["amazon#1"].status == "met"

    late = await customer(runtime, inbox, "m3", T0, thread="order-2", sender="b2")
    await customer(runtime, inbox, "auto", T0 + timedelta(hours=1), thread="order-2", sender="b2",
                   direction="outgoing", automatic=True)  # an auto-responder is not a response
    assert (await clocks(runtime, late.conversation_id))["amazon#1"].ended_at is None
    await person_replies(runtime, inbox, "r2", T0 + timedelta(hours=30), thread="order-2", sender="b2")
    assert (await clocks(runtime, late.conversation_id))["amazon#1"].status == "breached"


async def test_no_reply_needed_stops_the_marketplace_clock_and_is_recorded(client, tenants, runtime):
    tenant = await tenants.new()
    inbox = await tenant.inbox("walmart")
    first = await customer(runtime, inbox, "m1", T0, thread="po-9")
    async with runtime.db.read_session() as session:
        display = (await session.get(Conversation, first.conversation_id)).display_id
    response = await client.post(tenant.path(f"/conversations/{display}/no_reply_needed"), headers=tenant.headers,
                                 json={"note": "buyer said thanks"})
    assert response.json() == {"stopped": ["walmart"]}
    clock = (await clocks(runtime, first.conversation_id))["walmart#1"]
    assert (clock.status, clock.note) == ("excluded", "buyer said thanks")


async def test_scheduler_warns_twice_and_breaches_once_even_with_two_schedulers(tenants, runtime):
    tenant = await tenants.new()
    inbox = await tenant.inbox("api")
    await policy(runtime, tenant, first_response_time_threshold=4 * H)
    first = await customer(runtime, inbox, "q1", T0)
    one, two = SlaScheduler(Database(runtime.db.url)), SlaScheduler(Database(runtime.db.url))
    try:
        for at in (T0 + timedelta(hours=1), T0 + timedelta(hours=2, minutes=1), T0 + timedelta(hours=3, minutes=31),
                   T0 + timedelta(hours=4, seconds=1), T0 + timedelta(hours=5)):
            await one.run_once(now=at)
            await two.run_once(now=at)
    finally:
        await one.db.dispose()
        await two.db.dispose()
    async with runtime.db.read_session() as session:
        events = [(e.event_type, e.payload.get("lead_seconds")) for e in await session.scalars(
            select(Event).where(Event.conversation_id == first.conversation_id, Event.event_type.like("sla.%")).order_by(Event.seq))]
    assert events == [("sla.warning", 7200.0), ("sla.warning", 1800.0), ("sla.breached", None)]


async def test_reply_windows_refuse_with_the_rule_named(client, tenants, runtime):
    from app.models import utcnow

    tenant = await tenants.new()
    messenger = await tenant.inbox("facebook")
    now = utcnow()
    await customer(runtime, messenger, "mid.1", now - timedelta(hours=30))
    data = (await client.get(tenant.path("/conversations"), headers=tenant.headers)).json()["data"]["payload"][0]
    assert data["can_reply"] is True  # a person may still answer with HUMAN_AGENT
    reply = await client.post(tenant.path(f"/conversations/{data['id']}/messages"), headers=tenant.headers, json={"content": "Sorry for the wait"})
    assert reply.status_code == 200 and reply.json()["content_attributes"]["message_tag"] == "HUMAN_AGENT"

    await customer(runtime, messenger, "mid.2", now - timedelta(days=8), sender="old-customer")
    old = next(c for c in (await client.get(tenant.path("/conversations"), headers=tenant.headers)).json()["data"]["payload"]
               if c["id"] != data["id"])
    assert old["can_reply"] is False
    refused = await client.post(tenant.path(f"/conversations/{old['id']}/messages"), headers=tenant.headers, json={"content": "Hello?"})
    assert refused.status_code == 422 and "24 hours" in refused.json()["message"] and "HUMAN_AGENT" in refused.json()["message"]

    whatsapp = await tenant.inbox("whatsapp")
    await customer(runtime, whatsapp, "wamid.1", now - timedelta(hours=25), sender="+66800000000")
    wa = next(c for c in (await client.get(tenant.path(f"/conversations?inbox_id={whatsapp}"), headers=tenant.headers)).json()["data"]["payload"])
    free = await client.post(tenant.path(f"/conversations/{wa['id']}/messages"), headers=tenant.headers, json={"content": "Hi"})
    assert free.status_code == 422 and "templates" in free.json()["message"]
    template = await client.post(tenant.path(f"/conversations/{wa['id']}/messages"), headers=tenant.headers,
                                 json={"content": "order_update", "message_type": "template"})
    assert template.status_code == 200


async def test_at_risk_lists_by_time_left_with_bands_and_csv(client, tenants, runtime):
    from app.models import utcnow

    tenant = await tenants.new()
    inbox = await tenant.inbox("amazon")
    now = utcnow()
    await customer(runtime, inbox, "late", now - timedelta(hours=26), thread="o1", sender="b1")
    await customer(runtime, inbox, "soon", now - timedelta(hours=23, minutes=30), thread="o2", sender="b2")
    await customer(runtime, inbox, "fresh", now - timedelta(hours=1), thread="o3", sender="b3")
    body = (await client.get(tenant.path("/sla/at_risk?within=6h"), headers=tenant.headers)).json()
    assert [row["risk"] for row in body["payload"]] == ["breached", "critical"]
    assert body["payload"][0]["seconds_left"] < 0 < body["payload"][1]["seconds_left"] <= 1800
    wide = (await client.get(tenant.path("/sla/at_risk?within=2d&channel_type=amazon"), headers=tenant.headers)).json()
    assert [row["risk"] for row in wide["payload"]] == ["breached", "critical", "ok"]
    csv_text = (await client.get(tenant.path("/sla/at_risk?within=6h"), headers={**tenant.headers, "accept": "text/csv"})).text
    assert csv_text.splitlines()[0].startswith("assignee_id,") and len(csv_text.splitlines()) == 3


async def test_amazon_late_response_rate_the_way_amazon_computes_it(client, tenants, runtime):
    from app.models import utcnow

    tenant = await tenants.new()
    inbox = await tenant.inbox("amazon")
    now = utcnow()
    await customer(runtime, inbox, "a", now - timedelta(days=2), thread="t1", sender="b1")
    await customer(runtime, inbox, "b", now - timedelta(days=2) + timedelta(hours=5), thread="t1", sender="b1")
    await person_replies(runtime, inbox, "ra", now - timedelta(days=2) + timedelta(hours=23), thread="t1", sender="b1")
    await customer(runtime, inbox, "c", now - timedelta(days=20), thread="t2", sender="b2")
    await person_replies(runtime, inbox, "rc", now - timedelta(days=18), thread="t2", sender="b2")
    await customer(runtime, inbox, "d", now - timedelta(hours=3), thread="t3", sender="b3")  # not yet due: left out
    scores = (await client.get(tenant.path("/sla/marketplace_scores"), headers=tenant.headers)).json()["payload"][0]
    by_window = {s["window_days"]: s for s in scores["scores"]}
    assert by_window[7] == {"window_days": 7, "messages": 2, "late": 0, "late_response_rate": 0.0}
    assert by_window[30] == {"window_days": 30, "messages": 3, "late": 1, "late_response_rate": 0.3333}


async def test_sla_policy_api_is_chatwoot_shaped_and_applies_by_hand(client, tenants, runtime):
    tenant = await tenants.new()
    inbox = await tenant.inbox("telegram")
    created = (await client.post(tenant.path("/sla_policies"), headers=tenant.headers, json={
        "name": "VIP", "first_response_time_threshold": 900, "resolution_time_threshold": 86400,
        "only_during_business_hours": False})).json()["payload"]
    assert created["first_response_time_threshold"] == 900
    listed = (await client.get(tenant.path("/sla_policies"), headers=tenant.headers)).json()["payload"]
    assert [p["name"] for p in listed] == ["VIP"]
    first = await customer(runtime, inbox, "tg-1", T0)
    assert await clocks(runtime, first.conversation_id) == {}  # no rule matches telegram: nothing runs
    async with runtime.db.read_session() as session:
        display = (await session.get(Conversation, first.conversation_id)).display_id
    updated = (await client.patch(tenant.path(f"/conversations/{display}"), headers=tenant.headers,
                                  json={"sla_policy_id": created["id"]})).json()
    assert updated["sla_policy_id"] == created["id"]
    kinds = {c["kind"] for c in updated["sla"]["clocks"]}
    assert kinds == {"first_response", "resolution"} and updated["sla"]["next_due_at"] == int((T0 + timedelta(seconds=900)).timestamp())


@pytest.mark.skipif(TEST_DATABASE != "postgresql",
                    reason="two server processes share one database: runs in the PostgreSQL pass of the suite")
async def test_breaches_exactly_once_across_two_processes_with_one_killed(start_server, tenants, runtime):
    import asyncio

    from app.models import utcnow

    tenant = await tenants.new()
    inbox = await tenant.inbox("api")
    await policy(runtime, tenant, first_response_time_threshold=3)
    a, b = start_server(), start_server()
    now = utcnow()
    for i in range(20):
        await customer(runtime, inbox, f"k{i}", now, sender=f"s{i}")
    await asyncio.sleep(1.0)
    a.kill()
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        async with runtime.db.read_session() as session:
            count = await session.scalar(select(func.count()).where(
                Event.account_id == tenant.account_id, Event.event_type == "sla.breached"))
        if count >= 20 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.3)
    await asyncio.sleep(1.5)  # time for a duplicate to show, if there were one
    async with runtime.db.read_session() as session:
        payloads = list(await session.scalars(select(Event.payload).where(
            Event.account_id == tenant.account_id, Event.event_type == "sla.breached")))
    clock_ids = [p["id"] for p in payloads]
    assert len(clock_ids) == 20 and len(set(clock_ids)) == 20
    async with httpx.AsyncClient(base_url=b.base) as http:
        assert (await http.get("/healthz")).status_code == 200

"""The conversation list's ``sort_by`` orders and their keyset cursors, ties included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from app.models import Conversation
from app.tickets.ingest import ingest_messages
from connectors.base import InboundMessage, SenderIdentity
from tests.test_sla import T0, H, customer, policy

N = 60
RANK = {"low": 1, "medium": 2, "high": 3, "urgent": 4}


async def _seed(runtime, tenant) -> dict[int, dict]:
    """60 conversations whose sort values repeat a lot (and are often NULL)."""
    inbox_id = await tenant.inbox("api")
    results = await ingest_messages(runtime.db, [
        InboundMessage(inbox_id=inbox_id, source_id=f"s-{i}", sender=SenderIdentity(source_id=f"who-{i}"), text=f"m {i}")
        for i in range(N)
    ])
    stamp = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    rows = {}
    async with runtime.db.write_session() as session:
        for i, result in enumerate(results):
            values = {
                # three due times shared by 40 conversations, 20 with no running clock
                "next_due_at": None if i % 3 == 0 else stamp + timedelta(hours=i % 4),
                "priority": [None, "low", "urgent", "high", "medium"][i % 5],
                "waiting_since": None if i % 4 == 0 else stamp - timedelta(minutes=i % 3),
                "last_activity_at": stamp + timedelta(minutes=i % 2),
                "created_at": stamp - timedelta(days=i % 5),
            }
            await session.execute(update(Conversation).where(Conversation.id == result.conversation_id).values(**values))
    async with runtime.db.read_session() as session:
        for c in await session.scalars(select(Conversation).where(Conversation.account_id == tenant.account_id)):
            rows[c.display_id] = {"pk": c.id, "due": c.next_due_at, "priority": c.priority, "waiting": c.waiting_since,
                                  "activity": c.last_activity_at, "created": c.created_at}
    return rows


def _expected(rows: dict[int, dict], sort: str) -> list[int]:
    """The order Chatwoot's SQL gives (NULLS LAST), ties broken by the row id."""
    def ts(v):
        return v.timestamp()
    keys = {
        "last_activity_at_desc": lambda r: (-ts(r["activity"]), -r["pk"]),
        "created_at_asc": lambda r: (ts(r["created"]), r["pk"]),
        "priority_desc": lambda r: (r["priority"] is None, -RANK.get(r["priority"] or "", 0), -ts(r["activity"]), -r["pk"]),
        "priority_asc": lambda r: (r["priority"] is None, RANK.get(r["priority"] or "", 0), -ts(r["activity"]), -r["pk"]),
        "waiting_since_asc": lambda r: (r["waiting"] is None, ts(r["waiting"]) if r["waiting"] else 0, ts(r["created"]), r["pk"]),
        "waiting_since_desc": lambda r: (r["waiting"] is None, -ts(r["waiting"]) if r["waiting"] else 0, ts(r["created"]), r["pk"]),
        "sla_due_at_asc": lambda r: (r["due"] is None, ts(r["due"]) if r["due"] else 0, r["pk"]),
    }
    return [display for display, _ in sorted(rows.items(), key=lambda item: keys[sort](item[1]))]


async def _walk(client, tenant, sort: str) -> list[int]:
    seen, cursor = [], None
    while True:
        query = f"/conversations?sort_by={sort}" + (f"&after={cursor}" if cursor else "")
        response = await client.get(tenant.path(query), headers=tenant.headers)
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert data["meta"]["sort_by"] == sort
        seen += [c["id"] for c in data["payload"]]
        cursor = data["meta"]["next_cursor"]
        if cursor is None:
            return seen


async def test_every_sort_walks_each_conversation_once_in_order(client, tenants, runtime):
    tenant = await tenants.new()
    rows = await _seed(runtime, tenant)
    for sort in ("last_activity_at_desc", "created_at_asc", "priority_desc", "priority_asc",
                 "waiting_since_asc", "waiting_since_desc", "sla_due_at_asc"):
        expected = _expected(rows, sort)
        assert await _walk(client, tenant, sort) == expected, sort
        by_page = []
        for page in (1, 2, 3):
            data = (await client.get(tenant.path(f"/conversations?sort_by={sort}&page={page}"),
                                     headers=tenant.headers)).json()["data"]
            by_page += [c["id"] for c in data["payload"]]
        assert by_page == expected, sort


async def test_sla_sort_puts_the_soonest_running_clock_first(client, tenants, runtime):
    tenant = await tenants.new()
    inbox = await tenant.inbox("api")
    await policy(runtime, tenant, first_response_time_threshold=H)
    late = await customer(runtime, inbox, "late", T0, sender="a")
    soon = await customer(runtime, inbox, "soon", T0 + timedelta(minutes=30), sender="b")
    no_clock = await customer(runtime, inbox, "none", T0 + timedelta(minutes=40), sender="c")
    async with runtime.db.write_session() as session:
        await session.execute(update(Conversation).where(Conversation.id == no_clock.conversation_id)
                              .values(next_due_at=None, sla_policy_id=None))
        display = {c.id: c.display_id for c in await session.scalars(
            select(Conversation).where(Conversation.account_id == tenant.account_id))}
    payload = (await client.get(tenant.path("/conversations?sort_by=sla_due_at_asc"), headers=tenant.headers)).json()
    listed = [c["id"] for c in payload["data"]["payload"]]
    assert listed[:2] == [display[late.conversation_id], display[soon.conversation_id]]
    assert listed[-1] == display[no_clock.conversation_id]


async def test_bad_sort_or_a_cursor_of_another_sort_is_refused(client, tenants, runtime):
    tenant = await tenants.new()
    await _seed(runtime, tenant)
    bad = await client.get(tenant.path("/conversations?sort_by=loudest"), headers=tenant.headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "sort_by"
    first = (await client.get(tenant.path("/conversations?sort_by=sla_due_at_asc"), headers=tenant.headers)).json()
    cursor = first["data"]["meta"]["next_cursor"]
    crossed = await client.get(tenant.path(f"/conversations?sort_by=priority_desc&after={cursor}"), headers=tenant.headers)
    assert crossed.status_code == 422 and crossed.json()["errors"][0]["field"] == "after"
    legacy = await client.get(tenant.path("/conversations?sort_by=latest"), headers=tenant.headers)
    assert legacy.json()["data"]["meta"]["sort_by"] == "last_activity_at_desc"

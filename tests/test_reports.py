"""Reports over a generated history with known answers; the index is exact and rebuildable."""

from __future__ import annotations

import csv
import io
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select

from app.models import Conversation, ReportingEvent, ReportingRollup
from app.reports.rebuild import rebuild_account
from app.tickets.ingest import ingest_messages
from connectors.base import InboundMessage, SenderIdentity

BERLIN_WEEK = {"timezone": "Europe/Berlin", "weekly": {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}}
FRI = datetime(2026, 10, 23, 14, 0, tzinfo=UTC)  # Friday 16:00 in Berlin (CEST, UTC+2)
MON = datetime(2026, 10, 26, 8, 0, tzinfo=UTC)   # Monday 09:00 in Berlin (CET, UTC+1: DST ended on the Sunday)


@contextmanager
def clock_at(monkeypatch, at: datetime):
    """Freeze "now" for the services that stamp changes."""
    import app.events.log
    import app.reports.csat
    import app.tickets.conversations
    import app.tickets.replies

    for module in (app.events.log, app.tickets.conversations, app.tickets.replies, app.reports.csat):
        monkeypatch.setattr(module, "utcnow", lambda: at)
    yield


async def contact_writes(runtime, inbox_id: int, source: str, at: datetime, sender: str) -> int:
    (result,) = await ingest_messages(runtime.db, [InboundMessage(
        inbox_id=inbox_id, source_id=source, sender=SenderIdentity(source_id=sender), text=source, sent_at=at)])
    return result.conversation_id


async def display_id(runtime, conversation_id: int) -> int:
    async with runtime.db.read_session() as session:
        return (await session.get(Conversation, conversation_id)).display_id


async def reply(client, tenant, monkeypatch, display: int, at: datetime, text: str = "answer") -> None:
    with clock_at(monkeypatch, at):
        response = await client.post(tenant.path(f"/conversations/{display}/messages"), headers=tenant.headers,
                                     json={"content": text})
    assert response.status_code == 200, response.text


async def resolve(client, tenant, monkeypatch, display: int, at: datetime) -> None:
    with clock_at(monkeypatch, at):
        response = await client.post(tenant.path(f"/conversations/{display}/toggle_status"), headers=tenant.headers,
                                     json={"status": "resolved"})
    assert response.status_code == 200, response.text


def v2(tenant, suffix: str) -> str:
    return f"/api/v2/accounts/{tenant.account_id}/reports{suffix}"


@pytest.fixture
async def history(tenants, runtime, client, monkeypatch):
    """Three conversations across a weekend and the end of summer time, with known times.

    A: contact Fri 16:00 Berlin, reply Mon 10:00 -> 67 h calendar, 2 h business.
    B: contact Mon 09:30, reply 09:40 (600 s); contact 11:00, reply 11:30 (1800 s); resolved 12:00 (2.5 h).
    C: contact Mon 10:00, reply 10:20 (1200 s).
    """
    tenant = await tenants.new()
    response = await client.post(tenant.path("/business_calendars"), headers=tenant.headers,
                                 json={"name": "Berlin", **BERLIN_WEEK})
    assert response.status_code == 200, response.text
    response = await client.patch(tenant.path(f"/business_calendars/{response.json()['payload']['id']}"), headers=tenant.headers,
                                  json={"is_default": True})
    assert response.json()["payload"]["is_default"] is True
    inbox = await tenant.inbox("api")
    a = await display_id(runtime, await contact_writes(runtime, inbox, "a1", FRI, "ann"))
    b = await display_id(runtime, await contact_writes(runtime, inbox, "b1", MON + timedelta(minutes=30), "bob"))
    c = await display_id(runtime, await contact_writes(runtime, inbox, "c1", MON + timedelta(hours=1), "cai"))
    await reply(client, tenant, monkeypatch, b, MON + timedelta(minutes=40))
    await reply(client, tenant, monkeypatch, a, MON + timedelta(hours=1))
    await reply(client, tenant, monkeypatch, c, MON + timedelta(hours=1, minutes=20))
    await contact_writes(runtime, inbox, "b2", MON + timedelta(hours=2), "bob")
    await reply(client, tenant, monkeypatch, b, MON + timedelta(hours=2, minutes=30))
    await resolve(client, tenant, monkeypatch, b, MON + timedelta(hours=3))
    return tenant, inbox, {"a": a, "b": b, "c": c}


async def facts(runtime, account_id: int) -> dict[str, tuple[str, float, float]]:
    async with runtime.db.read_session() as session:
        rows = (await session.execute(select(ReportingEvent.key, ReportingEvent.name, ReportingEvent.value,
                                             ReportingEvent.value_in_business_hours)
                                      .where(ReportingEvent.account_id == account_id))).all()
    return {key: (name, value, business) for key, name, value, business in rows}


RANGE = {"since": str(int((FRI - timedelta(days=1)).timestamp())), "until": str(int((MON + timedelta(days=1)).timestamp()))}


async def test_first_response_across_a_weekend_and_dst_in_calendar_and_business_seconds(history, runtime, client):
    tenant, _, _ = history
    recorded = await facts(runtime, tenant.account_id)
    first = sorted((v, b) for name, v, b in recorded.values() if name == "first_response")
    assert first == [(600.0, 600.0), (1200.0, 1200.0), (241200.0, 7200.0)]
    replies = sorted(v for name, v, _ in recorded.values() if name == "reply_time")
    assert replies == [600.0, 1200.0, 1800.0, 241200.0]
    summary = (await client.get(v2(tenant, "/summary"), headers=tenant.headers, params=RANGE)).json()
    assert summary["conversations_count"] == 3
    assert summary["incoming_messages_count"] == 4
    assert summary["outgoing_messages_count"] == 4
    assert summary["resolutions_count"] == 1
    assert summary["avg_first_response_time"] == pytest.approx((600 + 1200 + 241200) / 3, abs=0.01)
    assert summary["avg_resolution_time"] == 9000
    assert summary["reply_time"] == pytest.approx((600 + 1200 + 1800 + 241200) / 4, abs=0.01)
    business = (await client.get(v2(tenant, "/summary"), headers=tenant.headers,
                                 params={**RANGE, "business_hours": "true"})).json()
    assert business["avg_first_response_time"] == pytest.approx((600 + 1200 + 7200) / 3, abs=0.01)
    spread = (await client.get(v2(tenant, "/distribution"), headers=tenant.headers,
                               params={**RANGE, "metric": "avg_first_response_time"})).json()
    assert spread["count"] == 3 and spread["p50"] == 1200 and spread["p99"] == 241200


async def test_daily_report_buckets_in_local_days_and_csv(history, client):
    tenant, _, _ = history
    params = {**RANGE, "metric": "conversations_count", "group_by": "day", "timezone": "Europe/Berlin"}
    rows = (await client.get(v2(tenant, ""), headers=tenant.headers, params=params)).json()
    by_day = {datetime.fromtimestamp(r["timestamp"], UTC).isoformat(): r["value"] for r in rows}
    # Local midnights: 22:00 UTC before the change, 23:00 UTC after it.
    assert by_day["2026-10-22T22:00:00+00:00"] == 1
    assert by_day["2026-10-25T23:00:00+00:00"] == 2
    assert sum(by_day.values()) == 3
    assert "2026-10-24T22:00:00+00:00" in by_day  # the 25-hour Sunday is one bucket
    response = await client.get(v2(tenant, ""), headers={**tenant.headers, "accept": "text/csv"}, params=params)
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert sum(int(r["value"]) for r in table) == 3


async def test_heatmap_counts_by_local_weekday_and_hour(history, client):
    tenant, _, _ = history
    body = (await client.get(v2(tenant, "/heatmap"), headers=tenant.headers,
                             params={**RANGE, "metric": "incoming_messages_count", "timezone": "Europe/Berlin"})).json()
    matrix = body["matrix"]
    assert matrix[4][16] == 1            # Friday 16:00
    assert (matrix[0][9], matrix[0][10], matrix[0][11]) == (1, 1, 1)  # Monday 09:30, 10:00, 11:00
    assert sum(map(sum, matrix)) == 4
    text = (await client.get(v2(tenant, "/heatmap"), headers={**tenant.headers, "accept": "text/csv"},
                             params={**RANGE, "metric": "incoming_messages_count"})).text
    assert text.splitlines()[0].startswith("weekday,h00")


async def test_facts_are_recorded_once_and_rebuild_gives_the_same_index(history, runtime):
    tenant, _, _ = history
    before = await facts(runtime, tenant.account_id)
    async with runtime.db.write_session() as session:
        assert await rebuild_account(session, tenant.account_id) == 0  # nothing missing
    assert await facts(runtime, tenant.account_id) == before
    async with runtime.db.write_session() as session:
        await session.execute(delete(ReportingEvent).where(ReportingEvent.account_id == tenant.account_id))
        await session.execute(delete(ReportingRollup).where(ReportingRollup.account_id == tenant.account_id))
    async with runtime.db.write_session() as session:
        assert await rebuild_account(session, tenant.account_id) == len(before)
    assert await facts(runtime, tenant.account_id) == before
    async with runtime.db.read_session() as session:
        total = await session.scalar(select(func.sum(ReportingRollup.count)).where(
            ReportingRollup.account_id == tenant.account_id, ReportingRollup.scope == "account"))
    assert total == len(before)


async def test_a_long_conversation_measures_each_wait_from_its_first_message(tenants, runtime, client, monkeypatch):
    """The live walk reads only the newest messages of an answered conversation when they
    hold the last reply; a wait longer than that window is still measured from its start,
    and the live index equals a rebuild from the whole history."""
    tenant = await tenants.new()
    inbox = await tenant.inbox("api")
    start = MON + timedelta(days=7)
    conversation = await contact_writes(runtime, inbox, "w0", start, "wes")
    display = await display_id(runtime, conversation)
    await reply(client, tenant, monkeypatch, display, start + timedelta(minutes=5))
    for i in range(25):  # answered replies in a row: each walk needs only the newest few
        await reply(client, tenant, monkeypatch, display, start + timedelta(minutes=6 + i))
    wait_start = start + timedelta(hours=1)
    for i in range(30):  # a wait of more messages than the short window
        await contact_writes(runtime, inbox, f"w{i + 1}", wait_start + timedelta(minutes=i), "wes")
    await reply(client, tenant, monkeypatch, display, wait_start + timedelta(hours=2))
    await contact_writes(runtime, inbox, "w99", wait_start + timedelta(hours=3), "wes")
    await reply(client, tenant, monkeypatch, display, wait_start + timedelta(hours=3, minutes=10))

    recorded = await facts(runtime, tenant.account_id)
    replies = sorted(value for name, value, _ in recorded.values() if name == "reply_time")
    assert replies == [300.0, 600.0, 7200.0]
    assert [value for name, value, _ in recorded.values() if name == "first_response"] == [300.0]
    assert sum(1 for name, _, _ in recorded.values() if name == "outgoing_message") == 28
    async with runtime.db.write_session() as session:
        await session.execute(delete(ReportingEvent).where(ReportingEvent.account_id == tenant.account_id))
        await session.execute(delete(ReportingRollup).where(ReportingRollup.account_id == tenant.account_id))
    async with runtime.db.write_session() as session:
        await rebuild_account(session, tenant.account_id)
    assert await facts(runtime, tenant.account_id) == recorded


async def test_reports_are_for_administrators_of_the_account(history, tenants, client):
    tenant, inbox, _ = history
    _, agent_token = await tenant.agent(inbox_ids=[inbox])
    response = await client.get(v2(tenant, "/summary"), headers={"api_access_token": agent_token})
    assert response.status_code == 403
    other = await tenants.new()
    response = await client.get(v2(tenant, "/summary"), headers=other.headers)
    assert response.status_code == 404
    response = await client.get(v2(tenant, ""), headers=tenant.headers, params={"metric": "nope"})
    assert response.status_code in (400, 422)


async def test_inbox_agent_team_and_label_scopes(history, runtime, client):
    tenant, inbox, ids = history
    await client.post(tenant.path(f"/conversations/{ids['b']}/labels"), headers=tenant.headers,
                      json={"labels": ["delivery"]})
    async def summary(**params):
        response = await client.get(v2(tenant, "/summary"), headers=tenant.headers, params={**RANGE, **params})
        assert response.status_code == 200, response.text
        return response.json()
    assert (await summary(type="inbox", id=str(inbox)))["incoming_messages_count"] == 4
    agent = await summary(type="agent", id=str(tenant.admin_id))
    assert agent["reply_time"] == pytest.approx((600 + 1200 + 1800 + 241200) / 4, abs=0.01)
    labelled = await summary(type="label", id="delivery")
    assert labelled["conversations_count"] == 1 and labelled["incoming_messages_count"] == 2
    assert labelled["resolutions_count"] == 1
    assert (await summary(type="inbox", id="999999"))["conversations_count"] == 0
    channels = (await client.get(v2(tenant, "/channels"), headers=tenant.headers, params=RANGE)).json()
    assert channels["payload"] == [{"channel_type": "api", "value": 4, "count": 4}]


def test_rebuild_command_prints_progress(history, settings, monkeypatch, capsys):
    """``postroom reports rebuild`` runs on the configured database, with a progress bar."""
    import app.config
    from app.cli import main

    tenant, _, _ = history
    monkeypatch.setenv("POSTROOM_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("POSTROOM_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("POSTROOM_SECRET_KEY", "test-secret-key")
    app.config.get_settings.cache_clear()
    try:
        assert main(["reports", "rebuild", "--account", str(tenant.account_id)]) == 0
    finally:
        app.config.get_settings.cache_clear()
    out = capsys.readouterr()
    assert f"account {tenant.account_id}: 0 reporting events added" in out.out
    assert "100% 3/3 conversations" in out.err

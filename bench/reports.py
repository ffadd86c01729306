"""Reports on PostgreSQL at scale: a 90-day daily report and the weekday-by-hour heat map.

    .venv/bin/python bench/reports.py [--conversations 1000000] [--events-per-conversation 10] [--runs 200]
    .venv/bin/python bench/reports.py --reuse     # measure the last loaded database again

Loads one account with ``--conversations`` conversations over the past year and
``events-per-conversation`` reporting events each (opened, 4 incoming, 3 outgoing, first
response, resolved: 10 M events for 1 M conversations) straight into the real schema
with ``generate_series`` (no ORM), builds the hourly roll-up from them with one
``INSERT … SELECT``, then measures with the app's own query code, ``--runs`` times each:

1. ``timeseries(avg_first_response_time, group_by=day)`` over the last 90 days;
2. ``heatmap(incoming_messages_count)`` over the last 90 days;
3. for comparison, the same daily report computed from the event index (no roll-up);
4. ``distribution`` (p50…p99) of first response over 90 days, from the event index.
Target (issue): p99 <= 200 ms for (1) and (2).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta

from _common import PG_SERVER, fresh_database, machine, median, percentile, save_results
from sqlalchemy import PrimaryKeyConstraint, func, select, text
from sqlalchemy.schema import AddConstraint, CreateIndex, DropConstraint, DropIndex

from app.config import normalize_database_url
from app.db import Database
from app.models import ReportingEvent, utcnow
from app.reports import queries

CHANNELS = ("line", "facebook", "email", "web_widget", "shopee", "lazada", "whatsapp", "telegram", "api", "tiktok_shop")
#: (name, seconds after the conversation opened, value in seconds) of each conversation's events.
EVENTS = (
    ("conversation_opened", 0, "0"), ("incoming_message", 0, "0"), ("first_response", 600, "60 + g % 3600"),
    ("outgoing_message", 600, "0"), ("incoming_message", 1800, "0"), ("outgoing_message", 2400, "0"),
    ("incoming_message", 3600, "0"), ("outgoing_message", 4200, "0"), ("incoming_message", 5400, "0"),
    ("conversation_resolved", 7200, "7200 + g % 86400"),
)


async def load(db: Database, conversations: int, per_conversation: int) -> None:
    """Bulk rows into the real schema; conversations spread evenly over the last 365 days."""
    now = utcnow()
    events = EVENTS[:per_conversation]
    async with db.engine.begin() as c:
        await c.execute(text("INSERT INTO accounts (id, name, locale, last_display_id, settings, created_at) "
                             "VALUES (1, 'bench', 'en', 0, '{}', now())"))
        for i, channel in enumerate(CHANNELS, start=1):
            await c.execute(text(
                "INSERT INTO inboxes (id, account_id, name, channel_type, identifier, settings, greeting_enabled, "
                "enable_auto_assignment, allow_messages_after_resolved, working_hours_enabled, timezone, created_at, "
                "updated_at) VALUES (:i, 1, :c, :c, :ident, '{}', false, true, true, false, 'UTC', now(), now())"),
                {"i": i, "c": channel, "ident": f"bench-{i}"})
        await c.execute(text(
            "INSERT INTO contacts (id, account_id, name, blocked, additional_attributes, custom_attributes, created_at, "
            "updated_at) SELECT g, 1, 'c' || g, false, '{}', '{}', now(), now() FROM generate_series(1, :n) g"),
            {"n": conversations})
        await c.execute(text(
            "INSERT INTO conversations (id, account_id, display_id, uuid, inbox_id, contact_id, status, last_activity_at, "
            "additional_attributes, custom_attributes, created_at, updated_at) "
            "SELECT g, 1, g, md5(g::text), 1 + g % 10, g, 'resolved', now(), '{}', '{}', "
            "CAST(:now AS timestamptz) - (g * (31536000.0 / :n)) * interval '1 second', now() "
            "FROM generate_series(1, :n) g"), {"n": conversations, "now": now})
    # Bulk load the way a restore would: the event table's indexes and constraints are
    # dropped before and built again after (the same definitions, from the model).
    table = ReportingEvent.__table__
    constraints = [c for c in table.constraints if not isinstance(c, PrimaryKeyConstraint)]
    async with db.engine.begin() as c:
        for index in table.indexes:
            await c.execute(DropIndex(index))
        for constraint in constraints:
            await c.execute(DropConstraint(constraint))
    for k, (name, offset, value) in enumerate(events):
        started = time.perf_counter()
        async with db.engine.begin() as c:
            await c.execute(text(
                "INSERT INTO reporting_events (account_id, inbox_id, conversation_id, user_id, team_id, name, key, value, "
                "value_in_business_hours, event_start_time, event_end_time, created_at) "
                f"SELECT 1, 1 + g % 10, g, 1 + g % 20, 1 + g % 4, '{name}', '{name}:' || g || '-{k}', {value}, "
                f"({value}) * 0.4, CAST(:now AS timestamptz) - (g * (31536000.0 / :n)) * interval '1 second', "
                f"CAST(:now AS timestamptz) - (g * (31536000.0 / :n) - {offset}) * interval '1 second', now() "
                "FROM generate_series(1, :n) g"), {"n": conversations, "now": now})
        print(f"  {name}: {conversations:,} events in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    async with db.engine.begin() as c:
        for index in table.indexes:
            await c.execute(CreateIndex(index))
        for constraint in constraints:
            await c.execute(AddConstraint(constraint))
    print(f"  indexes and constraints built in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    async with db.engine.begin() as c:
        for scope, column in (("account", "0"), ("inbox", "inbox_id"), ("agent", "user_id"), ("team", "team_id")):
            await c.execute(text(
                "INSERT INTO reporting_rollups (account_id, name, scope, scope_id, hour, count, value_sum, business_sum) "
                f"SELECT account_id, name, '{scope}', {column}, date_trunc('hour', event_end_time), count(*), sum(value), "
                "sum(value_in_business_hours) FROM reporting_events GROUP BY 1, 2, 3, 4, 5"))
    async with db.engine.connect() as c:
        await c.execution_options(isolation_level="AUTOCOMMIT")
        await c.execute(text("VACUUM ANALYZE reporting_events"))
        await c.execute(text("VACUUM ANALYZE reporting_rollups"))
    print(f"  roll-up built and vacuumed in {time.perf_counter() - started:.1f} s", flush=True)


async def timed(db: Database, runs: int, work) -> list[float]:
    """Milliseconds of ``runs`` calls of ``work(session)``, each in its own read session."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        async with db.read_session() as session:
            await work(session)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def daily_from_events(session, scope: queries.Scope, since, until) -> list:
    """The daily report the way a scan of the event index would compute it (the baseline)."""
    e = ReportingEvent
    day = func.date_trunc("day", e.event_end_time)
    return (await session.execute(select(day, func.count(), func.avg(e.value)).where(
        e.account_id == scope.account_id, e.name == "first_response", e.event_end_time >= since,
        e.event_end_time < until).group_by(day))).all()


async def main(args: argparse.Namespace, url: str) -> None:
    db = Database(url)
    started = time.perf_counter()
    if not args.reuse:
        await load(db, args.conversations, args.events_per_conversation)
    async with db.read_session() as session:
        total = await session.scalar(select(func.count()).select_from(ReportingEvent))
    print(f"{'reusing' if args.reuse else 'loaded'} {total:,} reporting events"
          + ("" if args.reuse else f" for {args.conversations:,} conversations in {time.perf_counter() - started:.1f} s"))
    until = utcnow()
    since = until - timedelta(days=90)
    scope = queries.Scope(1, timezone="Asia/Bangkok")
    daily = await timed(db, args.runs, lambda s: queries.timeseries(s, scope, "avg_first_response_time", since, until, "day"))
    heat = await timed(db, args.runs, lambda s: queries.heatmap(s, scope, "incoming_messages_count", since, until))
    inbox = await timed(db, args.runs, lambda s: queries.timeseries(
        s, queries.Scope(1, "inbox", 3, timezone="Asia/Bangkok"), "conversations_count", since, until, "day"))
    baseline = await timed(db, max(5, args.runs // 20), lambda s: daily_from_events(s, scope, since, until))
    spread = await timed(db, max(5, args.runs // 20), lambda s: queries.distribution(
        s, scope, "avg_first_response_time", since, until))
    figures = {name: {"median": round(median(v), 2), "p99": round(percentile(v, 99), 2), "runs": len(v)}
               for name, v in (("daily_90d", daily), ("heatmap_90d", heat), ("inbox_daily_90d", inbox),
                               ("daily_90d_from_events", baseline), ("percentiles_90d_from_events", spread))}
    for name, f in figures.items():
        print(f"{name}: median {f['median']:.2f} ms, p99 {f['p99']:.2f} ms ({f['runs']} runs)")
    print("target: daily_90d and heatmap_90d p99 <= 200 ms")
    save_results("reports", {"machine": machine(), "conversations": args.conversations, "events": total,
                             "figures": figures})
    await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--events-per-conversation", type=int, default=10, choices=range(1, 11))
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--reuse", action="store_true", help="measure the database loaded by the last run again")
    arguments = parser.parse_args()
    target = (normalize_database_url(PG_SERVER.rsplit("/", 1)[0] + "/postroom_bench_reports") if arguments.reuse
              else fresh_database("postgresql", "postroom_bench_reports"))
    asyncio.run(main(arguments, target))

"""SLA scheduler and risk view on PostgreSQL at scale.

    .venv/bin/python bench/sla.py [--conversations 1000000] [--risk-account 100000] [--breaches 10000]

Loads N open conversations with one running first-response clock each (bulk SQL into the
real schema; one account holds ``--risk-account`` of them), then measures, with the app's
own code:

1. a scheduler pass when nothing is due (``SlaScheduler.run_once``), median and p99 of 200;
2. emitting ``--breaches`` breaches due at the same second: wall time from the first pass
   at the due second until every one is breached and its ``sla.breached`` event written;
3. ``at_risk(within=6h)`` for the account of ``--risk-account`` open conversations, p50/p99 of 200.
Targets (issue): (1) <= 5 ms, (2) <= 2 s, (3) p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta

from _common import fresh_database, machine, median, percentile, save_results
from sqlalchemy import func, select, text

from app.db import Database
from app.models import Event, SlaClock, utcnow
from app.sla import reports
from app.sla.scheduler import SlaScheduler


async def load(db: Database, total: int, risk_account_size: int, breaches: int) -> None:
    """Bulk rows: accounts, inboxes, contacts, conversations, clocks (far due, a few soon)."""
    now = utcnow()
    async with db.engine.begin() as c:
        await c.execute(text("INSERT INTO accounts (id, name, locale, last_display_id, settings, created_at) "
                             "SELECT g, 'bench ' || g, 'en', 0, '{}', now() FROM generate_series(1, 11) g"))
        await c.execute(text("INSERT INTO inboxes (id, account_id, name, channel_type, identifier, settings, greeting_enabled, "
                             "enable_auto_assignment, allow_messages_after_resolved, working_hours_enabled, timezone, created_at, updated_at) "
                             "SELECT g, g, 'inbox', 'amazon', 'bench-' || g, '{}', false, true, true, false, 'UTC', now(), now() "
                             "FROM generate_series(1, 11) g"))
        # Account 1 holds the risk-view account's conversations; the rest spread over 2..11.
        await c.execute(text(
            "INSERT INTO contacts (id, account_id, name, blocked, additional_attributes, custom_attributes, created_at, updated_at) "
            "SELECT g, CASE WHEN g <= :r THEN 1 ELSE 2 + g % 10 END, 'c' || g, false, '{}', '{}', now(), now() "
            "FROM generate_series(1, :n) g"), {"n": total, "r": risk_account_size})
        await c.execute(text(
            "INSERT INTO conversations (id, account_id, display_id, uuid, inbox_id, contact_id, status, last_activity_at, "
            "additional_attributes, custom_attributes, created_at, updated_at, waiting_since, next_due_at) "
            "SELECT g, CASE WHEN g <= :r THEN 1 ELSE 2 + g % 10 END, g, md5(g::text), "
            "CASE WHEN g <= :r THEN 1 ELSE 2 + g % 10 END, g, 'open', CAST(:now AS timestamptz) - (g % 86400) * interval '1 second', '{}', '{}', "
            "CAST(:now AS timestamptz), CAST(:now AS timestamptz), CAST(:now AS timestamptz) - (g % 86400) * interval '1 second', CAST(:now AS timestamptz) + (g % 2592000 + 86400) * interval '1 second' "
            "FROM generate_series(1, :n) g"), {"n": total, "r": risk_account_size, "now": now})
        # Every clock due between 1 day and 31 days away: nothing due now.
        await c.execute(text(
            "INSERT INTO sla_clocks (account_id, inbox_id, conversation_id, kind, cycle, status, started_at, due_at, "
            "paused_seconds, threshold_seconds, warned, next_check_at) "
            "SELECT CASE WHEN g <= :r THEN 1 ELSE 2 + g % 10 END, CASE WHEN g <= :r THEN 1 ELSE 2 + g % 10 END, g, "
            "'amazon', 1, 'active', CAST(:now AS timestamptz), CAST(:now AS timestamptz) + (g % 2592000 + 86400) * interval '1 second', 0, 86400, 0, "
            "CAST(:now AS timestamptz) + (g % 2592000 + 86400 - 7200) * interval '1 second' FROM generate_series(1, :n) g"),
            {"n": total, "r": risk_account_size, "now": now})
        # The risk account: a share of its clocks due within the next six hours.
        await c.execute(text(
            "UPDATE sla_clocks SET due_at = CAST(:now AS timestamptz) + (conversation_id % 21600) * interval '1 second', warned = 3, "
            "next_check_at = CAST(:now AS timestamptz) + (conversation_id % 21600) * interval '1 second' "
            "WHERE conversation_id <= :r AND conversation_id % 20 = 0"), {"r": risk_account_size, "now": now + timedelta(hours=1)})
        await c.execute(text("ANALYZE"))


async def bench_idle(scheduler: SlaScheduler, runs: int = 200) -> list[float]:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        looked = await scheduler.run_once()
        timings.append((time.perf_counter() - started) * 1000)
        assert looked == 0, looked
    return timings


async def bench_breaches(db: Database, scheduler: SlaScheduler, count: int) -> dict[str, float]:
    due = utcnow() + timedelta(seconds=2)
    async with db.engine.begin() as c:
        await c.execute(text(
            "UPDATE sla_clocks SET due_at = CAST(:due AS timestamptz), next_check_at = CAST(:due AS timestamptz), warned = 3 "
            "WHERE id IN (SELECT id FROM sla_clocks WHERE account_id > 1 AND status = 'active' ORDER BY id LIMIT :n)"),
            {"due": due, "n": count})
    while utcnow() < due:
        await asyncio.sleep(0.001)
    started = time.perf_counter()
    passes = 0
    while await scheduler.run_once() > 0:
        passes += 1
    elapsed = time.perf_counter() - started
    async with db.read_session() as session:
        events = await session.scalar(select(func.count()).where(Event.event_type == "sla.breached"))
        breached = await session.scalar(select(func.count()).where(SlaClock.status == "breached"))
    assert events == breached == count, (events, breached, count)
    return {"breaches": count, "seconds": round(elapsed, 3), "passes": passes, "per_second": round(count / elapsed)}


async def bench_at_risk(db: Database, runs: int = 200) -> list[float]:
    timings = []
    for _ in range(runs):
        async with db.read_session() as session:
            started = time.perf_counter()
            rows = await reports.at_risk(session, 1, within=timedelta(hours=6), inbox_ids=None)
            timings.append((time.perf_counter() - started) * 1000)
    assert rows, "the risk account should have clocks due within 6 hours"
    return timings


async def main(args: argparse.Namespace, url: str) -> None:
    db = Database(url)
    started = time.perf_counter()
    await load(db, args.conversations, args.risk_account, args.breaches)
    print(f"loaded {args.conversations:,} open conversations with running clocks in {time.perf_counter() - started:.1f} s")
    scheduler = SlaScheduler(db)
    idle = await bench_idle(scheduler)
    print(f"scheduler pass, nothing due: median {median(idle):.2f} ms, p99 {percentile(idle, 99):.2f} ms  (target <= 5 ms)")
    risk = await bench_at_risk(db)
    print(f"at_risk(6h), account of {args.risk_account:,} open: p50 {median(risk):.2f} ms, p99 {percentile(risk, 99):.2f} ms  (target p99 <= 50 ms)")
    breaches = await bench_breaches(db, scheduler, args.breaches)
    print(f"{breaches['breaches']:,} breaches due at one second: {breaches['seconds']:.3f} s "
          f"({breaches['per_second']:,}/s, {breaches['passes']} passes)  (target <= 2 s)")
    save_results("sla", {"machine": machine(), "conversations": args.conversations,
                         "idle_ms": {"median": median(idle), "p99": percentile(idle, 99)},
                         "at_risk_ms": {"p50": median(risk), "p99": percentile(risk, 99)}, "breaches": breaches})
    await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--risk-account", type=int, default=100_000)
    parser.add_argument("--breaches", type=int, default=10_000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments, fresh_database("postgresql", "postroom_bench_sla")))

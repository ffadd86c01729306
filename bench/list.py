"""Conversation list latency on PostgreSQL at 10,000 and 1,000,000 conversations.

    .venv/bin/python bench/list.py                      # 10,000 and 1,000,000, 3 rounds of 200
    .venv/bin/python bench/list.py --sizes 10000 --requests 50 --rounds 1

For each size it builds a fresh database (``postroom_bench_list``, dropped and
re-created, migrated), makes the account, an administrator and four inboxes through the
services, then bulk-loads the rest with ``INSERT … SELECT generate_series`` into the real
schema: contacts and their identities, conversations spread over the inboxes (40% open,
45% resolved, 10% pending, 5% snoozed; a third assigned; last activity spread over a
year, not in id order), one to three messages per conversation (every conversation has
its customer's message; every fifth an agent's reply, every tenth an activity line after
it) and labels on some. Then VACUUM ANALYZE.

It calls the real app in-process (``httpx.ASGITransport``) as the administrator:

    GET /api/v1/accounts/{id}/conversations?status=open&inbox_id=X[&after=CURSOR]

* ``first page, counts``: no ``after``: OFFSET 0 and Chatwoot's count meta (mine,
  unassigned, assigned, all), which counts every open conversation of the inbox;
* ``first page, keyset``: ``after`` = a cursor before the newest row, so the first page
  through the keyset path, without the counts;
* ``second page``: ``after`` = the ``data.meta.next_cursor`` of the first page;
* ``after 50,000 rows``: ``after`` = ``encode_cursor`` of the 50,000th row of the list
  (checked once against an OFFSET query and by walking the cursors), so the page shows
  rows 50,001-50,025. Only where the list has that many rows.

Each is measured ``--requests`` times per round (kinds interleaved), after a warm-up;
p50/p99 per round and the median over rounds are printed, with the CPU time this process
(app and in-process client) spent per request, which a busy machine does not inflate the
way it inflates wall time. Then EXPLAIN (ANALYZE,
BUFFERS) of every statement one request of each kind issues, with the indexes used.
Targets: keyset pages p99 <= 20 ms at 1,000,000, and within 2x of the 10,000 figure.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (puts the project root on sys.path)

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy import event  # noqa: E402

from app.auth.service import create_account, create_user  # noqa: E402
from app.config import Settings  # noqa: E402
from app.main import create_app  # noqa: E402
from app.runtime import Runtime  # noqa: E402
from app.tickets.conversations import encode_cursor  # noqa: E402
from app.tickets.inboxes import create_inbox  # noqa: E402

DB_NAME = "postroom_bench_list"
DEEP = 50_000
TARGET_P99_MS = 20.0
INBOXES = 4


# --------------------------------------------------------------------------- data


async def _setup(runtime: Runtime) -> SimpleNamespace:
    async with runtime.db.write_session() as session:
        account = await create_account(session, "Bench")
        admin = await create_user(session, account.id, email="admin@bench.example", name="Admin",
                                  role="administrator", password=None)
        agents = [
            (await create_user(session, account.id, email=f"agent{i}@bench.example", name=f"Agent {i}")).user.id
            for i in range(2)
        ]
        inboxes = [
            (await create_inbox(session, runtime.box, account.id, name=f"Inbox {i}",
                                channel={"type": "email" if i == 0 else "api"})).id
            for i in range(INBOXES)
        ]
    return SimpleNamespace(account_id=account.id, token=admin.access_token, agents=agents, inboxes=inboxes)


LOAD_SQL = [
    # One contact per five conversations; each contact writes to one inbox.
    """
    INSERT INTO contacts (id, account_id, name, email, blocked, additional_attributes,
                          custom_attributes, last_activity_at, created_at, updated_at)
    SELECT c, {account}, 'Customer ' || c, 'customer' || c || '@bench.example', false,
           '{{}}', '{{}}', now(), now(), now()
    FROM generate_series(1, {contacts}) AS c
    """,
    """
    INSERT INTO contact_inboxes (id, contact_id, inbox_id, source_id, hmac_verified,
                                 pubsub_token, created_at)
    SELECT c, c, ({inboxes})[1 + c % {n_inboxes}], 'customer' || c || '@bench.example', false,
           md5('pubsub' || c), now()
    FROM generate_series(1, {contacts}) AS c
    """,
    # Conversation g belongs to contact 1 + g % contacts (and so to that contact's inbox);
    # last activity is spread over a year by a hash of g, so not in id order.
    """
    INSERT INTO conversations (id, account_id, display_id, uuid, inbox_id, contact_id,
                               contact_inbox_id, status, assignee_id, waiting_since,
                               last_activity_at, additional_attributes, custom_attributes,
                               created_at, updated_at)
    SELECT g, {account}, g, md5('conversation' || g)::uuid::text,
           ({inboxes})[1 + (1 + g % {contacts}) % {n_inboxes}], 1 + g % {contacts}, 1 + g % {contacts},
           CASE WHEN g % 20 < 8 THEN 'open' WHEN g % 20 < 17 THEN 'resolved'
                WHEN g % 20 < 19 THEN 'pending' ELSE 'snoozed' END,
           CASE g % 3 WHEN 0 THEN {agent0} WHEN 1 THEN {agent1} END,
           CASE WHEN g % 5 <> 0 THEN t END,
           t, '{{}}', '{{}}', t - interval '2 days', t
    FROM (SELECT g, timestamptz '2026-01-01' + ((g::bigint * 7919) % 31536000) * interval '1 second' AS t
          FROM generate_series(1, {n}) AS g) AS s
    """,
    # The customer's message, at the conversation's start or last activity.
    """
    INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content_type,
                          content, private, source_id, sender_type, sender_id, status, automatic,
                          content_attributes, additional_attributes, created_at, updated_at)
    SELECT account_id, inbox_id, id, 'incoming', 'text', 'Hello, where is my order ' || id || '?',
           false, 'src-' || id, 'contact', contact_id, 'sent', false, '{{}}', '{{}}',
           CASE WHEN id % 5 = 0 THEN last_activity_at - interval '1 hour' ELSE last_activity_at END,
           last_activity_at
    FROM conversations ORDER BY id
    """,
    # Every fifth: an agent's reply at the last activity …
    """
    INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content_type,
                          content, private, sender_type, sender_id, status, automatic,
                          content_attributes, additional_attributes, created_at, updated_at)
    SELECT account_id, inbox_id, id, 'outgoing', 'text', 'Your order ' || id || ' ships today.',
           false, 'user', {agent0}, 'sent', false, '{{}}', '{{}}', last_activity_at, last_activity_at
    FROM conversations WHERE id % 5 = 0 ORDER BY id
    """,
    # … and every tenth an activity line after it (not shown as the last message).
    """
    INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content_type,
                          content, private, status, automatic, content_attributes,
                          additional_attributes, created_at, updated_at)
    SELECT account_id, inbox_id, id, 'activity', 'text', 'Conversation was marked pending',
           false, 'sent', false, '{{}}', '{{}}', last_activity_at, last_activity_at
    FROM conversations WHERE id % 10 = 0 ORDER BY id
    """,
    """
    INSERT INTO conversation_labels (conversation_id, label)
    SELECT id, 'vip' FROM conversations WHERE id % 5 = 1
    UNION ALL SELECT id, 'billing' FROM conversations WHERE id % 7 = 2
    """,
    "SELECT setval(pg_get_serial_sequence('contacts', 'id'), {contacts})",
    "SELECT setval(pg_get_serial_sequence('contact_inboxes', 'id'), {contacts})",
    "SELECT setval(pg_get_serial_sequence('conversations', 'id'), {n})",
    "UPDATE accounts SET last_display_id = {n} WHERE id = {account}",
]


async def load(dsn: str, ctx: SimpleNamespace, n: int) -> float:
    """Bulk-load ``n`` conversations; returns the seconds it took (with VACUUM ANALYZE)."""
    started = time.perf_counter()
    values = {
        "account": ctx.account_id, "n": n, "contacts": max(1, n // 5), "n_inboxes": INBOXES,
        "inboxes": "ARRAY[" + ",".join(map(str, ctx.inboxes)) + "]::bigint[]",
        "agent0": ctx.agents[0], "agent1": ctx.agents[1],
    }
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET synchronous_commit = off; SET maintenance_work_mem = '256MB'")
        for sql in LOAD_SQL:
            await conn.execute(sql.format(**values))
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


# --------------------------------------------------------------------------- requests


class Recorder:
    """Captures the SQL an engine sends while switched on."""

    def __init__(self, engine: Any) -> None:
        self.on = False
        self.statements: list[tuple[str, Any]] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if self.on:
            self.statements.append((statement, parameters))


def _ms(values: list[float], p: float) -> float:
    return _common.percentile(values, p) * 1000


async def measure(n: int, args: argparse.Namespace) -> dict[str, Any]:
    url = await asyncio.to_thread(_common.fresh_database, "postgresql", DB_NAME)
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    data_dir = Path(tempfile.mkdtemp(prefix="postroom-bench-list-"))
    settings = Settings(database_url=url, data_dir=data_dir, secret_key="bench", log_level="WARNING")
    runtime = Runtime.from_settings(settings)
    recorder = Recorder(runtime.db.engine)
    try:
        ctx = await _setup(runtime)
        load_seconds = await load(dsn, ctx, n)
        inbox = ctx.inboxes[0]
        conn = await asyncpg.connect(dsn)
        try:
            listed = await conn.fetchval(
                "SELECT count(*) FROM conversations WHERE account_id = $1 AND inbox_id = $2 AND status = 'open'",
                ctx.account_id, inbox)
            deep_row = None
            if listed >= DEEP + 25:
                deep_row = await conn.fetchrow(
                    "SELECT id, last_activity_at FROM conversations WHERE account_id = $1 AND inbox_id = $2 "
                    "AND status = 'open' ORDER BY last_activity_at DESC, id DESC OFFSET $3 LIMIT 26",
                    ctx.account_id, inbox, DEEP - 1)
                expected_deep = [r["id"] for r in await conn.fetch(
                    "SELECT id FROM conversations WHERE account_id = $1 AND inbox_id = $2 AND status = 'open' "
                    "ORDER BY last_activity_at DESC, id DESC OFFSET $3 LIMIT 25", ctx.account_id, inbox, DEEP)]
            size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('conversations'))")
            message_count = await conn.fetchval("SELECT count(*) FROM messages")
        finally:
            await conn.close()
        print(f"\n== {n:,} conversations (loaded in {load_seconds:.0f}s, conversations table {size}, "
              f"{message_count:,} messages); the list: {listed:,} open conversations in inbox {inbox}", flush=True)

        app = create_app(settings, runtime=runtime)
        headers = {"api_access_token": ctx.token}
        path = f"/api/v1/accounts/{ctx.account_id}/conversations"
        base = {"status": "open", "inbox_id": str(inbox)}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
            async def get(params: dict[str, str]) -> dict[str, Any]:
                response = await client.get(path, params=params, headers=headers)
                response.raise_for_status()
                return response.json()

            first = await get(base)
            next_cursor = first["data"]["meta"]["next_cursor"]
            top = encode_cursor(SimpleNamespace(last_activity_at=datetime(9999, 1, 1, tzinfo=UTC), id=2**62))
            kinds: dict[str, dict[str, str]] = {
                "first page, counts": base,
                "first page, keyset": {**base, "after": top},
                "second page": {**base, "after": next_cursor},
            }
            keyset_first = await get(kinds["first page, keyset"])
            assert [c["id"] for c in keyset_first["data"]["payload"]] == [c["id"] for c in first["data"]["payload"]]
            assert "all_count" in first["data"]["meta"] and "all_count" not in keyset_first["data"]["meta"]
            if deep_row is not None:
                deep_cursor = encode_cursor(SimpleNamespace(last_activity_at=deep_row["last_activity_at"],
                                                            id=deep_row["id"]))
                kinds[f"after {DEEP:,} rows"] = {**base, "after": deep_cursor}
                page = await get(kinds[f"after {DEEP:,} rows"])
                got = [c["id"] for c in page["data"]["payload"]]  # display id == id in this data
                assert got == expected_deep, "the deep cursor does not land on row 50,001"
                if args.walk:
                    cursor, seen, started = next_cursor, 25, time.perf_counter()
                    while seen < DEEP:
                        cursor = (await get({**base, "after": cursor}))["data"]["meta"]["next_cursor"]
                        seen += 25
                    walked = time.perf_counter() - started
                    assert cursor == deep_cursor, "walking the cursors ends elsewhere"
                    print(f"walked {DEEP // 25 - 1:,} pages by next_cursor in {walked:.1f}s: "
                          f"same cursor as encode_cursor(row {DEEP:,})", flush=True)

            for params in kinds.values():  # warm-up
                for _ in range(args.warmup):
                    await get(params)
            rounds: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
            for number in range(args.rounds):
                samples: dict[str, list[float]] = {kind: [] for kind in kinds}
                cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
                for _ in range(args.requests):
                    for kind, params in kinds.items():
                        started, cpu_started = time.perf_counter(), time.process_time()
                        await get(params)
                        samples[kind].append(time.perf_counter() - started)
                        cpu[kind].append(time.process_time() - cpu_started)
                for kind, values in samples.items():
                    rounds[kind].append({"p50": _ms(values, 50), "p99": _ms(values, 99),
                                         "mean": 1000 * sum(values) / len(values),
                                         "cpu_p50": _ms(cpu[kind], 50), "cpu_p99": _ms(cpu[kind], 99)})
                    print(f"round {number + 1} {kind:<22} p50 {_ms(values, 50):6.1f} ms  "
                          f"p99 {_ms(values, 99):6.1f} ms  ({len(values)} requests; this process's CPU "
                          f"per request p50 {_ms(cpu[kind], 50):.1f} p99 {_ms(cpu[kind], 99):.1f} ms)", flush=True)

            explains = {}
            if args.explain:
                for kind, params in kinds.items():
                    recorder.statements.clear()
                    recorder.on = True
                    await get(params)
                    recorder.on = False
                    explains[kind] = await explain(dsn, list(recorder.statements))
        return {
            "conversations": n, "listed": listed, "load_seconds": load_seconds,
            "kinds": {kind: {"p50": _common.median([r["p50"] for r in rs]),
                             "p99": _common.median([r["p99"] for r in rs]),
                             "cpu_p50": _common.median([r["cpu_p50"] for r in rs]),
                             "cpu_p99": _common.median([r["cpu_p99"] for r in rs]), "rounds": rs}
                      for kind, rs in rounds.items()},
            "explain": explains,
        }
    finally:
        await runtime.db.dispose()


async def explain(dsn: str, statements: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement, with the indexes its plan uses."""
    out = []
    conn = await asyncpg.connect(dsn)
    try:
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *(parameters or ()))
            plan = "\n".join(r[0] for r in rows)
            indexes = sorted(set(re.findall(r"(?:Index(?: Only)? Scan(?: Backward)? using|Bitmap Index Scan on) (\w+)", plan)))
            seq = sorted(set(re.findall(r"Seq Scan on (\w+)", plan)))
            took = re.search(r"Execution Time: ([\d.]+) ms", plan)
            out.append({"sql": " ".join(statement.split()), "indexes": indexes, "seq_scans": seq,
                        "execution_ms": float(took.group(1)) if took else None, "plan": plan})
    finally:
        await conn.close()
    return out


def _summary_sql(sql: str) -> str:
    """A short name for a statement: the table(s) it reads."""
    head = re.sub(r"SELECT .*? FROM", "SELECT … FROM", sql, count=1)
    return head[:110]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--requests", type=int, default=200, help="requests per kind per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--no-explain", dest="explain", action="store_false")
    parser.add_argument("--walk", action="store_true", help="also walk the cursors to row 50,000 once")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    print(f"list benchmark; machine {_common.machine()}", flush=True)

    results = [asyncio.run(measure(int(size), args)) for size in args.sizes.split(",")]

    print("\nmedian over rounds (ms)")
    print(f"{'conversations':>13}  {'request':<22}{'p50':>8}{'p99':>8}{'cpu p50':>9}{'cpu p99':>9}")
    for r in results:
        for kind, v in r["kinds"].items():
            print(f"{r['conversations']:>13,}  {kind:<22}{v['p50']:>8.1f}{v['p99']:>8.1f}"
                  f"{v['cpu_p50']:>9.1f}{v['cpu_p99']:>9.1f}")
    if len(results) >= 2:
        small, big = results[0], results[-1]
        print(f"\ntargets at {big['conversations']:,}: keyset pages p99 <= {TARGET_P99_MS:.0f} ms and "
              f"within 2x of {small['conversations']:,}")
        for kind, v in big["kinds"].items():
            ref_kind = kind if kind in small["kinds"] else "first page, keyset"
            ref = small["kinds"][ref_kind]["p99"]
            keyset = kind != "first page, counts"
            verdict = (f"p99 <= {TARGET_P99_MS:.0f} ms: {'met' if v['p99'] <= TARGET_P99_MS else 'MISSED'}; "
                       f"within 2x: {'met' if v['p99'] <= 2 * ref else 'MISSED'}") if keyset \
                else "(not a keyset page: counts every open conversation of the inbox)"
            print(f"  {kind:<22} p99 {v['p99']:6.1f} ms vs {ref:6.1f} ms ({ref_kind} at "
                  f"{small['conversations']:,}): x{v['p99'] / ref:.2f}  {verdict}")
    for r in results:
        for kind, statements in r["explain"].items():
            print(f"\nEXPLAIN ANALYZE at {r['conversations']:,} — {kind}:")
            for s in statements:
                print(f"  {s['execution_ms']:7.3f} ms  indexes {', '.join(s['indexes']) or '-'}"
                      f"{'  SEQ SCAN ' + ', '.join(s['seq_scans']) if s['seq_scans'] else ''}\n"
                      f"             {_summary_sql(s['sql'])}")
    if not args.no_save:
        path = _common.save_results("list", {"args": vars(args), "machine": _common.machine(), "results": results})
        print(f"\nresults written to {path.relative_to(_common.ROOT)} (with the full plans)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Ingest throughput: the real ingest path against plain SQL inserting the same rows.

    .venv/bin/python bench/ingest.py                      # 20,000 messages, 3 runs, both databases
    .venv/bin/python bench/ingest.py --messages 2000 --runs 1 --databases sqlite

For every run, database (SQLite file / PostgreSQL) and mode (one message per
transaction / 100 per transaction) it measures, each on a FRESH migrated database:

* ``app``: ``app.tickets.ingest.ingest_messages(db, chunk)`` for every chunk, the
  path every connector uses (duplicate check, identity and thread lookups, clocks,
  display ids, events with their JSON payloads, advisory lock on PostgreSQL);
* ``baseline``: the same rows (contacts, contact_inboxes, conversations, messages,
  events) inserted with SQLAlchemy Core through the same engine and driver, one
  ``INSERT … RETURNING id`` per row, one row-set (message) per transaction or 100 per
  transaction. Everything the app has to look up is precomputed in Python and the
  event payloads are prebuilt, so the baseline is the bare cost of the writes.

The two sides run on two fresh databases at the same time, taking turns every 500
messages (``--slice``), so that both see the same load on a shared machine. It prints
messages/s for each and app/baseline, then the medians over the runs (the ratio is
taken per run).
Targets: one-per-transaction >= 0.35 of baseline, batched >= 0.50, on both databases.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (puts the project root on sys.path)

from sqlalchemy import func, insert, select  # noqa: E402

import app.db as app_db  # noqa: E402
from app.auth.secrets_box import SecretsBox  # noqa: E402
from app.auth.service import create_account  # noqa: E402
from app.db import Database  # noqa: E402
from app.models import Contact, ContactInbox, Conversation, Event, Message  # noqa: E402
from app.tickets.inboxes import create_inbox  # noqa: E402
from app.tickets.ingest import ingest_messages  # noqa: E402
from connectors.base import InboundMessage, SenderIdentity  # noqa: E402

TARGETS = {"single": 0.35, "batch": 0.50}
WORDS = (
    "order refund shipping delayed parcel tracking invoice please help thanks hello "
    "size colour wrong item received damaged box return label address change payment"
).split()


# --------------------------------------------------------------------------- workload


@dataclass
class Workload:
    """The messages, and the row-sets a hand-written ingest would insert for them."""

    messages: list[InboundMessage]
    plan: list[dict[str, Any]] = field(default_factory=list)
    senders: int = 0
    conversations: int = 0


def make_workload(
    n: int, account_id: int, chat_inbox: int, email_inbox: int, seed: int = 7, start: datetime | None = None
) -> Workload:
    """A realistic mix: ~2,000 senders (n/10 when smaller), 70% on a chat inbox (one
    conversation per contact, ~10% echoes of agents' replies on the platform), 30% on an
    e-mail inbox (1-3 threads per sender, thread keys, In-Reply-To, subject, HTML)."""
    rng = random.Random(seed)
    n_senders = max(2, min(2000, n // 10))
    n_email = max(1, int(n_senders * 0.3))
    senders = []
    for i in range(n_senders):
        if i < n_email:
            address = f"customer{i}@mail{i % 97}.example"
            senders.append(("email", address, f"Customer {i}", address, rng.randint(1, 3)))
        else:
            senders.append(("chat", str(100000000 + i * 7919), f"Chat user {i}", None, 1))
    start = start or datetime.now(UTC) - timedelta(days=10)
    step = timedelta(days=9) / n
    seen_senders: set[str] = set()
    last_in_thread: dict[str, str] = {}
    messages = []
    for i in range(n):
        kind, source, name, email, threads = senders[rng.randrange(n_senders)]
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 50)))
        sent_at = start + step * i
        sender = SenderIdentity(source_id=source, name=name, email=email,
                                attributes={"locale": "th"} if kind == "chat" else {})
        if kind == "chat":
            echo = source in seen_senders and rng.random() < 0.10
            messages.append(InboundMessage(
                inbox_id=chat_inbox, source_id=f"chat-{i}", sender=sender, text=text,
                sent_at=sent_at, direction="outgoing" if echo else "incoming",
                metadata={"update_id": 500000 + i},
            ))
        else:
            root = f"<t{rng.randrange(threads)}.{source}>"
            previous = last_in_thread.get(root)
            mid = f"<m{i}.{source}>"
            messages.append(InboundMessage(
                inbox_id=email_inbox, source_id=mid, sender=sender, text=text,
                html=f"<p>{text}</p>", subject=("Re: " if previous else "") + f"Question {root}",
                sent_at=sent_at, thread_key=root, in_reply_to=[previous] if previous else [],
                metadata={"headers": {"Message-ID": mid, "From": email}},
            ))
            last_in_thread[root] = mid
        seen_senders.add(source)
    workload = Workload(messages)
    _plan(workload, account_id)
    return workload


def _plan(w: Workload, account_id: int) -> None:
    """Row-sets for the baseline: what is new for each message, with its column values."""
    contacts: set[tuple[int, str]] = set()
    conversations: set[tuple] = set()
    display_id = 0
    for m in w.messages:
        sender_key = (m.inbox_id, m.sender.source_id)
        conv_key = (m.inbox_id, "thread", m.thread_key) if m.thread_key else (m.inbox_id, "ci", m.sender.source_id)
        incoming = m.direction == "incoming"
        step: dict[str, Any] = {"sender": sender_key, "conversation": conv_key}
        if sender_key not in contacts:
            contacts.add(sender_key)
            step["contact"] = {
                "account_id": account_id, "name": m.sender.name, "email": m.sender.email,
                "phone_number": None, "avatar_url": None, "blocked": False,
                "additional_attributes": dict(m.sender.attributes), "custom_attributes": {},
                "last_activity_at": m.sent_at, "created_at": m.sent_at, "updated_at": m.sent_at,
            }
            step["contact_inbox"] = {
                "inbox_id": m.inbox_id, "source_id": m.sender.source_id, "hmac_verified": False,
                "pubsub_token": uuid.uuid4().hex, "created_at": m.sent_at,
            }
        if conv_key not in conversations:
            conversations.add(conv_key)
            display_id += 1
            step["conversation_row"] = {
                "account_id": account_id, "display_id": display_id, "uuid": str(uuid.uuid4()),
                "inbox_id": m.inbox_id, "status": "open", "thread_key": m.thread_key,
                "last_activity_at": m.sent_at, "waiting_since": m.sent_at if incoming else None,
                "first_reply_created_at": None if incoming else m.sent_at,
                "additional_attributes": {"mail_subject": m.subject} if m.subject else {},
                "custom_attributes": {}, "created_at": m.sent_at, "updated_at": m.sent_at,
            }
        additional: dict[str, Any] = {}
        if m.subject:
            additional["subject"] = m.subject
        if m.in_reply_to:
            additional["in_reply_to"] = m.in_reply_to
        if m.metadata:
            additional["metadata"] = m.metadata
        step["message"] = {
            "account_id": account_id, "inbox_id": m.inbox_id,
            "message_type": "incoming" if incoming else "outgoing",
            "content_type": "incoming_email" if m.html else "text",
            "content": m.text, "html_content": m.html, "private": False, "source_id": m.source_id,
            "sender_type": "contact" if incoming else None, "status": "sent",
            "automatic": False, "content_attributes": {} if incoming else {"external_echo": True},
            "additional_attributes": additional, "created_at": m.sent_at, "updated_at": m.sent_at,
        }
        step["events"] = (
            (["contact.created"] if "contact" in step else [])
            + (["conversation.created"] if "conversation_row" in step else [])
            + ["message.created"]
        )
        w.plan.append(step)
    w.senders = len(contacts)
    w.conversations = len(conversations)


def _payload(kind: str, step: dict[str, Any]) -> dict[str, Any]:
    """An event payload of the same shape and size as the app's."""
    msg = step["message"]
    message = {
        "id": 0, "content": msg["content"], "content_type": msg["content_type"],
        "content_attributes": msg["content_attributes"], "additional_attributes": msg["additional_attributes"],
        "html_content": msg["html_content"], "message_type": 0, "created_at": 1700000000,
        "updated_at": 1700000000, "private": False, "status": "sent", "external_error": None,
        "source_id": msg["source_id"], "automatic": False, "conversation_id": 1, "inbox_id": msg["inbox_id"],
        "account_id": msg["account_id"], "sender_type": msg["sender_type"], "sender_id": 1,
        "sender": _contact_body(step), "attachments": [], "external_source_ids": {},
    }
    if kind == "message.created":
        message["conversation"] = {k: None for k in (
            "id", "inbox_id", "status", "assignee_id", "team_id", "contact_id",
            "waiting_since", "first_reply_created_at", "last_activity_at")}
        return message
    if kind == "contact.created":
        return _contact_body(step)
    body = {k: None for k in (
        "id", "display_id", "account_id", "inbox_id", "contact_id", "priority", "assignee_id",
        "team_id", "snoozed_until", "waiting_since", "first_reply_created_at", "agent_last_seen_at",
        "contact_last_seen_at", "last_activity_at", "timestamp", "created_at", "updated_at")}
    body.update({
        "uuid": str(uuid.uuid4()), "status": "open", "labels": [], "additional_attributes": {},
        "custom_attributes": {}, "can_reply": True, "muted": False, "unread_count": 0,
        "thread_key": step["conversation"][2], "contact_inbox": {"source_id": step["sender"][1], "pubsub_token": None},
        "messages": [message], "last_non_activity_message": message,
        "meta": {"sender": _contact_body(step), "channel": "Channel::Api", "assignee": None, "team": None,
                 "hmac_verified": False},
        "contact": _contact_body(step), "inbox": {"id": 1, "name": "inbox", "channel_id": 1, "channel_type": "Channel::Api"},
    })
    return body


def _contact_body(step: dict[str, Any]) -> dict[str, Any]:
    return {"id": 1, "name": step["sender"][1], "email": None, "phone_number": None, "identifier": None,
            "thumbnail": "", "avatar_url": "", "blocked": False, "availability_status": "offline",
            "type": "contact", "additional_attributes": {}, "custom_attributes": {},
            "last_activity_at": 1700000000, "created_at": 1700000000}


# --------------------------------------------------------------------------- runs


async def _setup(url: str) -> tuple[int, int, int]:
    db = Database(url)
    try:
        box = SecretsBox(b"key")
        async with db.write_session() as session:
            account = await create_account(session, "Bench")
            chat = await create_inbox(session, box, account.id, name="Telegram", channel={"type": "telegram"})
            email = await create_inbox(session, box, account.id, name="Support mail",
                                       channel={"type": "email", "email": "support@example.com"})
        return account.id, chat.id, email.id
    finally:
        await db.dispose()


async def _counts(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        async with db.read_session() as session:
            return {
                model.__tablename__: await session.scalar(select(func.count()).select_from(model))
                for model in (Contact, ContactInbox, Conversation, Message, Event)
            }
    finally:
        await db.dispose()


class AppSide:
    """The real ingest path."""

    def __init__(self, url: str, workload: Workload, batch: int) -> None:
        self.db = Database(url)
        self.messages = workload.messages
        self.batch = batch

    async def warm(self) -> None:
        await ingest_messages(self.db, [])  # open the pool's connection outside the clock

    async def run(self, lo: int, hi: int) -> None:
        for i in range(lo, hi, self.batch):
            await ingest_messages(self.db, self.messages[i:min(i + self.batch, hi)])


class BaselineSide:
    """The same rows by plain INSERTs (SQLAlchemy Core), lookups precomputed."""

    def __init__(self, url: str, workload: Workload, batch: int) -> None:
        self.db = Database(url)
        self.plan = workload.plan
        self.batch = batch
        contacts, cis, convs = Contact.__table__, ContactInbox.__table__, Conversation.__table__
        self.ins_contact = insert(contacts).returning(contacts.c.id)
        self.ins_ci = insert(cis).returning(cis.c.id)
        self.ins_conv = insert(convs).returning(convs.c.id)
        self.ins_msg = insert(Message.__table__).returning(Message.__table__.c.id)
        self.ins_events = insert(Event.__table__)
        # Prebuilt outside the clock: the payloads the app builds and serialises.
        self.payloads = [[(kind, _payload(kind, step)) for kind in step["events"]] for step in self.plan]
        self.ids: dict[tuple, tuple[int, int]] = {}
        self.conv_ids: dict[tuple, int] = {}

    async def warm(self) -> None:
        async with self.db.engine.connect() as conn:
            await conn.rollback()

    async def run(self, lo: int, hi: int) -> None:
        token = app_db._write_mode.set(True)  # BEGIN IMMEDIATE on SQLite, as the app's writes
        try:
            for start in range(lo, hi, self.batch):
                async with self.db.engine.begin() as conn:
                    for index in range(start, min(start + self.batch, hi)):
                        await self._row_set(conn, index)
        finally:
            app_db._write_mode.reset(token)

    async def _row_set(self, conn: Any, index: int) -> None:
        step = self.plan[index]
        if "contact" in step:
            contact_id = (await conn.execute(self.ins_contact, step["contact"])).scalar_one()
            ci_id = (await conn.execute(self.ins_ci, {**step["contact_inbox"], "contact_id": contact_id})).scalar_one()
            self.ids[step["sender"]] = (contact_id, ci_id)
        contact_id, ci_id = self.ids[step["sender"]]
        if "conversation_row" in step:
            self.conv_ids[step["conversation"]] = (await conn.execute(self.ins_conv, {
                **step["conversation_row"], "contact_id": contact_id, "contact_inbox_id": ci_id,
            })).scalar_one()
        conversation_id = self.conv_ids[step["conversation"]]
        message = step["message"]
        await conn.execute(self.ins_msg, {
            **message, "conversation_id": conversation_id,
            "sender_id": contact_id if message["sender_type"] else None,
        })
        now = datetime.now(UTC)
        await conn.execute(self.ins_events, [
            {"account_id": message["account_id"], "inbox_id": message["inbox_id"],
             "conversation_id": conversation_id, "event_type": kind, "payload": body, "created_at": now}
            for kind, body in self.payloads[index]
        ])


async def _interleaved(sides: dict[str, Any], n: int, slice_size: int,
                       profile: cProfile.Profile | None) -> dict[str, float]:
    """Run the sides slice by slice, alternating which goes first, so that both see the
    same machine load; returns each side's total time on the clock."""
    for side in sides.values():
        await side.warm()
    elapsed = dict.fromkeys(sides, 0.0)
    names = list(sides)
    for number, lo in enumerate(range(0, n, slice_size)):
        hi = min(lo + slice_size, n)
        for name in names if number % 2 == 0 else list(reversed(names)):
            if profile and name == "app":
                profile.enable()
            started = time.perf_counter()
            await sides[name].run(lo, hi)
            elapsed[name] += time.perf_counter() - started
            if profile and name == "app":
                profile.disable()
    for side in sides.values():
        await side.db.dispose()
    return elapsed


def trial(kind: str, which: list[str], n: int, batch: int, slice_size: int,
          profile: cProfile.Profile | None) -> tuple[dict[str, float], dict[str, dict[str, int]]]:
    """One measurement, each side on its own fresh database; (messages/s, row counts) by side."""
    urls = {name: _common.fresh_database(kind, f"postroom_bench_{name}") for name in which}
    try:
        sides: dict[str, Any] = {}
        for name, url in urls.items():
            account_id, chat, email = asyncio.run(_setup(url))
            workload = make_workload(n, account_id, chat, email)
            sides[name] = (AppSide if name == "app" else BaselineSide)(url, workload, batch)
        elapsed = asyncio.run(_interleaved(sides, n, slice_size, profile))
        counts = {name: asyncio.run(_counts(url)) for name, url in urls.items()}
        return {name: n / seconds for name, seconds in elapsed.items()}, counts
    finally:
        for url in urls.values():
            if kind == "sqlite":
                _common.drop_sqlite(url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=100, help="messages per transaction in batch mode")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--modes", default="single,batch")
    parser.add_argument("--slice", type=int, default=500,
                        help="app and baseline take turns every this many messages")
    parser.add_argument("--only", choices=("app", "baseline"), help="measure one side only")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the app runs into FILE (.prof)")
    parser.add_argument("--no-save", action="store_true", help="don't write bench/results/*.json")
    args = parser.parse_args()

    databases = args.databases.split(",")
    modes = args.modes.split(",")
    sides = [args.only] if args.only else ["baseline", "app"]
    profile = cProfile.Profile() if args.profile else None
    print(f"ingest benchmark: {args.messages} messages, batch {args.batch}, {args.runs} run(s); "
          f"machine {_common.machine()}", flush=True)
    sample = make_workload(args.messages, 1, 1, 2)
    print(f"workload: {sample.senders} senders, {sample.conversations} conversations, "
          f"{sum(m.thread_key is not None for m in sample.messages)} messages with a thread key, "
          f"{sum(m.direction == 'outgoing' for m in sample.messages)} echoes", flush=True)

    rates: dict[tuple[str, str, str], list[float]] = {}
    ratios: dict[tuple[str, str], list[float]] = {}
    for run in range(args.runs):
        for kind in databases:
            for mode in modes:
                batch = 1 if mode == "single" else args.batch
                got, counts = trial(kind, sides, args.messages, batch, args.slice, profile)
                for which in sides:
                    rates.setdefault((kind, mode, which), []).append(got[which])
                    print(f"run {run + 1} {kind:<10} {mode:<6} {which:<8} {got[which]:8.0f} msg/s  "
                          f"rows {counts[which]}", flush=True)
                if len(got) == 2:
                    ratio = got["app"] / got["baseline"]
                    ratios.setdefault((kind, mode), []).append(ratio)
                    print(f"run {run + 1} {kind:<10} {mode:<6} app/baseline {ratio:.2f}", flush=True)

    print("\nmedians over runs (messages/s; ratio = median of per-run app/baseline)")
    print(f"{'database':<11}{'mode':<8}{'baseline':>10}{'app':>10}{'ratio':>8}{'target':>8}  met")
    summary = []
    for kind in databases:
        for mode in modes:
            base = _common.median(rates.get((kind, mode, "baseline"), []))
            app = _common.median(rates.get((kind, mode, "app"), []))
            ratio = _common.median(ratios.get((kind, mode), []))
            target = TARGETS[mode]
            met = "yes" if ratio >= target else ("no" if ratio == ratio else "-")
            print(f"{kind:<11}{mode:<8}{base:>10.0f}{app:>10.0f}{ratio:>8.2f}{target:>8.2f}  {met}")
            summary.append({"database": kind, "mode": mode, "baseline": base, "app": app, "ratio": ratio,
                            "target": target, "runs_baseline": rates.get((kind, mode, "baseline"), []),
                            "runs_app": rates.get((kind, mode, "app"), []),
                            "runs_ratio": ratios.get((kind, mode), [])})
    if profile:
        profile.dump_stats(args.profile)
        print(f"profile written to {args.profile}")
    if not args.no_save:
        path = _common.save_results("ingest", {"args": vars(args), "machine": _common.machine(), "summary": summary})
        print(f"results written to {path.relative_to(_common.ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Turning the event log into delivery rows, exactly once.

One row in ``dispatch_cursors`` remembers the last event turned into deliveries. A
pass locks it (``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serializes
writers anyway), reads the next events, inserts a delivery per (webhook, event name)
and moves the cursor, all in one transaction, so several processes never create a
delivery twice and a crash in between creates none.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Row, Select, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.models import Account, AgentBot, AgentBotInbox, DispatchCursor, Event, Webhook, WebhookDelivery, utcnow
from app.webhooks.events import ACCOUNT_EVENTS, is_bot_relevant, webhook_names, webhook_payload

CURSOR = "webhooks"
BATCH = 500
#: What fan-out reads of an event (rows, not ORM objects: cheaper to load).
EVENT_COLUMNS = (Event.seq, Event.account_id, Event.inbox_id, Event.conversation_id, Event.event_type,
                 Event.payload, Event.created_at)
# Statements are built once (a pass runs for every wake-up; building them cost more than running them).
_EVENTS = select(*EVENT_COLUMNS).where(Event.seq > bindparam("after")).order_by(Event.seq).limit(BATCH)
_WEBHOOKS = select(Webhook).where(Webhook.account_id.in_(bindparam("accounts", expanding=True)),
                                  Webhook.active.is_(True))
_ACCOUNT_NAMES = select(Account.id, Account.name).where(Account.id.in_(bindparam("accounts", expanding=True)))
_INSERT = insert(WebhookDelivery.__table__)


@functools.cache
def _cursor_query(dialect: str) -> Select[tuple[DispatchCursor]]:
    query = select(DispatchCursor).where(DispatchCursor.name == CURSOR)
    return query.with_for_update() if dialect == "postgresql" else query


async def _locked_cursor(session: AsyncSession) -> DispatchCursor:
    query = _cursor_query(session.bind.dialect.name)
    cursor = await session.scalar(query)
    if cursor is None:  # the first pass ever (or a race with another process's first pass)
        await session.execute(_insert_ignore(session))
        cursor = await session.scalar(query)
    assert cursor is not None
    return cursor


def _insert_ignore(session: AsyncSession) -> Any:
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(DispatchCursor).values(name=CURSOR, last_seq=0, updated_at=utcnow()).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(DispatchCursor).values(name=CURSOR, last_seq=0, updated_at=utcnow()).on_conflict_do_nothing()


async def fan_out(db: Database) -> int:
    """Create the deliveries of the next batch of events; returns how many events it read
    (fewer than :data:`BATCH`: there were no more)."""
    async with db.write_session() as session:
        return await fan_out_in(session)


async def fan_out_in(session: AsyncSession) -> int:
    """:func:`fan_out` inside the caller's write transaction (the webhook worker claims in
    the same one); the cursor stays locked until that transaction ends."""
    cursor = await _locked_cursor(session)
    events = list((await session.execute(_EVENTS, {"after": cursor.last_seq})).all())
    if not events:
        return 0
    accounts = {e.account_id for e in events}
    webhooks = list(await session.scalars(_WEBHOOKS, {"accounts": list(accounts)}))
    rows: list[dict[str, Any]] = []
    if webhooks:
        rows = await _deliveries(session, events, webhooks)
    if rows:
        await session.execute(_INSERT, rows)
    cursor.last_seq = events[-1].seq
    return len(events)


async def _deliveries(session: AsyncSession, events: list[Row[Any]], webhooks: list[Webhook]) -> list[dict[str, Any]]:
    account_names = dict((await session.execute(
        _ACCOUNT_NAMES, {"accounts": list({w.account_id for w in webhooks})})).all())
    bot_ids = {w.agent_bot_id for w in webhooks if w.agent_bot_id}
    bots: dict[int, AgentBot] = {}
    bot_inboxes: dict[int, set[int]] = {}
    if bot_ids:
        bots = {bot.id: bot for bot in await session.scalars(select(AgentBot).where(AgentBot.id.in_(bot_ids)))}
        for inbox_id, bot_id in (await session.execute(
            select(AgentBotInbox.inbox_id, AgentBotInbox.agent_bot_id).where(AgentBotInbox.agent_bot_id.in_(bots))
        )).all():
            bot_inboxes.setdefault(bot_id, set()).add(inbox_id)

    by_account: dict[int, list[Webhook]] = {}
    for webhook in webhooks:
        by_account.setdefault(webhook.account_id, []).append(webhook)
    rows = []
    now = utcnow()
    for event in events:
        names = webhook_names(event.event_type, event.payload)
        if not names:
            continue
        account = {"id": event.account_id, "name": account_names.get(event.account_id)}
        ordering_key = f"conversation:{event.conversation_id}" if event.conversation_id else f"account:{event.account_id}"
        for webhook in by_account.get(event.account_id, ()):
            if event.created_at < webhook.created_at:
                continue  # only what happened after the webhook was made
            for name in names:
                if not _wants(webhook, name, event, bots, bot_inboxes):
                    continue
                rows.append({
                    "webhook_id": webhook.id,
                    "account_id": event.account_id,
                    "event_seq": event.seq,
                    "event": name,
                    "ordering_key": ordering_key,
                    "conversation_id": event.conversation_id,
                    "payload": webhook_payload(name, event.payload, account),
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                })
    return rows


def _wants(webhook: Webhook, name: str, event: Row[Any], bots: dict[int, AgentBot], bot_inboxes: dict[int, set[int]]) -> bool:
    if webhook.webhook_type == "account":
        return name in (webhook.subscriptions or ACCOUNT_EVENTS) and name in ACCOUNT_EVENTS
    if webhook.webhook_type == "api_inbox":
        return event.inbox_id == webhook.inbox_id and name in ACCOUNT_EVENTS
    if webhook.webhook_type == "agent_bot":
        bot = bots.get(webhook.agent_bot_id or 0)
        if bot is None or event.inbox_id not in bot_inboxes.get(bot.id, set()):
            return False
        return is_bot_relevant(name, event.payload, bot.user_id)
    return False

"""``postroom reports rebuild``: record the facts of existing data.

Walks every conversation of an account (in id order, a batch at a time) through the
same :func:`app.reports.facts.derive` as the live recorder, with status changes read
back from the event log. A resolved conversation whose resolve has left the log (the
log keeps ``event_retention_days``) gets one resolve at its last update. Facts already
in the index are skipped by their keys, so a rebuild can run any time, and again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Conversation, Event, Message
from app.reports.facts import StatusItem, derive
from app.reports.recorder import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    conversation_info,
    measure,
    message_item,
    status_change,
    write_facts,
)

BATCH = 500
Progress = Callable[[int, int], None]


async def count_conversations(session: AsyncSession, account_id: int) -> int:
    """How many conversations a rebuild of the account walks."""
    from sqlalchemy import func

    return int(await session.scalar(select(func.count()).select_from(Conversation).where(
        Conversation.account_id == account_id)) or 0)


async def rebuild_batch(session: AsyncSession, account_id: int, after: int) -> tuple[int, int, int]:
    """Record the missing facts of the next :data:`BATCH` conversations with ids above
    ``after``; returns (facts added, last conversation id, conversations walked)."""
    batch = (await session.execute(
        select(*CONVERSATION_COLUMNS, Conversation.status, Conversation.updated_at)
        .where(Conversation.account_id == account_id, Conversation.id > after)
        .order_by(Conversation.id).limit(BATCH))).all()
    if not batch:
        return 0, after, 0
    ids = [row.id for row in batch]
    messages = defaultdict(list)
    for row in (await session.execute(select(*MESSAGE_COLUMNS).where(Message.conversation_id.in_(ids)))).all():
        messages[row.conversation_id].append(message_item(row))
    statuses: dict[int, list[StatusItem]] = defaultdict(list)
    for conversation_id, payload, created_at in (await session.execute(
            select(Event.conversation_id, Event.payload, Event.created_at)
            .where(Event.account_id == account_id, Event.conversation_id.in_(ids),
                   Event.event_type == "conversation.status_changed").order_by(Event.seq))).all():
        change = status_change({"payload": payload})
        if change is not None:
            statuses[conversation_id].append(StatusItem(created_at, *change))
    measured = []
    for row in batch:
        info = conversation_info(row)
        items = statuses[row.id]
        if row.status == "resolved" and not any(s.current == "resolved" for s in items):
            items.append(StatusItem(max(row.updated_at, row.created_at), "open", "resolved"))
        measured.extend(await measure(session, info, derive(info, [*messages[row.id], *items])))
    return await write_facts(session, measured), ids[-1], len(batch)


async def rebuild_account(session: AsyncSession, account_id: int, progress: Progress | None = None) -> int:
    """Record every missing fact of the account in one transaction; returns how many were added."""
    total = await count_conversations(session, account_id)
    done = added = after = 0
    while True:
        new, after, walked = await rebuild_batch(session, account_id, after)
        if not walked:
            return added
        added += new
        done += walked
        if progress is not None:
            progress(done, total)

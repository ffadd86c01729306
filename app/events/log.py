"""Appending to the event log, in commit order.

Events are buffered on the session and written by :func:`flush_pending_events` right
before the unit of work commits. On PostgreSQL a transaction-scoped advisory lock is
taken first, so ``seq`` values are handed out in the order transactions commit: a
reader that has seen seq ``n`` will never later find a committed event below ``n``.
(With plain sequences, a transaction that took seq 10 could commit after one that took
seq 11, and a resuming client would skip 10.) The lock is held only from the event
insert to the commit. SQLite serializes writers already.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Event, utcnow

_PENDING = "postroom_pending_events"
LAST_SEQ = "postroom_last_event_seq"
#: ``(seqs, rows)`` of the events the session wrote, seqs ascending. On SQLite the i-th
#: row took the i-th seq (one writer at a time; rowids follow the insert's order).
WRITTEN = "postroom_written_events"
_HELD = "postroom_event_conversations"
#: ``session.info`` key: the wake topics of the committed transaction (see :func:`wake_topics`).
WAKE_TOPICS = "postroom_wake_topics"
#: Topic of a transaction that left a reply waiting to be sent (``status: pending``).
OUTBOX = "outbox"
#: Topic of a transaction that made or re-enabled a webhook (the webhook workers listen).
WEBHOOKS_CHANGED = "webhooks"
#: Arbitrary constant naming the event-log lock among PostgreSQL advisory locks.
EVENT_LOG_LOCK = 0x706F7374726F6F6D  # "postroom"


_INSERT_EVENTS = insert(Event.__table__).returning(Event.__table__.c.seq)


def append_event(
    session: AsyncSession,
    *,
    account_id: int,
    event_type: str,
    payload: dict[str, Any],
    inbox_id: int | None = None,
    conversation_id: int | None = None,
) -> None:
    """Queue an event to be written with the session's commit."""
    session.info.setdefault(_PENDING, []).append(
        {
            "account_id": account_id,
            "inbox_id": inbox_id,
            "conversation_id": conversation_id,
            "event_type": event_type,
            "payload": payload,
            "created_at": utcnow(),
        }
    )


def hold_conversation(session: AsyncSession, conversation: Any) -> None:
    """Keep a conversation whose events are queued reachable until the commit: the session
    maps objects weakly, so once a service let go of it the commit-time readers (the
    reporting recorder) would load it again."""
    session.info.setdefault(_HELD, {})[conversation.id] = conversation


def held_conversation(session: AsyncSession, conversation_id: int) -> Any | None:
    """A conversation :func:`hold_conversation` kept, or None."""
    return session.info.get(_HELD, {}).get(conversation_id)


def pending_events(session: AsyncSession) -> list[dict[str, Any]]:
    """The events queued on this session and not yet written."""
    return list(session.info.get(_PENDING, ()))


async def flush_pending_events(session: AsyncSession) -> None:
    """Write the queued events (called by the unit of work just before commit)."""
    rows = session.info.pop(_PENDING, None)
    if not rows:
        return
    await session.flush()
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENT_LOG_LOCK})
    # A Core insert: SQLAlchemy sends it as multi-row INSERTs (the ORM's bulk insert of
    # these rows ran one statement per row on SQLite).
    result = await session.execute(_INSERT_EVENTS, rows)
    seqs = sorted(result.scalars().all())
    session.info[LAST_SEQ] = seqs[-1]
    if session.bind.dialect.name == "sqlite":
        session.info[WRITTEN] = (seqs, rows)
    topics = wake_topics(rows)
    if topics:
        session.info.setdefault(WAKE_TOPICS, set()).update(topics)


def wake_topics(rows: list[dict[str, Any]]) -> set[str]:
    """The background loops beyond the log's followers that these events concern.

    Every commit wakes the log's followers (stream, webhooks); loops that only care about
    some changes are woken by topic, so a customer's message does not cost the outbox
    poll a query in every process.
    """
    for row in rows:
        if row["event_type"].startswith("message.") and row["payload"].get("status") == "pending":
            return {OUTBOX}
    return set()


def request_wake(session: AsyncSession, topic: str) -> None:
    """Ask for ``topic``'s loops to be woken once this session commits."""
    session.info.setdefault(WAKE_TOPICS, set()).add(topic)

"""What the SLA engine has read in the current transaction, kept so that a batch of
messages costs a few queries per conversation instead of several per message.

One :class:`TransactionClocks` lives in ``session.info`` from the first SLA call of a
transaction to its commit or rollback (then it is dropped, see the listeners below).
Every clock the engine starts or ends goes through it, so the open clocks it holds for a
conversation are exactly the open clocks of that conversation as this transaction sees
them, and ``next_due_at`` can be computed without a flush and a query.

Policies, holidays and calendars are read once per account per transaction: a policy or
calendar saved in the same transaction drops the cache (:func:`forget_definitions`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.models import Conversation, SlaClock, SlaPolicy

_KEY = "postroom_sla_transaction"


@dataclass
class TransactionClocks:
    """The SLA rows and definitions read in one transaction."""

    #: conversation id -> its open clocks (rows whose ``ended_at`` is set are pruned on read).
    open: dict[int, list[SlaClock]] = field(default_factory=dict)
    #: (conversation id, kind) -> the highest cycle of that kind so far.
    cycles: dict[tuple[int, str], int] = field(default_factory=dict)
    #: Conversations created in this transaction: they have no clock yet.
    new_conversations: set[int] = field(default_factory=set)
    policies: dict[int, list[SlaPolicy]] = field(default_factory=dict)
    calendars: dict[tuple[int, int | None], dict[str, Any] | None] = field(default_factory=dict)
    holidays: dict[int, tuple[Any, ...]] = field(default_factory=dict)


def transaction_clocks(session: AsyncSession) -> TransactionClocks:
    """This transaction's SLA state (made on first use)."""
    state = session.info.get(_KEY)
    if state is None:
        state = session.info[_KEY] = TransactionClocks()
    return state


def forget_definitions(session: AsyncSession) -> None:
    """Policies or calendars changed: read them again on next use."""
    state = session.info.get(_KEY)
    if state is not None:
        state.policies.clear()
        state.calendars.clear()
        state.holidays.clear()


def note_new_conversation(session: AsyncSession, conversation: Conversation) -> None:
    """A conversation inserted in this transaction has no clocks: nothing to read."""
    state = transaction_clocks(session)
    state.new_conversations.add(conversation.id)
    state.open.setdefault(conversation.id, [])


async def open_clocks(session: AsyncSession, conversation: Conversation) -> list[SlaClock]:
    """The conversation's open clocks, oldest first (read once per transaction)."""
    state = transaction_clocks(session)
    rows = state.open.get(conversation.id)
    if rows is None:
        rows = list(await session.scalars(select(SlaClock).where(
            SlaClock.conversation_id == conversation.id, SlaClock.ended_at.is_(None)).order_by(SlaClock.id)))
        state.open[conversation.id] = rows
    if any(row.ended_at is not None for row in rows):
        rows[:] = [row for row in rows if row.ended_at is None]
    return list(rows)


async def last_cycle(session: AsyncSession, conversation: Conversation, kind: str) -> int:
    """The highest cycle of ``kind`` the conversation has had (0: never)."""
    state = transaction_clocks(session)
    key = (conversation.id, kind)
    if key not in state.cycles:
        if conversation.id in state.new_conversations:
            state.cycles[key] = 0
        else:
            latest = await session.scalar(select(func.max(SlaClock.cycle)).where(
                SlaClock.conversation_id == conversation.id, SlaClock.kind == kind))
            state.cycles[key] = int(latest or 0)
    return state.cycles[key]


def add_clock(session: AsyncSession, conversation: Conversation, row: SlaClock) -> None:
    """Record a new clock row (call :func:`open_clocks` before adding it to the session,
    so that an autoflushing query cannot return it a second time)."""
    state = transaction_clocks(session)
    state.open[conversation.id].append(row)
    state.cycles[(conversation.id, row.kind)] = row.cycle


def _drop(session: Session, *_: Any) -> None:
    session.info.pop(_KEY, None)


# The state describes one transaction; a new one (or a retry after a rollback) reads afresh.
event.listen(Session, "after_commit", _drop)
event.listen(Session, "after_soft_rollback", _drop)

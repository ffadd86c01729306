"""A batch's new conversations written together.

A new conversation's id is needed as soon as it is made (its messages, clocks and events
point to it), so ingest inserted each one alone with ``INSERT … RETURNING id``: a round
trip per conversation, a fifth of a first marketplace sync's ingest time on PostgreSQL
and a third of the event loop's time of an e-mail sync on SQLite. Now the ids of the
conversations a batch will certainly create are taken ahead in one query
(:mod:`app.tickets.ids_ahead`), and their rows wait in the session (``defer``) until the
batch inserts its messages, which writes them first in one statement.

Nothing that points to a waiting conversation can reach the database before it: every
statement the session executes and every flush it makes writes the waiting rows first
(the listeners below). A rolled-back session forgets them, as it forgets everything else.
Within the batch, a conversation inserted alone (once the ids taken are used up) is
written after the waiting rows, so it cannot take one of their ids.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session

from app.models import Conversation
from app.tickets import ids_ahead

_WAITING = "postroom_waiting_conversations"
_LISTENING = "postroom_waiting_conversations_listeners"
_INSERT = insert(Conversation.__table__)


def can_defer(session: AsyncSession) -> bool:
    """Whether this session can take conversation ids ahead."""
    return ids_ahead.can_take(session)


async def take_ids(session: AsyncSession, count: int) -> list[int]:
    """``count`` new conversation ids, in one query."""
    return await ids_ahead.take_ids(session, Conversation.__table__, count)


def defer(session: AsyncSession, row: dict[str, Any]) -> None:
    """Keep a conversation row (its id included) to be written with the next statement."""
    sync_session = session.sync_session
    if not sync_session.info.get(_LISTENING):
        event.listen(sync_session, "do_orm_execute", _before_statement)
        event.listen(sync_session, "before_flush", _before_flush)
        event.listen(sync_session, "after_rollback", _forget)
        sync_session.info[_LISTENING] = True
    sync_session.info.setdefault(_WAITING, []).append(row)


async def write_waiting(session: AsyncSession) -> None:
    """Insert the waiting conversation rows now (one statement), if there are any."""
    rows = session.sync_session.info.pop(_WAITING, None)
    if rows:
        await session.execute(_INSERT, rows)


def _write(session: Session) -> None:
    rows = session.info.pop(_WAITING, None)  # popped first: the insert runs these hooks too
    if rows:
        session.execute(_INSERT, rows)


def _before_statement(state: ORMExecuteState) -> None:
    _write(state.session)


def _before_flush(session: Session, _flush_context: Any, _instances: Any) -> None:
    _write(session)


def _forget(session: Session) -> None:
    session.info.pop(_WAITING, None)

"""Writing reporting events: in the same transaction as the change, exactly once.

:func:`record_pending` runs in the unit of work's commit, right before the event log is
written (see :func:`app.db.commit`). It reads the events queued on the session, walks
the touched conversations' recent timeline through :func:`app.reports.facts.derive`,
and inserts the facts the queued changes produced. Each fact has a key unique per
account and is inserted with ``ON CONFLICT DO NOTHING``; only rows actually inserted
are added to the hourly roll-up, so neither the index nor the roll-up can count a fact
twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.log import held_conversation, pending_events
from app.models import Conversation, Message, ReportingEvent, ReportingRollup, utcnow
from app.reports.facts import (
    STATUS_FACTS,
    ConversationInfo,
    Fact,
    MessageItem,
    StatusItem,
    derive,
    incoming_fact,
    opened_fact,
)
from app.sla.calendar import CALENDAR, BusinessCalendar, Clock

#: How many of a conversation's newest messages the live walk reads; older ones were
#: recorded by earlier commits (a wait that began before this window is measured from
#: the window's first contact message).
WINDOW = 200
_CALENDARS = "postroom_reporting_calendars"
_TRIGGERS = ("message.created", "conversation.created", "conversation.status_changed")


@dataclass(frozen=True)
class Measured:
    """A fact with its values in calendar and business seconds."""

    fact: Fact
    conversation: ConversationInfo
    value: float
    business: float


async def business_clock(session: AsyncSession, account_id: int) -> Clock:
    """The account's default business calendar (calendar time when it has none)."""
    from app.sla.engine import calendar_document

    cache: dict[int, Clock] = session.info.setdefault(_CALENDARS, {})
    if account_id not in cache:
        doc = await calendar_document(session, account_id, None)
        cache[account_id] = BusinessCalendar.from_document(doc) if doc else CALENDAR
    return cache[account_id]


_STATEMENTS: dict[tuple[str, str], Any] = {}


def _statement(session: AsyncSession, which: str) -> Any:
    """The fact insert or the roll-up upsert for the session's dialect, built once (so
    SQLAlchemy compiles it once and runs each batch as an executemany)."""
    dialect = session.bind.dialect.name
    key = (dialect, which)
    if key not in _STATEMENTS:
        insert = (postgresql if dialect == "postgresql" else sqlite).insert
        if which == "events":
            e = ReportingEvent
            _STATEMENTS[key] = (insert(e).on_conflict_do_nothing(index_elements=["account_id", "key"])
                                .returning(e.account_id, e.name, e.event_end_time, e.inbox_id, e.user_id, e.team_id,
                                           e.value, e.value_in_business_hours))
        else:
            r = ReportingRollup
            statement = insert(r)
            _STATEMENTS[key] = statement.on_conflict_do_update(
                index_elements=["account_id", "name", "scope", "scope_id", "hour"],
                set_={"count": r.count + statement.excluded.count,
                      "value_sum": r.value_sum + statement.excluded.value_sum,
                      "business_sum": r.business_sum + statement.excluded.business_sum})
    return _STATEMENTS[key]


async def write_facts(session: AsyncSession, measured: Sequence[Measured]) -> int:
    """Insert the facts not recorded yet and add the new ones to the roll-up; how many were new."""
    if not measured:
        return 0
    rows = [{
        "account_id": m.conversation.account_id, "inbox_id": m.conversation.inbox_id,
        "conversation_id": m.conversation.id, "user_id": m.fact.user_id, "team_id": m.conversation.team_id,
        "name": m.fact.name, "key": m.fact.key, "value": m.value, "value_in_business_hours": m.business,
        "event_start_time": m.fact.start, "event_end_time": m.fact.end, "created_at": utcnow(),
    } for m in measured]
    inserted = (await session.execute(_statement(session, "events"), rows)).all()
    await add_to_rollup(session, inserted)
    return len(inserted)


async def add_to_rollup(session: AsyncSession, rows: Iterable[Any]) -> None:
    """Add inserted reporting events (account_id, name, end, inbox, user, team, value, business)
    to the hourly roll-up of the account and of their inbox, agent and team."""
    sums: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for account_id, name, end, inbox_id, user_id, team_id, value, business in rows:
        hour = end.replace(minute=0, second=0, microsecond=0)
        for scope, scope_id in (("account", 0), ("inbox", inbox_id), ("agent", user_id), ("team", team_id)):
            if scope_id is None:
                continue
            entry = sums[(account_id, name, scope, scope_id, hour)]
            entry[0] += 1
            entry[1] += value
            entry[2] += business
    if sums:
        await session.execute(_statement(session, "rollup"), [
            {"account_id": k[0], "name": k[1], "scope": k[2], "scope_id": k[3], "hour": k[4],
             "count": v[0], "value_sum": v[1], "business_sum": v[2]} for k, v in sorted(sums.items())])


async def measure(session: AsyncSession, conversation: ConversationInfo, facts: Iterable[Fact]) -> list[Measured]:
    """Give facts their calendar and business seconds (instant facts need no calendar)."""
    facts = list(facts)
    clock: Clock = CALENDAR
    if any(f.start != f.end for f in facts):
        clock = await business_clock(session, conversation.account_id)
    return [Measured(f, conversation, CALENDAR.between(f.start, f.end), clock.between(f.start, f.end)) for f in facts]


def conversation_info(row: Any) -> ConversationInfo:
    """The walk's view of a conversation row."""
    return ConversationInfo(row.id, row.account_id, row.inbox_id, row.created_at, row.assignee_id, row.team_id)


def message_item(row: Any) -> MessageItem:
    """The walk's view of a message row."""
    return MessageItem(row.id, row.created_at, row.message_type, row.sender_type, row.sender_id,
                       bool(row.private), bool(row.automatic))


MESSAGE_COLUMNS = (Message.id, Message.conversation_id, Message.created_at, Message.message_type,
                   Message.sender_type, Message.sender_id, Message.private, Message.automatic)
CONVERSATION_COLUMNS = (Conversation.id, Conversation.account_id, Conversation.inbox_id, Conversation.created_at,
                        Conversation.assignee_id, Conversation.team_id)


def status_change(event: dict[str, Any]) -> tuple[str, str] | None:
    """``(previous, current)`` of a ``conversation.status_changed`` event's payload."""
    change = ((event.get("payload") or {}).get("changed_attributes") or {}).get("status")
    if not isinstance(change, dict):
        return None
    previous, current = change.get("previous_value"), change.get("current_value")
    return (previous, current) if previous and current and previous != current else None


async def record_pending(session: AsyncSession) -> None:
    """Record the facts produced by the events queued on this session (see module docstring).

    Most commits only add a contact's messages: their facts (counts) need no timeline, so
    only replies and status changes make the recorder read the conversation's recent
    messages.
    """
    incoming: dict[int, list[tuple[int, datetime]]] = defaultdict(list)
    new_messages: set[int] = set()
    new_status: dict[int, list[StatusItem]] = defaultdict(list)
    created: set[int] = set()
    walk: set[int] = set()
    for event in pending_events(session):
        conversation_id = event.get("conversation_id")
        if not conversation_id or event["event_type"] not in _TRIGGERS:
            continue
        payload = event["payload"]
        if event["event_type"] == "message.created":
            kind = payload.get("message_type")
            if payload.get("private") or kind not in (0, 1, "incoming", "outgoing"):
                continue  # notes and activity lines are no facts
            if kind in (0, "incoming"):  # the payload's time (whole seconds) is enough for a count
                incoming[conversation_id].append((int(payload["id"]), datetime.fromtimestamp(payload["created_at"], UTC)))
            else:
                walk.add(conversation_id)
            new_messages.add(int(payload["id"]))
        elif event["event_type"] == "conversation.created":
            created.add(conversation_id)
        elif (change := status_change(event)) is not None:
            walk.add(conversation_id)
            new_status[conversation_id].append(StatusItem(event["created_at"], *change))
    touched = walk | created | set(incoming)
    if not touched:
        return
    await session.flush()
    # The services hold the conversations they changed: usually no query here.
    conversations = [c for c in [held_conversation(session, cid) or await session.get(Conversation, cid)
                                 for cid in sorted(touched)] if c is not None]
    measured: list[Measured] = []
    for row in conversations:
        if row.id in walk:
            continue
        info = conversation_info(row)
        facts = [opened_fact(info)] if info.id in created else []
        facts += [incoming_fact(info, MessageItem(m, at, "incoming", "contact", None, False, False))
                  for m, at in incoming.get(row.id, ())]
        measured.extend(await measure(session, info, facts))
    if walk:
        measured.extend(await _walk(session, [row for row in conversations if row.id in walk], new_messages,
                                    new_status, created))
    await write_facts(session, measured)


#: A conversation whose first response is recorded, or whose contact never wrote, needs
#: only its messages since the last reply before the new ones: the walk first reads this
#: many of the newest (see :func:`_walk`).
SHORT_WINDOW = 20
_STATUS_NAMES = {"conversation_resolved": ("open", "resolved"), "conversation_reopened": ("resolved", "open"),
                 "conversation_bot_handoff": ("pending", "open")}
#: Built once (building the windowed select was a fifth of a reply's CPU): the newest
#: ``window`` messages of each conversation in ``ids``.
_RANKED = (select(*MESSAGE_COLUMNS, func.row_number().over(
    partition_by=Message.conversation_id, order_by=Message.id.desc()).label("rank"))
    .where(Message.conversation_id.in_(bindparam("ids", expanding=True))).subquery())
_NEWEST_MESSAGES = select(_RANKED).where(_RANKED.c.rank <= bindparam("window"))
_CONTACTED = (select(ReportingEvent.conversation_id).distinct()
              .where(ReportingEvent.conversation_id.in_(bindparam("ids", expanding=True)),
                     ReportingEvent.name == "incoming_message"))
_KNOWN_FACTS = (select(ReportingEvent.conversation_id, ReportingEvent.name, ReportingEvent.event_end_time)
                .where(ReportingEvent.conversation_id.in_(bindparam("ids", expanding=True)),
                       ReportingEvent.name.in_([*STATUS_FACTS, "first_response"])))


async def _newest_messages(session: AsyncSession, ids: list[int], window: int) -> dict[int, list[MessageItem]]:
    messages: dict[int, list[MessageItem]] = defaultdict(list)
    if ids:
        for row in (await session.execute(_NEWEST_MESSAGES, {"ids": ids, "window": window})).all():
            messages[row.conversation_id].append(message_item(row))
    return messages


def _window_suffices(items: list[MessageItem], new_messages: set[int]) -> bool:
    """Whether older messages than ``items`` cannot change the facts of the new ones: a
    public reply older than every new message is among them (the wait the new messages
    end began after it), or there is no new message (status facts need no messages)."""
    first_new = min((m.at for m in items if m.id in new_messages), default=None)
    return first_new is None or any(
        m.message_type == "outgoing" and not m.private and m.id not in new_messages and m.at <= first_new
        for m in items)


async def _walk(session: AsyncSession, conversations: list[Any], new_messages: set[int],
                new_status: dict[int, list[StatusItem]], created: set[int]) -> list[Measured]:
    """Facts of replies and status changes: walk each conversation's recent timeline.

    A conversation whose first response is recorded, or whose contact never wrote before
    this commit (no first wait can lie further back), is walked from its newest
    :data:`SHORT_WINDOW` messages when they hold the reply before the new messages; any
    other from its newest :data:`WINDOW`.
    """
    ids = [row.id for row in conversations]
    known: dict[int, list[StatusItem]] = defaultdict(list)
    answered: set[int] = set()
    for conversation_id, name, end in (await session.execute(_KNOWN_FACTS, {"ids": ids})).all():
        if name == "first_response":
            answered.add(conversation_id)
        else:
            known[conversation_id].append(StatusItem(end, *_STATUS_NAMES[name], known=True))
    unanswered = [i for i in ids if i not in answered]
    contacted = set((await session.scalars(_CONTACTED, {"ids": unanswered})).all()) if unanswered else set()
    messages = await _newest_messages(session, [i for i in ids if i not in contacted], SHORT_WINDOW)
    short = {i for i, items in messages.items()
             if len(items) < SHORT_WINDOW or _window_suffices(items, new_messages)}
    messages.update(await _newest_messages(session, [i for i in ids if i not in short], WINDOW))
    measured: list[Measured] = []
    for row in conversations:
        info = conversation_info(row)
        facts = derive(info, [*messages[info.id], *known[info.id], *new_status[info.id]],
                       answered=info.id in answered)
        fresh_status = {item.at for item in new_status[info.id]}
        wanted = [f for f in facts if (f.origin[0] == "message" and f.origin[1] in new_messages)
                  or (f.origin[0] == "status" and f.origin[1] in fresh_status)
                  or (f.origin[0] == "conversation" and info.id in created)]
        measured.extend(await measure(session, info, wanted))
    return measured


async def record_csat(session: AsyncSession, conversation: Conversation, rating: int, at: datetime,
                      csat_id: int) -> None:
    """A survey answer as a ``csat`` fact (value: the rating)."""
    info = conversation_info(conversation)
    fact = Fact("csat", f"csat:{conversation.id}", at, at, conversation.assignee_id, ("csat", csat_id))
    await write_facts(session, [Measured(fact, info, float(rating), float(rating))])

"""Starting, pausing and ending SLA clocks as conversations change.

The services call :func:`on_message` and :func:`on_status` inside the transaction
that changes the conversation, so due times are always committed with the change that
caused them (deadlines are data). Definitions (docs/sla.md):

* **first response**: from the first incoming message to the first outgoing reply by a
  person (a bot's reply only where the policy says so); private notes, activity lines
  and automatic messages never count. Once per conversation.
* **next response**: from the first incoming message after a reply (``waiting_since``)
  to the next reply.
* **resolution**: from the start of a cycle (creation, or a reopen) to resolved;
  paused while pending or snoozed where the policy says so.
* **marketplace rules**: from the oldest unanswered buyer message (or only the first of
  a thread) to a reply by a person, on Postroom or echoed from the marketplace; bots
  and auto-replies never count; the conversation's status does not stop them.

Resolving stops the first- and next-response clocks (the agent decided the customer
needs nothing more), judged at the time of resolving. Each clock ends as met or breached
exactly once, with the time it took in calendar and in business seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.log import append_event
from app.models import BusinessCalendarRow, Conversation, ConversationLabel, Inbox, SlaClock, SlaPolicy
from app.sla.calendar import CALENDAR, BusinessCalendar, Clock, Holiday
from app.sla.rules import MARKETPLACE_RULES, closes, window_for
from app.sla.state import add_clock, last_cycle, note_new_conversation, open_clocks, transaction_clocks

Author = Literal["contact", "person", "bot", "automatic", "echo"]
RESPONSE_KINDS = ("first_response", "next_response")
#: Warning lead times in seconds, longest first (``POSTROOM_SLA_WARNING_LEADS``).
LEADS: tuple[float, ...] = (7200.0, 1800.0)


def next_check(row: SlaClock) -> datetime:
    """The next moment the scheduler must look at a clock: an unsent warning, or the breach."""
    moments = [row.due_at - timedelta(seconds=lead) for i, lead in enumerate(LEADS) if not row.warned & (1 << i)]
    return min([*moments, row.due_at])


def clock_of(row: SlaClock) -> Clock:
    """The clock a stored SLA clock counts in."""
    return BusinessCalendar.from_document(row.calendar) if row.calendar else CALENDAR


async def calendar_document(session: AsyncSession, account_id: int, calendar_id: int | None) -> dict[str, Any] | None:
    """A business calendar of the account as its JSON document (the default one when
    ``calendar_id`` is None), read once per transaction; None when there is none."""
    cache = transaction_clocks(session).calendars
    if (account_id, calendar_id) not in cache:
        cache[(account_id, calendar_id)] = await _read_calendar(session, account_id, calendar_id)
    return cache[(account_id, calendar_id)]


async def _read_calendar(session: AsyncSession, account_id: int, calendar_id: int | None) -> dict[str, Any] | None:
    query = select(BusinessCalendarRow).where(BusinessCalendarRow.account_id == account_id)
    query = query.where(BusinessCalendarRow.id == calendar_id) if calendar_id else query.where(
        BusinessCalendarRow.is_default.is_(True))
    row = await session.scalar(query.limit(1))
    if row is None:
        return None
    return {"timezone": row.timezone, "weekly": row.weekly, "holidays": row.holidays}


async def policy_for(session: AsyncSession, conversation: Conversation, inbox: Inbox) -> SlaPolicy | None:
    """The conversation's policy: set by hand, else the first rule that matches."""
    if conversation.sla_policy_id:
        return await session.get(SlaPolicy, conversation.sla_policy_id)
    policies = await account_policies(session, conversation.account_id)
    if not policies:
        return None
    labels: set[str] = set()
    if any((policy.rules or {}).get("labels") for policy in policies):
        labels = set(await session.scalars(select(ConversationLabel.label).where(
            ConversationLabel.conversation_id == conversation.id)))
    for policy in policies:
        rules = policy.rules or {}
        if not any(rules.get(k) for k in ("inbox_ids", "channel_types", "priorities", "labels")):
            continue
        if rules.get("inbox_ids") and inbox.id not in rules["inbox_ids"]:
            continue
        if rules.get("channel_types") and inbox.channel_type not in rules["channel_types"]:
            continue
        if rules.get("priorities") and conversation.priority not in rules["priorities"]:
            continue
        if rules.get("labels") and not labels.intersection(rules["labels"]):
            continue
        return policy
    return None


async def account_policies(session: AsyncSession, account_id: int) -> list[SlaPolicy]:
    """The account's policies in rule order (read once per transaction)."""
    cache = transaction_clocks(session).policies
    if account_id not in cache:
        cache[account_id] = list(await session.scalars(select(SlaPolicy).where(
            SlaPolicy.account_id == account_id).order_by(SlaPolicy.position, SlaPolicy.id)))
    return cache[account_id]


async def start_clock(session: AsyncSession, conversation: Conversation, kind: str, at: datetime, threshold: float,
                 calendar: dict[str, Any] | None, policy_id: int | None, due: datetime | None = None) -> SlaClock:
    """Start the next cycle of a clock of ``kind``. The row is inserted with the session's
    next flush; its id is given by then (see :func:`_with_ids`)."""
    await open_clocks(session, conversation)
    cycle = await last_cycle(session, conversation, kind) + 1
    clock = CALENDAR if calendar is None else BusinessCalendar.from_document(calendar)
    row = SlaClock(
        account_id=conversation.account_id, inbox_id=conversation.inbox_id, conversation_id=conversation.id,
        policy_id=policy_id, kind=kind, cycle=cycle, status="active",
        started_at=at, due_at=due or clock.add(at, threshold), calendar=calendar, threshold_seconds=threshold,
        paused_seconds=0.0, warned=0,
    )
    row.next_check_at = next_check(row)
    session.add(row)
    add_clock(session, conversation, row)
    return row


async def _with_ids(session: AsyncSession, rows: list[SlaClock], at: datetime) -> None:
    """Flush when a clock started in this transaction may breach now: its event names its id."""
    if any(row.id is None and at > row.due_at for row in rows):
        await session.flush()


def clock_json(row: SlaClock, now: datetime | None = None) -> dict[str, Any]:
    """A clock as the API and the events show it."""
    body: dict[str, Any] = {
        "id": row.id, "kind": row.kind, "cycle": row.cycle, "status": row.status,
        "started_at": int(row.started_at.timestamp()), "due_at": int(row.due_at.timestamp()),
        "threshold_seconds": row.threshold_seconds, "policy_id": row.policy_id,
        "breached_at": int(row.breached_at.timestamp()) if row.breached_at else None,
        "ended_at": int(row.ended_at.timestamp()) if row.ended_at else None,
        "calendar_seconds": row.calendar_seconds, "business_seconds": row.business_seconds,
    }
    if now is not None and row.ended_at is None:
        body["seconds_left"] = int((row.due_at - now).total_seconds())
    return body


def emit_clock_event(session: AsyncSession, row: SlaClock, event_type: str, conversation_display_id: int,
                     extra: dict[str, Any] | None = None) -> None:
    """Queue ``sla.warning`` / ``sla.breached`` (to agents live and to webhooks)."""
    append_event(session, account_id=row.account_id, inbox_id=row.inbox_id, conversation_id=row.conversation_id,
                 event_type=event_type,
                 payload={**clock_json(row), "conversation": {"id": conversation_display_id, "inbox_id": row.inbox_id},
                          **(extra or {})})


def end_clock(session: AsyncSession, row: SlaClock, at: datetime, conversation: Conversation, *, status: str | None = None,
         note: str | None = None) -> None:
    """End a clock once: met, breached (if past due and not yet breached) or the given status."""
    span = CALENDAR.between(row.started_at, at)
    row.ended_at = at
    if row.calendar:
        row.calendar_seconds = span
        row.business_seconds = max(0.0, clock_of(row).between(row.started_at, at) - row.paused_seconds)
    else:
        row.calendar_seconds = row.business_seconds = max(0.0, span - row.paused_seconds)
    if note:
        row.note = note
    if status is not None:
        row.status = status
    elif row.status in ("active", "paused"):
        if at <= row.due_at:
            row.status = "met"
        else:
            row.status = "breached"
            row.breached_at = row.due_at
            emit_clock_event(session, row, "sla.breached", conversation.display_id)


async def on_message(session: AsyncSession, conversation: Conversation, inbox: Inbox, *, author: Author,
                     at: datetime, private: bool = False, first_in_thread: bool = False) -> None:
    """A message was added to the conversation."""
    if private or author == "automatic":
        await refresh_next_due(session, conversation)
        return
    if first_in_thread:
        note_new_conversation(session, conversation)
    policy = await policy_for(session, conversation, inbox)
    clocks = await open_clocks(session, conversation)
    if author == "contact":
        await _customer_wrote(session, conversation, inbox, policy, clocks, at, first_in_thread)
    else:
        await _with_ids(session, clocks, at)
        counts_for_policy = author in ("person", "echo") or (author == "bot" and policy is not None and policy.bot_replies_count)
        for row in clocks:
            if row.kind in RESPONSE_KINDS and counts_for_policy:
                end_clock(session, row, at, conversation)
            elif row.kind in MARKETPLACE_RULES and author in ("person", "echo"):
                end_clock(session, row, at, conversation)
    await refresh_next_due(session, conversation)


async def _customer_wrote(session: AsyncSession, conversation: Conversation, inbox: Inbox, policy: SlaPolicy | None,
                          clocks: list[SlaClock], at: datetime, first_in_thread: bool) -> None:
    kinds = {row.kind for row in clocks}
    if policy is not None:
        calendar = await calendar_document(session, conversation.account_id, policy.calendar_id) \
            if policy.only_during_business_hours else None
        had_first = await last_cycle(session, conversation, "first_response") > 0
        if policy.first_response_time_threshold and not had_first and conversation.first_reply_created_at is None:
            await start_clock(session, conversation, "first_response", at, policy.first_response_time_threshold, calendar, policy.id)
        elif (policy.next_response_time_threshold and "first_response" not in kinds and "next_response" not in kinds
              and (had_first or conversation.first_reply_created_at is not None)):
            await start_clock(session, conversation, "next_response", conversation.waiting_since or at,
                         policy.next_response_time_threshold, calendar, policy.id)
        if policy.resolution_time_threshold and not await last_cycle(session, conversation, "resolution"):
            await start_clock(session, conversation, "resolution", conversation.created_at,
                         policy.resolution_time_threshold, calendar, policy.id)
    rule = MARKETPLACE_RULES.get(inbox.channel_type)
    if rule is None or rule.kind in kinds:
        return
    if rule.scope == "first_in_thread" and not first_in_thread:
        return
    if rule.requires_attribute:
        key, values = rule.requires_attribute
        if (conversation.custom_attributes or {}).get(key) not in values:
            return
    holidays = await _holidays(session, conversation.account_id)
    due = rule.due(at, timezone=inbox.timezone or "UTC", holidays=holidays)
    calendar = None
    if rule.clock == "business":
        calendar = {"timezone": inbox.timezone or "UTC", "weekly": {d: [list(h) for h in rule.business_hours] for d in rule.business_days},
                    "holidays": [{"date": h.day.isoformat(), "yearly": h.yearly} for h in holidays]}
    await start_clock(session, conversation, rule.kind, at, rule.seconds, calendar, None, due=due)


async def _holidays(session: AsyncSession, account_id: int) -> tuple[Holiday, ...]:
    cache = transaction_clocks(session).holidays
    if account_id not in cache:
        doc = await calendar_document(session, account_id, None)
        cache[account_id] = BusinessCalendar.from_document(doc).holidays if doc else ()
    return cache[account_id]


async def on_status(session: AsyncSession, conversation: Conversation, inbox: Inbox, previous: str, at: datetime) -> None:
    """The conversation's status changed from ``previous`` to ``conversation.status``."""
    status = conversation.status
    policy = await policy_for(session, conversation, inbox)
    clocks = await open_clocks(session, conversation)
    await _with_ids(session, clocks, at)
    for row in clocks:
        if row.kind == "resolution":
            pauses = policy is not None and ((status == "pending" and policy.pause_on_pending)
                                             or (status == "snoozed" and policy.pause_on_snoozed))
            if status == "resolved":
                _resume(row, at)
                end_clock(session, row, at, conversation)
            elif pauses and row.status == "active":
                row.status, row.paused_since = "paused", at
            elif not pauses and row.status == "paused":
                _resume(row, at)
        elif row.kind in RESPONSE_KINDS and status == "resolved":
            end_clock(session, row, at, conversation)
    if previous == "resolved" and status != "resolved" and policy is not None and policy.resolution_time_threshold:
        calendar = await calendar_document(session, conversation.account_id, policy.calendar_id) \
            if policy.only_during_business_hours else None
        await start_clock(session, conversation, "resolution", at, policy.resolution_time_threshold, calendar, policy.id)
    await refresh_next_due(session, conversation)


def _resume(row: SlaClock, at: datetime) -> None:
    if row.status != "paused" or row.paused_since is None:
        return
    row.paused_seconds += clock_of(row).between(row.paused_since, at)
    row.paused_since = None
    row.status = "active"
    row.due_at = clock_of(row).add(row.started_at, row.threshold_seconds + row.paused_seconds)
    row.next_check_at = next_check(row)


async def mark_no_reply_needed(session: AsyncSession, conversation: Conversation, at: datetime, note: str) -> list[SlaClock]:
    """The seller says the buyer needs no answer: the marketplace clock stops, recorded."""
    ended = []
    for row in await open_clocks(session, conversation):
        if row.kind in MARKETPLACE_RULES or row.kind in RESPONSE_KINDS:
            end_clock(session, row, at, conversation, status="excluded", note=note)
            ended.append(row)
    await refresh_next_due(session, conversation)
    return ended


async def refresh_next_due(session: AsyncSession, conversation: Conversation) -> None:
    """Keep ``conversations.next_due_at`` equal to the soonest due time of its active or
    breached open clocks (paused ones wait)."""
    due = [row.due_at for row in await open_clocks(session, conversation) if row.status in ("active", "breached")]
    conversation.next_due_at = min(due) if due else None


def _attributes(conversation: Conversation) -> dict[str, Any]:
    """What the reply-window rules read: the conversation's attributes, those the channel
    set (``custom_attributes``, e.g. a Click-to-Messenger ad's ``entry_point``) included."""
    return {**(conversation.additional_attributes or {}), **(conversation.custom_attributes or {})}


def update_reply_window(conversation: Conversation, inbox: Inbox, incoming_at: datetime) -> None:
    """A customer message reopens the channel's reply window."""
    window = window_for(inbox.channel_type, inbox.settings or {}, _attributes(conversation))
    if window is not None:
        candidate = closes(incoming_at, window)
        if conversation.reply_window_closes_at is None or candidate > conversation.reply_window_closes_at:
            conversation.reply_window_closes_at = candidate


def reply_permission(conversation: Conversation, inbox: Inbox, *, now: datetime, by_bot: bool,
                     message_type: str) -> tuple[bool, str | None, str | None]:
    """(allowed, tag to send with, the rule when refused) for a free-form reply now."""
    window = window_for(inbox.channel_type, inbox.settings or {}, _attributes(conversation))
    if window is None or conversation.reply_window_closes_at is None:
        return True, None, None
    if now <= conversation.reply_window_closes_at:
        return True, None, None
    if window.after == "template" and message_type == "template":
        return True, None, None
    if window.human_tag and not by_bot:
        tag_until = conversation.reply_window_closes_at - timedelta(seconds=window.seconds) + timedelta(seconds=window.tag_seconds)
        if now <= tag_until:
            return True, window.human_tag, None
    return False, None, window.rule


def can_reply(conversation: Conversation, inbox: Inbox, now: datetime) -> bool:
    """Whether a person may still send a free-form reply."""
    allowed, _, _ = reply_permission(conversation, inbox, now=now, by_bot=False, message_type="outgoing")
    return allowed


__all__: Sequence[str] = (
    "calendar_document", "end_clock", "start_clock",
    "clock_json", "emit_clock_event", "mark_no_reply_needed", "on_message", "on_status", "policy_for",
    "refresh_next_due", "reply_permission", "can_reply", "update_reply_window",
)

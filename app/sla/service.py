"""SLA policies and business calendars: create, change, apply to a conversation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Invalid, NotFound
from app.models import BusinessCalendarRow, Conversation, Inbox, Message, SlaClock, SlaPolicy, utcnow
from app.sla import engine
from app.sla.calendar import BusinessCalendar
from app.sla.engine import RESPONSE_KINDS
from app.sla.state import forget_definitions

POLICY_FIELDS = ("name", "description", "first_response_time_threshold", "next_response_time_threshold",
                 "resolution_time_threshold", "only_during_business_hours", "calendar_id", "pause_on_pending",
                 "pause_on_snoozed", "bot_replies_count", "rules", "position")


async def get_policy(session: AsyncSession, account_id: int, policy_id: int) -> SlaPolicy:
    """A policy of the account; NotFound otherwise."""
    policy = await session.scalar(select(SlaPolicy).where(SlaPolicy.id == policy_id, SlaPolicy.account_id == account_id))
    if policy is None:
        raise NotFound("SLA policy", field="sla_policy_id")
    return policy


async def save_policy(session: AsyncSession, account_id: int, policy: SlaPolicy | None, fields: dict[str, Any]) -> SlaPolicy:
    """Create (``policy`` None) or change a policy."""
    if policy is None:
        if not fields.get("name"):
            raise Invalid("name can't be blank", field="name")
        policy = SlaPolicy(account_id=account_id, name=fields["name"], rules={})
        session.add(policy)
    for key in POLICY_FIELDS:
        if key in fields and fields[key] is not None:
            setattr(policy, key, fields[key])
    for key in ("first_response_time_threshold", "next_response_time_threshold", "resolution_time_threshold"):
        value = getattr(policy, key)
        if value is not None and value <= 0:
            raise Invalid(f"{key} must be a positive number of seconds", field=key)
    if policy.calendar_id is not None:
        await get_calendar(session, account_id, policy.calendar_id)
    await session.flush()
    forget_definitions(session)
    return policy


async def get_calendar(session: AsyncSession, account_id: int, calendar_id: int) -> BusinessCalendarRow:
    """A calendar of the account; NotFound otherwise."""
    row = await session.scalar(select(BusinessCalendarRow).where(
        BusinessCalendarRow.id == calendar_id, BusinessCalendarRow.account_id == account_id))
    if row is None:
        raise NotFound("Business calendar", field="calendar_id")
    return row


async def save_calendar(session: AsyncSession, account_id: int, row: BusinessCalendarRow | None,
                        fields: dict[str, Any]) -> BusinessCalendarRow:
    """Create or change a calendar; its hours and zone are validated by building it."""
    if row is None:
        row = BusinessCalendarRow(account_id=account_id, name=fields.get("name") or "Business hours",
                                  timezone="UTC", weekly={}, holidays=[], is_default=False)
        session.add(row)
    for key in ("name", "timezone", "weekly", "holidays", "is_default"):
        if key in fields and fields[key] is not None:
            setattr(row, key, fields[key])
    try:
        BusinessCalendar.from_document({"timezone": row.timezone, "weekly": row.weekly, "holidays": row.holidays})
    except (ValueError, KeyError, TypeError) as exc:
        raise Invalid(f"calendar is not valid: {exc}", field="weekly") from exc
    await session.flush()  # a new row needs its id before the others are cleared
    forget_definitions(session)
    if row.is_default:
        await session.execute(update(BusinessCalendarRow).where(
            BusinessCalendarRow.account_id == account_id, BusinessCalendarRow.id != row.id).values(is_default=False))
    return row


async def apply_policy(session: AsyncSession, conversation: Conversation, policy_id: int | None) -> None:
    """Apply a policy by hand (Chatwoot's ``sla_policy_id``): the old policy's clocks end
    as excluded, and the new policy's clocks start from the conversation's own anchors
    (its first customer message, ``waiting_since``, its creation)."""
    if policy_id is not None:
        await get_policy(session, conversation.account_id, policy_id)
    if policy_id == conversation.sla_policy_id:
        return
    now = utcnow()
    for row in await session.scalars(select(SlaClock).where(
            SlaClock.conversation_id == conversation.id, SlaClock.ended_at.is_(None), SlaClock.policy_id.is_not(None))):
        engine.end_clock(session, row, now, conversation, status="excluded", note="policy changed")
    conversation.sla_policy_id = policy_id
    inbox = await session.get(Inbox, conversation.inbox_id)
    assert inbox is not None
    policy = await engine.policy_for(session, conversation, inbox)
    if policy is None:
        await engine.refresh_next_due(session, conversation)
        return
    calendar = await engine.calendar_document(session, conversation.account_id, policy.calendar_id) \
        if policy.only_during_business_hours else None
    first_incoming = await session.scalar(select(Message.created_at).where(
        Message.conversation_id == conversation.id, Message.message_type == "incoming",
        Message.automatic.is_(False)).order_by(Message.created_at).limit(1))
    if conversation.first_reply_created_at is None and first_incoming and policy.first_response_time_threshold:
        await engine.start_clock(session, conversation, "first_response", first_incoming,
                            policy.first_response_time_threshold, calendar, policy.id)
    elif conversation.waiting_since and policy.next_response_time_threshold:
        await engine.start_clock(session, conversation, "next_response", conversation.waiting_since,
                            policy.next_response_time_threshold, calendar, policy.id)
    if conversation.status != "resolved" and policy.resolution_time_threshold:
        await engine.start_clock(session, conversation, "resolution", conversation.created_at,
                            policy.resolution_time_threshold, calendar, policy.id)
    await engine.refresh_next_due(session, conversation)


__all__ = ["RESPONSE_KINDS", "apply_policy", "get_calendar", "get_policy", "save_calendar", "save_policy"]

"""What the inbox knows about one customer, and contacts filtered by it.

Read from the reporting index and the conversations (never by scanning messages):
first and last contact, conversations and messages per channel, the average time the
customer waited for a reply, satisfaction answers, labels over time, and the
marketplace orders their conversations carry in custom attributes (any attribute whose
name contains ``order``).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Invalid
from app.models import Contact, Conversation, ConversationLabel, CsatResponse, Inbox, ReportingEvent


def _unix(at: datetime | None) -> int | None:
    return int(at.timestamp()) if at else None


async def contact_insight(session: AsyncSession, account_id: int, contact_id: int,
                          inbox_filter: ColumnElement[bool]) -> dict[str, Any]:
    """The insight document of one contact (conversations limited by ``inbox_filter``)."""
    conversations = (await session.execute(
        select(Conversation.id, Conversation.display_id, Conversation.created_at, Conversation.last_activity_at,
               Conversation.custom_attributes, Inbox.channel_type)
        .join(Inbox, Inbox.id == Conversation.inbox_id)
        .where(Conversation.account_id == account_id, Conversation.contact_id == contact_id, inbox_filter)
        .order_by(Conversation.created_at))).all()
    ids = [c.id for c in conversations]
    channel_of = {c.id: c.channel_type for c in conversations}
    messages: Counter[str] = Counter()
    waits: list[float] = []
    if ids:
        for conversation_id, name, count, total in (await session.execute(
                select(ReportingEvent.conversation_id, ReportingEvent.name, func.count(), func.sum(ReportingEvent.value))
                .where(ReportingEvent.account_id == account_id, ReportingEvent.conversation_id.in_(ids),
                       ReportingEvent.name.in_(("incoming_message", "reply_time")))
                .group_by(ReportingEvent.conversation_id, ReportingEvent.name))).all():
            if name == "incoming_message":
                messages[channel_of[conversation_id]] += count
            else:
                waits.append((count, total or 0.0))  # type: ignore[arg-type]
    replies = sum(n for n, _ in waits)  # type: ignore[misc]
    csat = (await session.execute(
        select(CsatResponse.rating, CsatResponse.feedback, CsatResponse.answered_at, CsatResponse.conversation_id)
        .where(CsatResponse.account_id == account_id,  # by conversation: right after a contact merge too
               CsatResponse.rating.is_not(None), CsatResponse.conversation_id.in_(ids or [0]))
        .order_by(CsatResponse.answered_at))).all()
    display = {c.id: c.display_id for c in conversations}
    labels = (await session.execute(
        select(ConversationLabel.label, ConversationLabel.conversation_id).where(
            ConversationLabel.conversation_id.in_(ids or [0])))).all()
    created = {c.id: c.created_at for c in conversations}
    orders = []
    for c in conversations:
        attributes = c.custom_attributes or {}
        keys = [key for key in sorted(attributes) if "order" in key.lower()]
        if keys:  # marketplace connectors write order_id, product_id and marketplace
            orders.append({"conversation_id": c.display_id, "at": _unix(c.created_at),
                           "marketplace": attributes.get("marketplace", c.channel_type),
                           "order_id": attributes.get("order_id", attributes[keys[0]]),
                           "product_id": attributes.get("product_id")})
    return {
        "contact_id": contact_id,
        "first_contact_at": _unix(conversations[0].created_at) if conversations else None,
        "last_contact_at": _unix(max(c.last_activity_at for c in conversations)) if conversations else None,
        "conversations_count": len(conversations),
        "conversations_by_channel": dict(Counter(c.channel_type for c in conversations)),
        "incoming_messages_by_channel": dict(messages),
        "avg_response_time": round(sum(t for _, t in waits) / replies, 2) if replies else None,  # type: ignore[misc]
        "csat": [{"rating": r, "feedback_message": f, "answered_at": _unix(a), "conversation_id": display.get(c)}
                 for r, f, a, c in csat],
        "labels": sorted(({"label": label, "conversation_id": display[cid], "at": _unix(created[cid])}
                          for label, cid in labels), key=lambda x: (x["at"], x["label"])),
        "orders": orders,
    }


async def filter_contacts(session: AsyncSession, account_id: int, *, since: datetime, until: datetime,
                          min_messages: int | None = None, min_conversations: int | None = None,
                          last_csat_lte: int | None = None, last_csat_gte: int | None = None,
                          channel_type: str | None = None, label: str | None = None,
                          inbox_filter: ColumnElement[bool], limit: int = 100) -> list[dict[str, Any]]:
    """Contacts matching every given condition in [since, until): e.g. wrote 3+ times and last CSAT <= 2."""
    if all(v is None for v in (min_messages, min_conversations, last_csat_lte, last_csat_gte, channel_type, label)):
        raise Invalid("give at least one condition")
    e = ReportingEvent
    activity = (select(Conversation.contact_id.label("contact_id"),
                       func.count(func.distinct(Conversation.id)).label("conversations"),
                       func.count().label("messages"))
                .select_from(e).join(Conversation, Conversation.id == e.conversation_id)
                .join(Inbox, Inbox.id == Conversation.inbox_id)
                .where(e.account_id == account_id, e.name == "incoming_message", e.event_end_time >= since,
                       e.event_end_time < until, inbox_filter))
    if channel_type:
        activity = activity.where(Inbox.channel_type == channel_type)
    if label:
        activity = activity.join(ConversationLabel, and_(ConversationLabel.conversation_id == Conversation.id,
                                                         ConversationLabel.label == label))
    activity = activity.group_by(Conversation.contact_id)
    if min_messages is not None:
        activity = activity.having(func.count() >= min_messages)
    if min_conversations is not None:
        activity = activity.having(func.count(func.distinct(Conversation.id)) >= min_conversations)
    active = activity.subquery()
    latest = (select(Conversation.contact_id, CsatResponse.rating,
                     func.row_number().over(partition_by=Conversation.contact_id,
                                            order_by=(CsatResponse.answered_at.desc(), CsatResponse.id.desc())).label("n"))
              .join(Conversation, Conversation.id == CsatResponse.conversation_id)
              .where(CsatResponse.account_id == account_id, CsatResponse.rating.is_not(None)).subquery())
    query = (select(Contact, active.c.conversations, active.c.messages, latest.c.rating)
             .join(active, active.c.contact_id == Contact.id)
             .outerjoin(latest, and_(latest.c.contact_id == Contact.id, latest.c.n == 1))
             .where(Contact.account_id == account_id)
             .order_by(active.c.messages.desc(), Contact.id).limit(limit))
    if last_csat_lte is not None:
        query = query.where(latest.c.rating <= last_csat_lte)
    if last_csat_gte is not None:
        query = query.where(latest.c.rating >= last_csat_gte)
    return [{"id": contact.id, "name": contact.name, "email": contact.email, "conversations": conversations,
             "incoming_messages": messages, "last_csat": rating}
            for contact, conversations, messages, rating in (await session.execute(query)).all()]

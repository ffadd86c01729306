"""Batch loading of what the presenters need, a fixed number of queries per page."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    Attachment,
    Contact,
    ContactInbox,
    ContactLabel,
    Conversation,
    ConversationLabel,
    Inbox,
    Message,
    SlaClock,
    Team,
    User,
    utcnow,
)
from app.sla.engine import can_reply, clock_json
from app.tickets import presenters

async def _by_id(session: AsyncSession, model: Any, ids: set[int]) -> dict[int, Any]:
    ids.discard(None)  # type: ignore[arg-type]
    if not ids:
        return {}
    rows = await session.scalars(select(model).where(model.id.in_(ids)))
    return {row.id: row for row in rows}


async def conversation_labels(session: AsyncSession, ids: Sequence[int]) -> dict[int, list[str]]:
    """Labels of each conversation, sorted."""
    labels: dict[int, list[str]] = defaultdict(list)
    if ids:
        rows = await session.execute(
            select(ConversationLabel.conversation_id, ConversationLabel.label)
            .where(ConversationLabel.conversation_id.in_(ids))
            .order_by(ConversationLabel.label)
        )
        for conversation_id, label in rows:
            labels[conversation_id].append(label)
    return labels


async def contact_labels(session: AsyncSession, contact_id: int) -> list[str]:
    """Labels of a contact, sorted."""
    rows = await session.scalars(
        select(ContactLabel.label)
        .where(ContactLabel.contact_id == contact_id)
        .order_by(ContactLabel.label)
    )
    return list(rows)


async def _senders(session: AsyncSession, messages: Sequence[Message]) -> dict[tuple[str, int], Any]:
    wanted: dict[str, set[int]] = defaultdict(set)
    for message in messages:
        if message.sender_type and message.sender_id is not None:
            wanted[message.sender_type].add(message.sender_id)
    senders: dict[tuple[str, int], Any] = {}
    for kind, model in (("contact", Contact), ("user", User)):
        for obj_id, obj in (await _by_id(session, model, wanted.get(kind, set()))).items():
            senders[(kind, obj_id)] = obj
    return senders


async def _attachments(session: AsyncSession, message_ids: Sequence[int]) -> dict[int, list[Attachment]]:
    found: dict[int, list[Attachment]] = defaultdict(list)
    if message_ids:
        rows = await session.scalars(
            select(Attachment).where(Attachment.message_id.in_(message_ids)).order_by(Attachment.id)
        )
        for attachment in rows:
            found[attachment.message_id].append(attachment)
    return found


async def present_messages(
    session: AsyncSession, messages: Sequence[Message], display_ids: dict[int, int]
) -> list[dict[str, Any]]:
    """Messages in their REST shape; ``display_ids`` maps conversation id to display id."""
    senders = await _senders(session, messages)
    attachments = await _attachments(session, [m.id for m in messages])
    return [
        presenters.message_json(
            m,
            conversation_display_id=display_ids[m.conversation_id],
            senders=senders,
            attachments=attachments.get(m.id, []),
        )
        for m in messages
    ]


async def present_conversations(
    session: AsyncSession, conversations: Sequence[Conversation]
) -> list[dict[str, Any]]:
    """Conversations in their REST shape, with sender, assignee, team, labels, last message."""
    if not conversations:
        return []
    ids = [c.id for c in conversations]
    contacts = await _by_id(session, Contact, {c.contact_id for c in conversations})
    inboxes = await _by_id(session, Inbox, {c.inbox_id for c in conversations})
    users = await _by_id(session, User, {c.assignee_id for c in conversations if c.assignee_id})
    teams = await _by_id(session, Team, {c.team_id for c in conversations if c.team_id})
    contact_inboxes = await _by_id(
        session, ContactInbox, {c.contact_inbox_id for c in conversations if c.contact_inbox_id}
    )
    labels = await conversation_labels(session, ids)

    last_ids = select(func.max(Message.id)).where(
        Message.conversation_id.in_(ids), Message.message_type != "activity"
    ).group_by(Message.conversation_id)
    last_messages = list(await session.scalars(select(Message).where(Message.id.in_(last_ids))))
    display_ids = {c.id: c.display_id for c in conversations}
    last_json = {
        m.conversation_id: body
        for m, body in zip(
            last_messages, await present_messages(session, last_messages, display_ids), strict=True
        )
    }

    unread: dict[int, int] = {}
    unread_rows = await session.execute(
        select(Message.conversation_id, func.count())
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Message.conversation_id.in_(ids),
            Message.message_type == "incoming",
            or_(
                Conversation.agent_last_seen_at.is_(None),
                Message.created_at > Conversation.agent_last_seen_at,
            ),
        )
        .group_by(Message.conversation_id)
    )
    for conversation_id, count in unread_rows:
        unread[conversation_id] = count

    now = utcnow()
    clocks: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if any(c.next_due_at is not None for c in conversations):
        for row in await session.scalars(
            select(SlaClock).where(SlaClock.conversation_id.in_(ids), SlaClock.ended_at.is_(None)).order_by(SlaClock.due_at)
        ):
            clocks[row.conversation_id].append(clock_json(row, now))

    return [
        presenters.conversation_json(
            c,
            contact=contacts[c.contact_id],
            inbox=inboxes[c.inbox_id],
            assignee=users.get(c.assignee_id) if c.assignee_id else None,
            team=teams.get(c.team_id) if c.team_id else None,
            labels=labels.get(c.id, []),
            last_message=last_json.get(c.id),
            unread_count=unread.get(c.id, 0),
            contact_inbox=contact_inboxes.get(c.contact_inbox_id) if c.contact_inbox_id else None,
            sla={"clocks": clocks.get(c.id, []), "can_reply": can_reply(c, inboxes[c.inbox_id], now)},
        )
        for c in conversations
    ]


async def present_conversation(session: AsyncSession, conversation: Conversation) -> dict[str, Any]:
    """One conversation in its REST shape."""
    return (await present_conversations(session, [conversation]))[0]


async def present_contact(session: AsyncSession, contact: Contact) -> dict[str, Any]:
    """One contact with its channel identities."""
    rows = await session.execute(
        select(ContactInbox, Inbox)
        .join(Inbox, Inbox.id == ContactInbox.inbox_id)
        .where(ContactInbox.contact_id == contact.id)
        .order_by(ContactInbox.id)
    )
    return presenters.contact_json(contact, contact_inboxes=[(ci, ib) for ci, ib in rows])

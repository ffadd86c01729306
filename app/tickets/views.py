"""Batch loading of what the presenters need, a fixed number of queries per page."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, case, func, or_, select
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

_BY_ID: dict[Any, Any] = {}


async def _by_id(session: AsyncSession, model: Any, ids: set[int]) -> dict[int, Any]:
    ids = set(ids)
    ids.discard(None)  # type: ignore[arg-type]
    if not ids:
        return {}
    if len(ids) == 1:  # usually the one sender, often already in the session: no query then
        (only,) = ids
        row = await session.get(model, only)
        return {row.id: row} if row is not None else {}
    statement = _BY_ID.get(model)
    if statement is None:  # built once per model (building costs about as much as running)
        statement = _BY_ID[model] = select(model).where(model.id.in_(bindparam("ids", expanding=True)))
    rows = await session.scalars(statement, {"ids": sorted(ids)})
    return {row.id: row for row in rows}


_LABELS = (
    select(ConversationLabel.conversation_id, ConversationLabel.label)
    .where(ConversationLabel.conversation_id.in_(bindparam("ids", expanding=True)))
    .order_by(ConversationLabel.label)
)


async def conversation_labels(session: AsyncSession, ids: Sequence[int]) -> dict[int, list[str]]:
    """Labels of each conversation, sorted."""
    labels: dict[int, list[str]] = defaultdict(list)
    if ids:
        rows = await session.execute(_LABELS, {"ids": list(ids)})
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


_ATTACHMENTS = (select(Attachment).where(Attachment.message_id.in_(bindparam("ids", expanding=True)))
                .order_by(Attachment.id))


async def _attachments(session: AsyncSession, message_ids: Sequence[int]) -> dict[int, list[Attachment]]:
    found: dict[int, list[Attachment]] = defaultdict(list)
    if message_ids:
        for attachment in await session.scalars(_ATTACHMENTS, {"ids": list(message_ids)}):
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


#: The newest non-activity message and the unread count of each conversation, in one
#: pass over its messages (the conversation's row gives ``agent_last_seen_at``).
_MESSAGE_STATS = (
    select(
        Message.conversation_id,
        func.max(case((Message.message_type != "activity", Message.id))),
        func.count(
            case(
                (
                    and_(
                        Message.message_type == "incoming",
                        or_(
                            Conversation.agent_last_seen_at.is_(None),
                            Message.created_at > Conversation.agent_last_seen_at,
                        ),
                    ),
                    Message.id,
                )
            )
        ),
    )
    .join(Conversation, Conversation.id == Message.conversation_id)
    .where(Message.conversation_id.in_(bindparam("ids", expanding=True)))
    .group_by(Message.conversation_id)
)
#: Messages by id, each with whether it has attachments.
_MESSAGES_WITH_FLAG = select(
    Message, select(Attachment.id).where(Attachment.message_id == Message.id).exists()
).where(Message.id.in_(bindparam("ids", expanding=True)))
#: Identities by id with their contacts.
_IDENTITIES_WITH_CONTACTS = (
    select(ContactInbox, Contact)
    .join(Contact, Contact.id == ContactInbox.contact_id)
    .where(ContactInbox.id.in_(bindparam("ids", expanding=True)))
)


async def present_conversations(
    session: AsyncSession, conversations: Sequence[Conversation]
) -> list[dict[str, Any]]:
    """Conversations in their REST shape, with sender, assignee, team, labels, last message.

    A page costs six queries, whatever its length: message stats (last message, unread
    count), the last messages, identities with their contacts, people (assignees and
    authors), inboxes and labels; teams, attachments, SLA clocks and contacts outside
    the identities only when there are any.
    """
    if not conversations:
        return []
    ids = [c.id for c in conversations]

    last_ids: dict[int, int] = {}
    unread: dict[int, int] = {}
    for conversation_id, last_id, count in await session.execute(_MESSAGE_STATS, {"ids": ids}):
        if last_id is not None:
            last_ids[conversation_id] = last_id
        if count:
            unread[conversation_id] = count
    last_messages: list[Message] = []
    with_attachments: list[int] = []
    if last_ids:
        for message, has_attachments in await session.execute(
            _MESSAGES_WITH_FLAG, {"ids": sorted(last_ids.values())}
        ):
            last_messages.append(message)
            if has_attachments:
                with_attachments.append(message.id)

    contacts: dict[int, Contact] = {}
    contact_inboxes: dict[int, ContactInbox] = {}
    identity_ids = {c.contact_inbox_id for c in conversations if c.contact_inbox_id}
    if identity_ids:
        for contact_inbox, contact in await session.execute(
            _IDENTITIES_WITH_CONTACTS, {"ids": sorted(identity_ids)}
        ):
            contact_inboxes[contact_inbox.id] = contact_inbox
            contacts[contact.id] = contact
    wanted_contacts = {c.contact_id for c in conversations} | {
        m.sender_id for m in last_messages if m.sender_type == "contact" and m.sender_id is not None
    }
    contacts.update(await _by_id(session, Contact, wanted_contacts - contacts.keys()))
    users = await _by_id(
        session,
        User,
        {c.assignee_id for c in conversations if c.assignee_id}
        | {m.sender_id for m in last_messages if m.sender_type == "user" and m.sender_id is not None},
    )
    teams = await _by_id(session, Team, {c.team_id for c in conversations if c.team_id})
    inboxes = await _by_id(session, Inbox, {c.inbox_id for c in conversations})
    labels = await conversation_labels(session, ids)
    attachments = await _attachments(session, with_attachments)

    display_ids = {c.id: c.display_id for c in conversations}
    senders: dict[tuple[str, int], Any] = {("contact", k): v for k, v in contacts.items()}
    senders.update({("user", k): v for k, v in users.items()})
    last_json = {
        m.conversation_id: presenters.message_json(
            m,
            conversation_display_id=display_ids[m.conversation_id],
            senders=senders,
            attachments=attachments.get(m.id, []),
        )
        for m in last_messages
    }

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

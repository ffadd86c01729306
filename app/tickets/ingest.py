"""The one ingest path: every channel's messages enter the ticket model here.

:func:`ingest_batch` takes :class:`InboundMessage` objects inside a unit of work and
for each one finds or creates the contact and its identity on the inbox, finds the
conversation (by thread key, then by the ids the message replies to), reopens or starts
one as needed, keeps ``waiting_since``, ``first_reply_created_at`` and
``last_activity_at`` right, stores the message and queues its events.

Exactly once: ``UNIQUE(inbox_id, source_id)`` on messages. A message already stored
answers ``duplicate`` and changes nothing. When two processes race on the same message,
the loser's transaction fails on the unique index and :func:`ingest_messages` retries
it, which then finds the winner's row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.errors import NotFound
from app.events.log import append_event
from app.models import (
    Attachment,
    Contact,
    ContactInbox,
    Conversation,
    Inbox,
    Message,
    Team,
    User,
    utcnow,
)
from app.storage import FileStore
from app.tickets import presenters
from app.tickets.views import conversation_labels
from connectors.base import InboundAttachment, InboundMessage

DEFAULT_REOPEN_WINDOW_DAYS = 30
MAX_RACE_RETRIES = 3


@dataclass(frozen=True)
class IngestResult:
    """What ingest did with one message."""

    status: Literal["created", "duplicate"]
    message_id: int
    conversation_id: int
    conversation_created: bool = False


@dataclass
class _BatchContext:
    """Rows looked up once per batch."""

    inboxes: dict[int, Inbox] = field(default_factory=dict)
    identities: dict[tuple[int, str], tuple[ContactInbox, Contact]] = field(default_factory=dict)


async def ingest_batch(
    session: AsyncSession,
    messages: Sequence[InboundMessage],
    *,
    store: FileStore | None = None,
    reopen_window_days: int = DEFAULT_REOPEN_WINDOW_DAYS,
    now: datetime | None = None,
) -> list[IngestResult]:
    """Ingest messages in the caller's transaction (services never commit)."""
    context = _BatchContext()
    results = []
    for message in messages:
        results.append(
            await _ingest_one(
                session,
                message,
                context,
                store=store,
                reopen_window_days=reopen_window_days,
                now=now or utcnow(),
            )
        )
    return results


async def ingest(
    session: AsyncSession,
    message: InboundMessage,
    *,
    store: FileStore | None = None,
    reopen_window_days: int = DEFAULT_REOPEN_WINDOW_DAYS,
    now: datetime | None = None,
) -> IngestResult:
    """Ingest one message in the caller's transaction."""
    (result,) = await ingest_batch(
        session, [message], store=store, reopen_window_days=reopen_window_days, now=now
    )
    return result


async def ingest_messages(
    db: Database,
    messages: Sequence[InboundMessage],
    *,
    store: FileStore | None = None,
    reopen_window_days: int = DEFAULT_REOPEN_WINDOW_DAYS,
    also: Callable[[AsyncSession], Awaitable[None]] | None = None,
) -> list[IngestResult]:
    """Ingest messages in one transaction of their own and commit.

    ``also`` runs inside the same transaction (a connector saves its cursor there, so
    the cursor moves only with the messages it covers). Races with another process on
    the same message are retried; the retry sees the other's row as a duplicate.
    """
    for attempt in range(MAX_RACE_RETRIES):
        try:
            async with db.write_session() as session:
                results = await ingest_batch(
                    session, messages, store=store, reopen_window_days=reopen_window_days
                )
                if also is not None:
                    await also(session)
            return results
        except IntegrityError:
            if attempt == MAX_RACE_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


async def _ingest_one(
    session: AsyncSession,
    inbound: InboundMessage,
    context: _BatchContext,
    *,
    store: FileStore | None,
    reopen_window_days: int,
    now: datetime,
) -> IngestResult:
    existing = (
        await session.execute(
            select(Message.id, Message.conversation_id).where(
                Message.inbox_id == inbound.inbox_id, Message.source_id == inbound.source_id
            )
        )
    ).first()
    if existing is not None:
        return IngestResult("duplicate", existing.id, existing.conversation_id)

    inbox = await _inbox(session, context, inbound.inbox_id)
    contact_inbox, contact, contact_created = await _identity(session, context, inbox, inbound)
    sent_at = min(inbound.sent_at or now, now + timedelta(minutes=5))
    window = inbox.reopen_window_days or reopen_window_days

    conversation = await _find_conversation(session, inbox, inbound, contact_inbox)
    created = False
    previous_status = None
    if conversation is not None and conversation.status == "resolved":
        if inbound.automatic or inbound.direction == "outgoing":
            pass  # machine mail and echoes never reopen
        elif conversation.last_activity_at < now - timedelta(days=window):
            conversation = None  # too old: a new conversation
        else:
            previous_status = conversation.status
            conversation.status = "open"
    elif conversation is not None and conversation.status == "snoozed" and _reopens(inbound):
        previous_status = conversation.status
        conversation.status = "open"
        conversation.snoozed_until = None

    if conversation is None:
        conversation = await _new_conversation(session, inbox, contact, contact_inbox, inbound, sent_at)
        created = True

    message_type = "incoming" if inbound.direction == "incoming" else "outgoing"
    additional: dict[str, Any] = {}
    if inbound.subject:
        additional["subject"] = inbound.subject
    if inbound.in_reply_to:
        additional["in_reply_to"] = inbound.in_reply_to
    if inbound.metadata:
        additional["metadata"] = inbound.metadata
    message_row = {
        "account_id": inbox.account_id,
        "inbox_id": inbox.id,
        "conversation_id": conversation.id,
        "message_type": message_type,
        "content_type": "incoming_email" if inbox.channel_type == "email" else "text",
        "content": inbound.text,
        "html_content": inbound.html,
        "private": False,
        "source_id": inbound.source_id,
        "sender_type": "contact" if message_type == "incoming" else None,
        "sender_id": contact.id if message_type == "incoming" else None,
        "status": "sent",
        "automatic": inbound.automatic,
        "content_attributes": {"external_echo": True} if message_type == "outgoing" else {},
        "additional_attributes": additional,
        "created_at": sent_at,
        "updated_at": now,
    }
    message_id = (
        await session.execute(insert(Message).returning(Message.id), [message_row])
    ).scalar_one()
    attachments = _store_attachments(
        session, store, inbox.account_id, message_id, inbound.attachments
    )

    _apply_message_to_conversation(conversation, message_type, inbound.automatic, sent_at)
    if inbound.conversation_attributes:
        conversation.custom_attributes = {
            **(conversation.custom_attributes or {}),
            **inbound.conversation_attributes,
        }
    if message_type == "incoming":
        contact.last_activity_at = max(contact.last_activity_at or sent_at, sent_at)

    await _queue_events(
        session,
        inbox=inbox,
        contact=contact,
        contact_inbox=contact_inbox,
        conversation=conversation,
        message_row={**message_row, "id": message_id},
        attachments=attachments,
        contact_created=contact_created,
        conversation_created=created,
        previous_status=previous_status,
    )
    return IngestResult("created", message_id, conversation.id, created)


def _reopens(inbound: InboundMessage) -> bool:
    return inbound.direction == "incoming" and not inbound.automatic


def _apply_message_to_conversation(
    conversation: Conversation, message_type: str, automatic: bool, sent_at: datetime
) -> None:
    """Keep the conversation's clocks right after a new message."""
    if conversation.last_activity_at is None or sent_at > conversation.last_activity_at:
        conversation.last_activity_at = sent_at
    if message_type == "incoming" and not automatic:
        if conversation.waiting_since is None:
            conversation.waiting_since = sent_at
    elif message_type == "outgoing":
        # An echo of a reply a person sent on the platform itself.
        if conversation.first_reply_created_at is None:
            conversation.first_reply_created_at = sent_at
        conversation.waiting_since = None


async def _inbox(session: AsyncSession, context: _BatchContext, inbox_id: int) -> Inbox:
    inbox = context.inboxes.get(inbox_id)
    if inbox is None:
        inbox = await session.get(Inbox, inbox_id)
        if inbox is None:
            raise NotFound("Inbox")
        context.inboxes[inbox_id] = inbox
    return inbox


async def _identity(
    session: AsyncSession, context: _BatchContext, inbox: Inbox, inbound: InboundMessage
) -> tuple[ContactInbox, Contact, bool]:
    """The sender's identity on the inbox and their contact, created when new."""
    key = (inbox.id, inbound.sender.source_id)
    if key in context.identities:
        contact_inbox, contact = context.identities[key]
        return contact_inbox, contact, False
    row = (
        await session.execute(
            select(ContactInbox, Contact)
            .join(Contact, Contact.id == ContactInbox.contact_id)
            .where(ContactInbox.inbox_id == inbox.id, ContactInbox.source_id == key[1])
        )
    ).first()
    created = False
    if row is not None:
        contact_inbox, contact = row
    else:
        sender = inbound.sender
        contact = None
        if sender.email:
            contact = await session.scalar(
                select(Contact).where(
                    Contact.account_id == inbox.account_id, Contact.email == sender.email
                )
            )
        if contact is None:
            contact = Contact(
                account_id=inbox.account_id,
                name=sender.name or sender.email or sender.phone_number or sender.source_id,
                email=sender.email,
                phone_number=sender.phone_number,
                avatar_url=sender.avatar_url,
                additional_attributes=dict(sender.attributes),
                custom_attributes={},
            )
            session.add(contact)
            await session.flush()
            created = True
        contact_inbox = ContactInbox(contact_id=contact.id, inbox_id=inbox.id, source_id=key[1])
        session.add(contact_inbox)
        await session.flush()
    context.identities[key] = (contact_inbox, contact)
    return contact_inbox, contact, created


async def _find_conversation(
    session: AsyncSession, inbox: Inbox, inbound: InboundMessage, contact_inbox: ContactInbox
) -> Conversation | None:
    """By thread key, then by the messages this one replies to, else per contact."""
    if inbound.thread_key:
        found = await session.scalar(
            select(Conversation)
            .where(Conversation.inbox_id == inbox.id, Conversation.thread_key == inbound.thread_key)
            .order_by(Conversation.id.desc())
            .limit(1)
        )
        if found is not None:
            return found
    if inbound.in_reply_to:
        found = await session.scalar(
            select(Conversation)
            .join(Message, Message.conversation_id == Conversation.id)
            .where(Message.inbox_id == inbox.id, Message.source_id.in_(inbound.in_reply_to))
            .order_by(Conversation.id.desc())
            .limit(1)
        )
        if found is not None:
            return found
    if inbound.thread_key:
        return None
    return await session.scalar(
        select(Conversation)
        .where(Conversation.contact_inbox_id == contact_inbox.id)
        .order_by(Conversation.id.desc())
        .limit(1)
    )


async def _new_conversation(
    session: AsyncSession,
    inbox: Inbox,
    contact: Contact,
    contact_inbox: ContactInbox,
    inbound: InboundMessage,
    sent_at: datetime,
) -> Conversation:
    from app.tickets.numbering import next_display_id

    additional: dict[str, Any] = {}
    if inbound.subject:
        additional["mail_subject"] = inbound.subject
    conversation = Conversation(
        account_id=inbox.account_id,
        display_id=await next_display_id(session, inbox.account_id),
        inbox_id=inbox.id,
        contact_id=contact.id,
        contact_inbox_id=contact_inbox.id,
        status="open",
        thread_key=inbound.thread_key,
        last_activity_at=sent_at,
        additional_attributes=additional,
        custom_attributes={},
        created_at=sent_at,
    )
    session.add(conversation)
    await session.flush()
    return conversation


def _store_attachments(
    session: AsyncSession,
    store: FileStore | None,
    account_id: int,
    message_id: int,
    items: Sequence[InboundAttachment],
) -> list[Attachment]:
    rows = []
    for item in items:
        path = None
        if item.data is not None:
            if store is None:
                raise ValueError("attachment bytes given but no file store configured")
            path = store.save(account_id, item.data, item.file_name)
        attachment = Attachment(
            account_id=account_id,
            message_id=message_id,
            file_type=file_type_of(item.content_type),
            content_type=item.content_type,
            file_name=item.file_name,
            file_size=len(item.data) if item.data is not None else None,
            storage_path=path,
            external_url=item.external_url,
            created_at=utcnow(),
        )
        session.add(attachment)
        rows.append(attachment)
    return rows


def file_type_of(content_type: str | None) -> str:
    """Chatwoot's coarse file type for a MIME type."""
    major = (content_type or "").split("/", 1)[0]
    return {"image": "image", "audio": "audio", "video": "video"}.get(major, "file")


async def _queue_events(
    session: AsyncSession,
    *,
    inbox: Inbox,
    contact: Contact,
    contact_inbox: ContactInbox,
    conversation: Conversation,
    message_row: dict[str, Any],
    attachments: list[Attachment],
    contact_created: bool,
    conversation_created: bool,
    previous_status: str | None,
) -> None:
    """Queue the events of one ingested message, built from the rows at hand."""
    if attachments:
        await session.flush()
    message = Message(**message_row)
    senders = {("contact", contact.id): contact}
    message_body = presenters.message_json(
        message,
        conversation_display_id=conversation.display_id,
        senders=senders,
        attachments=attachments,
    )
    common = {"account_id": inbox.account_id, "inbox_id": inbox.id}
    if contact_created:
        append_event(
            session, event_type="contact.created", payload=presenters.contact_json(contact), **common
        )
    assignee = await session.get(User, conversation.assignee_id) if conversation.assignee_id else None
    team = await session.get(Team, conversation.team_id) if conversation.team_id else None
    labels = [] if conversation_created else (await conversation_labels(session, [conversation.id])).get(conversation.id, [])
    conversation_body = presenters.conversation_json(
        conversation,
        contact=contact,
        inbox=inbox,
        assignee=assignee,
        team=team,
        labels=labels,
        last_message=message_body,
        unread_count=0,
        contact_inbox=contact_inbox,
    )
    if conversation_created:
        append_event(
            session,
            event_type="conversation.created",
            payload=conversation_body,
            conversation_id=conversation.id,
            **common,
        )
    elif previous_status is not None:
        append_event(
            session,
            event_type="conversation.status_changed",
            payload={**conversation_body, "changed_attributes": {"status": {
                "previous_value": previous_status, "current_value": conversation.status}}},
            conversation_id=conversation.id,
            **common,
        )
    message_body["conversation"] = {
        k: conversation_body[k]
        for k in ("id", "inbox_id", "status", "assignee_id", "team_id", "contact_id",
                  "waiting_since", "first_reply_created_at", "last_activity_at")
    }
    append_event(
        session,
        event_type="message.created",
        payload=message_body,
        conversation_id=conversation.id,
        **common,
    )

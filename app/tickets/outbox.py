"""The outbox side of replies: what the dispatcher reads and how it records the outcome.

A reply on a dispatched channel is stored ``pending`` (``app.tickets.replies``). The
dispatcher (``app.runner.dispatch``) reads the pending replies of an inbox in order,
turns each into an :class:`OutboundMessage`, and records ``sent`` (the platform's id in
``source_id``) or ``failed`` (the platform's code and text in ``external_error``), each
with a ``message.updated`` event so agents see it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import queue_scan
from app.models import Attachment, ContactInbox, Conversation, Message, utcnow
from app.storage import FileStore
from app.tickets.replies import queue_message_event
from connectors.base import InboundAttachment, OutboundMessage

#: Message types a dispatcher sends (notes are private; activity lines are local).
SENT_TYPES = ("outgoing", "template")
#: Earlier platform ids of a thread handed to a connector (e-mail's References).
THREAD_IDS = 20


async def pending_replies(session: AsyncSession, inbox_id: int, *, limit: int = 20) -> list[Message]:
    """The inbox's replies still to send, oldest first."""
    await queue_scan(session)
    rows = await session.scalars(
        select(Message)
        .where(Message.status == "pending", Message.inbox_id == inbox_id,
               Message.message_type.in_(SENT_TYPES), Message.private.is_(False))
        .order_by(Message.id)
        .limit(limit)
    )
    return list(rows)


async def outbound_for(session: AsyncSession, store: FileStore, message: Message) -> OutboundMessage:
    """The platform-neutral form of a stored reply: recipient, text, files, what it answers."""
    conversation = await session.get(Conversation, message.conversation_id)
    assert conversation is not None
    identity = await session.get(ContactInbox, conversation.contact_inbox_id) if conversation.contact_inbox_id else None
    files = await session.scalars(select(Attachment).where(Attachment.message_id == message.id).order_by(Attachment.id))
    attachments = [
        InboundAttachment(
            file_name=a.file_name, content_type=a.content_type or "application/octet-stream",
            data=_read(store, a.storage_path), external_url=a.external_url,
        )
        for a in files
    ]
    in_reply_to = []
    answered = (message.content_attributes or {}).get("in_reply_to")
    if answered:
        source = await session.scalar(select(Message.source_id).where(
            Message.id == int(answered), Message.conversation_id == conversation.id))
        if source:
            in_reply_to.append(source)
    return OutboundMessage(
        metadata=await _send_context(session, message),
        inbox_id=message.inbox_id,
        message_id=message.id,
        conversation_thread_key=conversation.thread_key,
        recipient_source_id=identity.source_id if identity else "",
        text=message.content,
        html=message.html_content,
        attachments=attachments,
        in_reply_to=in_reply_to,
        created_at=message.created_at,
    )


#: Reply attributes a connector needs to send (the reply-window tag, a WhatsApp template).
_SEND_ATTRIBUTES = ("message_tag", "template_params")


async def _send_context(session: AsyncSession, message: Message) -> dict[str, Any]:
    """What the platform needs besides the text: the tag or template chosen when the reply
    was written, and the customer's last message (LINE answers it with its reply token)."""
    attributes = message.content_attributes or {}
    context: dict[str, Any] = {k: attributes[k] for k in _SEND_ATTRIBUTES if attributes.get(k)}
    last = (await session.execute(
        select(Message.source_id, Message.created_at, Message.additional_attributes)
        .where(Message.conversation_id == message.conversation_id, Message.message_type == "incoming",
               Message.id < message.id)
        .order_by(Message.id.desc()).limit(1))).first()
    if last is not None:
        context["last_incoming"] = {"source_id": last[0], "at": last[1].isoformat(),
                                    "metadata": (last[2] or {}).get("metadata") or {}}
    # The thread's earlier platform ids, oldest first, and its subject (e-mail's
    # References and "Re:" line).
    context["thread_source_ids"] = list(await session.scalars(
        select(Message.source_id)
        .where(Message.conversation_id == message.conversation_id, Message.id < message.id,
               Message.source_id.is_not(None), Message.private.is_(False))
        .order_by(Message.id.desc()).limit(THREAD_IDS)))[::-1]
    conversation = await session.get(Conversation, message.conversation_id)
    subject = (conversation.additional_attributes or {}).get("mail_subject") if conversation else None
    if subject:
        context["subject"] = subject
    return context


def _read(store: FileStore, path: str | None) -> bytes | None:
    """A stored file's bytes; None when there is none (the connector refuses to send it)."""
    if not path:
        return None
    try:
        return store.path(path).read_bytes()
    except (OSError, ValueError):
        return None


async def mark_sent(session: AsyncSession, message_id: int, platform_id: str) -> bool:
    """Record a delivered reply; False when it was no longer pending.

    The platform's id goes to ``source_id``; a reply that already has one (an API
    client's idempotency key) keeps it and gets the platform's id as
    ``content_attributes.external_id``.
    """
    message = await _pending(session, message_id)
    if message is None:
        return False
    message.status = "sent"
    message.external_error = None
    if message.source_id is None:
        message.source_id = platform_id
    else:
        message.content_attributes = {**(message.content_attributes or {}), "external_id": platform_id}
    await _announce(session, message)
    return True


async def mark_failed(session: AsyncSession, message_id: int, error: str) -> bool:
    """Record a reply the platform refused (or that could not be sent in time)."""
    message = await _pending(session, message_id)
    if message is None:
        return False
    message.status = "failed"
    message.external_error = error[:2000]
    await _announce(session, message)
    return True


async def _pending(session: AsyncSession, message_id: int) -> Message | None:
    message = await session.get(Message, message_id, with_for_update=True)
    return message if message is not None and message.status == "pending" else None


async def _announce(session: AsyncSession, message: Message) -> None:
    message.updated_at = utcnow()
    conversation = await session.get(Conversation, message.conversation_id)
    assert conversation is not None
    await queue_message_event(session, conversation, message, "message.updated")

"""Messages written inside Postroom: replies, private notes, activity lines.

Outbound is an outbox: a reply on a channel that Postroom delivers itself is stored
``pending`` and sent by that channel's dispatcher, which marks it ``sent`` or
``failed``. Channels whose clients read replies from Postroom (the API channel, live
chat) store it ``sent`` at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.errors import Invalid, NotFound
from app.events.log import append_event, hold_conversation
from app.models import Attachment, Conversation, Inbox, Message, utcnow
from app.sla import hooks as sla_hooks
from app.sla.engine import reply_permission
from app.tickets import continuity
from app.tickets.presenters import message_conversation_json
from app.tickets.views import present_messages
from connectors.registry import dispatched_channel_types

#: Channel types whose replies a dispatcher delivers (the connector registry's).
DISPATCHED_CHANNELS: set[str] = set(dispatched_channel_types())
MAX_CONTENT_CHARS = 150_000


@dataclass(frozen=True)
class StoredFile:
    """A file an agent uploaded, already saved in the file store."""

    storage_path: str
    file_name: str | None
    content_type: str | None
    file_size: int
    file_type: str = "file"

    def row(self, message: Message) -> Attachment:
        """The attachment row of ``message`` for this file."""
        return Attachment(
            account_id=message.account_id, message_id=message.id, file_type=self.file_type,
            content_type=self.content_type, file_name=self.file_name, file_size=self.file_size,
            storage_path=self.storage_path, created_at=utcnow(),
        )


_PRESENTED = "postroom_presented_messages"


def presented(session: AsyncSession, message: Message) -> dict[str, Any] | None:
    """The REST shape of a message :func:`create_message` made in this session (a copy), or
    None; the API answers with it instead of presenting the message again."""
    body = session.info.get(_PRESENTED, {}).get(message.id)
    return dict(body) if body is not None else None


async def queue_message_event(
    session: AsyncSession, conversation: Conversation, message: Message, event_type: str
) -> dict[str, Any]:
    """Queue ``message.created`` / ``message.updated`` for a message of ``conversation``."""
    await session.flush()
    (body,) = await present_messages(session, [message], {conversation.id: conversation.display_id})
    body["conversation"] = message_conversation_json(conversation)
    hold_conversation(session, conversation)
    append_event(
        session,
        account_id=conversation.account_id,
        inbox_id=conversation.inbox_id,
        conversation_id=conversation.id,
        event_type=event_type,
        payload=body,
    )
    return body


async def add_activity(session: AsyncSession, conversation: Conversation, text: str) -> Message:
    """An activity line (assigned, resolved, …); never starts or stops a clock."""
    message = Message(
        account_id=conversation.account_id,
        inbox_id=conversation.inbox_id,
        conversation_id=conversation.id,
        message_type="activity",
        content=text,
        status="sent",
        sender_type="system",
        created_at=utcnow(),
        content_attributes={},
        additional_attributes={},
    )
    session.add(message)
    await queue_message_event(session, conversation, message, "message.created")
    return message


async def create_message(
    session: AsyncSession,
    principal: Principal,
    conversation: Conversation,
    *,
    content: str | None,
    message_type: str = "outgoing",
    private: bool = False,
    content_type: str = "text",
    content_attributes: dict[str, Any] | None = None,
    source_id: str | None = None,
    echo_id: str | None = None,
    attachments: Sequence[StoredFile] = (),
) -> tuple[Message, bool]:
    """A reply or private note by the caller; returns (message, created).

    With a ``source_id`` the call is idempotent: the same source id on the same inbox
    returns the message stored the first time. ``attachments`` are files already in the
    file store (uploaded with the message).
    """
    if message_type not in ("outgoing", "incoming", "template"):
        raise Invalid("message_type must be outgoing, incoming or template", field="message_type")
    if not content and not content_attributes and not attachments:
        raise Invalid("content can't be blank", field="content")
    if content and len(content) > MAX_CONTENT_CHARS:
        raise Invalid(f"content is longer than {MAX_CONTENT_CHARS} characters", field="content")
    if source_id:
        existing = await session.scalar(
            select(Message).where(
                Message.inbox_id == conversation.inbox_id, Message.source_id == source_id
            )
        )
        if existing is not None:
            return existing, False
    inbox = await session.get(Inbox, conversation.inbox_id)
    assert inbox is not None
    now = utcnow()
    incoming = message_type == "incoming"
    tag = None
    if not private and not incoming:
        allowed, tag, rule = reply_permission(
            conversation, inbox, now=now, by_bot=principal.is_bot, message_type=message_type)
        if not allowed:
            raise Invalid(f"the reply window is closed: {rule}", field="content")
    status = "sent"
    if not private and not incoming and inbox.channel_type in DISPATCHED_CHANNELS:
        status = "pending"
    attributes = dict(content_attributes or {})
    if tag:
        attributes["message_tag"] = tag
    if echo_id:
        attributes["echo_id"] = echo_id
    message = Message(
        account_id=conversation.account_id,
        inbox_id=conversation.inbox_id,
        conversation_id=conversation.id,
        message_type=message_type,
        content_type=content_type,
        content=content,
        private=private,
        source_id=source_id,
        sender_type="contact" if incoming else ("agent_bot" if principal.is_bot else "user"),
        sender_id=conversation.contact_id if incoming else principal.user.id,
        status=status,
        content_attributes=attributes,
        additional_attributes={},
        created_at=now,
    )
    session.add(message)
    if attachments:
        await session.flush()
        session.add_all(stored.row(message) for stored in attachments)
    if not private:
        conversation.last_activity_at = now
        if incoming:
            if conversation.waiting_since is None:
                conversation.waiting_since = now
        else:
            # A bot's reply stops the waiting clock but is not the first response by a person.
            if conversation.first_reply_created_at is None and not principal.is_bot:
                conversation.first_reply_created_at = now
            conversation.waiting_since = None
    await sla_hooks.after_reply(
        session, conversation, inbox, private=private, at=now,
        author="contact" if incoming else ("bot" if principal.is_bot else "person"),
    )
    body = await queue_message_event(session, conversation, message, "message.created")
    session.info.setdefault(_PRESENTED, {})[message.id] = {k: v for k, v in body.items() if k != "conversation"}
    if not private and not incoming and not principal.is_bot:
        await continuity.queue_copy(session, conversation, inbox, message)  # live chat: an e-mail copy
    return message, True


async def get_message(
    session: AsyncSession, principal: Principal, message_id: int, conversation: Conversation | None = None
) -> tuple[Message, Conversation]:
    """A message the caller may see (optionally required to be in ``conversation``)."""
    row = (
        await session.execute(
            select(Message, Conversation)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Message.id == message_id,
                Message.account_id == principal.account_id,
                principal.inbox_filter(Message.inbox_id),
            )
        )
    ).first()
    if row is None or (conversation is not None and row[1].id != conversation.id):
        raise NotFound("Message")
    return row[0], row[1]


async def update_message(
    session: AsyncSession, conversation: Conversation, message: Message, *, content: str
) -> None:
    """Edit a message's text (agents' own messages); emits message.updated."""
    if message.message_type == "incoming":
        raise Invalid("messages from contacts cannot be edited", field="content")
    if not content:
        raise Invalid("content can't be blank", field="content")
    message.content = content
    message.content_attributes = {**(message.content_attributes or {}), "edited": True}
    await queue_message_event(session, conversation, message, "message.updated")


async def delete_message(session: AsyncSession, conversation: Conversation, message: Message) -> None:
    """Chatwoot's delete: the text is replaced and the message marked deleted."""
    message.content = "This message was deleted"
    message.html_content = None
    message.content_attributes = {**(message.content_attributes or {}), "deleted": True}
    await queue_message_event(session, conversation, message, "message.updated")


async def list_messages(
    session: AsyncSession, conversation: Conversation, *, before: int | None = None, limit: int = 100
) -> list[Message]:
    """Up to ``limit`` messages, oldest first, ending before message id ``before``."""
    query = select(Message).where(Message.conversation_id == conversation.id)
    if before is not None:
        query = query.where(Message.id < before)
    rows = list(await session.scalars(query.order_by(Message.id.desc()).limit(limit)))
    rows.reverse()
    return rows

"""What push channels report besides messages: delivery receipts for our replies, and
contacts following or leaving (unreadable events go to ``app.tickets.quarantine``).

Receipts move a reply's status forward only (``sent`` < ``delivered`` < ``read``); a
``failed`` status (WhatsApp's asynchronous refusals, such as 131047 outside the
customer service window) marks a reply that was not yet read as failed with the
platform's code and text. Each change is a ``message.updated`` event. A receipt for a
message Postroom does not know (sent from elsewhere) changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Contact, ContactInbox, Conversation, Inbox, Message, utcnow
from app.tickets.replies import queue_message_event
from connectors.base import ContactEvent, Receipt

#: How far each status is along; a receipt never moves a message back.
_RANK = {"pending": 0, "sent": 1, "delivered": 2, "read": 3}
#: Replies a watermark receipt may touch at most (the newest ones).
_WATERMARK_LIMIT = 200


async def apply_receipts(session: AsyncSession, inbox: Inbox, receipts: Sequence[Receipt]) -> int:
    """Update the statuses the receipts report; returns how many messages changed."""
    changed = 0
    for receipt in receipts:
        for message in await _targets(session, inbox, receipt):
            if _advance(message, receipt):
                message.updated_at = utcnow()
                conversation = await session.get(Conversation, message.conversation_id)
                assert conversation is not None
                await queue_message_event(session, conversation, message, "message.updated")
                changed += 1
    return changed


async def _targets(session: AsyncSession, inbox: Inbox, receipt: Receipt) -> list[Message]:
    sent_by_us = (Message.inbox_id == inbox.id, Message.message_type.in_(("outgoing", "template")),
                  Message.private.is_(False))
    if receipt.source_ids:
        return list(await session.scalars(
            select(Message).where(*sent_by_us, Message.source_id.in_(receipt.source_ids)).with_for_update()))
    if receipt.watermark is None or not receipt.recipient:
        return []
    return list(await session.scalars(
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(ContactInbox, ContactInbox.id == Conversation.contact_inbox_id)
        .where(*sent_by_us, ContactInbox.inbox_id == inbox.id, ContactInbox.source_id == receipt.recipient,
               Message.status.in_(("sent", "delivered")), Message.created_at <= receipt.watermark)
        .order_by(Message.id.desc()).limit(_WATERMARK_LIMIT).with_for_update(of=Message)))


def _advance(message: Message, receipt: Receipt) -> bool:
    current = message.status
    if receipt.status == "failed":
        if current in ("failed", "read"):
            return False
        message.status = "failed"
        message.external_error = (receipt.error or "failed: the platform gave no reason")[:2000]
        return True
    if current == "failed" or _RANK.get(receipt.status, 0) <= _RANK.get(current, 0):
        return False
    message.status = receipt.status
    return True


async def apply_contact_events(session: AsyncSession, inbox: Inbox, events: Sequence[ContactEvent]) -> None:
    """Follow / unfollow: kept on the contact (``additional_attributes.followed``); a
    contact who follows before writing is created from their profile."""
    for event in events:
        row = (await session.execute(
            select(ContactInbox, Contact).join(Contact, Contact.id == ContactInbox.contact_id)
            .where(ContactInbox.inbox_id == inbox.id, ContactInbox.source_id == event.sender.source_id))).first()
        if row is None:
            if event.kind != "follow":
                continue
            sender = event.sender
            contact = Contact(account_id=inbox.account_id, name=sender.name or sender.source_id,
                              avatar_url=sender.avatar_url, additional_attributes=dict(sender.attributes),
                              custom_attributes={})
            session.add(contact)
            await session.flush()
            session.add(ContactInbox(inbox_id=inbox.id, source_id=sender.source_id, contact_id=contact.id))
        else:
            contact = row[1]
        attributes = dict(contact.additional_attributes or {})
        attributes["followed"] = event.kind == "follow"
        attributes["followed_changed_at"] = (event.at or utcnow()).isoformat()
        contact.additional_attributes = attributes
    await session.flush()

"""Conversation continuity: agents' live-chat replies also go by e-mail to a visitor who
left an address and is not connected (Chatwoot's "conversation continuity").

A person's reply on a web-widget conversation is queued here, in the reply's own
transaction, when all of these hold: the widget inbox's ``continuity_via_email`` setting
is on (the default), the visitor's contact has an e-mail address, and the visitor has
no open chat socket (``contact_inboxes.online_until`` is past; ``app.api.widget`` keeps
it renewed while a socket is open). :mod:`app.tickets.continuity_mailer` sends the
queue; nothing here talks to a mail server, so the reply request never waits for one.

Which SMTP server sends: the e-mail inbox named by the widget inbox's
``continuity_email_inbox_id`` setting, else the account's first e-mail inbox (lowest id)
with an SMTP server (``smtp_address``). With none, the copy is marked ``failed``
("no e-mail inbox with SMTP") and the reply itself is unaffected.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.log import request_wake
from app.models import Attachment, Contact, ContactInbox, ContinuityEmail, Conversation, Inbox, Message, User, utcnow
from app.storage import FileStore
from connectors.base import InboundAttachment, OutboundMessage
from connectors.email.threading import thread_key_for

EMAIL_CHANNELS = ("email",)
#: Wake topic of a transaction that queued a copy (the mailer listens to it).
CONTINUITY = "continuity"

#: The line under the reply, in the visitor's language (``browser_language``).
FOOTER = {
    "en": "You wrote to us in the chat on our website. Reply to this e-mail, or continue in the chat.",
    "th": "คุณติดต่อเราผ่านแชทบนเว็บไซต์ ตอบกลับอีเมลนี้ หรือคุยต่อในแชทได้เลย",
    "vi": "Bạn đã nhắn cho chúng tôi qua khung chat trên website. Hãy trả lời email này hoặc tiếp tục trò chuyện.",
    "fa": "شما از طریق گفتگوی وب‌سایت با ما در تماس بودید. به این ایمیل پاسخ دهید یا گفتگو را ادامه دهید.",
    "zh": "您曾通过我们网站的在线聊天联系我们。可直接回复此邮件，或继续在聊天中沟通。",
}


def enabled(inbox: Inbox) -> bool:
    """Whether the widget inbox sends e-mail copies (setting ``continuity_via_email``, on by default)."""
    return inbox.channel_type == "web_widget" and bool((inbox.settings or {}).get("continuity_via_email", True))


def visitor_online(identity: ContactInbox | None, now: datetime) -> bool:
    """Whether the visitor has a chat socket open (as last renewed)."""
    return identity is not None and identity.online_until is not None and identity.online_until > now


async def queue_copy(session: AsyncSession, conversation: Conversation, inbox: Inbox, message: Message) -> ContinuityEmail | None:
    """Queue the e-mail copy of a person's reply when the visitor should get one; None otherwise.

    Called in the reply's transaction, once per created reply (``message_id`` is unique).
    """
    if not enabled(inbox) or message.private or message.message_type not in ("outgoing", "template"):
        return None
    contact = await session.get(Contact, conversation.contact_id)
    if contact is None or not contact.email or contact.account_id != conversation.account_id:
        return None
    identity = await session.get(ContactInbox, conversation.contact_inbox_id) if conversation.contact_inbox_id else None
    now = utcnow()
    if visitor_online(identity, now):
        return None
    row = ContinuityEmail(account_id=conversation.account_id, conversation_id=conversation.id, message_id=message.id,
                          to_address=contact.email, status="pending", attempts=0, next_attempt_at=now, created_at=now)
    session.add(row)
    request_wake(session, CONTINUITY)
    return row


async def sending_inbox(session: AsyncSession, widget: Inbox) -> Inbox | None:
    """The e-mail inbox whose SMTP server sends the widget inbox's copies (see the module doc)."""
    chosen = (widget.settings or {}).get("continuity_email_inbox_id")
    query = select(Inbox).where(Inbox.account_id == widget.account_id, Inbox.channel_type.in_(EMAIL_CHANNELS))
    if chosen not in (None, ""):
        try:
            inbox_id = int(chosen)
        except (TypeError, ValueError):
            return None
        return await session.scalar(query.where(Inbox.id == inbox_id))
    for inbox in await session.scalars(query.order_by(Inbox.id)):
        if (inbox.settings or {}).get("smtp_address"):
            return inbox
    return None


def conversation_token(conversation: Conversation) -> str:
    """The mail-thread token of a widget conversation's copies: every copy of one
    conversation is one mail thread (Message-ID and Reply-To carry it)."""
    return thread_key_for(f"web_widget:{conversation.uuid}")


async def outbound_copy(session: AsyncSession, store: FileStore, row: ContinuityEmail, email_inbox: Inbox) -> OutboundMessage:
    """The mail of one queued copy: the reply's text and files, to the visitor's address."""
    message = await session.get(Message, row.message_id)
    conversation = await session.get(Conversation, row.conversation_id)
    assert message is not None and conversation is not None
    widget = await session.get(Inbox, conversation.inbox_id)
    contact = await session.get(Contact, conversation.contact_id)
    author = await session.get(User, message.sender_id) if message.sender_type == "user" and message.sender_id else None
    language = str(((contact.additional_attributes or {}) if contact else {}).get("browser_language") or "en")[:2].lower()
    footer = FOOTER.get(language, FOOTER["en"])
    files = await session.scalars(select(Attachment).where(Attachment.message_id == message.id).order_by(Attachment.id))
    attachments = [
        InboundAttachment(file_name=a.file_name, content_type=a.content_type or "application/octet-stream",
                          data=_read(store, a.storage_path))
        for a in files if a.storage_path
    ]
    earlier = list(await session.scalars(
        select(ContinuityEmail.mail_message_id)
        .where(ContinuityEmail.conversation_id == conversation.id, ContinuityEmail.status == "sent",
               ContinuityEmail.mail_message_id.is_not(None), ContinuityEmail.id < row.id)
        .order_by(ContinuityEmail.id)))
    name = (getattr(author, "display_name", None) or getattr(author, "name", None)) if author else None
    shop = widget.name if widget else email_inbox.name
    metadata: dict[str, Any] = {
        "subject": f"{shop} #{conversation.display_id}",
        "thread_source_ids": earlier,
        "from_name": f"{name} · {shop}" if name else shop,
    }
    return OutboundMessage(
        inbox_id=email_inbox.id, message_id=message.id, conversation_thread_key=conversation_token(conversation),
        recipient_source_id=row.to_address, text=f"{message.content or ''}\n\n--\n{footer}".lstrip(),
        attachments=attachments, metadata=metadata, created_at=message.created_at,
    )


def _read(store: FileStore, path: str) -> bytes | None:
    try:
        return store.path(path).read_bytes()
    except (OSError, ValueError):
        return None

"""Platform-neutral message shapes exchanged between connectors and the service."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, field_validator


class SenderIdentity(BaseModel):
    """Who wrote an inbound message, as the channel knows them."""

    #: The sender's id on the channel (e-mail address, PSID, Telegram user id, buyer id).
    source_id: str = Field(min_length=1, max_length=1000)
    name: str | None = None
    email: str | None = None
    phone_number: str | None = None
    avatar_url: str | None = None
    #: Extra profile data from the platform (locale, username, …).
    attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("email")
    @classmethod
    def _lower_email(cls, value: str | None) -> str | None:
        return value.strip().lower() if value else None


class InboundAttachment(BaseModel):
    """A file that came with an inbound message: inline bytes or a platform URL."""

    file_name: str | None = None
    content_type: str = "application/octet-stream"
    data: bytes | None = None
    external_url: str | None = None
    #: The platform's id of a file not fetched yet (WhatsApp media id, LINE message id);
    #: ``connectors.base.media.fetch_media`` fills ``data`` in before storage.
    platform_id: str | None = None


class InboundMessage(BaseModel):
    """One message a connector fetched or received, ready for ``app.tickets.ingest``.

    ``(inbox, source_id)`` identifies it: delivering the same message twice stores it once.
    """

    inbox_id: int
    #: The platform's message id (Message-ID, mid, update id, …).
    source_id: str = Field(min_length=1, max_length=2000)
    #: The channel's conversation/thread id; None means one conversation per contact.
    thread_key: str | None = Field(default=None, max_length=2000)
    sender: SenderIdentity
    #: ``incoming`` from the customer; ``outgoing`` for echoes of replies sent on the
    #: platform itself (Messenger ``is_echo``, a marketplace's sent box).
    direction: Literal["incoming", "outgoing"] = "incoming"
    text: str | None = None
    #: HTML body as received; sanitized before storage by the channel's parser.
    html: str | None = None
    subject: str | None = None
    attachments: list[InboundAttachment] = Field(default_factory=list)
    #: When the sender wrote it, by the platform's clock.
    sent_at: AwareDatetime | None = None
    #: Platform ids of the messages this one answers (In-Reply-To, References, …).
    in_reply_to: list[str] = Field(default_factory=list)
    #: Auto-reply, bounce or other machine mail: stored, but starts no clock and
    #: reopens nothing.
    automatic: bool = False
    #: Raw headers or platform metadata worth keeping (never secrets).
    metadata: dict[str, Any] = Field(default_factory=dict)
    #: Conversation attributes the platform knows (order id, product, …).
    conversation_attributes: dict[str, Any] = Field(default_factory=dict)
    #: A new version of the message ``source_id`` delivered before (Telegram's
    #: ``edited_message``): its ``text`` replaces the stored one; nothing new is stored.
    edited: bool = False


class OutboundMessage(BaseModel):
    """A reply the dispatcher asks a connector to deliver."""

    inbox_id: int
    message_id: int
    conversation_thread_key: str | None = None
    recipient_source_id: str
    text: str | None = None
    html: str | None = None
    attachments: list[InboundAttachment] = Field(default_factory=list)
    in_reply_to: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None

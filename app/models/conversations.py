"""Conversations, their messages and attachments."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, BigId, utcnow

STATUSES = ("open", "pending", "snoozed", "resolved")
PRIORITIES = ("low", "medium", "high", "urgent")
MESSAGE_TYPES = ("incoming", "outgoing", "activity", "template")
DELIVERY_STATUSES = ("pending", "sent", "delivered", "read", "failed")
SENDER_TYPES = ("contact", "user", "agent_bot", "system")


def new_conversation_uuid() -> str:
    """A conversation's public UUID."""
    return str(uuid.uuid4())


class Conversation(Base):
    """A thread with one contact on one inbox: the unit agents work on."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    #: Per-account sequential number; the ``id`` of the REST API.
    display_id: Mapped[int]
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_conversation_uuid)
    inbox_id: Mapped[int] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    contact_inbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact_inboxes.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(16), default="open")
    priority: Mapped[str | None] = mapped_column(String(16))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    #: The channel's thread key (e-mail thread root, marketplace conversation id, …).
    thread_key: Mapped[str | None] = mapped_column(Text)
    snoozed_until: Mapped[datetime | None]
    #: When the contact started waiting for an answer; cleared by a reply.
    waiting_since: Mapped[datetime | None]
    first_reply_created_at: Mapped[datetime | None]
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)
    agent_last_seen_at: Mapped[datetime | None]
    contact_last_seen_at: Mapped[datetime | None]
    additional_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    custom_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: The SLA policy applied by hand (None: by rule, if one matches).
    sla_policy_id: Mapped[int | None] = mapped_column(ForeignKey("sla_policies.id", ondelete="SET NULL"))
    #: The soonest due time of the conversation's active clocks (the risk view's sort key).
    next_due_at: Mapped[datetime | None]
    #: When the channel stops accepting a free-form reply (Messenger, WhatsApp, …).
    reply_window_closes_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("account_id", "display_id"),
        Index("ix_conversations_next_due", "account_id", "next_due_at"),
        # The list sorted by time left to reply (sort_by=sla_due_at_asc), keyset on (next_due_at, id).
        Index("ix_conversations_list_due", "account_id", "status", "next_due_at", "id"),
        # Keyset pagination of the list: newest activity first, by inbox and status …
        # (PostgreSQL: assignee_id rides along, so the list's counts of mine, unassigned
        # and assigned are index-only scans.)
        Index(
            "ix_conversations_list_inbox",
            "account_id", "inbox_id", "status", "last_activity_at", "id",
            postgresql_include=["assignee_id"],
        ),
        # … across the account …
        Index(
            "ix_conversations_list_account",
            "account_id", "status", "last_activity_at", "id",
            postgresql_include=["assignee_id"],
        ),
        # … and per assignee (the "mine" tab).
        Index(
            "ix_conversations_list_assignee",
            "account_id", "assignee_id", "status", "last_activity_at", "id",
        ),
        Index(None, "inbox_id", "thread_key"),
        Index(None, "contact_id"),
        Index(None, "contact_inbox_id", "id"),
    )


class ConversationLabel(Base):
    """A label on a conversation."""

    __tablename__ = "conversation_labels"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    label: Mapped[str] = mapped_column(String(255), primary_key=True)

    __table_args__ = (Index(None, "label", "conversation_id"),)


class Message(Base):
    """One message of a conversation: from the contact, an agent, a bot, or the system."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    inbox_id: Mapped[int] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    message_type: Mapped[str] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(32), default="text")
    content: Mapped[str | None] = mapped_column(Text)
    #: Sanitized HTML, for channels that have one (e-mail).
    html_content: Mapped[str | None] = mapped_column(Text)
    private: Mapped[bool] = mapped_column(default=False)
    #: The platform's message id; unique per inbox, so a redelivery cannot store twice.
    source_id: Mapped[str | None] = mapped_column(Text)
    sender_type: Mapped[str | None] = mapped_column(String(16))
    sender_id: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16), default="sent")
    external_error: Mapped[str | None] = mapped_column(Text)
    #: Sent by a machine (auto-reply, bounce, bot); never starts an SLA clock.
    automatic: Mapped[bool] = mapped_column(default=False)
    content_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    additional_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: When the message was written (the platform's timestamp where it gives one).
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    attachments: Mapped[list[Attachment]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="Attachment.id"
    )

    __table_args__ = (
        UniqueConstraint("inbox_id", "source_id"),
        Index(None, "conversation_id", "id"),
        Index(None, "account_id", "created_at"),
        # The outbox: replies still to send.
        Index(
            "ix_messages_outbox",
            "status",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )


class Attachment(Base):
    """A file on a message, stored under the data dir."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    file_type: Mapped[str] = mapped_column(String(16), default="file")
    content_type: Mapped[str | None] = mapped_column(String(255))
    file_name: Mapped[str | None] = mapped_column(String(1000))
    file_size: Mapped[int | None]
    #: Path relative to the data dir; None when only ``external_url`` is known.
    storage_path: Mapped[str | None] = mapped_column(Text)
    external_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

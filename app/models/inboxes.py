"""Inboxes (one per connected channel), their members, and connector cursors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, utcnow


class Inbox(Base):
    """One connected channel of an account: an email address, a chat widget, a shop…"""

    __tablename__ = "inboxes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    #: Short channel name: api, email, web_widget, telegram, facebook, whatsapp, line, …
    channel_type: Mapped[str] = mapped_column(String(32))
    #: Public identifier for the channel's public endpoints (API channel, widget token).
    identifier: Mapped[str] = mapped_column(String(64), unique=True)
    #: Non-secret channel settings (addresses, options), as given through the API.
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Secret channel settings (passwords, tokens), Fernet-encrypted JSON.
    credentials_encrypted: Mapped[str | None] = mapped_column(Text)
    greeting_enabled: Mapped[bool] = mapped_column(default=False)
    greeting_message: Mapped[str | None] = mapped_column(Text)
    enable_auto_assignment: Mapped[bool] = mapped_column(default=True)
    allow_messages_after_resolved: Mapped[bool] = mapped_column(default=True)
    #: Days after which a new message starts a new conversation instead of reopening.
    reopen_window_days: Mapped[int | None]
    working_hours_enabled: Mapped[bool] = mapped_column(default=False)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (Index(None, "account_id", "id"),)


class InboxMember(Base):
    """An agent's access to an inbox: agents see only their inboxes' conversations."""

    __tablename__ = "inbox_members"

    inbox_id: Mapped[int] = mapped_column(
        ForeignKey("inboxes.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ConnectorCursor(Base):
    """A connector's position in its source, saved with the messages it covered."""

    __tablename__ = "connector_cursors"

    inbox_id: Mapped[int] = mapped_column(
        ForeignKey("inboxes.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True, default="default")
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

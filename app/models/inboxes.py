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


class ConnectorState(Base):
    """How a pulled inbox is doing, and which process polls it (the lease).

    One row per inbox the runner polls. ``lease_owner`` / ``lease_until`` make exactly
    one process poll an inbox: the owner renews the lease with heartbeats; when it dies
    the lease runs out and another process claims the row. The state is what
    administrators see in the inbox API: ``starting``, ``connected``, ``backing_off``,
    ``auth_failed`` or ``disabled``.
    """

    __tablename__ = "connector_states"

    inbox_id: Mapped[int] = mapped_column(
        ForeignKey("inboxes.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16), default="starting")
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    #: The last fetch that succeeded (with or without new messages).
    last_fetch_at: Mapped[datetime | None]
    #: While backing off: when the next attempt is due.
    next_attempt_at: Mapped[datetime | None]
    #: Errors in a row since the last successful fetch.
    failures: Mapped[int] = mapped_column(default=0)
    #: When the "not fetched for a long time" warning was emitted (once per silence).
    stale_warned_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_until: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

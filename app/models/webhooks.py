"""Outbound webhooks, their deliveries, and agent bots."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, Json, utcnow


class AgentBot(Base):
    """A bot: receives its inboxes' events at ``outgoing_url``, answers through the API.

    Its API identity is a user row with role ``agent_bot`` (``user_id``), so the bot's
    access token works like any other, restricted to the endpoints a bot needs.
    """

    __tablename__ = "agent_bots"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    outgoing_url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgentBotInbox(Base):
    """The one active bot of an inbox."""

    __tablename__ = "agent_bot_inboxes"

    inbox_id: Mapped[int] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"), primary_key=True)
    agent_bot_id: Mapped[int] = mapped_column(ForeignKey("agent_bots.id", ondelete="CASCADE"), index=True)


class Webhook(Base):
    """Where events are delivered: an account webhook, an API inbox's URL, or a bot's URL."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    #: ``account``, ``api_inbox`` or ``agent_bot``.
    webhook_type: Mapped[str] = mapped_column(String(16), default="account")
    inbox_id: Mapped[int | None] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"))
    agent_bot_id: Mapped[int | None] = mapped_column(ForeignKey("agent_bots.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(Text)
    #: Chatwoot event names this webhook wants.
    subscriptions: Mapped[list[str]] = mapped_column(Json, default=list)
    #: Signing secret (``whsec_…``), Fernet-encrypted; shown once at creation.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    #: The secret before the last rotation, still signed with until ``previous_secret_until``.
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    failing_since: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookDelivery(Base):
    """One event for one webhook, retried until the receiver takes it."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    account_id: Mapped[int]
    event_seq: Mapped[int | None]
    event: Mapped[str] = mapped_column(String(64))
    #: Deliveries with the same key are sent in order (one conversation's events).
    ordering_key: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[int | None]
    payload: Mapped[dict[str, Any]]
    #: ``pending``, ``delivered``, ``failed`` (refused for good) or ``dead`` (gave up).
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_response: Mapped[str | None] = mapped_column(Text)
    last_latency_ms: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("webhook_id", "event_seq", "event"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_order", "webhook_id", "ordering_key", "status", "id"),
        Index(None, "webhook_id", "id"),
    )


class WebhookAttempt(Base):
    """The log of every delivery attempt, readable through the API."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DispatchCursor(Base):
    """How far a log follower (the webhook fan-out) has turned events into work."""

    __tablename__ = "dispatch_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

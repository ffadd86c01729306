"""SLA policies, business calendars and the clocks running on conversations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, Json, utcnow


class BusinessCalendarRow(Base):
    """Opening hours and holidays in one time zone (``app.sla.calendar.BusinessCalendar``)."""

    __tablename__ = "business_calendars"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    #: ``{"mon": [["09:00", "17:00"]], …}``
    weekly: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: ``[{"date": "2026-12-25", "yearly": true}, …]``
    holidays: Mapped[list[Any]] = mapped_column(Json, default=list)
    #: The account's default calendar (inboxes may name their own).
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlaPolicy(Base):
    """Chatwoot's SLA policy (thresholds in seconds), applied by rule or by hand."""

    __tablename__ = "sla_policies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    first_response_time_threshold: Mapped[float | None]
    next_response_time_threshold: Mapped[float | None]
    resolution_time_threshold: Mapped[float | None]
    only_during_business_hours: Mapped[bool] = mapped_column(default=False)
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("business_calendars.id", ondelete="SET NULL"))
    #: Pause the resolution clock while the conversation is pending / snoozed.
    pause_on_pending: Mapped[bool] = mapped_column(default=True)
    pause_on_snoozed: Mapped[bool] = mapped_column(default=True)
    #: Whether a bot's reply fulfils the first- and next-response clocks.
    bot_replies_count: Mapped[bool] = mapped_column(default=False)
    #: Automatic application: ``{"inbox_ids": [], "channel_types": [], "priorities": [], "labels": []}``;
    #: empty means "applied by hand only".
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Lower is tried first when several rules match.
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlaClock(Base):
    """One run of one clock on one conversation; ends as met or breached exactly once.

    ``kind``: ``first_response``, ``next_response``, ``resolution``, or a marketplace
    rule (``amazon``, ``walmart``, ``shopee``, …). ``due_at`` on active clocks is the
    index the scheduler reads.
    """

    __tablename__ = "sla_clocks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int]
    inbox_id: Mapped[int]
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    policy_id: Mapped[int | None]
    kind: Mapped[str] = mapped_column(String(32))
    #: The n-th run of this kind on the conversation (next response, reopen cycles).
    cycle: Mapped[int] = mapped_column(default=1)
    #: ``active``, ``met``, ``breached`` or ``excluded`` ("no reply needed").
    status: Mapped[str] = mapped_column(String(16), default="active")
    started_at: Mapped[datetime]
    due_at: Mapped[datetime]
    #: Seconds of pause already granted (resolution while pending/snoozed).
    paused_seconds: Mapped[float] = mapped_column(default=0.0)
    paused_since: Mapped[datetime | None]
    #: Business calendar the clock counts in (None: calendar time).
    calendar: Mapped[dict[str, Any] | None] = mapped_column(Json)
    threshold_seconds: Mapped[float]
    #: Bitmask of the warnings already sent (bit i: the i-th lead time).
    warned: Mapped[int] = mapped_column(default=0)
    #: When the scheduler next has something to do with this clock (a warning or the
    #: breach); the partial index on it is all a scheduler pass reads.
    next_check_at: Mapped[datetime]
    breached_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    calendar_seconds: Mapped[float | None]
    business_seconds: Mapped[float | None]
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("conversation_id", "kind", "cycle"),
        Index("ix_sla_clocks_next_check", "next_check_at", "id", postgresql_where=text("status = 'active'"),
              sqlite_where=text("status = 'active'")),
        # The risk view: an account's running clocks (active or breached, not ended) by due time.
        Index("ix_sla_clocks_open_by_due", "account_id", "due_at", postgresql_where=text("ended_at IS NULL"),
              sqlite_where=text("ended_at IS NULL")),
        Index(None, "account_id", "ended_at"),
    )

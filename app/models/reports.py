"""Reporting events and their hourly roll-up, satisfaction surveys, volume alerts."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, utcnow


def _uuid() -> str:
    return str(uuid.uuid4())


class ReportingEvent(Base):
    """One measurable fact (Chatwoot's ``reporting_events``), written once.

    ``key`` names the fact (``reply:<message id>``, ``first_response:<conversation id>``,
    …) and is unique per account, so recording it twice (a retried commit, a rebuild)
    cannot count it twice. ``value`` is in calendar seconds, ``value_in_business_hours``
    in the account's business calendar.
    """

    __tablename__ = "reporting_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    inbox_id: Mapped[int | None] = mapped_column(BigId)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(BigId)
    team_id: Mapped[int | None] = mapped_column(BigId)
    name: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(96))
    value: Mapped[float] = mapped_column(default=0.0)
    value_in_business_hours: Mapped[float] = mapped_column(default=0.0)
    event_start_time: Mapped[datetime]
    event_end_time: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("account_id", "key"),
        # Reports: one metric of an account over a time range (PostgreSQL: the values
        # ride along, so percentiles are index-only scans).
        Index("ix_reporting_events_report", "account_id", "name", "event_end_time",
              postgresql_include=["value", "value_in_business_hours", "inbox_id", "user_id", "team_id"]),
        Index(None, "conversation_id"),
    )


class ReportingRollup(Base):
    """Counts and sums of reporting events per UTC hour, for the account and per inbox,
    agent and team (``scope`` / ``scope_id``; the account's own row has ``scope_id`` 0).

    Kept in the same transaction as the events; daily, weekly and monthly reports and
    the weekday-by-hour heat map add up one scope's hours (at most 24 rows a day)
    instead of scanning events.
    """

    __tablename__ = "reporting_rollups"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    scope_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
    value_sum: Mapped[float] = mapped_column(default=0.0)
    business_sum: Mapped[float] = mapped_column(default=0.0)


class CsatResponse(Base):
    """A satisfaction survey sent on resolve, and its one answer."""

    __tablename__ = "csat_responses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    inbox_id: Mapped[int] = mapped_column(BigId)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), unique=True)
    contact_id: Mapped[int | None] = mapped_column(BigId, index=True)
    assignee_id: Mapped[int | None] = mapped_column(BigId)
    #: The public survey page's address (``/survey/responses/<uuid>``).
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=_uuid)
    #: The ``input_csat`` message carrying the survey in the conversation, if any.
    message_id: Mapped[int | None] = mapped_column(BigId)
    #: How the survey reached the contact: ``message`` (chat), ``email_link``, ``quick_replies``, ``none``.
    delivery: Mapped[str] = mapped_column(String(16), default="message")
    rating: Mapped[int | None]
    feedback: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index(None, "account_id", "answered_at"),)


class VolumePeak(Base):
    """A known busy period (a sale, a holiday) that must not raise a volume alert."""

    __tablename__ = "volume_peaks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    #: Limit the mark to one label or one channel type; both None: the whole account.
    label: Mapped[str | None] = mapped_column(String(255))
    channel_type: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VolumeAlert(Base):
    """A ``volume.spike`` raised once per scope and window."""

    __tablename__ = "volume_alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    #: ``label`` or ``channel``.
    scope: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(255))
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    observed: Mapped[int]
    baseline_median: Mapped[float]
    score: Mapped[float]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("account_id", "scope", "value", "window_start"),)

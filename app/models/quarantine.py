"""Inbound items that could not be read, kept with their error and raw bytes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, utcnow


class QuarantinedMessage(Base):
    """A message a channel received but could not turn into a ticket message.

    Nothing is lost: the raw bytes are under the data dir (``raw_path``), the reason is in
    ``error``, and administrators list them through the inbox API. ``source_ref`` names the
    item at its source (``imap:<uidvalidity>:<uid>``, ``smtp:<sha256>``) so a replay
    stores it once.
    """

    __tablename__ = "quarantined_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    inbox_id: Mapped[int] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"))
    source_ref: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text)
    raw_path: Mapped[str | None] = mapped_column(Text)
    raw_size: Mapped[int] = mapped_column(default=0)
    content_type: Mapped[str] = mapped_column(String(100), default="message/rfc822")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("inbox_id", "source_ref"),
        Index(None, "account_id", "inbox_id", "id"),
    )

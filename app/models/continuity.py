"""E-mail copies of agents' live-chat replies to visitors who left an address."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, utcnow


class ContinuityEmail(Base):
    """One reply to e-mail to a visitor who was not connected (Chatwoot's conversation
    continuity). ``message_id`` is unique, so a reply is queued at most once; a row is
    claimed (``sending``) before the SMTP call, so it is sent at most once.

    ``status``: ``pending`` → ``sending`` → ``sent`` | ``failed``; a transient SMTP error
    puts it back to ``pending`` with a later ``next_attempt_at``.
    """

    __tablename__ = "continuity_emails"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), unique=True)
    to_address: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The e-mail inbox whose SMTP server sent it, and the mail's Message-ID.
    email_inbox_id: Mapped[int | None] = mapped_column(BigId)
    mail_message_id: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

    __table_args__ = (
        # What the mailer reads: the due pending rows.
        Index("ix_continuity_emails_due", "next_attempt_at", "id",
              postgresql_where=text("status = 'pending'"), sqlite_where=text("status = 'pending'")),
        Index(None, "conversation_id"),
    )

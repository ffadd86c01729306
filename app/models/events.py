"""The append-only event log (transactional outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, utcnow


class Event(Base):
    """One change, written in the same transaction as the change itself.

    ``seq`` grows in commit order (see :mod:`app.events.log`), so a reader that remembers
    the last seq it saw can resume without a gap.
    """

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int]
    inbox_id: Mapped[int | None]
    conversation_id: Mapped[int | None]
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index(None, "account_id", "seq"),
        Index(None, "created_at"),
    )

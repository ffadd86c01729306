"""Contacts (the customers) and their identities on each inbox."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, BigId, utcnow


class Contact(Base):
    """A customer, across every channel they used."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(255))
    #: Lower-cased; unique per account.
    email: Mapped[str | None] = mapped_column(String(320))
    phone_number: Mapped[str | None] = mapped_column(String(64))
    identifier: Mapped[str | None] = mapped_column(String(255))
    avatar_url: Mapped[str | None] = mapped_column(Text)
    blocked: Mapped[bool] = mapped_column(default=False)
    additional_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    custom_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_activity_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    contact_inboxes: Mapped[list[ContactInbox]] = relationship(
        lazy="raise", back_populates="contact", order_by="ContactInbox.id", passive_deletes=True
    )

    __table_args__ = (
        UniqueConstraint("account_id", "email"),
        UniqueConstraint("account_id", "identifier"),
        Index(None, "account_id", "phone_number"),
        Index(None, "account_id", "id"),
    )


def _pubsub_token() -> str:
    return secrets.token_urlsafe(24)


class ContactInbox(Base):
    """A contact's identity on one inbox (e-mail address, PSID, buyer id, …)."""

    __tablename__ = "contact_inboxes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    inbox_id: Mapped[int] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"))
    #: The contact's id on the channel; stored as text (some platforms' ids exceed 2^53).
    source_id: Mapped[str] = mapped_column(Text)
    hmac_verified: Mapped[bool] = mapped_column(default=False)
    pubsub_token: Mapped[str] = mapped_column(String(64), unique=True, default=_pubsub_token)
    #: A live-chat visitor's socket is open until then (renewed while it stays open;
    #: ``app.api.widget``). Past it, agents' replies also go by e-mail.
    online_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    contact: Mapped[Contact] = relationship(lazy="raise", back_populates="contact_inboxes")

    __table_args__ = (UniqueConstraint("inbox_id", "source_id"),)


class ContactLabel(Base):
    """A label on a contact."""

    __tablename__ = "contact_labels"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    label: Mapped[str] = mapped_column(String(255), primary_key=True)

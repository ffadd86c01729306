"""Contacts: CRUD, search, labels, merge, and where they can be reached."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, Invalid, NotFound
from app.events.log import append_event
from app.models import (
    Contact,
    ContactInbox,
    ContactLabel,
    Conversation,
    Inbox,
    Message,
    utcnow,
)
from app.tickets import presenters, search

SORTABLE = {
    "name": Contact.name,
    "email": Contact.email,
    "phone_number": Contact.phone_number,
    "last_activity_at": Contact.last_activity_at,
    "created_at": Contact.created_at,
}


async def get_contact(session: AsyncSession, account_id: int, contact_id: int) -> Contact:
    """A contact of the account; NotFound otherwise."""
    contact = await session.scalar(
        select(Contact).where(Contact.id == contact_id, Contact.account_id == account_id)
    )
    if contact is None:
        raise NotFound("Contact")
    return contact


async def list_contacts(
    session: AsyncSession, account_id: int, *, page: int = 1, sort: str | None = None, limit: int = 15
) -> tuple[list[Contact], int]:
    """A page of contacts and the total count (Chatwoot pages contacts by 15)."""
    query = select(Contact).where(Contact.account_id == account_id)
    descending = bool(sort and sort.startswith("-"))
    column = SORTABLE.get((sort or "").lstrip("-"))
    if column is not None:
        query = query.order_by(column.desc() if descending else column.asc(), Contact.id)
    else:
        query = query.order_by(Contact.last_activity_at.desc().nulls_last(), Contact.id.desc())
    total = await session.scalar(select(func.count()).where(Contact.account_id == account_id))
    rows = await session.scalars(query.offset(max(page - 1, 0) * limit).limit(limit))
    return list(rows), int(total or 0)


async def search_contacts(
    session: AsyncSession, account_id: int, q: str, *, page: int = 1, limit: int = 15,
    inbox_filter: ColumnElement[bool] | None = None,
) -> tuple[list[Contact], int]:
    """Contacts whose name, e-mail, phone or identifier contains ``q`` (any script).

    ``inbox_filter`` (a clause on ``ContactInbox.inbox_id``) limits an agent to contacts
    with an identity on one of their inboxes. An empty query finds nothing.
    """
    q = search.normalize_query(q)
    if not q:
        return [], 0
    condition = (Contact.account_id == account_id) & search.contact_condition(q, session.bind.dialect.name)
    if inbox_filter is not None:
        condition = condition & select(ContactInbox.id).where(
            ContactInbox.contact_id == Contact.id, inbox_filter
        ).exists()
    total = await session.scalar(select(func.count()).where(condition))
    rows = await session.scalars(
        select(Contact).where(condition)
        .order_by(Contact.last_activity_at.desc().nulls_last(), Contact.id.desc())
        .offset(max(page - 1, 0) * limit).limit(limit)
    )
    return list(rows), int(total or 0)


async def _ensure_unique(
    session: AsyncSession, account_id: int, *, email: str | None, identifier: str | None, exclude: int | None
) -> None:
    for column, value, field in ((Contact.email, email, "email"), (Contact.identifier, identifier, "identifier")):
        if not value:
            continue
        query = select(Contact.id).where(Contact.account_id == account_id, column == value)
        if exclude is not None:
            query = query.where(Contact.id != exclude)
        if await session.scalar(query) is not None:
            raise Conflict(
                f"{field} has already been taken", errors=[{"field": field, "message": "taken"}]
            )


def _emit(session: AsyncSession, contact: Contact, event_type: str, extra: dict[str, Any] | None = None) -> None:
    append_event(
        session,
        account_id=contact.account_id,
        event_type=event_type,
        payload={**presenters.contact_json(contact), **(extra or {})},
    )


async def create_contact(
    session: AsyncSession,
    account_id: int,
    *,
    name: str | None = None,
    email: str | None = None,
    phone_number: str | None = None,
    identifier: str | None = None,
    avatar_url: str | None = None,
    additional_attributes: dict[str, Any] | None = None,
    custom_attributes: dict[str, Any] | None = None,
    inbox_id: int | None = None,
    source_id: str | None = None,
) -> tuple[Contact, ContactInbox | None]:
    """A new contact, optionally with an identity on one inbox."""
    email = email.strip().lower() if email else None
    await _ensure_unique(session, account_id, email=email, identifier=identifier, exclude=None)
    inbox = None
    if inbox_id is not None:
        inbox = await session.scalar(
            select(Inbox).where(Inbox.id == inbox_id, Inbox.account_id == account_id)
        )
        if inbox is None:
            raise NotFound("Inbox", field="inbox_id")
    contact = Contact(
        account_id=account_id,
        name=name or email or phone_number or identifier,
        email=email,
        phone_number=phone_number,
        identifier=identifier,
        avatar_url=avatar_url,
        additional_attributes=additional_attributes or {},
        custom_attributes=custom_attributes or {},
        created_at=utcnow(),
    )
    session.add(contact)
    await session.flush()
    contact_inbox = None
    if inbox is not None:
        contact_inbox = await add_identity(
            session, contact, inbox, source_id or email or phone_number or str(uuid.uuid4())
        )
    _emit(session, contact, "contact.created")
    return contact, contact_inbox


async def add_identity(session: AsyncSession, contact: Contact, inbox: Inbox, source_id: str) -> ContactInbox:
    """Give a contact an identity on an inbox; Conflict if it belongs to someone else."""
    existing = await session.scalar(
        select(ContactInbox).where(ContactInbox.inbox_id == inbox.id, ContactInbox.source_id == source_id)
    )
    if existing is not None:
        if existing.contact_id != contact.id:
            raise Conflict("source_id is already used by another contact on this inbox")
        return existing
    contact_inbox = ContactInbox(contact_id=contact.id, inbox_id=inbox.id, source_id=source_id)
    session.add(contact_inbox)
    await session.flush()
    return contact_inbox


async def update_contact(session: AsyncSession, contact: Contact, changes: dict[str, Any]) -> Contact:
    """Apply the given fields; attribute dicts are merged, as in Chatwoot."""
    if "email" in changes and changes["email"]:
        changes["email"] = changes["email"].strip().lower()
    await _ensure_unique(
        session,
        contact.account_id,
        email=changes.get("email"),
        identifier=changes.get("identifier"),
        exclude=contact.id,
    )
    for field in ("name", "email", "phone_number", "identifier", "avatar_url", "blocked"):
        if field in changes:
            setattr(contact, field, changes[field])
    for field in ("additional_attributes", "custom_attributes"):
        if changes.get(field) is not None:
            setattr(contact, field, {**(getattr(contact, field) or {}), **changes[field]})
    await session.flush()
    _emit(session, contact, "contact.updated")
    return contact


async def delete_contact(session: AsyncSession, contact: Contact) -> None:
    """Delete a contact with their conversations (Chatwoot's behaviour)."""
    payload = presenters.contact_json(contact)
    # A Core DELETE lets the database's ON DELETE CASCADE remove identities, labels and
    # conversations; ``session.delete`` would try to null ``contact_inboxes.contact_id``.
    await session.execute(delete(Contact).where(Contact.id == contact.id))
    await session.flush()
    append_event(session, account_id=contact.account_id, event_type="contact.deleted", payload=payload)


async def merge_contacts(session: AsyncSession, account_id: int, base_id: int, mergee_id: int) -> Contact:
    """Move the mergee's identities, conversations and messages to the base; delete the mergee."""
    if base_id == mergee_id:
        raise Invalid("a contact cannot be merged into itself", field="mergee_contact_id")
    base = await get_contact(session, account_id, base_id)
    mergee = await get_contact(session, account_id, mergee_id)
    # Identities on an inbox where the base already has one keep their own source id.
    await session.execute(
        update(ContactInbox).where(ContactInbox.contact_id == mergee.id).values(contact_id=base.id)
    )
    await session.execute(
        update(Conversation).where(Conversation.contact_id == mergee.id).values(contact_id=base.id)
    )
    await session.execute(
        update(Message)
        .where(Message.account_id == account_id, Message.sender_type == "contact", Message.sender_id == mergee.id)
        .values(sender_id=base.id)
    )
    mergee_labels = set(await session.scalars(select(ContactLabel.label).where(ContactLabel.contact_id == mergee.id)))
    base_labels = set(await session.scalars(select(ContactLabel.label).where(ContactLabel.contact_id == base.id)))
    await session.execute(delete(ContactLabel).where(ContactLabel.contact_id == mergee.id))
    for label in sorted(mergee_labels - base_labels):
        session.add(ContactLabel(contact_id=base.id, label=label))
    for field in ("email", "phone_number", "identifier", "name", "avatar_url"):
        if getattr(base, field) is None and getattr(mergee, field) is not None:
            value = getattr(mergee, field)
            setattr(mergee, field, None)
            await session.flush()
            setattr(base, field, value)
    base.custom_attributes = {**(mergee.custom_attributes or {}), **(base.custom_attributes or {})}
    base.additional_attributes = {**(mergee.additional_attributes or {}), **(base.additional_attributes or {})}
    if mergee.last_activity_at and (not base.last_activity_at or mergee.last_activity_at > base.last_activity_at):
        base.last_activity_at = mergee.last_activity_at
    mergee_json = presenters.contact_json(mergee)
    await session.delete(mergee)
    await session.flush()
    _emit(session, base, "contact.merged", {"merged_contact": mergee_json})
    return base


async def contact_labels(session: AsyncSession, contact: Contact) -> list[str]:
    """A contact's labels."""
    rows = await session.scalars(
        select(ContactLabel.label).where(ContactLabel.contact_id == contact.id).order_by(ContactLabel.label)
    )
    return list(rows)


async def set_contact_labels(session: AsyncSession, contact: Contact, labels: list[str]) -> list[str]:
    """Replace a contact's labels."""
    wanted = sorted({label.strip() for label in labels if label and label.strip()})
    await session.execute(delete(ContactLabel).where(ContactLabel.contact_id == contact.id))
    for label in wanted:
        session.add(ContactLabel(contact_id=contact.id, label=label))
    await session.flush()
    _emit(session, contact, "contact.updated")
    return wanted


async def _identities(session: AsyncSession, contact: Contact) -> dict[int, tuple[str, bool]]:
    """The contact's latest identity on each inbox: inbox id -> (source id, has conversations)."""
    has_conversations = (
        select(Conversation.id).where(Conversation.contact_inbox_id == ContactInbox.id).exists()
    )
    rows = await session.execute(
        select(ContactInbox.inbox_id, ContactInbox.source_id, has_conversations)
        .where(ContactInbox.contact_id == contact.id)
        .order_by(ContactInbox.id)
    )
    return {inbox_id: (source_id, bool(busy)) for inbox_id, source_id, busy in rows}


def contactable_source_id(contact: Contact, inbox: Inbox, identity: tuple[str, bool] | None) -> str | None:
    """The source id to start a conversation with ``contact`` on ``inbox``; None if it cannot be.

    Chatwoot's rules: an API inbox always can (a fresh id when the contact has none
    there); e-mail needs the contact's address, WhatsApp and SMS their phone number
    (WhatsApp without the ``+``); live chat only offers an identity that has no
    conversation yet. An identity the contact already has is reused, and on the other
    channels (messengers, marketplaces) it is the only way in.
    """
    existing = identity[0] if identity else None
    if inbox.channel_type == "web_widget":
        return existing if identity and not identity[1] else None
    if existing:
        return existing
    if inbox.channel_type == "api":
        return str(uuid.uuid4())
    if inbox.channel_type == "email":
        return contact.email or None
    if inbox.channel_type == "whatsapp" and contact.phone_number:
        return contact.phone_number.replace("+", "")
    if inbox.channel_type == "sms":
        return contact.phone_number or None
    return None


async def contactable_inboxes(session: AsyncSession, contact: Contact) -> list[tuple[str, Inbox]]:
    """Inboxes of the account a conversation with the contact can start on, with the source id to use."""
    identities = await _identities(session, contact)
    inboxes = await session.scalars(
        select(Inbox).where(Inbox.account_id == contact.account_id).order_by(Inbox.id)
    )
    found = []
    for inbox in inboxes:
        source_id = contactable_source_id(contact, inbox, identities.get(inbox.id))
        if source_id:
            found.append((source_id, inbox))
    return found


async def conversations_of(session: AsyncSession, contact: Contact, inbox_filter: Any) -> list[Conversation]:
    """The contact's conversations the caller may see, newest first."""
    rows = await session.scalars(
        select(Conversation)
        .where(Conversation.contact_id == contact.id, inbox_filter)
        .order_by(Conversation.last_activity_at.desc(), Conversation.id.desc())
        .limit(100)
    )
    return list(rows)

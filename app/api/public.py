"""Chatwoot's public inbox API, for sources Postroom has no connector for (API channel).

A custom source creates contacts, conversations and messages here; replies reach it
through the inbox's ``webhook_url`` (signed). Optional protections, per inbox:

* ``hmac_mandatory`` with ``hmac_token``: the contact's ``identifier_hash`` must be
  HMAC-SHA256(hmac_token, identifier), as in Chatwoot;
* ``inbound_signing_secret``: every request must carry Standard Webhooks signature
  headers, checked in constant time, at most 5 minutes old.

Bodies are limited to 1 MiB; broken JSON answers 422 and stores nothing. An
``Idempotency-Key`` header (or a ``source_id`` field) on message creation makes retries
safe: the same key on the same inbox answers the first message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import RuntimeDep, SessionDep
from app.api.schemas import Body
from app.errors import Invalid, NotFound, TooLarge, Unauthorized
from app.models import Contact, ContactInbox, Conversation, Inbox, Message
from app.runtime import Runtime
from app.tickets import presenters
from app.tickets.conversations import start_conversation
from app.tickets.ingest import ingest
from app.tickets.views import present_messages
from app.webhooks.signing import verify
from connectors.base import InboundMessage, SenderIdentity

router = APIRouter(prefix="/public/api/v1/inboxes/{inbox_identifier}", tags=["public API channel"])
MAX_BODY_BYTES = 1024 * 1024


class PublicContact(Body):
    identifier: str | None = None
    identifier_hash: str | None = None
    name: str | None = Field(default=None, examples=["Lê Minh"])
    email: str | None = None
    phone_number: str | None = None
    custom_attributes: dict[str, Any] | None = None


class PublicConversation(Body):
    custom_attributes: dict[str, Any] | None = None


class PublicMessage(Body):
    content: str = Field(min_length=1, max_length=150_000, examples=["Where is my parcel?"])
    echo_id: str | None = None
    source_id: str | None = Field(default=None, max_length=2000)


async def _inbox(session: AsyncSession, identifier: str) -> Inbox:
    inbox = await session.scalar(select(Inbox).where(Inbox.identifier == identifier, Inbox.channel_type == "api"))
    if inbox is None:
        raise NotFound("Inbox")
    return inbox


async def _body(request: Request, runtime: Runtime, inbox: Inbox, model: type[BaseModel]) -> Any:
    """The checked body: size, signature (when the inbox asks for one), JSON, fields."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise TooLarge(f"body larger than {MAX_BODY_BYTES} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise TooLarge(f"body larger than {MAX_BODY_BYTES} bytes")
    credentials = runtime.box.open(inbox.credentials_encrypted)
    secret = credentials.get("inbound_signing_secret")
    if secret and not verify(secret, dict(request.headers), raw):
        raise Unauthorized("missing, invalid or expired webhook signature")
    try:
        document = json.loads(raw or b"{}")
    except ValueError as exc:
        raise Invalid(f"body is not valid JSON: {exc}") from exc
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise Invalid(first.get("msg", "invalid"), field=".".join(str(p) for p in first.get("loc", ()))) from exc


async def _contact_inbox(session: AsyncSession, inbox: Inbox, contact_identifier: str) -> tuple[ContactInbox, Contact]:
    row = (await session.execute(
        select(ContactInbox, Contact).join(Contact, Contact.id == ContactInbox.contact_id)
        .where(ContactInbox.inbox_id == inbox.id, ContactInbox.source_id == contact_identifier)
    )).first()
    if row is None:
        raise NotFound("Contact")
    return row[0], row[1]


def _public_contact(contact: Contact, contact_inbox: ContactInbox) -> dict[str, Any]:
    return {"id": contact.id, "source_id": contact_inbox.source_id, "pubsub_token": contact_inbox.pubsub_token,
            "name": contact.name, "email": contact.email, "phone_number": contact.phone_number,
            "identifier": contact.identifier}


@router.post("/contacts", summary="Create a contact on the API inbox")
async def create_contact(inbox_identifier: str, request: Request, session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    inbox = await _inbox(session, inbox_identifier)
    body: PublicContact = await _body(request, runtime, inbox, PublicContact)
    settings, credentials = inbox.settings or {}, runtime.box.open(inbox.credentials_encrypted)
    verified = False
    if credentials.get("hmac_token") and body.identifier:
        expected = hmac.new(credentials["hmac_token"].encode(), body.identifier.encode(), hashlib.sha256).hexdigest()
        verified = hmac.compare_digest(expected, body.identifier_hash or "")
    if settings.get("hmac_mandatory") and not verified:
        raise Unauthorized("identifier_hash is missing or does not match the identifier")
    contact = None
    if body.identifier:
        contact = await session.scalar(select(Contact).where(Contact.account_id == inbox.account_id, Contact.identifier == body.identifier))
    if contact is None and body.email:
        contact = await session.scalar(select(Contact).where(Contact.account_id == inbox.account_id, Contact.email == body.email.lower()))
    if contact is None:
        contact = Contact(account_id=inbox.account_id, name=body.name or body.email or body.identifier,
                          email=body.email.lower() if body.email else None, phone_number=body.phone_number,
                          identifier=body.identifier, custom_attributes=body.custom_attributes or {}, additional_attributes={})
        session.add(contact)
        await session.flush()
    contact_inbox = ContactInbox(contact_id=contact.id, inbox_id=inbox.id, source_id=str(uuid.uuid4()), hmac_verified=verified)
    session.add(contact_inbox)
    await session.flush()
    return _public_contact(contact, contact_inbox)


@router.get("/contacts/{contact_identifier}", summary="Get a contact by its source id")
async def get_contact(inbox_identifier: str, contact_identifier: str, session: SessionDep) -> dict[str, Any]:
    inbox = await _inbox(session, inbox_identifier)
    contact_inbox, contact = await _contact_inbox(session, inbox, contact_identifier)
    return _public_contact(contact, contact_inbox)


def _public_conversation(conversation: Conversation, contact: Contact) -> dict[str, Any]:
    return {"id": conversation.display_id, "uuid": conversation.uuid, "inbox_id": conversation.inbox_id,
            "status": conversation.status, "contact_last_seen_at": presenters.unix(conversation.contact_last_seen_at),
            "agent_last_seen_at": presenters.unix(conversation.agent_last_seen_at),
            "contact": {"id": contact.id, "name": contact.name, "email": contact.email}, "messages": []}


@router.post("/contacts/{contact_identifier}/conversations", summary="Start a conversation")
async def create_conversation(inbox_identifier: str, contact_identifier: str, request: Request,
                              session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    inbox = await _inbox(session, inbox_identifier)
    body: PublicConversation = await _body(request, runtime, inbox, PublicConversation)
    contact_inbox, contact = await _contact_inbox(session, inbox, contact_identifier)
    from app.webhooks.service import bot_of_inbox

    status = "pending" if await bot_of_inbox(session, inbox) else "open"
    conversation = await start_conversation(session, inbox, contact_inbox, status=status,
                                            thread_key=f"api:{uuid.uuid4()}", custom_attributes=body.custom_attributes)
    return _public_conversation(conversation, contact)


@router.get("/contacts/{contact_identifier}/conversations", summary="The contact's conversations")
async def list_conversations(inbox_identifier: str, contact_identifier: str, session: SessionDep) -> list[dict[str, Any]]:
    inbox = await _inbox(session, inbox_identifier)
    contact_inbox, contact = await _contact_inbox(session, inbox, contact_identifier)
    rows = await session.scalars(select(Conversation).where(Conversation.contact_inbox_id == contact_inbox.id).order_by(Conversation.id))
    return [_public_conversation(c, contact) for c in rows]


async def _conversation(session: AsyncSession, contact_inbox: ContactInbox, display_id: int) -> Conversation:
    conversation = await session.scalar(select(Conversation).where(
        Conversation.contact_inbox_id == contact_inbox.id, Conversation.display_id == display_id))
    if conversation is None:
        raise NotFound("Conversation")
    return conversation


@router.post("/contacts/{contact_identifier}/conversations/{conversation_id}/messages",
             summary="Post the contact's message (Idempotency-Key makes retries safe)")
async def create_message(inbox_identifier: str, contact_identifier: str, conversation_id: int, request: Request,
                         session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    inbox = await _inbox(session, inbox_identifier)
    body: PublicMessage = await _body(request, runtime, inbox, PublicMessage)
    contact_inbox, contact = await _contact_inbox(session, inbox, contact_identifier)
    conversation = await _conversation(session, contact_inbox, conversation_id)
    source_id = request.headers.get("idempotency-key") or body.source_id or f"public:{uuid.uuid4()}"
    result = await ingest(session, InboundMessage(
        inbox_id=inbox.id, source_id=source_id, thread_key=conversation.thread_key,
        sender=SenderIdentity(source_id=contact_inbox.source_id, name=contact.name, email=contact.email),
        text=body.content, metadata={"echo_id": body.echo_id} if body.echo_id else {},
    ), store=runtime.store)
    message = await session.get(Message, result.message_id)
    owner = await session.get(Conversation, result.conversation_id)
    assert message is not None and owner is not None
    (payload,) = await present_messages(session, [message], {owner.id: owner.display_id})
    if body.echo_id:
        payload["echo_id"] = body.echo_id
    return payload


@router.get("/contacts/{contact_identifier}/conversations/{conversation_id}/messages", summary="The conversation's public messages")
async def list_messages(inbox_identifier: str, contact_identifier: str, conversation_id: int, session: SessionDep) -> list[dict[str, Any]]:
    inbox = await _inbox(session, inbox_identifier)
    contact_inbox, _ = await _contact_inbox(session, inbox, contact_identifier)
    conversation = await _conversation(session, contact_inbox, conversation_id)
    rows = list(await session.scalars(select(Message).where(
        Message.conversation_id == conversation.id, Message.private.is_(False)).order_by(Message.id)))
    return await present_messages(session, rows, {conversation.id: conversation.display_id})
